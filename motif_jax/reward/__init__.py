"""The Motif reward model: train it from preferences, load it, score captions, compute intrinsic rewards.

rm = load(run_dir)                      # restores onto the current devices, whatever count trained it
raw, normalised = rm.score(messages)    # (B, 256) uint8 -> two (B,) numpy arrays
r_int = rm.intrinsic(rm.params, messages, counts, eps_quantile=0.5, beta=3.0)   # pure, jittable
# a model that reads stat changes (rm.features > 0) takes them too: features (..., rm.features) float32

skills = load_skills(skills_dir)       # `train-reward --skills`: K models stacked on a leading skill axis
r_int = skills.intrinsic(skills.params, messages, counts, skill_ids, features, beta=3.0)   # pure, jittable
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from motif_jax import parallel
from motif_jax.reward.captions import MeshScorer
from motif_jax.reward.checkpoints import restore_inference
from motif_jax.reward.intrinsic import RewardParams, intrinsic_from_params, intrinsic_reward
from motif_jax.reward.model import NetParams, check_features, stat_features
from motif_jax.reward.normalise import QUANTILE_LEVELS, NormStats
from motif_jax.reward.skills import SkillRewardParams, SkillRewards, load_skills, skill_intrinsic

__all__ = [
    "load",
    "load_skills",
    "intrinsic_reward",
    "skill_intrinsic",
    "RewardModel",
    "RewardParams",
    "SkillRewards",
    "SkillRewardParams",
    "NetParams",
    "stat_features",
    "NormStats",
    "QUANTILE_LEVELS",
]


class RewardModel:
    """A trained reward model restored for inference; ``params`` is a pytree of jax arrays."""

    def __init__(self, params: RewardParams, meta: dict[str, Any], step: int, mesh):
        self.params = params
        self.meta = meta
        self.step = step
        self.mesh = mesh
        self._scorer = MeshScorer(mesh)

    @property
    def quantiles(self) -> dict[float, float]:
        """Normalised reward at the 5%..95% levels over the unique training captions."""
        return {float(level): float(q) for level, q in zip(QUANTILE_LEVELS, np.asarray(self.params.stats.quantiles))}

    @property
    def annotator(self) -> str:
        return self.meta["annotator"]

    @property
    def features(self) -> int:
        """How many stat changes the model reads beside each caption (0: captions only)."""
        return self.params.net.config.features

    def score(self, messages: np.ndarray, features: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(raw, normalised) rewards of captions (..., 256) uint8 (with their stat changes (..., F) when
        the model reads them), as numpy arrays of shape (...)."""
        messages = np.asarray(messages, np.uint8)
        check_features(self.params.net.config, messages.shape[:-1], features)
        raw = self._scorer(self.params.net, messages, features).reshape(messages.shape[:-1])
        stats = self.params.stats
        return raw, ((raw - np.float32(stats.mean)) / np.float32(stats.std)).astype(np.float32)

    @staticmethod
    def intrinsic(
        params: RewardParams, messages: jax.Array, counts: jax.Array, eps_quantile=0.5, beta=3.0, features=None
    ) -> jax.Array:
        """1[r_hat(m) > q_eps] * r_hat(m) / counts**beta; pure, so callers jit it with params as an argument."""
        return intrinsic_from_params(params, messages, counts, eps_quantile, beta, features)


def load(ckpt_dir: str | Path, step: int | None = None, devices=None) -> RewardModel:
    """Restore a reward run (its directory or its ``checkpoints/`` folder), replicated on ``devices``
    (default: all), so a model trained on 8 devices loads on 1 and vice versa."""
    mesh = parallel.make_mesh(devices)
    restored = restore_inference(ckpt_dir, mesh, step)
    params = RewardParams(NetParams(restored.weights, restored.model), restored.stats)
    params = jax.tree.map(lambda x: jax.device_put(jnp.asarray(x), parallel.replicated(mesh)), params)
    return RewardModel(params, restored.meta, restored.step, mesh)
