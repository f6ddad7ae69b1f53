"""Bradley-Terry preference loss and accuracy, as pure functions of rewards and targets.

Labels are ``motif_jax.data.Label`` (Motif's encoding: 0 first preferred, 1 second, 2 tie, 3 unknown).
A target is P(first caption preferred); unknown pairs get weight 0 so they drop out of
every sum (the same mechanism pads the last batch of an epoch).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from motif_jax.data.dataset import Label
from motif_jax.errors import MotifError

_HARD_TARGET = np.array([1.0, 0.0, 0.5, 0.0], np.float32)  # indexed by label


def preference_targets(labels: np.ndarray, soft: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(target P(first preferred), weight) per pair from int8 labels and optional soft probabilities.

    A finite soft probability replaces the hard target (e.g. from an LLM's log-probabilities);
    label 3 masks the pair whatever the soft value says.
    """
    labels = np.asarray(labels)
    bad = (labels < Label.FIRST) | (labels > Label.UNKNOWN)
    if bad.any():
        raise MotifError(
            f"preference labels must be 0, 1, 2 or 3; found {int(labels[bad][0])} at pair {int(np.argmax(bad))}"
        )
    target = _HARD_TARGET[labels.astype(np.int64)]
    if soft is not None:
        soft = np.asarray(soft, np.float32)
        if soft.shape != labels.shape:
            raise MotifError(f"soft labels have shape {soft.shape}, expected {labels.shape}")
        finite = np.isfinite(soft)
        if ((soft[finite] < 0) | (soft[finite] > 1)).any():
            raise MotifError("soft labels must be probabilities in [0, 1] (or NaN for none)")
        target = np.where(finite, soft, target).astype(np.float32)
    weight = (labels != Label.UNKNOWN).astype(np.float32)
    return target, weight


def sequence_reward(step_rewards: jax.Array) -> jax.Array:
    """Reward of a subsequence = mean of its per-step caption rewards: (..., L) -> (...)."""
    return jnp.mean(step_rewards, axis=-1)


def pair_cross_entropy(rewards: jax.Array, target: jax.Array) -> jax.Array:
    """-[t log softmax(r)_1 + (1 - t) log softmax(r)_2] per pair; rewards (B, 2), target (B,)."""
    log_p = jax.nn.log_softmax(rewards, axis=-1)
    return -(target * log_p[:, 0] + (1.0 - target) * log_p[:, 1])


def pair_correct(rewards: jax.Array, target: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(correct, decisive) per pair: decisive pairs are the non-ties (target != 0.5);
    a decisive pair is correct when the larger reward sits on the preferred side, half when equal."""
    margin = rewards[:, 0] - rewards[:, 1]
    want_first = target > 0.5
    decisive = (target != 0.5).astype(jnp.float32)
    hit = jnp.where(margin == 0, 0.5, (margin > 0) == want_first)
    return hit * decisive, decisive


def preference_sums(rewards: jax.Array, target: jax.Array, weight: jax.Array) -> dict[str, jax.Array]:
    """Weighted sums over a batch, so batches and devices aggregate exactly into epoch metrics."""
    correct, decisive = pair_correct(rewards, target)
    return {
        "loss_sum": jnp.sum(weight * pair_cross_entropy(rewards, target)),
        "weight": jnp.sum(weight),
        "correct": jnp.sum(weight * correct),
        "decisive": jnp.sum(weight * decisive),
    }


def mean_loss(rewards: jax.Array, target: jax.Array, weight: jax.Array) -> jax.Array:
    """The training objective: weighted mean cross-entropy (0 for an all-masked batch, not NaN)."""
    return jnp.sum(weight * pair_cross_entropy(rewards, target)) / jnp.maximum(jnp.sum(weight), 1.0)


def ratio(num: float, den: float) -> float | None:
    """num/den for metrics, None when nothing was counted (JSON null rather than NaN)."""
    return float(num) / float(den) if den else None
