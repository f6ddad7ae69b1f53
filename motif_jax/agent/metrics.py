"""The training run's log: ``metrics.jsonl``, TensorBoard and W&B (``motif_jax.metrics``) and a rich console line."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from motif_jax.metrics import METRICS_FILE, MetricsWriter, keep_metrics
from motif_jax.tracking import WandbConfig, open_tracker

CONSOLE_KEYS = (
    "env_steps",
    "sps",
    "episode_return",
    "episode_length",
    "success_rate",
    "intrinsic_share",
    "entropy",
    "approx_kl",
    "policy_lag",
)

__all__ = ["CONSOLE_KEYS", "METRICS_FILE", "MetricsLogger", "drop_metrics_after"]


class MetricsLogger:
    """Records keyed by ``env_steps``; on processes other than the first (``enabled`` False) it does nothing.
    With ``wandb`` on, the run's ``run_config`` and records also go to Weights & Biases."""

    def __init__(
        self,
        run_dir: str | Path,
        tensorboard: bool = True,
        console: bool = True,
        enabled: bool = True,
        wandb: WandbConfig | None = None,
        run_config: dict | None = None,
    ):
        self.writer = None
        if enabled:
            tracker = open_tracker(wandb, run_dir, "train", run_config or {})
            self.writer = MetricsWriter(run_dir, "env_steps", tensorboard, tracker)
        self.console = Console(stderr=True) if console and enabled else None

    def log(self, record: dict) -> None:
        if self.writer is None:
            return
        record = self.writer.write(record)
        if self.console is not None:
            parts = [f"{k}={_short(record[k])}" for k in CONSOLE_KEYS if k in record]
            self.console.print("[bold]train[/bold] " + "  ".join(parts), highlight=False)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def drop_metrics_after(path: Path, env_steps: int) -> None:
    """On resume: keep the records up to the restored step (a killed run logged past its last checkpoint,
    and may have cut its last line short), so the resumed run's records follow on without repeats."""
    if path.exists():
        keep_metrics(path, lambda record: record.get("env_steps", 0) <= env_steps)


def _short(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
