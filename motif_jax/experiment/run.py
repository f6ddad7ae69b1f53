"""Running an experiment: the shared steps once, then every cell (train + evaluate), then the table.

Layout of ``--out DIR``::

    DIR/shared/datasets/<name>/     motif collect (+ rules labels from motif annotate)
    DIR/shared/rewards/<name>/      motif train-reward
    DIR/shared/done/<step>.json     a shared step that finished, with its arguments
    DIR/cells/<condition>_s<seed>/  the training run (config.yaml, metrics.jsonl, checkpoints/),
                                    train.log, evaluate.log and result.json
    DIR/results.json, DIR/table.md, DIR/plots/

Every stage runs as a `motif` subprocess (its output goes to a log next to its results; a child
is told to stop when this process dies). A cell counts as done only once its ``result.json`` is in
place, written atomically after its evaluation; so a run killed at any moment redoes at most the
cell in flight, and that one continues from its last training checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from motif_jax.annotate.rules import resolve_judge_path
from motif_jax.config import file_layers, load_yaml
from motif_jax.errors import MotifError
from motif_jax.evaluate.stats import json_safe
from motif_jax.experiment import results as results_mod
from motif_jax.experiment.spec import Experiment, digest, train_config_path
from motif_jax.metrics import METRICS_FILE, last_value

EVAL_UNITS_PER_EPISODE = 1000  # progress units of one evaluation episode (training: one per env step)


@dataclasses.dataclass
class Step:
    """One `motif` invocation with the files that say it is done."""

    name: str
    argv: list[str]
    log: Path
    units: int = 0  # share of the progress bar
    metrics: Path | None = None  # metrics.jsonl to follow for progress (training)


@dataclasses.dataclass
class Cell:
    condition: str
    seed: int
    folder: Path
    steps: list[Step]
    eval_json: Path
    out: Path  # the experiment's output folder
    resumable: Path | None = None  # checkpoints folder: present -> train with --resume

    @property
    def name(self) -> str:
        return f"{self.condition}_s{self.seed}"

    @property
    def result(self) -> Path:
        return self.folder / "result.json"

    @property
    def units(self) -> int:
        return sum(s.units for s in self.steps)

    def settings(self) -> dict:
        return {
            "condition": self.condition,
            "seed": self.seed,
            "argv": [fingerprint(s.argv, self.out) for s in self.steps],
        }


def fingerprint(argv: list[str], out: Path) -> list:
    """A `motif` invocation as what decides its result, wherever the checkout and the output live:
    paths under ``out`` are relative to it, and config and judge files count by their contents (a
    config with its `extends:` chain). Editing cpu.yaml or a judge redoes what depends on it; moving
    the checkout or the output folder redoes nothing."""
    prefix = str(out) + os.sep
    parts: list = []
    for flag, arg in zip([None, *argv], argv):
        if flag == "--config":
            parts.append([data for _, data in file_layers(arg)])
        elif flag == "--judge":
            parts.append(load_yaml(resolve_judge_path(arg)))
        elif arg.startswith(prefix):
            parts.append("OUT/" + arg[len(prefix) :])
        else:
            parts.append(arg)
    return parts


def write_json_atomic(path: Path, value) -> None:
    """Write to a temporary file, fsync, then rename: readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(value, indent=2, default=_json_default) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _json_default(value):
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# ----------------------------------------------------------------------------- planning


def judge_argument(exp: Experiment, judge: str) -> str:
    """A judge path relative to the experiment file if it exists there, else as written (a shipped name)."""
    candidate = Path(exp.path).parent / judge
    return str(candidate) if candidate.is_file() else judge


def annotator_name(exp: Experiment, reward: str) -> str:
    from motif_jax.annotate.rules import default_name

    spec = exp.rewards[reward]
    return default_name(judge_argument(exp, spec.judge), spec.goal)


def shared_steps(exp: Experiment, out: Path) -> list[Step]:
    """Collect every dataset, then label and train every reward model (in declaration order)."""
    steps = []
    used = {r.dataset for r in exp.rewards.values()}
    needed_rewards = {c.reward for c in exp.conditions.values() if c.reward and c.policy == "agent"}
    for name, d in exp.datasets.items():
        if name not in used:
            continue
        folder = out / "shared" / "datasets" / name
        argv = [
            "collect",
            "--task",
            d.task,
            "--pairs",
            str(d.pairs),
            "--seed",
            str(d.seed),
            "--num-envs",
            str(d.num_envs),
            "--out",
            str(folder),
            "--no-progress",
        ]
        if d.policy != "random":
            argv += ["--policy", d.policy]
        steps.append(Step(f"dataset {name}", argv, out / "shared" / "logs" / f"dataset-{name}.log"))
    for name, r in exp.rewards.items():
        if name not in needed_rewards:
            continue
        dataset = out / "shared" / "datasets" / r.dataset
        annotator = annotator_name(exp, name)
        steps.append(
            Step(
                f"annotate {name}",
                [
                    "annotate",
                    str(dataset),
                    "--backend",
                    "rules",
                    "--judge",
                    judge_argument(exp, r.judge),
                    "--goal",
                    r.goal,
                    "--name",
                    annotator,
                    "--no-progress",
                ],
                out / "shared" / "logs" / f"annotate-{name}.log",
            )
        )
        steps.append(
            Step(
                f"reward {name}",
                [
                    "train-reward",
                    str(dataset),
                    "--annotator",
                    annotator,
                    "--preset",
                    r.preset,
                    "--epochs",
                    str(r.epochs),
                    "--seed",
                    str(r.seed),
                    "--out",
                    str(reward_dir(out, name)),
                    "--no-progress",
                ],
                out / "shared" / "logs" / f"reward-{name}.log",
            )
        )
    return steps


