"""`motif quickstart`: the whole Motif pipeline at small scale, driven by configs/quickstart.yaml.

collect → annotate (SmolLM2 through llama.cpp, on the first chunk of the pairs) → judge (the rules
judge labels every pair, and SmolLM2's agreement with it is measured) → train-reward (on the judge's
labels by default: SmolLM2 is too weak to teach anything) → train (tiny agent, the game's reward plus
the intrinsic one) → evaluate (agent and a
random baseline on the same seeded episodes) → plot, then OUT/summary.md. Every stage is the ordinary
`motif` subcommand, run by the stage engine (motif_jax.pipeline) with its log in OUT/logs, writing its
own folder under OUT, so a user can stop anywhere and inspect. A stage that finished before (same
settings) is skipped, so an interrupted quick start resumes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Any

from motif_jax.config import add_keys_help, add_set_argument, merge, no_preset, stage_layers
from motif_jax.errors import MotifError
from motif_jax.metrics import METRICS_FILE, read_metrics
from motif_jax.pipeline import Step, run_steps
from motif_jax.resources import config_file


@dataclasses.dataclass
class CollectSection:
    pairs: int = 2000  # caption pairs of random play
    num_envs: int = 4  # parallel envs


@dataclasses.dataclass
class AnnotateSection:
    backend: str = "llamacpp"  # `motif annotate --backend`
    goal: str = "defaultgoal"  # goal in the prompt
    mode: str = "logprob"  # generate | logprob
    name: str = "smollm2_defaultgoal_logprob"  # annotator name (preference/<name>.npy)
    num_chunks: int = 1  # the LLM labels the first of this many chunks of the pairs; the judge labels all
    extra: list[str] = dataclasses.field(default_factory=list)  # more `motif annotate` flags


@dataclasses.dataclass
class JudgeSection:
    judge: str = "nethack"  # rules judge file or a name in configs/judges/
    goal: str = "defaultgoal"  # the judge's goal
    name: str = "rules-nethack_defaultgoal"  # its annotator name


@dataclasses.dataclass
class RewardSection:
    preset: str = "tiny"  # reward-model preset
    epochs: int = 3  # training epochs
    annotator: str = "judge"  # whose labels the reward model learns: judge | llm


@dataclasses.dataclass
class TrainSection:
    config: str = "score.yaml"  # relative to the quick start config's folder
    preset: str = "tiny"  # agent preset
    steps: int = 300_000  # env steps
    extra: list[str] = dataclasses.field(default_factory=list)  # more `motif train` flags


@dataclasses.dataclass
class EvaluateSection:
    episodes: int = 10  # episodes for the agent and for the random baseline
    num_envs: int = 4  # parallel envs
    max_episode_steps: int = 1000  # episode cap
    record_episodes: int = 1  # episodes replayed as GIFs


@dataclasses.dataclass
class QuickstartConfig:
    out: str = "runs/quickstart"  # output folder, one subfolder per stage
    task: str = "score"  # NLE task of every stage
    seed: int = 0  # seed of every stage
    collect: CollectSection = dataclasses.field(default_factory=CollectSection)
    annotate: AnnotateSection = dataclasses.field(default_factory=AnnotateSection)
    judge: JudgeSection = dataclasses.field(default_factory=JudgeSection)
    reward: RewardSection = dataclasses.field(default_factory=RewardSection)
    train: TrainSection = dataclasses.field(default_factory=TrainSection)
    evaluate: EvaluateSection = dataclasses.field(default_factory=EvaluateSection)


CHOICES = {"reward.annotator": ("judge", "llm"), "annotate.mode": ("generate", "logprob")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_keys_help(parser, QuickstartConfig, "quickstart")
    parser.add_argument("--config", default="configs/quickstart.yaml", help="quick start settings (YAML)")
    add_set_argument(parser, "override a config key (listed below), e.g. --set train.steps=20000")
    parser.add_argument("--out", help="output folder (config: out; default runs/quickstart)")
    parser.add_argument("--fresh", action="store_true", help="delete the output folder first and redo every stage")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console(stderr=True)
    config = load_config(args.config, args.overrides, {"out": args.out})
    out = Path(config.out)
    if args.fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    steps = plan_steps(config)
    started = time.perf_counter()
    hint = "rerun with --fresh (or delete that step's output and the later ones')"
    seconds = run_steps(steps, out, out / ".stages", console, echo=True, hint=hint)
    summary = write_summary(config, steps, seconds)
    console.rule(f"[bold green]quick start done in {(time.perf_counter() - started) / 60:.1f} min[/bold green]")
    console.print(f"summary: {summary}")
    return 0


def load_config(path: str, overrides: list[str], flags: dict[str, Any] | None = None) -> QuickstartConfig:
    """The quick start settings; ``train.config`` is relative to this file's folder, like `extends:`."""
    path = str(config_file(path))
    config = merge(QuickstartConfig, stage_layers(path, overrides, flags), CHOICES)
    train_config = Path(path).parent / config.train.config
    if not train_config.is_file():
        raise MotifError(f"{path}: train.config {config.train.config!r} not found next to it ({train_config})")
    config.train.config = str(train_config)
    return config


