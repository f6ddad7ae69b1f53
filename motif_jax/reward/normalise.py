"""Reward normalisation shipped with a checkpoint: mean/std over the training set and the
5%..95% quantiles of the normalised reward over the *unique* training captions.

Statistics are computed from unique captions and their counts: the reward is a function
of the caption, so a count-weighted mean over uniques equals the mean over every caption
of the training set while scoring each distinct caption once.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from motif_jax.errors import MotifError

QUANTILE_LEVELS = np.round(np.arange(1, 20) * 0.05, 2)  # 0.05, 0.10, ..., 0.95
MIN_STD = 1e-6  # a constant reward (e.g. an untrained net on one caption) must not divide by zero


@struct.dataclass
class NormStats:
    mean: Any  # () float32
    std: Any  # () float32
    quantiles: Any  # (19,) float32, normalised reward at QUANTILE_LEVELS


def compute_stats(raw_unique: np.ndarray, counts: np.ndarray) -> NormStats:
    """Count-weighted mean/std of the raw reward, and quantiles of the normalised unique rewards."""
    raw_unique = np.asarray(raw_unique, np.float64)
    counts = np.asarray(counts, np.float64)
    if raw_unique.size == 0 or counts.sum() <= 0:
        raise MotifError("cannot normalise the reward: the training set holds no captions")
    mean = float(np.sum(counts * raw_unique) / counts.sum())
    std = max(float(np.sqrt(np.sum(counts * (raw_unique - mean) ** 2) / counts.sum())), MIN_STD)
    quantiles = np.quantile((raw_unique - mean) / std, QUANTILE_LEVELS)
    return NormStats(np.float32(mean), np.float32(std), quantiles.astype(np.float32))


def normalise(raw: jax.Array, stats: NormStats) -> jax.Array:
    return (raw - stats.mean) / stats.std


def quantile_threshold(quantiles: jax.Array, eps_quantile) -> jax.Array:
    """The eps-quantile of the normalised reward, read off the stored 5%..95% grid
    (exact on grid points, linear in between)."""
    if isinstance(eps_quantile, (int, float)) and not QUANTILE_LEVELS[0] <= eps_quantile <= QUANTILE_LEVELS[-1]:
        raise MotifError(f"eps_quantile must be within [0.05, 0.95] (the stored quantile grid), got {eps_quantile}")
    return jnp.interp(eps_quantile, jnp.asarray(QUANTILE_LEVELS, jnp.float32), quantiles)


def stats_to_json(stats: NormStats) -> dict[str, Any]:
    return {
        "mean": float(stats.mean),
        "std": float(stats.std),
        "quantiles": {f"{level:.2f}": float(q) for level, q in zip(QUANTILE_LEVELS, np.asarray(stats.quantiles))},
    }


def stats_from_json(data: dict[str, Any]) -> NormStats:
    try:
        quantiles = [data["quantiles"][f"{level:.2f}"] for level in QUANTILE_LEVELS]
        return NormStats(np.float32(data["mean"]), np.float32(data["std"]), np.asarray(quantiles, np.float32))
    except (KeyError, TypeError) as e:
        raise MotifError(f"checkpoint metadata: malformed normalisation stats ({e!r})") from e
