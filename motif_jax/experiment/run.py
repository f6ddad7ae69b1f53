"""Running an experiment: the shared steps once, then every cell (train + evaluate), then the table.

Layout of ``--out DIR``::

    DIR/shared/datasets/<name>/     motif collect (+ rules labels from motif annotate)
    DIR/shared/rewards/<name>/      motif train-reward
    DIR/shared/done/<step>.json     a shared step that finished, with its arguments
    DIR/cells/<condition>_s<seed>/  the training run (config.yaml, metrics.jsonl, checkpoints/),
                                    train.log, evaluate.log and result.json (running.json while it
                                    runs, failed.json after a failure)
    DIR/cells.json                  the cell names, for `--status`
    DIR/slurm/                      submitit's job files (executor slurm)
    DIR/results.json, DIR/table.md, DIR/plots/

Every stage runs as a `motif` subprocess through the stage engine (motif_jax.pipeline; its output
goes to a log next to its results). A cell counts as done only once its ``result.json`` is in
place, written atomically after its evaluation; so a run killed at any moment redoes at most the
cells in flight, and those continue from their last training checkpoint. The cells run on the
executor of the experiment file (motif_jax.experiment.executors).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

from motif_jax.errors import MotifError
from motif_jax.evaluate.stats import json_safe
from motif_jax.experiment import executors
from motif_jax.experiment import results as results_mod
from motif_jax.experiment.executors import claimed, heartbeat, running, write_failure
from motif_jax.experiment.spec import Experiment, digest, selected_conditions, train_config_path
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
    return default_name(judge_argument(exp, spec.judge), spec.goal, spec.soft)


def shared_steps(exp: Experiment, out: Path, conditions: set[str] | None = None) -> list[Step]:
    """Collect the datasets, then label and train the reward models (in declaration order) that the
    ``conditions`` (default: all) train with."""
    from motif_jax.annotate.cli import annotate_argv
    from motif_jax.data.collect_cli import collect_argv
    from motif_jax.reward.cli import train_reward_argv

    steps = []
    logs = out / "shared" / "logs"
    chosen = [c for name, c in exp.conditions.items() if conditions is None or name in conditions]
    needed_rewards = {c.reward for c in chosen if c.reward and c.policy == "agent"}
    used = {exp.rewards[name].dataset for name in needed_rewards}
    for name, d in exp.datasets.items():
        if name in used:
            folder = dataset_dir(out, name)
            argv = collect_argv(folder, **dataclasses.asdict(d), progress=False)  # its fields are collect's flags
            steps.append(Step(f"dataset {name}", argv, logs / f"dataset-{name}.log", folder))
    for name, r in exp.rewards.items():
        if name not in needed_rewards:
            continue
        if r.skills is not None:
            steps += skill_reward_steps(exp, out, name, logs)
            continue
        dataset, annotator = dataset_dir(out, r.dataset), annotator_name(exp, name)
        judge = judge_argument(exp, r.judge)
        argv = annotate_argv(dataset, annotator, goal=r.goal, judge=judge, extra=soft_flag(r), progress=False)
        labels = dataset / "preference" / f"{annotator}.npy"
        steps.append(Step(f"annotate {name}", argv, logs / f"annotate-{name}.log", labels))
        folder = reward_dir(out, name)
        argv = train_reward_argv(
            dataset, folder, annotator=annotator, preset=r.preset, epochs=r.epochs, seed=r.seed, progress=False
        )
        steps.append(Step(f"reward {name}", argv, logs / f"reward-{name}.log", folder))
    return steps


def skill_reward_steps(exp: Experiment, out: Path, name: str, logs: Path) -> list[Step]:
    """Label the dataset once per skill with the skills' rules judges, then fit one reward model per skill."""
    from motif_jax.annotate.cli import annotate_argv
    from motif_jax.annotate.naming import skill_annotator
    from motif_jax.reward.cli import train_reward_argv

    r, dataset, folder = exp.rewards[name], dataset_dir(out, exp.rewards[name].dataset), reward_dir(out, name)
    skills = skills_argument(exp, r.skills)
    argv = annotate_argv(dataset, None, goal=None, extra=["--skills", skills, *soft_flag(r)], progress=False)
    labels = Step(f"annotate {name}", argv, logs / f"annotate-{name}.log", dataset / "preference")
    argv = train_reward_argv(
        dataset,
        folder,
        skills=skills,
        labels_of_skills=skill_annotator("{skill}", "rules", soft=r.soft) if r.soft else None,
        preset=r.preset,
        epochs=r.epochs,
        seed=r.seed,
        progress=False,
    )
    return [labels, Step(f"reward {name}", argv, logs / f"reward-{name}.log", folder / "skills.json")]


def soft_flag(reward) -> list[str]:
    """`motif annotate --soft T` for a reward entry that asks for soft rules labels."""
    return ["--soft", f"{reward.soft:g}"] if reward.soft else []