def show_config(file: str | None, preset: str | None, overrides: list[str]) -> QuickstartConfig:
    no_preset("quickstart", preset)
    return load_config(file or "configs/quickstart.yaml", overrides)


def plan_steps(c: QuickstartConfig) -> list[Step]:
    """The config's sections as steps; each reads the folder the previous one wrote."""
    from motif_jax.agent.cli import train_argv
    from motif_jax.annotate.cli import annotate_argv
    from motif_jax.data.collect_cli import collect_argv
    from motif_jax.evaluate.cli import evaluate_argv
    from motif_jax.evaluate.plot import plot_argv
    from motif_jax.reward.cli import train_reward_argv

    out = Path(c.out)
    dataset, reward, agent, evaluation = out / "dataset", out / "reward", out / "agent", out / "evaluation"
    a, e = c.annotate, c.evaluate
    episodes = dict(task=c.task, episodes=e.episodes, seed=c.seed, num_envs=e.num_envs)
    episodes["max_episode_steps"] = e.max_episode_steps
    labels = dataset / "preference"

    def step(name: str, output: Path, argv: list[str]) -> Step:
        return Step(name, argv, out / "logs" / f"{name.replace(' ', '-')}.log", output)

    return [
        step(
            "collect",
            dataset,
            collect_argv(dataset, task=c.task, pairs=c.collect.pairs, seed=c.seed, num_envs=c.collect.num_envs),
        ),
        step(
            "annotate",
            labels / f"{a.name}.npy",
            annotate_argv(
                dataset, a.name, goal=a.goal, backend=a.backend, mode=a.mode, num_chunks=a.num_chunks, extra=a.extra
            ),
        ),
        step(
            "judge",
            labels / f"{c.judge.name}.npy",
            annotate_argv(dataset, c.judge.name, goal=c.judge.goal, judge=c.judge.judge),
        ),
        step(
            "train-reward",
            reward,
            train_reward_argv(
                dataset,
                reward,
                annotator=reward_annotator(c),
                preset=c.reward.preset,
                epochs=c.reward.epochs,
                seed=c.seed,
            ),
        ),
        step(
            "train",
            agent,
            train_argv(
                agent,
                task=c.task,
                steps=c.train.steps,
                seed=c.seed,
                config=c.train.config,
                preset=c.train.preset,
                reward=reward,
                extra=c.train.extra,
            ),
        ),
        step(
            "evaluate",
            evaluation / "agent.json",
            evaluate_argv(
                agent / "checkpoints",
                evaluation / "agent.json",
                **episodes,
                record=evaluation / "replay",
                record_episodes=e.record_episodes,
            ),
        ),
        step(
            "evaluate random", evaluation / "random.json", evaluate_argv(None, evaluation / "random.json", **episodes)
        ),
        step("plot", out / "plots", plot_argv(agent, out / "plots")),
    ]


def reward_annotator(c: QuickstartConfig) -> str:
    return c.judge.name if c.reward.annotator == "judge" else c.annotate.name


# ----------------------------------------------------------------------------- summary


def write_summary(c: QuickstartConfig, steps: list[Step], seconds: dict[str, float]) -> Path:
    out = Path(c.out)
    teacher = (
        f"the rules judge `{c.judge.name}`"
        if c.reward.annotator == "judge"
        else f"SmolLM2's labels `{c.annotate.name}`"
    )
    lines = [
        "# Motif quick start",
        "",
        f"Task `{c.task}`, seed {c.seed}. SmolLM2-135M annotates the pairs: a real LLM that runs anywhere "
        "but judges poorly, so it is measured against a transparent rules judge, and the reward model "
        f"learns from {teacher}. Point `motif annotate` at vLLM or a server for real annotations.",
        "",
        "| stage | output | minutes |",
        "|---|---|---|",
    ]
    lines += [f"| {s.name} | `{s.output}` | {seconds.get(s.name, 0) / 60:.1f} |" for s in steps]
    lines += [
        "",
        *_dataset_lines(out / "dataset", c),
        "",
        *_reward_lines(out / "reward"),
        "",
        *_agent_lines(out / "agent"),
        "",
        *_evaluation_lines(out / "evaluation", c),
        "",
        "## Learning curves",
        "",
        "![learning curves](plots/learning_curves.png)",
    ]
    path = out / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _label_counts(labels) -> str:
    import numpy as np

    names = ("first preferred", "second preferred", "tie", "unknown")
    return ", ".join(f"{name} {int((np.asarray(labels) == i).sum())}" for i, name in enumerate(names))


