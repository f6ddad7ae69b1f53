"""Restore reward checkpoints for inference onto any mesh (any device count)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from motif_jax import parallel
from motif_jax.checkpoint import Checkpointer
from motif_jax.config import from_dict
from motif_jax.errors import MotifError
from motif_jax.reward.model import ModelConfig
from motif_jax.reward.normalise import NormStats, stats_from_json
from motif_jax.reward.state import CHECKPOINT_DIR, META_FORMAT, abstract_train_state


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


def check_format(path: str | Path, meta: dict[str, Any]) -> None:
    if meta.get("format") != META_FORMAT:
        raise MotifError(
            f"{path}: not a reward-model checkpoint (format {meta.get('format')!r}, expected {META_FORMAT!r})"
        )


def saved_model(meta: dict[str, Any]) -> ModelConfig:
    """The network a checkpoint's metadata describes (keys added since default to their old behaviour)."""
    return from_dict(ModelConfig, meta["model"], where="checkpoint metadata", prefix="model.")


def restore_inference(path: str | Path, mesh, step: int | None = None) -> Restored:
    """The newest readable step (or ``step``) on ``mesh``; a damaged newer step is skipped with a warning."""
    directory = checkpoint_dir(path)
    with Checkpointer(directory, async_save=False, read_only=True) as ckpt:

        def load(step: int) -> Restored:
            meta = ckpt.restore_meta(step)
            check_format(path, meta)
            model = saved_model(meta)
            target = abstract_train_state(model, parallel.replicated(mesh))
            state = ckpt.restore_items(step, {"state": target})["state"]
            return Restored(state["weights"], stats_from_json(meta["normalisation"]), model, meta, int(step))

        restored, _ = ckpt.restore_newest(load, step)
    return restored
