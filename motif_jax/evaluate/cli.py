"""`motif evaluate RUN/checkpoints`: play N episodes with a trained agent, print a table, write JSON.

motif evaluate runs/score/checkpoints --task score --episodes 20 --seed 0 --json eval.json
motif evaluate --policy random --task score --episodes 20      # the baseline to beat
motif evaluate runs/score --record replays --record-episodes 2  # ttyrecs + an animated GIF
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path

from motif_jax.errors import MotifError
from motif_jax.evaluate.stats import json_safe


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", nargs="?", help="RUN/checkpoints or RUN (latest checkpoint is used)")
    parser.add_argument(
        "--policy",
        choices=("checkpoint", "random"),
        default="checkpoint",
        help="'random' evaluates uniformly random actions (no checkpoint needed)",
    )
    parser.add_argument("--task", help="task to play (default: the task the agent was trained on)")
    parser.add_argument("--episodes", type=int, default=20, help="episodes to count (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seeds every episode and the action sampling")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--greedy", dest="greedy", action="store_true", help="take the most likely action")
    mode.add_argument(
        "--sample",
        dest="greedy",
        action="store_false",
        help="sample actions from the policy (default: the agent was trained stochastic)",
    )
    parser.set_defaults(greedy=False)
    parser.add_argument(
        "--num-envs",
        type=int,
        default=4,
        help="envs played in parallel (default 4); episode seeds depend on it, so keep it to reproduce a report",
    )
    parser.add_argument("--num-workers", type=int, default=None, help="actor processes (default: pool's choice)")
    parser.add_argument("--max-episode-steps", type=int, default=5000, help="episode cap (default 5000, NLE's)")
    parser.add_argument("--json", metavar="FILE", help="write the report here")
    parser.add_argument(
        "--record", metavar="DIR", help="keep NLE ttyrecs and render the first one to DIR/episode-0.gif"
    )
    parser.add_argument("--record-episodes", type=int, default=1, help="how many episodes to keep with --record")
    parser.add_argument("--gif-max-frames", type=int, default=400, help="longer recordings are subsampled")
    parser.add_argument("--top-captions", type=int, default=10, help="most frequent captions to list")
    parser.add_argument(
        "--caption-actions",
        metavar="TEXT",
        action="append",
        default=[],
        help="also report the actions taken at steps whose caption starts with TEXT (repeatable), e.g. "
        "'There is a staircase down here.'",
    )
    parser.add_argument("--wandb", metavar="PROJECT", help="also log the report to Weights & Biases")
    parser.add_argument(
        "--skills",
        metavar="FILE",
        help="MaestroMotif skills file (default: the one the agent trained with); the task's policy over skills "
        "picks each skill, zero-shot",
    )
    parser.add_argument("--skill", metavar="NAME", help="run this one skill for whole episodes")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from motif_jax.evaluate.evaluate import EvalSettings, RandomPolicy, evaluate
    from motif_jax.progress import ProgressBar

    _check(args)
    console = Console(stderr=True)
    if args.policy == "random":
        from motif_jax.envs.tasks import TASKS

        if args.task not in TASKS:
            raise MotifError(f"--policy random needs --task, one of {', '.join(TASKS)}")
        policy, source = RandomPolicy(23, args.task), "random policy"
    else:
        from motif_jax.agent.policy import load_policy

        policy, source = load_policy(args.checkpoint), str(args.checkpoint)
    settings = EvalSettings(
        task=args.task or policy.task,
        episodes=args.episodes,
        seed=args.seed,
        greedy=args.greedy,
        num_envs=args.num_envs,
        num_workers=args.num_workers,
        max_episode_steps=args.max_episode_steps,
        record_dir=args.record,
        record_episodes=args.record_episodes,
        top_captions=args.top_captions,
        caption_actions=tuple(args.caption_actions),
        skills=args.skills or (policy.config.skills if args.policy == "checkpoint" else None),
        skill=args.skill,
        env_options=_env_options(policy.config, args.task or policy.task) if args.policy == "checkpoint" else None,
    )
    trained_with_skills = args.policy == "checkpoint" and "skill" in policy.obs_keys
    if (args.skills or args.skill) and not trained_with_skills:
        raise MotifError(f"--skills/--skill: {source} was not trained with skills (motif train --skills FILE)")
    with ProgressBar("evaluate", settings.episodes, "episodes", transient=True, console=console) as bar:
        report = evaluate(policy, settings, on_episode=lambda _: bar.advance())
    report = {"checkpoint": source, **report}
    if args.record and report.get("recordings"):
        from motif_jax.evaluate.render import write_gif
        from motif_jax.evaluate.ttyrec import read_ttyrec

        first = Path(report["recordings"][0])
        gif = write_gif(
            read_ttyrec(first), first.with_name(first.name.split(".")[0] + ".gif"), max_frames=args.gif_max_frames
        )
        report["gif"] = str(gif)
    Console().print(report_table(report))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(json_safe(report), indent=2) + "\n")
        console.print(f"wrote {path}")
    _track(args, report, settings)
    return 0


def _track(args: argparse.Namespace, report: dict, settings) -> None:
    """With --wandb (or $MOTIF_WANDB): the headline numbers, the report's tables and the replay GIF."""
    from motif_jax.tracking import WandbConfig, open_tracker

    source = Path(args.checkpoint) if args.policy == "checkpoint" else Path("random")
    who = source.parent.name if source.name == "checkpoints" else source.name
    where = Path(args.json).parent if args.json else Path(".")
    config = {"checkpoint": report["checkpoint"], **dataclasses.asdict(settings)}
    tracker = open_tracker(WandbConfig(project=args.wandb or ""), where, "evaluate", config, f"evaluate-{who}")
    if tracker is None:
        return
    details = report["details"]
    tracker.summary({f"{k}_mean": d["mean"] for k, d in details.items()} | {"success_rate": report["success_rate"]})
    rows = [[k, d["mean"], d["ci95"], d["min"], d["max"]] for k, d in details.items()]
    tracker.log_table("evaluation", ["metric", "mean", "ci95", "min", "max"], rows)
    tracker.log_table("top_captions", ["steps", "caption"], [[n, c] for c, n in report["top_captions"]])
    if report.get("gif"):
        tracker.log_image("replay", report["gif"])
    tracker.finish()


