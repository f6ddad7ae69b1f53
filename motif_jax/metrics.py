"""``metrics.jsonl``, the log of every training run (the agent's and the reward model's): one JSON object per
line, appended as the run goes and optionally mirrored to TensorBoard and Weights & Biases (``tracking``);
readers skip a line a crash cut short.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from motif_jax.errors import MotifError
from motif_jax.files import write_atomic
from motif_jax.tracking import WandbTracker

METRICS_FILE = "metrics.jsonl"


class MetricsWriter:
    """Appends records to ``RUN/metrics.jsonl`` (a line each, flushed at once) and their numbers to
    TensorBoard under ``RUN/tensorboard`` and to ``tracker`` (finished on close) against ``step_key``; NaN and
    inf values are left out."""

    def __init__(
        self, run_dir: str | Path, step_key: str, tensorboard: bool = False, tracker: WandbTracker | None = None
    ):
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path, self.step_key = run_dir / METRICS_FILE, step_key
        self.file = open(self.path, "a", buffering=1)
        self.tensorboard = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            self.tensorboard = SummaryWriter(str(run_dir / "tensorboard"))
        self.tracker = tracker

    def write(self, record: dict[str, Any]) -> dict[str, Any]:
        """Write one record; returns it as written (plain Python values)."""
        record = {k: v.item() if hasattr(v, "item") else v for k, v in record.items()}
        record = {k: v for k, v in record.items() if not (isinstance(v, float) and not math.isfinite(v))}
        self.file.write(json.dumps(record) + "\n")
        if self.tensorboard is not None:
            step = record.get(self.step_key, 0)
            for key, value in record.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and key != self.step_key:
                    self.tensorboard.add_scalar(key, value, step)
            self.tensorboard.flush()
        if self.tracker is not None:
            self.tracker.log(record, step=record.get(self.step_key))
        return record

    def close(self) -> None:
        self.file.close()
        if self.tensorboard is not None:
            self.tensorboard.close()
        if self.tracker is not None:
            self.tracker.finish()


def read_metrics(path: str | Path, strict: bool = False) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl, in order. A line that is not a JSON object (cut short by a crash) is
    skipped; with ``strict`` only a torn last line is, and any other bad line is an error naming it."""
    path = Path(path)
    lines = path.read_text().splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            if strict and number < len(lines):
                raise MotifError(f"{path}:{number}: not a JSON object ({e.msg})") from None
            continue
        if isinstance(record, dict):
            records.append(record)
        elif strict:
            raise MotifError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
    return records


def keep_metrics(
    path: str | Path,
    keep: Callable[[dict[str, Any]], bool],
    extra: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
) -> None:
    """On resume: keep the records ``keep`` accepts (those up to the restored checkpoint: a killed run logged
    past it), plus what ``extra(kept)`` adds, replacing the file atomically so the resumed run follows on."""
    path = Path(path)
    records = [r for r in read_metrics(path) if keep(r)] if path.exists() else []
    records += extra(records) if extra else []
    write_atomic(path, "".join(json.dumps(r) + "\n" for r in records))


def last_value(path: str | Path, key: str, default: Any = None) -> Any:
    """The latest logged ``key`` (read from the file's tail: cheap on a long run that is still writing)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return default
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and key in record:
            return record[key]
    return default
