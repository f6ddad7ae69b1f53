"""`motif experiment FILE --out DIR`: run a grid of conditions × seeds and tabulate it.

Finished cells are skipped on a rerun, so an interrupted experiment resumes where it stopped;
`--only` runs a few conditions of a large grid; `--report-only` rebuilds results.json, table.md and
the plots from the cells already done;
`--status DIR` shows each cell's state from the output folder alone.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from motif_jax.config import add_set_argument
from motif_jax.errors import MotifError

EXECUTOR_FLAGS = (  # flag, key of the file's executor section, help
    ("--executor", "kind", "where the cells run: local (default), slurm (submitit jobs) or ray (Ray tasks)"),
    ("--ray-address", "ray_address", "Ray cluster to join, e.g. auto (default: start one here)"),
    ("--partition", "partition", "SLURM partition"),
    ("--cpus-per-cell", "cpus_per_cell", "CPUs of a cell's Ray task or SLURM job"),
    ("--gpus-per-cell", "gpus_per_cell", "GPUs of a cell's Ray task or SLURM job"),
    ("--time-limit-min", "time_limit_min", "SLURM time limit per job, minutes (a timed-out cell is requeued)"),
    ("--array-parallelism", "array_parallelism", "most SLURM jobs running at once"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", help="experiment YAML, e.g. configs/experiments/motif-cpu.yaml")
    parser.add_argument("--out", help="output folder: cells/, shared/, results.json, table.md, plots/")
    add_set_argument(parser, "override a value of the experiment file, e.g. --set train.steps=200000")
    for flag, key, text in EXECUTOR_FLAGS:
        parser.add_argument(flag, dest=f"executor_{key}", help=f"{text} (executor.{key})")
    parser.add_argument(
        "--only",
        metavar="NAME[,NAME...]",
        type=lambda text: [name for name in text.split(",") if name],
        help="run only these conditions (and the trained ones they evaluate); the table lists every finished cell",
    )
    parser.add_argument("--report-only", action="store_true", help="only rebuild the outputs from finished cells")
    parser.add_argument("--status", metavar="DIR", help="show each cell of the experiment in DIR: done, running, ...")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--wandb", metavar="PROJECT", help="log the cells (grouped by experiment) and results to W&B")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console()
    if args.status:
        return show_status(Path(args.status), console)
    if not args.file or not args.out:
        raise MotifError("motif experiment: give an experiment FILE and --out DIR (or --status DIR)")

    from motif_jax.experiment import tracking
    from motif_jax.experiment.run import plan_cells, run_experiment, write_outputs
    from motif_jax.experiment.spec import load_experiment

    sets = [f"executor.{key}={v}" for _, key, _ in EXECUTOR_FLAGS if (v := getattr(args, f"executor_{key}"))]
    exp = load_experiment(args.file, [*args.overrides, *sets])
    out = Path(args.out)
    if args.wandb:
        tracking.enable(args.wandb, exp.name)
    if args.report_only:
        write_outputs(exp, out, plan_cells(exp, out), console)
    else:
        run_experiment(exp, out, progress=not args.no_progress, only=args.only)
    console.print((out / "table.md").read_text())
    console.print(f"wrote {out / 'results.json'}, {out / 'table.md'}, {out / 'plots'}")
    if args.wandb:
        tracking.track_results(out, exp.name)
    return 0


def show_status(out: Path, console) -> int:
    from rich.table import Table

    from motif_jax.experiment.executors import cell_states

    rows = cell_states(out)
    table = Table("cell", "state", "detail", title=f"{out}")
    colors = {"done": "green", "running": "cyan", "failed": "red", "pending": "dim"}
    for name, state, detail in rows:
        table.add_row(name, f"[{colors[state]}]{state}[/]", detail)
    console.print(table)
    counts = {s: sum(r[1] == s for r in rows) for s in colors}
    console.print(", ".join(f"{n} {s}" for s, n in counts.items() if n), highlight=False)
    return 0
