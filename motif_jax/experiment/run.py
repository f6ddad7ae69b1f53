"""Running an experiment: the shared steps once, then every cell (train + evaluate), then the table.

Layout of ``--out DIR``::

    DIR/shared/datasets/<name>/     motif collect (+ rules labels from motif annotate)
    DIR/shared/rewards/<name>/      motif train-reward
    DIR/shared/done/<step>.json     a shared step that finished, with its arguments
    DIR/cells/<condition>_s<seed>/  the training run (config.yaml, metrics.jsonl, checkpoints/),
                                    train.log, evaluate.log and result.json
    DIR/results.json, DIR/table.md, DIR/plots/

Every stage runs as a `motif` subprocess through the stage engine (motif_jax.pipeline; its output
goes to a log next to its results). A cell counts as done only once its ``result.json`` is in
place, written atomically after its evaluation; so a run killed at any moment redoes at most the
cell in flight, and that one continues from its last training checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

from motif_jax.errors import MotifError
from motif_jax.evaluate.stats import json_safe
from motif_jax.experiment import results as results_mod
from motif_jax.experiment.spec import Experiment, digest, train_config_path
from motif_jax.files import write_json_atomic
from motif_jax.metrics import METRICS_FILE
from motif_jax.pipeline import Step, fingerprint, run_step, run_steps

EVAL_UNITS_PER_EPISODE = 1000  # progress units of one evaluation episode (training: one per env step)


@dataclasses.dataclass
class Cell:
    condition: str
    seed: int
    folder: Path
    steps: list[Step]
    eval_json: Path
    out: Path  # the experiment's output folder

    @property
    def name(self) -> str:
        return f"{self.condition}_s{self.seed}"

    @property
    def result(self) -> Path:
        return self.folder / "result.json"

    @property
    def units(self) -> int:
        return sum(s.units for s in self.steps)

    @property
    def trained(self) -> bool:
        return self.steps[0].argv[0] == "train"

    def settings(self) -> dict:
        return {
            "condition": self.condition,
            "seed": self.seed,
            "argv": [fingerprint(s.argv, self.out) for s in self.steps],
        }


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
    from motif_jax.annotate.cli import annotate_argv
    from motif_jax.data.collect_cli import collect_argv
    from motif_jax.reward.cli import train_reward_argv

    steps = []
    logs = out / "shared" / "logs"
    used = {r.dataset for r in exp.rewards.values()}
    needed_rewards = {c.reward for c in exp.conditions.values() if c.reward and c.policy == "agent"}
    for name, d in exp.datasets.items():
        if name in used:
            folder = dataset_dir(out, name)
            argv = collect_argv(
                folder, task=d.task, pairs=d.pairs, seed=d.seed, num_envs=d.num_envs, policy=d.policy, progress=False
            )
            steps.append(Step(f"dataset {name}", argv, logs / f"dataset-{name}.log", folder))
    for name, r in exp.rewards.items():
        if name not in needed_rewards:
            continue
        dataset, annotator = dataset_dir(out, r.dataset), annotator_name(exp, name)
        judge = judge_argument(exp, r.judge)
        argv = annotate_argv(dataset, annotator, goal=r.goal, judge=judge, progress=False)
        labels = dataset / "preference" / f"{annotator}.npy"
        steps.append(Step(f"annotate {name}", argv, logs / f"annotate-{name}.log", labels))
        folder = reward_dir(out, name)
        argv = train_reward_argv(
            dataset, folder, annotator=annotator, preset=r.preset, epochs=r.epochs, seed=r.seed, progress=False
        )
        steps.append(Step(f"reward {name}", argv, logs / f"reward-{name}.log", folder))
    return steps


def dataset_dir(out: Path, name: str) -> Path:
    return out / "shared" / "datasets" / name


def reward_dir(out: Path, name: str) -> Path:
    return out / "shared" / "rewards" / name


def plan_cells(exp: Experiment, out: Path) -> list[Cell]:
    """Conditions × seeds, condition-major (all seeds of a condition, then the next) or seed-major."""
    from motif_jax.agent.cli import train_argv
    from motif_jax.evaluate.cli import evaluate_argv

    e = exp.evaluate
    cells = []
    for condition, c in exp.conditions.items():
        task = c.task or exp.task
        for seed in exp.seeds:
            folder = out / "cells" / f"{condition}_s{seed}"
            eval_json = folder / "evaluation.partial.json"
            steps = []
            if c.policy == "agent":
                train_steps = c.steps or exp.train.steps
                argv = train_argv(
                    folder,
                    task=task,
                    steps=train_steps,
                    seed=seed,
                    config=train_config_path(exp) if exp.train.config else None,
                    reward=reward_dir(out, c.reward) if c.reward is not None else None,
                    extrinsic_coef=c.extrinsic_coef,
                    llm_coef=c.llm_coef,
                    sets=[*exp.train.set, *c.set],
                )
                steps.append(
                    Step("train", argv, folder / "train.log", units=train_steps, metrics=folder / METRICS_FILE)
                )
            checkpoints = folder / "checkpoints" if c.policy == "agent" else None
            argv = evaluate_argv(
                checkpoints,
                eval_json,
                task=task,
                episodes=e.episodes,
                seed=e.seed + seed,
                num_envs=e.num_envs,
                max_episode_steps=e.max_episode_steps,
            )
            steps.append(Step("evaluate", argv, folder / "evaluate.log", units=e.episodes * EVAL_UNITS_PER_EPISODE))
            cells.append(Cell(condition, seed, folder, steps, eval_json, out))
    if exp.order == "seed":  # a grid stopped early then has every condition at the first seeds
        cells.sort(key=lambda c: exp.seeds.index(c.seed))
    return cells


# ----------------------------------------------------------------------------- the grid


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
    cell.folder.mkdir(parents=True, exist_ok=True)
    seconds = sum(run_step(step, advance) for step in cell.steps)
    report = json.loads(cell.eval_json.read_text())
    result = {
        "cell": cell.name,
        "condition": cell.condition,
        "seed": cell.seed,
        "digest": digest(cell.settings()),
        "settings": cell.settings(),
        "seconds": seconds,
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
    hint = "use a new --out, or delete its marker in shared/done and what it made"
    run_steps(shared_steps(exp, out), out, out / "shared" / "done", console, hint=hint)
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
    trained = [c.folder for c in cells if c.trained and c.result.is_file()]  # finished cells only
    if trained:
        from motif_jax.evaluate.plot import plot_runs

        try:
            plot_runs(trained, out / "plots", smooth=5)
        except MotifError as err:  # e.g. runs too short to log an episode
            if console is not None:
                console.print(f"no learning curves: {err}")
    return summary
