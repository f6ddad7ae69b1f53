"""`motif experiment --wandb PROJECT`: every stage it starts logs to W&B in the experiment's group (through
the environment its subprocesses, SLURM jobs included, inherit), and the results get a run of their own."""

from __future__ import annotations

import os
from pathlib import Path

from motif_jax.config import load_yaml
from motif_jax.tracking import ENV_PROJECT, WandbConfig, open_tracker


def enable(project: str, group: str) -> None:
    os.environ[ENV_PROJECT] = project
    os.environ.setdefault("WANDB_RUN_GROUP", group)


def track_results(out: Path, name: str) -> None:
    """The experiment's file as config, table.md's rows as a table, the plots as images."""
    tracker = open_tracker(WandbConfig(), out, "experiment", load_yaml(out / "experiment.yaml"), f"{name}-results")
    if tracker is None:
        return
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in (out / "table.md").read_text().splitlines()]
    rows = [r for r in rows if len(r) > 1 and not set("".join(r)) <= set("-")]  # the header, then conditions
    if rows:
        tracker.log_table("results", rows[0], rows[1:])
    for plot in sorted((out / "plots").glob("*.png")):
        tracker.log_image(f"plots/{plot.stem}", plot)
    tracker.finish()
