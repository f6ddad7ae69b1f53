"""Motif's intrinsic reward, as pure jittable functions:

    r_int(m) = 1[r_hat(m) > q_eps] * r_hat(m) / N(m)**beta

r_hat is the normalised reward of caption m, q_eps the eps-quantile of r_hat over the unique
training captions, N(m) how often m has been seen in the current episode (this step included).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from motif_jax.reward.distinct import per_distinct
from motif_jax.reward.model import NetParams
from motif_jax.reward.normalise import NormStats, normalise, quantile_threshold


def thresholded_count_reward(normalised: jax.Array, counts: jax.Array, threshold: jax.Array, beta) -> jax.Array:
    """The formula on already-normalised rewards; counts below 1 are treated as 1 (first sight)."""
    counts = jnp.maximum(jnp.asarray(counts, jnp.float32), 1.0)
    return jnp.where(normalised > threshold, normalised / counts**beta, 0.0).astype(jnp.float32)


def intrinsic_reward(
    params: NetParams,
    stats: NormStats,
    messages: jax.Array,
    counts: jax.Array,
    eps_quantile=0.5,
    beta=3.0,
    features: jax.Array | None = None,
) -> jax.Array:
    """Intrinsic reward of captions ``messages`` (..., 256) uint8 seen ``counts`` (...) times (with their
    stat changes ``features`` (..., F) when the model reads them). The model runs once per distinct row."""
    normalised = normalise(per_distinct(params, messages, features), stats)
    return thresholded_count_reward(normalised, counts, quantile_threshold(stats.quantiles, eps_quantile), beta)


@struct.dataclass
class RewardParams:
    """Everything the intrinsic reward needs, as one pytree: network weights and normalisation stats."""

    net: NetParams
    stats: NormStats


def intrinsic_from_params(
    params: RewardParams, messages: jax.Array, counts: jax.Array, eps_quantile=0.5, beta=3.0, features=None
):
    return intrinsic_reward(params.net, params.stats, messages, counts, eps_quantile, beta, features)