def _env_options(config, task: str) -> dict | None:
    """A trained agent plays with the character and actions it trained with."""
    from motif_jax.agent.config import env_options

    return env_options(config.env, task)


def _check(args: argparse.Namespace) -> None:
    if args.policy == "checkpoint" and not args.checkpoint:
        raise MotifError("give a checkpoint directory (RUN/checkpoints or RUN), or --policy random")
    for name in ("episodes", "num_envs", "max_episode_steps", "record_episodes", "gif_max_frames"):
        if getattr(args, name) < 1:
            raise MotifError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.skill and args.policy == "random":
        raise MotifError("--skill needs a checkpoint trained with skills, not --policy random")
    if any(not text.strip() for text in args.caption_actions):
        raise MotifError("--caption-actions needs a non-empty caption text")
    if args.record and args.record_episodes > args.episodes:
        raise MotifError(f"--record-episodes {args.record_episodes} exceeds --episodes {args.episodes}")


def report_table(report: dict):
    """The report for the console: headline numbers with CIs, end reasons, most frequent captions."""
    from rich.console import Group
    from rich.table import Table

    mode = "greedy" if report["greedy"] else "sampled"
    metrics = Table(
        title=f"{report['checkpoint']} on {report['task']}: {report['episodes']} episodes, "
        f"seed {report['seed']}, {mode} actions"
    )
    for column in ("metric", "mean", "± 95% CI", "min", "max"):
        metrics.add_column(column, justify="left" if column == "metric" else "right")
    for field, d in report["details"].items():
        metrics.add_row(field, f"{d['mean']:.2f}", _fmt(d["ci95"]), f"{d['min']:g}", f"{d['max']:g}")
    metrics.add_row("success rate", f"{report['success_rate']:.0%}", "", "", "")
    metrics.add_row("end reasons", ", ".join(f"{k} {v}" for k, v in report["end_reasons"].items() if v), "", "", "")
    if report.get("gif"):
        metrics.add_row("replay", report["gif"], "", "", "")
    captions = Table(title="most frequent captions")
    captions.add_column("steps", justify="right")
    captions.add_column("caption")
    for caption, count in report["top_captions"]:
        captions.add_row(str(count), caption)
    tables = [metrics, captions]
    if report.get("actions", {}).get("after_caption"):
        actions = Table(title="actions taken (most frequent five)")
        actions.add_column("where")
        actions.add_column("steps", justify="right")
        actions.add_column("actions")
        rows = {"every step": report["actions"]["all"], **report["actions"]["after_caption"]}
        for where, taken in rows.items():
            top = ", ".join(f"{name} {share:.1%}" for name, share in list(taken["shares"].items())[:5])
            actions.add_row(where, str(taken["steps"]), top or "-")
        tables.append(actions)
    return Group(*tables)


def _fmt(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.2f}"


def evaluate_argv(
    checkpoints,
    json_path,
    *,
    task: str,
    episodes: int,
    seed: int,
    num_envs: int,
    max_episode_steps: int,
    record=None,
    record_episodes: int = 1,
    extra=(),
) -> list[str]:
    """The `motif evaluate` command line of a pipeline step; no ``checkpoints``: the random policy."""
    argv = ["evaluate", str(checkpoints)] if checkpoints else ["evaluate", "--policy", "random"]
    argv += ["--task", task, "--episodes", str(episodes), "--seed", str(seed), "--num-envs", str(num_envs)]
    argv += ["--max-episode-steps", str(max_episode_steps), "--json", str(json_path)]
    argv += ["--record", str(record), "--record-episodes", str(record_episodes)] if record else []
    return argv + list(extra)