def reward_dir(out: Path, name: str) -> Path:
    return out / "shared" / "rewards" / name


def plan_cells(exp: Experiment, out: Path) -> list[Cell]:
    """Conditions × seeds, condition-major (all seeds of a condition, then the next) or seed-major."""
    e = exp.evaluate
    cells = []
    for condition, c in exp.conditions.items():
        task = c.task or exp.task
        for seed in exp.seeds:
            folder = out / "cells" / f"{condition}_s{seed}"
            eval_json = folder / "evaluation.partial.json"
            evaluate = [
                "evaluate",
                "--task",
                task,
                "--episodes",
                str(e.episodes),
                "--seed",
                str(e.seed + seed),
                "--num-envs",
                str(e.num_envs),
                "--max-episode-steps",
                str(e.max_episode_steps),
                "--json",
                str(eval_json),
            ]
            steps = []
            resumable = None
            if c.policy == "random":
                evaluate[1:1] = ["--policy", "random"]
            else:
                train_steps = c.steps or exp.train.steps
                argv = ["train", "--env", task, "--steps", str(train_steps), "--seed", str(seed), "--out", str(folder)]
                if exp.train.config:
                    argv[1:1] = ["--config", str(train_config_path(exp))]
                if c.reward is not None:
                    argv += ["--reward", str(reward_dir(out, c.reward))]
                if c.extrinsic_coef is not None:
                    argv += ["--extrinsic-coef", str(c.extrinsic_coef)]
                if c.llm_coef is not None:
                    argv += ["--llm-coef", str(c.llm_coef)]
                for item in [*exp.train.set, *c.set]:
                    argv += ["--set", str(item)]
                steps.append(
                    Step("train", argv, folder / "train.log", units=train_steps, metrics=folder / METRICS_FILE)
                )
                evaluate.insert(1, str(folder / "checkpoints"))
                resumable = folder / "checkpoints"
            steps.append(Step("evaluate", evaluate, folder / "evaluate.log", units=e.episodes * EVAL_UNITS_PER_EPISODE))
            cells.append(Cell(condition, seed, folder, steps, eval_json, out, resumable))
    if exp.order == "seed":  # a grid stopped early then has every condition at the first seeds
        cells.sort(key=lambda c: exp.seeds.index(c.seed))
    return cells