def _dataset_lines(dataset: Path, c: QuickstartConfig) -> list[str]:
    from motif_jax.annotate.agreement import agreement
    from motif_jax.data import open_dataset

    ds = open_dataset(dataset)
    lines = [
        "## Preferences",
        "",
        f"{len(ds)} caption pairs.",
        "",
        f"- LLM `{c.annotate.name}`: {_label_counts(ds.labels(c.annotate.name))}"
        + (f" (it labels the first of {c.annotate.num_chunks} chunks)." if c.annotate.num_chunks > 1 else "."),
    ]
    if c.judge.name in ds.annotators:
        lines.append(f"- rules judge `{c.judge.name}`: {_label_counts(ds.labels(c.judge.name))}.")
        r = agreement(ds.labels(c.annotate.name), ds.labels(c.judge.name))
        rate = "n/a" if not r["both_decided"] else f"{r['rate']:.1%}"
        lines += [
            "",
            f"SmolLM2 agrees with the rules judge on **{rate}** of the {r['both_decided']} pairs both "
            f"prefer a caption in (50% is chance); {r['only_a_decided']} pairs only SmolLM2 decided, "
            f"{r['only_b_decided']} only the judge.",
        ]
    return lines


def _latest_values(path: Path) -> dict[str, Any]:
    """Each metric's most recent value in a metrics.jsonl (not every line logs every metric)."""
    latest: dict[str, Any] = {}
    for row in read_metrics(path) if path.is_file() else []:
        latest.update(row)
    return latest


def _reward_lines(reward: Path) -> list[str]:
    last = _latest_values(reward / METRICS_FILE)
    shown = {
        k: v for k, v in last.items() if isinstance(v, (int, float)) and ("acc" in k or "loss" in k or k == "epoch")
    }
    return ["## Reward model", "", ", ".join(f"{k} {_num(v)}" for k, v in shown.items()) or "no metrics logged"]


def _agent_lines(agent: Path) -> list[str]:
    last = _latest_values(agent / METRICS_FILE)
    keys = ("env_steps", "episode_return", "intrinsic_share", "sps")
    return [
        "## Agent training (latest logged values)",
        "",
        ", ".join(f"{k} {_num(last[k])}" for k in keys if k in last) or "no metrics logged",
    ]


def _evaluation_lines(evaluation: Path, c: QuickstartConfig | None = None) -> list[str]:
    from motif_jax.evaluate.stats import mean_ci95

    rows = [
        "## Evaluation",
        "",
        "Same seeded episodes for both; mean ± 95% confidence interval (Student's t) over episodes.",
        "",
        "| policy | episodes | score | return | max dlvl | gold | episode length |",
        "|---|---|---|---|---|---|---|",
    ]
    found = {}
    for name in ("agent", "random"):
        path = evaluation / f"{name}.json"
        if path.is_file():
            r = json.loads(path.read_text())
            found[name] = r
            cells = []
            for field in ("score", "return", "max_dlvl", "gold", "length"):
                values = [e[field] for e in r.get("per_episode", []) if field in e]
                if values:
                    mean, ci = mean_ci95(values)
                    cells.append(f"{_num(mean)} ± {_num(ci)}")
                else:
                    cells.append("n/a")
            rows.append(f"| {name} | {r['episodes']} | " + " | ".join(cells) + " |")
    if len(found) == 2:
        rows += ["", _verdict(found["agent"], found["random"])]
    gifs = sorted((evaluation / "replay").glob("*.gif"))
    if gifs:
        rows += ["", f"Replay of the agent: ![replay](evaluation/replay/{gifs[0].name})"]
    return rows


def _verdict(agent: dict, random: dict, field: str = "score") -> str:
    """Whether the agent's 95% interval lies entirely above the random policy's."""
    from motif_jax.evaluate.stats import mean_ci95

    a = mean_ci95([e[field] for e in agent["per_episode"]])
    b = mean_ci95([e[field] for e in random["per_episode"]])
    if a[0] - a[1] > b[0] + b[1]:
        return (
            f"**The agent beats random**: mean {field} {_num(a[0])} vs {_num(b[0])}, "
            "and the 95% intervals do not overlap."
        )
    if a[0] + a[1] < b[0] - b[1]:
        return (
            f"**The agent is worse than random** (mean {field} {_num(a[0])} ± {_num(a[1])} vs "
            f"{_num(b[0])} ± {_num(b[1])}, intervals separated): at this scale the intrinsic reward "
            "does not yet teach the score (see the README's Experiments)."
        )
    return (
        f"**The agent does not beat random with separated intervals** (mean {field} {_num(a[0])} ± {_num(a[1])} "
        f"vs {_num(b[0])} ± {_num(b[1])}): train longer (`--set train.steps=...`)."
    )


def _num(v) -> str:
    if v is None:
        return "n/a"
    return f"{v:.3g}" if isinstance(v, float) else str(v)
