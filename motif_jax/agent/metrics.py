"""Run metrics: one JSON object per line in RUN/metrics.jsonl, TensorBoard scalars, a rich console line."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from rich.console import Console

CONSOLE_KEYS = ("env_steps", "sps", "episode_return", "episode_length", "success_rate", "intrinsic_share",
                "entropy", "approx_kl", "policy_lag")
METRICS_FILE = "metrics.jsonl"


class MetricsLogger:
    def __init__(self, run_dir: str | Path, tensorboard: bool = True, console: bool = True, enabled: bool = True):
        self.enabled = enabled
        self.console = Console(stderr=True) if console and enabled else None
        self.writer = None
        if not enabled:
            return
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        self.file = open(run_dir / METRICS_FILE, "a", buffering=1)
        if tensorboard:
            from tensorboardX import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        record = {k: _plain(v) for k, v in record.items()}
        record = {k: v for k, v in record.items() if not (isinstance(v, float) and not math.isfinite(v))}
        self.file.write(json.dumps(record) + "\n")
        step = record.get("env_steps", 0)
        if self.writer is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k != "env_steps":
                    self.writer.add_scalar(k, v, step)
        if self.console is not None:
            parts = [f"{k}={_short(record[k])}" for k in CONSOLE_KEYS if k in record]
            self.console.print("[bold]train[/bold] " + "  ".join(parts), highlight=False)

    def close(self) -> None:
        if not self.enabled:
            return
        self.file.close()
        if self.writer is not None:
            self.writer.close()


def drop_metrics_after(path: Path, env_steps: int) -> None:
    """On resume: keep the records up to the restored step (a killed run logged past its last checkpoint,
    and may have cut its last line short), so the resumed run's records follow on without repeats."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("env_steps", 0) <= env_steps:
            kept.append(line + "\n")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(kept))
    os.replace(tmp, path)


def _plain(v):
    if hasattr(v, "item"):
        v = v.item()
    return v


def _short(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
