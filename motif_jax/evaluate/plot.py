"""`motif plot RUN_DIR [RUN_DIR...]`: learning curves from each run's ``metrics.jsonl`` to PNG.

Runs whose ``config.yaml`` differ only by seed (or output directory) are one experiment:
they are drawn as the mean over seeds with a band from the lowest to the highest seed.
Other runs are overlaid as separate lines.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from motif_jax.errors import MotifError
from motif_jax.metrics import METRICS_FILE, read_metrics

# panel name -> (title, metric keys drawn in it)
PANELS: dict[str, tuple[str, tuple[str, ...]]] = {
    "episode_return": ("episode return", ("episode_return",)),
    "success_rate": ("success rate", ("success_rate",)),
    "reward_share": ("share of the reward", ("intrinsic_share", "extrinsic_share")),
    "sps": ("environment steps / s", ("sps",)),
}
# config keys that do not make two runs different experiments
SEED_KEYS = frozenset({"seed", "out", "out_dir", "run_dir", "output", "output_dir"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories holding metrics.jsonl")
    parser.add_argument(
        "--out", default=None, help="folder for the PNGs (default: RUN_DIR/plots for one run, else plots)"
    )
    parser.add_argument("--x", default="env_steps", help="metric on the x axis (default env_steps)")
    parser.add_argument("--smooth", type=int, default=1, help="moving-average window in log points (default 1 = raw)")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    out = Path(args.out) if args.out else (Path(args.runs[0]) / "plots" if len(args.runs) == 1 else Path("plots"))
    written = plot_runs([Path(r) for r in args.runs], out, x_key=args.x, smooth=args.smooth)
    console = Console()
    for path in written:
        console.print(f"wrote {path}")
    return 0


# ----------------------------------------------------------------------------- reading


def load_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The JSON objects of a metrics.jsonl; a torn last line (a run still writing) is skipped."""
    path = Path(path)
    if not path.is_file():
        raise MotifError(f"{path} not found (is this a run directory written by `motif train`?)")
    return read_metrics(path, strict=True)


def series(rows: list[dict[str, Any]], x_key: str, y_key: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) over the rows that log both keys as finite numbers, sorted by x."""
    points = [(float(r[x_key]), float(r[y_key])) for r in rows if _is_number(r.get(x_key)) and _is_number(r.get(y_key))]
    if not points:
        return np.zeros((0,)), np.zeros((0,))
    xy = np.asarray(sorted(points))
    return xy[:, 0], xy[:, 1]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def with_extrinsic_share(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fill ``extrinsic_share = 1 - intrinsic_share`` where a run logs only the intrinsic share."""
    out = []
    for row in rows:
        if "extrinsic_share" not in row and _is_number(row.get("intrinsic_share")):
            row = {**row, "extrinsic_share": 1.0 - float(row["intrinsic_share"])}
        out.append(row)
    return out


# ----------------------------------------------------------------------------- pure maths


def strip_keys(config: Any, ignored: frozenset[str] = SEED_KEYS) -> Any:
    """``config`` without the keys (at any depth) that only distinguish seeds of one experiment."""
    if isinstance(config, dict):
        return {k: strip_keys(v, ignored) for k, v in config.items() if k not in ignored}
    if isinstance(config, list):
        return [strip_keys(v, ignored) for v in config]
    return config


def group_by_experiment(configs: list[Any]) -> list[list[int]]:
    """Indices of runs grouped by equal config (seed/output keys ignored), in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for i, config in enumerate(configs):
        key = json.dumps(strip_keys(config), sort_keys=True, default=str)
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def moving_average(y: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over the last ``window`` points (fewer at the start), same length as ``y``."""
    if window <= 1 or len(y) == 0:
        return np.asarray(y, dtype=np.float64)
    c = np.cumsum(np.concatenate([[0.0], np.asarray(y, dtype=np.float64)]))
    idx = np.arange(1, len(y) + 1)
    start = np.maximum(idx - window, 0)
    return (c[idx] - c[start]) / (idx - start)


