"""An experiment file: shared steps (datasets, reward models) and a grid of conditions × seeds.

    name: motif-cpu
    task: score
    seeds: [0, 1, 2]
    train: {config: ../cpu.yaml, steps: 1000000, set: [ppo.epochs=4]}
    evaluate: {episodes: 50, num_envs: 10, seed: 100, max_episode_steps: 5000}
    datasets:
      play: {task: score, pairs: 20000, seed: 0}
    rewards:
      defaultgoal: {dataset: play, judge: nethack, goal: defaultgoal, preset: tiny, epochs: 3}
    conditions:
      random: {policy: random}
      extrinsic: {extrinsic_coef: 0.1, llm_coef: 0}
      intrinsic: {reward: defaultgoal, extrinsic_coef: 0, llm_coef: 0.1}
    executor: {kind: slurm, partition: gpu, gpus_per_cell: 1, time_limit_min: 240}

Paths inside (``train.config``) are relative to the experiment file, like ``extends:``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from motif_jax.config import merge, stage_layers
from motif_jax.errors import MotifError
from motif_jax.resources import config_file


@dataclasses.dataclass
class TrainSection:
    config: str = "../cpu.yaml"  # `motif train --config`, relative to the experiment file
    steps: int = 1_000_000
    set: list[str] = dataclasses.field(default_factory=list)  # `--set key=value` for every trained cell


@dataclasses.dataclass
class EvaluateSection:
    episodes: int = 50
    num_envs: int = 10
    seed: int = 100  # cell with training seed k plays the episodes of seed `seed + k`
    max_episode_steps: int = 5000


@dataclasses.dataclass
class DatasetSpec:
    task: str = "score"
    pairs: int = 20000
    seed: int = 0
    num_envs: int = 8
    policy: str = "random"
    mention_stairs: bool = False  # `motif collect --mention-stairs`
    mention_explored: bool = False  # `motif collect --mention-explored`


@dataclasses.dataclass
class RewardSpec:
    dataset: str = ""
    judge: str = "nethack"  # rules judge file or a name in configs/judges/
    goal: str = "defaultgoal"
    preset: str = "tiny"  # reward-model preset
    epochs: int = 3
    seed: int = 0
    soft: float = 0.0  # > 0: the rules judge's soft labels at this temperature (`annotate --soft`); 0: hard labels
    # MaestroMotif: a skills file; each skill's rules judge labels the dataset (`annotate --skills`) and
    # one reward model per skill is fitted (`train-reward --skills`); judge and goal are then unused
    skills: str | None = None


@dataclasses.dataclass
class ConditionSpec:
    policy: str = "agent"  # agent | random
    reward: str | None = None  # a `rewards` entry; needed when llm_coef > 0
    extrinsic_coef: float | None = None
    llm_coef: float | None = None
    task: str | None = None  # default: the experiment's task
    steps: int | None = None  # default: train.steps
    set: list[str] = dataclasses.field(default_factory=list)  # more `--set key=value` for this condition
    label: str | None = None  # name in the table (default: the condition's key)
    skills: str | None = None  # MaestroMotif: train with this skills file (`train --skills`)
    # Evaluate the agents of another (earlier) condition instead of training: zero-shot on this condition's
    # task with its policy over skills, or one `skill` alone for whole episodes
    agents_of: str | None = None
    skill: str | None = None


@dataclasses.dataclass
class ExecutorSection:
    """Where the cells run (the shared steps always run in the driver, first)."""

    kind: str = "local"  # local: one after another here | slurm: submitit jobs | ray: tasks on a Ray cluster
    ray_address: str | None = None  # `ray.init(address=...)`, e.g. auto; none: a Ray cluster on this machine
    cpus_per_cell: int = 1
    gpus_per_cell: int = 0
    partition: str | None = None  # SLURM partition
    time_limit_min: int = 240  # per SLURM job; a cell timed out or preempted is requeued and resumes
    array_parallelism: int = 256  # most SLURM jobs of the array running at once
    cluster: str | None = None  # submitit cluster: none = SLURM; local or debug run the jobs on this machine


@dataclasses.dataclass
class Experiment:
    name: str = "experiment"
    task: str = "score"
    seeds: list[int] = dataclasses.field(default_factory=lambda: [0, 1, 2])
    train: TrainSection = dataclasses.field(default_factory=TrainSection)
    evaluate: EvaluateSection = dataclasses.field(default_factory=EvaluateSection)
    datasets: dict[str, DatasetSpec] = dataclasses.field(default_factory=dict)
    rewards: dict[str, RewardSpec] = dataclasses.field(default_factory=dict)
    conditions: dict[str, ConditionSpec] = dataclasses.field(default_factory=dict)
    executor: ExecutorSection = dataclasses.field(default_factory=ExecutorSection)
    order: str = "condition"  # run cells condition by condition, or "seed": every condition of a seed first
    path: str = ""  # the file it came from (set by `load_experiment`)


def load_experiment(path: str | Path, overrides: list[str] | None = None) -> Experiment:
    """The experiment in ``path`` (plus ``--set`` overrides), type-checked key by key."""
    path = config_file(path)
    layers = stage_layers(path, overrides, None)
    for _, data in layers:
        for key in ("datasets", "rewards", "conditions"):
            entries = data.get(key)
            if isinstance(entries, dict):  # `name:` with nothing under it takes every default
                data[key] = {name: {} if value is None else value for name, value in entries.items()}
    exp = merge(Experiment, layers)
    exp.path = str(Path(path).resolve())  # absolute: cells may run elsewhere (Ray workers, SLURM jobs)
    validate(exp)
    return exp


def validate(exp: Experiment) -> None:
    where = exp.path or "experiment"
    if not exp.conditions:
        raise MotifError(f"{where}: conditions is empty; declare at least one")
    if not exp.seeds:
        raise MotifError(f"{where}: seeds must be a non-empty list of integers")
    if len(set(exp.seeds)) != len(exp.seeds):
        raise MotifError(f"{where}: seeds {exp.seeds} repeat a seed")
    for name in list(exp.conditions) + list(exp.rewards) + list(exp.datasets):
        if not name or not all(ch.isalnum() or ch in "-_+." for ch in name):
            raise MotifError(f"{where}: name {name!r}: use letters, digits, '-', '_', '+', '.'")
    if exp.order not in ("condition", "seed"):
        raise MotifError(f"{where}: order must be condition or seed, got {exp.order!r}")
    x = exp.executor
    if x.kind not in ("local", "slurm", "ray"):
        raise MotifError(f"{where}: executor.kind must be local, slurm or ray, got {x.kind!r}")
    if x.cluster not in (None, "slurm", "local", "debug"):
        raise MotifError(f"{where}: executor.cluster must be slurm, local or debug, got {x.cluster!r}")
    for field in ("cpus_per_cell", "time_limit_min", "array_parallelism"):
        if getattr(x, field) < 1:
            raise MotifError(f"{where}: executor.{field} must be >= 1")
    e = exp.evaluate
    for field in ("episodes", "num_envs", "max_episode_steps"):
        if getattr(e, field) < 1:
            raise MotifError(f"{where}: evaluate.{field} must be >= 1")
    if exp.train.steps < 1:
        raise MotifError(f"{where}: train.steps must be >= 1")
    for name, r in exp.rewards.items():
        if r.dataset not in exp.datasets:
            raise MotifError(
                f"{where}: rewards.{name}.dataset {r.dataset!r} is not in datasets "
                f"({', '.join(exp.datasets) or 'none declared'})"
            )
    for name, r in exp.rewards.items():
        if r.soft < 0:
            raise MotifError(f"{where}: rewards.{name}.soft must be >= 0 (0: hard labels)")
    for name, c in exp.conditions.items():
        if c.policy not in ("agent", "random"):
            raise MotifError(f"{where}: conditions.{name}.policy must be agent or random, got {c.policy!r}")
        if c.reward is not None and c.reward not in exp.rewards:
            raise MotifError(
                f"{where}: conditions.{name}.reward {c.reward!r} is not in rewards "
                f"({', '.join(exp.rewards) or 'none declared'})"
            )
        if c.policy == "agent" and (c.llm_coef or 0) > 0 and c.reward is None and c.agents_of is None:
            raise MotifError(f"{where}: conditions.{name}: llm_coef > 0 needs reward: <a rewards entry>")
        if c.agents_of is not None:
            earlier = list(exp.conditions)[: list(exp.conditions).index(name)]
            source = exp.conditions.get(c.agents_of)
            if c.agents_of not in earlier or source.policy != "agent" or source.agents_of is not None:
                raise MotifError(
                    f"{where}: conditions.{name}.agents_of {c.agents_of!r} must name a trained condition declared "
                    f"before it ({', '.join(n for n in earlier if exp.conditions[n].agents_of is None) or 'none'})"
                )
        if c.skill is not None and c.agents_of is None:
            raise MotifError(f"{where}: conditions.{name}.skill runs one skill of trained agents: add agents_of")
    if exp.train.config:
        config = train_config_path(exp)
        if not config.is_file():
            raise MotifError(f"{where}: train.config {exp.train.config!r} not found ({config})")


def selected_conditions(exp: Experiment, only: list[str] | None) -> set[str]:
    """The conditions ``--only`` names plus the trained ones whose agents they evaluate (every condition
    when ``only`` is empty): what a partial run must run, or find done."""
    if not only:
        return set(exp.conditions)
    unknown = [name for name in only if name not in exp.conditions]
    if unknown:
        raise MotifError(
            f"{exp.path}: --only {', '.join(unknown)}: no such condition (the file has {', '.join(exp.conditions)})"
        )
    return set(only) | {exp.conditions[name].agents_of for name in only if exp.conditions[name].agents_of}


def train_config_path(exp: Experiment) -> Path:
    return Path(exp.path).parent / exp.train.config


def digest(obj) -> str:
    """Short stable hash of a JSON-able value: a cell's settings, to detect edits between runs."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