def skills_argument(exp: Experiment, skills: str) -> str:
    """A skills file relative to the experiment file if it exists there, else as written (a shipped name)."""
    candidate = Path(exp.path).parent / skills
    return str(candidate) if candidate.is_file() else skills


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
            if c.policy == "agent" and c.agents_of is None:
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
                    extra=["--skills", skills_argument(exp, c.skills)] if c.skills else (),
                )
                steps.append(
                    Step("train", argv, folder / "train.log", units=train_steps, metrics=folder / METRICS_FILE)
                )
            trained = out / "cells" / f"{c.agents_of}_s{seed}" if c.agents_of else folder
            checkpoints = trained / "checkpoints" if c.policy == "agent" else None
            argv = evaluate_argv(
                checkpoints,
                eval_json,
                task=task,
                episodes=e.episodes,
                seed=e.seed + seed,
                num_envs=e.num_envs,
                max_episode_steps=e.max_episode_steps,
                extra=["--skill", c.skill] if c.skill else (),
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


def run_cell(cell: Cell, advance=None) -> dict:
    """Train (resuming a killed run) and evaluate one cell; returns its result, written atomically.
    The same function on every executor: a failure leaves ``failed.json``, a run ``running.json``."""
    cell.folder.mkdir(parents=True, exist_ok=True)
    with claimed(cell.folder):
        if cell.result.is_file():  # an older job of a resubmitted cell, starting after it was done
            return json.loads(cell.result.read_text())
        return _run_claimed_cell(cell, advance)


def _run_claimed_cell(cell: Cell, advance) -> dict:
    (cell.folder / "failed.json").unlink(missing_ok=True)
    seconds = 0.0
    with heartbeat(cell.folder):
        for step in cell.steps:
            try:
                seconds += run_step(step, advance)
            except Exception as err:
                write_failure(cell.folder, err, step.log)
                raise
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


def run_experiment(exp: Experiment, out: Path, progress: bool = True, only: list[str] | None = None) -> dict:
    """Run what is not done yet (of the conditions in ``only`` and those they evaluate, or of all) on the
    experiment's executor and (re)write results.json, table.md and plots/ from every finished cell;
    raises once the outputs are written if a cell failed (a rerun resubmits it)."""
    from rich.console import Console

    out = out.resolve()  # cells may run elsewhere (Ray workers, SLURM jobs)
    out.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True)
    selected = selected_conditions(exp, only)
    shutil.copyfile(exp.path, out / "experiment.yaml")
    cells = plan_cells(exp, out)
    write_json_atomic(out / "cells.json", [c.name for c in cells])  # what `--status` lists
    runnable = [c for c in cells if c.condition in selected]
    busy = [c for c in runnable if not cell_is_done(c) and running(c.folder)]
    todo = [c for c in runnable if not cell_is_done(c) and c not in busy]
    x = exp.executor
    console.print(
        f"experiment {exp.name}: {len(cells)} cells ({len(exp.conditions)} conditions × "
        f"{len(exp.seeds)} seeds)"
        + (f", {len(runnable)} of them selected" if only else "")
        + f", {len(runnable) - len(todo) - len(busy)} done before, {len(todo)} to run on the {x.kind} executor"
        + (f", {len(busy)} running elsewhere ({', '.join(c.name for c in busy)})" if busy else "")
    )
    hint = "use a new --out, or delete its marker in shared/done and what it made"
    run_steps(shared_steps(exp, out, selected), out, out / "shared" / "done", console, hint=hint)
    started, finished = time.perf_counter(), 0

    def report(cell: Cell, err: Exception | None) -> None:
        nonlocal finished
        finished += 1
        minutes = (time.perf_counter() - started) / 60
        eta = minutes / finished * (len(todo) - finished)
        state = "done" if err is None else f"[red]failed[/red]: {str(err).strip().splitlines()[-1]}"  # Ray: traceback
        console.print(
            f"cell {cell.name} {state} ({finished}/{len(todo)}); elapsed {minutes:.1f} min, ETA {eta:.1f} min",
            highlight=False,
        )

    if not todo:  # nothing to submit (an empty job array only makes the schedulers warn)
        failed = []
    elif x.kind == "ray":
        failed = executors.run_ray(todo, x, report)
    elif x.kind == "slurm":
        failed = executors.run_slurm(todo, x, out / "slurm", exp.name, report)
    else:
        failed = executors.run_local(todo, report, progress, exp.name, console)
    summary = write_outputs(exp, out, cells, console)
    if failed:
        names = ", ".join(c.name for c in failed)
        raise MotifError(f"{len(failed)} cell(s) failed: {names}; see failed.json in each, then rerun to resubmit them")
    return summary


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
            n: (c.steps or exp.train.steps) if c.policy == "agent" and not c.agents_of else 0
            for n, c in exp.conditions.items()
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
