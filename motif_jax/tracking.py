"""Optional experiment tracking with Weights & Biases, beside metrics.jsonl and TensorBoard (never instead).

Off unless a stage is given a project: ``--wandb PROJECT``, the ``wandb.project`` config key, or the
``MOTIF_WANDB`` environment variable (how ``motif experiment --wandb`` reaches the stages it starts).
``wandb`` is imported only then, so a run without tracking neither needs nor loads it. ``WANDB_MODE=offline``
(or ``wandb.mode: offline``) writes the run under ``RUN/wandb/`` for a later ``wandb sync``.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

from motif_jax.errors import MotifError

ENV_PROJECT = "MOTIF_WANDB"
MODES = ("", "online", "offline", "disabled")


@dataclasses.dataclass
class WandbConfig:
    project: str = ""  # W&B project; empty: no tracking (unless $MOTIF_WANDB names one)
    mode: str = ""  # online | offline | disabled; empty: $WANDB_MODE, else online
    group: str = ""  # W&B group (motif experiment: the experiment's name); empty: $WANDB_RUN_GROUP
    name: str = ""  # run name; empty: the output folder's name


def git_commit() -> str | None:
    """The commit of the checkout this package runs from (None when installed from a wheel)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def open_tracker(
    config: WandbConfig | None, run_dir: str | Path, job_type: str, run_config: dict[str, Any], name: str = ""
) -> WandbTracker | None:
    """A tracker if tracking is on (see the module's doc), else None."""
    config = config or WandbConfig()
    project = config.project or os.environ.get(ENV_PROJECT, "")
    if not project:
        return None
    if config.mode not in MODES:
        raise MotifError(f"wandb.mode must be one of online, offline, disabled; got {config.mode!r}")
    return WandbTracker(
        project,
        run_dir,
        name=config.name or name or Path(run_dir).resolve().name,
        group=config.group or None,
        mode=config.mode or None,
        job_type=job_type,
        config={**run_config, "git_commit": git_commit()},
    )


class WandbTracker:
    """One W&B run whose files live under ``run_dir/wandb``; ``log`` takes metrics.jsonl records."""

    def __init__(self, project: str, run_dir: str | Path, *, name, group, mode, job_type, config):
        try:
            import wandb
        except ImportError:
            raise MotifError("tracking needs wandb: pip install 'motif-jax[wandb]'") from None
        self.wandb = wandb
        folder = Path(run_dir) / "wandb"
        folder.mkdir(parents=True, exist_ok=True)
        id_file = folder / f"motif-{job_type}-id"  # a resumed run continues its W&B run
        run_id = id_file.read_text().strip() if id_file.is_file() else uuid.uuid4().hex[:12]
        id_file.write_text(run_id + "\n")
        self.run = wandb.init(
            project=project,
            dir=str(run_dir),
            id=run_id,
            resume="allow",
            name=name,
            group=group,
            mode=mode,
            job_type=job_type,
            config=config,
        )

    def log(self, record: dict[str, Any], step: int | None = None) -> None:
        numbers = {k: v for k, v in record.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        self.run.log(numbers, step=step)

    def log_table(self, key: str, columns: list[str], rows: list[list[Any]]) -> None:
        self.run.log({key: self.wandb.Table(columns=columns, data=rows)})

    def log_image(self, key: str, path: str | Path) -> None:
        """A PNG plot, or a GIF replay (as a video)."""
        path = str(path)
        media = self.wandb.Video(path, format="gif") if path.endswith(".gif") else self.wandb.Image(path)
        self.run.log({key: media})

    def summary(self, values: dict[str, Any]) -> None:
        self.run.summary.update(values)

    def finish(self) -> None:
        self.run.finish()
