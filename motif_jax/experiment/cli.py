"""`motif experiment FILE --out DIR`: run a grid of conditions × seeds and tabulate it.

Finished cells are skipped on a rerun, so an interrupted experiment resumes where it stopped;
`--report-only` rebuilds results.json, table.md and the plots from the cells already done.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from motif_jax.config import add_set_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="experiment YAML, e.g. configs/experiments/motif-cpu.yaml")
    parser.add_argument("--out", required=True, help="output folder: cells/, shared/, results.json, table.md, plots/")
    add_set_argument(parser, "override a value of the experiment file, e.g. --set train.steps=200000")
    parser.add_argument("--report-only", action="store_true", help="only rebuild the outputs from finished cells")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from motif_jax.experiment.run import plan_cells, run_experiment, write_outputs
    from motif_jax.experiment.spec import load_experiment

    exp = load_experiment(args.file, args.overrides)
    out = Path(args.out)
    console = Console()
    if args.report_only:
        write_outputs(exp, out, plan_cells(exp, out), console)
    else:
        run_experiment(exp, out, progress=not args.no_progress)
    console.print((out / "table.md").read_text())
    console.print(f"wrote {out / 'results.json'}, {out / 'table.md'}, {out / 'plots'}")
    return 0
