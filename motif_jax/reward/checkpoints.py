"""Restore reward checkpoints for inference onto any mesh (any device count)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from motif_jax import parallel
from motif_jax.checkpoint import Checkpointer, abstract_like
from motif_jax.config import from_dict
from motif_jax.errors import MotifError
from motif_jax.reward.model import ModelConfig, abstract_weights, config_from_dict
from motif_jax.reward.normalise import NormStats, stats_from_json
from motif_jax.reward.train import CHECKPOINT_DIR, META_FORMAT, TrainConfig, make_optimizer


@dataclasses.dataclass
class Restored:
    weights: Any
    stats: NormStats
    model: ModelConfig
    meta: dict[str, Any]
    step: int


def checkpoint_dir(path: str | Path) -> Path:
    """A run directory or its checkpoints folder -> the folder Orbax manages."""
    path = Path(path)
    if not path.is_dir():
        raise MotifError(f"{path}: no such reward run directory")
    return path / CHECKPOINT_DIR if (path / CHECKPOINT_DIR).is_dir() else path


def read_meta(path: str | Path, step: int | None = None) -> dict[str, Any]:
    with Checkpointer(checkpoint_dir(path), async_save=False) as ckpt:
        meta = ckpt.restore_meta(step)
    if meta.get("format") != META_FORMAT:
        raise MotifError(f"{path}: not a reward-model checkpoint (format {meta.get('format')!r}, expected {META_FORMAT!r})")
    return meta


def abstract_train_state(model: ModelConfig, config: TrainConfig, sharding) -> dict[str, Any]:
    """Shapes of the saved state {weights, opt_state, step} placed with ``sharding``."""
    weights = abstract_weights(model)
    opt_state = jax.eval_shape(make_optimizer(config.lr).init, weights)
    state = {"weights": weights, "opt_state": opt_state, "step": jax.ShapeDtypeStruct((), jnp.int32)}
    return abstract_like(state, sharding)


def restore_inference(path: str | Path, mesh, step: int | None = None) -> Restored:
    directory = checkpoint_dir(path)
    meta = read_meta(directory, step)
    model = config_from_dict(meta["model"])
    config = from_dict(TrainConfig, meta["config"], where=f"{directory} config")
    with Checkpointer(directory, async_save=False) as ckpt:
        step = ckpt.latest_step() if step is None else step
        state, meta = ckpt.restore(abstract_train_state(model, config, parallel.replicated(mesh)), step)
    return Restored(state["weights"], stats_from_json(meta["normalisation"]), model, meta, int(step))