# ----------------------------------------------------------------------------- running a step


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the experiment process dies (even by SIGKILL), on Linux."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run_motif(argv: list[str], log: Path, on_poll=None, poll_s: float = 2.0) -> None:
    """Run ``motif ARGV`` as a subprocess with its output in ``log``; raise on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "a") as f:
        f.write(f"$ motif {' '.join(argv)}\n")
        f.flush()
        child = subprocess.Popen(
            [sys.executable, "-m", "motif_jax.cli", *argv],
            stdout=f,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            preexec_fn=_die_with_parent,
        )
        try:
            while True:
                try:
                    code = child.wait(timeout=poll_s)
                    break
                except subprocess.TimeoutExpired:
                    if on_poll is not None:
                        on_poll()
        except BaseException:
            child.terminate()
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
            raise
    if code != 0:
        raise MotifError(f"`motif {' '.join(argv)}` failed (exit {code}); see {log}")


# ----------------------------------------------------------------------------- the grid


def run_shared(steps: list[Step], out: Path, say) -> None:
    done_dir = out / "shared" / "done"
    for step in steps:
        marker = done_dir / f"{step.name.replace(' ', '-')}.json"
        if marker.is_file():
            saved = json.loads(marker.read_text())
            if saved.get("fingerprint") == fingerprint(step.argv, out):
                continue
            raise MotifError(
                f"shared step {step.name!r} changed since {out} was made; use a new --out "
                f"or delete {marker} and what it made"
            )
        if step.argv[0] == "train-reward":
            target = Path(step.argv[step.argv.index("--out") + 1])
            if target.exists():
                shutil.rmtree(target)  # an interrupted fit: a few seconds to redo from scratch
        say(f"{step.name}: motif {step.argv[0]} (log {step.log})")
        started = time.perf_counter()
        run_motif(step.argv, step.log)
        write_json_atomic(
            marker,
            {"argv": step.argv, "fingerprint": fingerprint(step.argv, out), "seconds": time.perf_counter() - started},
        )


def cell_is_done(cell: Cell) -> bool:
    if not cell.result.is_file():
        return False
    try:
        saved = json.loads(cell.result.read_text())
    except json.JSONDecodeError:
        return False
    if saved.get("digest") != digest(cell.settings()):
        raise MotifError(
            f"cell {cell.name}: its settings changed since {cell.result} was written; "
            f"use a new --out or delete {cell.folder}"
        )
    return True


def run_cell(cell: Cell, advance) -> dict:
    """Train (resuming a killed run) and evaluate one cell; returns its result, written atomically."""
    started = time.perf_counter()
    cell.folder.mkdir(parents=True, exist_ok=True)
    for step in cell.steps:
        argv = list(step.argv)
        if step.name == "train" and cell.resumable is not None and cell.resumable.is_dir():
            argv.append("--resume")
        counted = 0

        def poll(step=step):
            nonlocal counted
            if step.metrics is not None:
                now = min(int(last_value(step.metrics, "env_steps", 0)), step.units)
                advance(now - counted)
                counted = now

        run_motif(argv, step.log, on_poll=poll)
        advance(step.units - counted)
    report = json.loads(cell.eval_json.read_text())
    result = {
        "cell": cell.name,
        "condition": cell.condition,
        "seed": cell.seed,
        "digest": digest(cell.settings()),
        "settings": cell.settings(),
        "seconds": time.perf_counter() - started,
        "report": report,
    }
    write_json_atomic(cell.result, result)
    cell.eval_json.unlink(missing_ok=True)
    return result


def run_experiment(exp: Experiment, out: Path, progress: bool = True) -> dict:
    """Run what is not done yet and (re)write results.json, table.md and plots/."""
    from rich.console import Console

    from motif_jax.progress import ProgressBar

    out.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True)
    shutil.copyfile(exp.path, out / "experiment.yaml")
    cells = plan_cells(exp, out)
    todo = [c for c in cells if not cell_is_done(c)]
    total = sum(c.units for c in todo)
    console.print(
        f"experiment {exp.name}: {len(cells)} cells ({len(exp.conditions)} conditions × "
        f"{len(exp.seeds)} seeds), {len(cells) - len(todo)} done before, {len(todo)} to run"
    )
    run_shared(shared_steps(exp, out), out, console.print)
    started = time.perf_counter()
    with ProgressBar(exp.name, max(total, 1), "steps", enabled=progress, transient=True, console=console) as bar:
        bar.update(info=f"0/{len(todo)} cells")
        for i, cell in enumerate(todo):
            bar.update(description=f"{exp.name}: {cell.name}")
            run_cell(cell, bar.advance)
            bar.update(info=f"{i + 1}/{len(todo)} cells")
            elapsed = time.perf_counter() - started
            eta = elapsed / max(bar.done, 1) * (total - bar.done)
            console.print(
                f"cell {cell.name} done ({i + 1}/{len(todo)}); elapsed {elapsed / 60:.1f} min, ETA {eta / 60:.1f} min",
                highlight=False,
            )
    return write_outputs(exp, out, cells, console)


def write_outputs(exp: Experiment, out: Path, cells: list[Cell], console=None) -> dict:
    """results.json, table.md and the overlaid learning curves from the finished cells."""
    reports: dict[str, dict[int, dict]] = {}
    for cell in cells:
        if cell.result.is_file():
            reports.setdefault(cell.condition, {})[cell.seed] = json.loads(cell.result.read_text())["report"]
    rows = {name: results_mod.aggregate(reports[name]) for name in exp.conditions if name in reports}
    labels = {name: c.label or name for name, c in exp.conditions.items()}
    e = exp.evaluate
    summary = {
        "experiment": exp.name,
        "file": Path(exp.path).name,
        "task": exp.task,
        "seeds": exp.seeds,
        "train_steps": {
            n: (c.steps or exp.train.steps) if c.policy == "agent" else 0 for n, c in exp.conditions.items()
        },
        "evaluate": dataclasses.asdict(e),
        "labels": labels,
        "conditions": rows,
    }
    write_json_atomic(out / "results.json", json_safe(summary))
    done = sum(len(seeds) for seeds in reports.values())
    partial = f" ({done} of {len(cells)} cells finished so far)" if done < len(cells) else ""
    header = (
        f"# {exp.name}\n\nTask `{exp.task}`; {len(exp.seeds)} training seeds × {e.episodes} evaluation "
        f"episodes per condition{partial} (the cell of seed k plays the episodes of evaluation seed "
        f"{e.seed} + k, so conditions meet the same dungeons); mean ± 95% CI (Student's t) over all "
        f"episodes.\n\n"
    )
    (out / "table.md").write_text(header + results_mod.markdown_table(rows, labels))
    trained = [c.folder for c in cells if c.resumable is not None and c.result.is_file()]  # finished cells only
    if trained:
        from motif_jax.evaluate.plot import plot_runs

        try:
            plot_runs(trained, out / "plots", smooth=5)
        except MotifError as err:  # e.g. runs too short to log an episode
            if console is not None:
                console.print(f"no learning curves: {err}")
    return summary