def seed_band(curves: list[tuple[np.ndarray, np.ndarray]], points: int = 200):
    """Mean, min and max over seeds on a common x grid spanning the x range all seeds cover.

    Seeds log at slightly different steps, so each curve is linearly interpolated onto the grid.
    Returns (x, mean, low, high); empty arrays when the seeds share no x range.
    """
    curves = [(x, y) for x, y in curves if len(x)]
    if not curves:
        empty = np.zeros((0,))
        return empty, empty, empty, empty
    lo = max(float(x[0]) for x, _ in curves)
    hi = min(float(x[-1]) for x, _ in curves)
    if hi < lo:
        empty = np.zeros((0,))
        return empty, empty, empty, empty
    grid = np.linspace(lo, hi, points) if hi > lo else np.asarray([lo])
    ys = np.stack([np.interp(grid, x, y) for x, y in curves])
    return grid, ys.mean(axis=0), ys.min(axis=0), ys.max(axis=0)


# ----------------------------------------------------------------------------- drawing


def _load_run(run_dir: Path) -> tuple[list[dict[str, Any]], Any]:
    from motif_jax.config import load_yaml

    rows = with_extrinsic_share(load_metrics(run_dir / METRICS_FILE))
    config_path = run_dir / "config.yaml"
    config = load_yaml(config_path) if config_path.is_file() else {"run": str(run_dir)}
    return rows, config


def plot_runs(run_dirs: list[Path], out_dir: Path, x_key: str = "env_steps", smooth: int = 1) -> list[Path]:
    """Write one PNG per panel plus ``learning_curves.png`` with all panels; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loaded = [_load_run(d) for d in run_dirs]
    if not any(series(rows, x_key, k)[0].size for rows, _ in loaded for _, keys in PANELS.values() for k in keys):
        raise MotifError(f"no metric logged against {x_key!r} in {', '.join(str(d) for d in run_dirs)}")
    groups = group_by_experiment([config for _, config in loaded])
    out_dir.mkdir(parents=True, exist_ok=True)

    overview, axes = plt.subplots(2, 2, figsize=(12, 8))
    written = []
    for ax_overview, (name, (title, keys)) in zip(axes.flat, PANELS.items()):
        fig, ax = plt.subplots(figsize=(6.5, 4))
        for target in (ax, ax_overview):
            _draw_panel(target, title, keys, groups, loaded, run_dirs, x_key, smooth)
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    overview.tight_layout()
    path = out_dir / "learning_curves.png"
    overview.savefig(path, dpi=110)
    plt.close(overview)
    written.append(path)
    return written


def _draw_panel(ax, title, keys, groups, loaded, run_dirs, x_key, smooth) -> None:
    colors = iter(f"C{i}" for i in range(10 * len(keys) * len(groups) + 10))
    drawn = False
    for group in groups:
        name = _group_name([run_dirs[i].name for i in group])
        for key in keys:
            label = name if len(keys) == 1 else f"{name}: {key.replace('_share', '')}"
            curves = []
            for i in group:
                x, y = series(loaded[i][0], x_key, key)
                curves.append((x, moving_average(y, smooth)))
            color = next(colors)
            if len(group) == 1:
                x, y = curves[0]
                if len(x):
                    ax.plot(x, y, color=color, label=label, marker="o" if len(x) <= 30 else None, markersize=3)
                    drawn = True
                continue
            grid, mean, low, high = seed_band(curves)
            if len(grid):
                ax.plot(grid, mean, color=color, label=f"{label}: mean, band = seed range")
                ax.fill_between(grid, low, high, color=color, alpha=0.25, linewidth=0)
                drawn = True
    ax.set_title(title)
    ax.set_xlabel(x_key)
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, color="grey")


def _group_name(names: list[str]) -> str:
    """A run's folder name, or for seeds of one experiment their common prefix, e.g. ``score_s* (3 seeds)``."""
    if len(names) == 1:
        return names[0]
    prefix = os.path.commonprefix(names)
    return f"{prefix or names[0]}* ({len(names)} seeds)"


def plot_argv(run, out) -> list[str]:
    """The `motif plot` command line of a pipeline step."""
    return ["plot", str(run), "--out", str(out)]
