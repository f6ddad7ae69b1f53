"""What a reward run saves, in one place for the trainer that writes it and the inference code that reads
it (which so depends on no trainer code): folder and file names, the metadata format, the optimiser
(its state is part of the checkpoint) and the layout of the saved train state."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax

from motif_jax.checkpoint import abstract_like
from motif_jax.reward.model import ModelConfig, abstract_weights

CHECKPOINT_DIR = "checkpoints"
META_FORMAT = "motif_jax.reward/1"


def make_optimizer(lr: float) -> optax.GradientTransformation:
    return optax.adam(lr)


def train_state(weights: Any, lr: float) -> dict[str, Any]:
    """The saved state: weights, Adam's state and the step counter."""
    return {"weights": weights, "opt_state": make_optimizer(lr).init(weights), "step": jnp.zeros((), jnp.int32)}


def abstract_train_state(model: ModelConfig, sharding) -> dict[str, Any]:
    """Shapes of the saved state placed with ``sharding`` (they do not depend on the learning rate)."""
    return abstract_like(jax.eval_shape(functools.partial(train_state, lr=1.0), abstract_weights(model)), sharding)
