"""One reward model per skill (MaestroMotif), stacked into one pytree for the learner's jit.

A step's intrinsic reward comes from the model of the skill active at that step, with that skill's own
normalisation, threshold (its eps quantile) and the usual count penalty:

    r_int = 1[r_hat_k(m) > q_k] * r_hat_k(m) / N(m)**beta,   k = the step's skill

All K networks share one architecture, so their weights stack on a leading skill axis; every step runs
through all K nets and keeps its own skill's output (K forward passes, see :func:`skill_raw_rewards`), once
per distinct caption of the batch (``distinct.per_distinct``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from motif_jax import parallel
from motif_jax.errors import MotifError
from motif_jax.reward.checkpoints import restore_inference
from motif_jax.reward.distinct import per_distinct
from motif_jax.reward.intrinsic import thresholded_count_reward
from motif_jax.reward.model import ModelConfig, NetParams, apply, check_features
from motif_jax.reward.normalise import NormStats, quantile_threshold

SKILLS_FILE = "skills.json"  # written last by `train-reward --skills`: its presence means every skill is trained


@struct.dataclass
class SkillRewardParams:
    """K reward models as one pytree: every leaf has a leading skill axis K (skill id = index)."""

    net: NetParams  # weights (K, ...); the architecture (static) is shared
    stats: NormStats  # mean (K,), std (K,), quantiles (K, 19)
    thresholds: Any  # (K,) float32: each skill's normalised-reward threshold, at its own eps quantile


def skill_raw_rewards(net: NetParams, messages: jax.Array, features: jax.Array | None = None) -> jax.Array:
    """Raw reward of every caption under every skill's net: (K, ...) from captions (..., 256).

    A loop over the skill axis (``lax.map``): K ordinary forward passes, one net's activations alive at a
    time, each bit-identical to that skill's single model. On CPU (K=5, 1024 captions, default net) it
    took ~1.0 s against ~1.4 s for an unrolled loop, ~1.4 s for a gather of each step's weights (which
    also copies the network once per step: gigabytes for a learner batch) and ~2.5 s for a vmap over the
    skill axis (which turns each conv into a grouped one)."""
    check_features(net.config, messages.shape[:-1], features)
    return jax.lax.map(lambda weights: apply(net.config, weights, messages, features), net.weights)


def select_skill(per_skill: jax.Array, skills: jax.Array) -> jax.Array:
    """(K, ...) values and (...) skill ids -> (...) each step's own skill's value."""
    skills = jnp.asarray(skills, jnp.int32)
    return jnp.take_along_axis(per_skill, skills[None], axis=0)[0]


def skill_intrinsic(
    params: SkillRewardParams,
    messages: jax.Array,
    counts: jax.Array,
    skills: jax.Array,
    features: jax.Array | None = None,
    beta=3.0,
) -> jax.Array:
    """Intrinsic reward (...) of captions ``messages`` (..., 256) uint8 seen ``counts`` (...) times in the
    episode, each scored by the model of its step's skill ``skills`` (...) int32 in 0..K-1, with the stat
    changes ``features`` (..., F) float32 when the models read them. Pure and jittable."""
    skills = jnp.asarray(skills, jnp.int32)
    raw = select_skill(per_distinct(lambda m, f: skill_raw_rewards(params.net, m, f), messages, features), skills)
    normalised = (raw - params.stats.mean[skills]) / params.stats.std[skills]
    return thresholded_count_reward(normalised, counts, params.thresholds[skills], beta)


class SkillRewards:
    """The reward models of a `train-reward --skills` run, restored for the learner."""

    def __init__(self, params: SkillRewardParams, names: tuple[str, ...], quantiles: dict[str, float], meta, mesh):
        self.params = params
        self.names = names
        self.quantiles = quantiles
        self.meta = meta  # skills.json
        self.mesh = mesh

    @property
    def features(self) -> int:
        """Stat changes each model reads beside the caption (0: captions only)."""
        return self.params.net.config.features

    @staticmethod
    def intrinsic(params: SkillRewardParams, messages, counts, skills, features=None, beta=3.0) -> jax.Array:
        return skill_intrinsic(params, messages, counts, skills, features, beta)


def read_skills_file(directory: str | Path) -> dict[str, Any]:
    """skills.json of a skills reward run: {"skills": [names], "quantiles": {name: q}, "skills_file": str}."""
    path = Path(directory) / SKILLS_FILE
    if not path.is_file():
        raise MotifError(
            f"{path}: not found; train the skills' reward models with `motif train-reward DATASET --skills FILE "
            f"--out {directory}` (it writes this file once every skill is trained)"
        )
    try:
        meta = json.loads(path.read_text())
        names = meta["skills"]
        quantiles = {name: float(meta["quantiles"][name]) for name in names}
    except (ValueError, KeyError, TypeError) as e:
        raise MotifError(f"{path}: malformed ({e!r}); expected skills and quantiles for each skill") from e
    if not names or not all(isinstance(n, str) for n in names):
        raise MotifError(f"{path}: 'skills' must be a non-empty list of skill names")
    for name, q in quantiles.items():
        if not 0.05 <= q <= 0.95:
            raise MotifError(f"{path}: quantile {q} of skill {name!r} must be within [0.05, 0.95]")
    meta["quantiles"] = quantiles
    return meta


def check_same_network(directory: str | Path, names: tuple[str, ...], models: list[ModelConfig]) -> None:
    """Stacking needs one architecture: the first skill whose network differs is a one-line error."""
    for name, model in zip(names, models):
        if model != models[0]:
            raise MotifError(
                f"{directory}: skill {name!r} has another network than {names[0]!r} ({model} vs {models[0]}); "
                "train every skill's reward model with the same settings"
            )


def stack_skill_params(nets: list[NetParams], stats: list[NormStats], quantiles: list[float]) -> SkillRewardParams:
    """K single models -> one pytree with a leading skill axis (the nets must share their architecture)."""
    thresholds = [quantile_threshold(jnp.asarray(s.quantiles), q) for s, q in zip(stats, quantiles)]
    return SkillRewardParams(
        net=NetParams(jax.tree.map(lambda *xs: jnp.stack(xs), *[n.weights for n in nets]), nets[0].config),
        stats=jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x, jnp.float32) for x in xs]), *stats),
        thresholds=jnp.stack(thresholds).astype(jnp.float32),
    )


def load_skills(directory: str | Path, devices=None) -> SkillRewards:
    """Restore every skill's reward model of a `train-reward --skills` run, stacked (skill id = its index in
    skills.json, the skills file's order) and replicated on ``devices`` (default: all)."""
    directory = Path(directory)
    meta = read_skills_file(directory)
    names = tuple(meta["skills"])
    mesh = parallel.make_mesh(devices)
    nets, stats = [], []
    for name in names:
        if not (directory / name).is_dir():
            raise MotifError(f"{directory / name}: no reward run for skill {name!r} (listed in {SKILLS_FILE})")
        restored = restore_inference(directory / name, mesh)
        nets.append(NetParams(restored.weights, restored.model))
        stats.append(restored.stats)
    check_same_network(directory, names, [net.config for net in nets])
    quantiles = [meta["quantiles"][name] for name in names]
    params = stack_skill_params(nets, stats, quantiles)
    params = jax.tree.map(lambda x: jax.device_put(np.asarray(x), parallel.replicated(mesh)), params)
    return SkillRewards(params, names, dict(zip(names, quantiles)), meta, mesh)
