"""Restore reward checkpoints for inference onto any mesh (any device count)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from motif_jax import parallel
from motif_jax.checkpoint import Checkpointer
from motif_jax.errors import MotifError
from motif_jax.reward.model import ModelConfig, config_from_dict
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


def read_meta(path: str | Path, step: int | None = None) -> dict[str, Any]:
    with Checkpointer(checkpoint_dir(path), async_save=False) as ckpt:
        meta = ckpt.restore_meta(step)
    if meta.get("format") != META_FORMAT:
        raise MotifError(f"{path}: not a reward-model checkpoint (format {meta.get('format')!r}, expected {META_FORMAT!r})")
    return meta


def restore_inference(path: str | Path, mesh, step: int | None = None) -> Restored:
    directory = checkpoint_dir(path)
    meta = read_meta(directory, step)
    model = config_from_dict(meta["model"])
    with Checkpointer(directory, async_save=False) as ckpt:
        step = ckpt.latest_step() if step is None else step
        state, meta = ckpt.restore(abstract_train_state(model, parallel.replicated(mesh)), step)
    return Restored(state["weights"], stats_from_json(meta["normalisation"]), model, meta, int(step))
