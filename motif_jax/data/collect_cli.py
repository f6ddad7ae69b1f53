"""`motif collect`: write a pairs dataset from NLE play (random policy by default, or a trained checkpoint).

Settings come from the CollectSettings defaults, then ``--config FILE`` (YAML with the same field names),
then ``--set key=value``, then explicit flags, type-checked (motif_jax.config).
"""

from __future__ import annotations

import argparse
import dataclasses

from motif_jax.config import add_keys_help, merge, no_preset, stage_layers
from motif_jax.data.collect import CollectSettings, collect

# flag dest -> CollectSettings field
FLAG_FIELDS = (
    "task",
    "pairs",
    "seed",
    "seq_len",
    "num_envs",
    "policy",
    "sample_prob",
    "mention_stairs",
    "mention_explored",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = CollectSettings()
    add_keys_help(parser, CollectSettings, "collect")
    parser.add_argument("--out", required=True, help="output dataset directory")
    parser.add_argument("--task", help=f"NLE task (default {d.task})")
    parser.add_argument("--pairs", type=int, help=f"number of pairs (default {d.pairs})")
    parser.add_argument("--seed", type=int, help=f"seed of envs, policy and sampling (default {d.seed})")
    parser.add_argument("--seq-len", type=int, help=f"steps per pair member, L (default {d.seq_len})")
    parser.add_argument(
        "--keys", help=f"comma-separated observation keys to keep (default {','.join(d.keys)}; message is always kept)"
    )
    parser.add_argument("--glyphs", action="store_true", help="also keep glyphs")
    parser.add_argument("--num-envs", type=int, help=f"parallel envs (default {d.num_envs})")
    parser.add_argument("--policy", help="'random' (default) or a run/checkpoint directory of a trained agent")
    parser.add_argument(
        "--sample-prob", type=float, help=f"probability that a step starts a subsequence (default {d.sample_prob})"
    )
    parser.add_argument(
        "--mention-stairs",
        action="store_true",
        default=None,
        help='caption a staircase down under the hero "There is a staircase down here." '
        "(train with env.mention_stairs=true)",
    )
    parser.add_argument(
        "--mention-explored",
        action="store_true",
        default=None,
        help='caption each 50 more squares seen on a level "You have explored N squares of this level." '
        "(train with env.mention_explored=true)",
    )
    parser.add_argument("--overwrite", action="store_true", help="delete an existing dataset in --out first")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--config", help="YAML file with settings (task, pairs, seed, seq_len, keys, ...)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (listed below), e.g. --set keys=[blstats]",
    )


def resolve_config(
    file: str | None = None, overrides: list[str] | None = None, flags: dict | None = None
) -> CollectSettings:
    return merge(CollectSettings, stage_layers(file, overrides, flags))


def settings_from_args(args: argparse.Namespace) -> CollectSettings:
    flags = {name: getattr(args, name) for name in FLAG_FIELDS}
    if args.keys is not None:
        flags["keys"] = [k.strip() for k in args.keys.split(",") if k.strip()]
    settings = resolve_config(args.config, args.set, flags)
    if args.glyphs and "glyphs" not in settings.keys:
        settings = dataclasses.replace(settings, keys=(*settings.keys, "glyphs"))
    return settings


def show_config(file: str | None, preset: str | None, overrides: list[str]) -> CollectSettings:
    no_preset("collect", preset)
    return resolve_config(file, overrides)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    settings = settings_from_args(args)
    policy = None
    if settings.policy != "random":
        from motif_jax.agent.policy import StatefulPolicy

        policy = StatefulPolicy(settings.policy, settings.num_envs, settings.seed)
    console = Console()
    try:
        result = collect(
            settings, args.out, overwrite=args.overwrite, show_progress=not args.no_progress, policy=policy
        )
    except KeyboardInterrupt:
        console.print(f"progress saved in {args.out}; rerun the same command to resume")
        raise

    counts = result.meta.get("counts", {})
    if result.already_complete:
        console.print(
            f"{args.out}: dataset already complete ({counts.get('pairs')} pairs, task "
            f"{result.meta.get('task')}, seed {result.meta.get('seed')}); nothing to do "
            "(--overwrite to collect again)"
        )
        return 0
    table = Table(title=f"collected {args.out}", show_header=False)
    captions = result.meta["captions"]
    for name, value in [
        ("pairs", counts["pairs"]),
        ("episodes ended", counts["episodes"]),
        ("env steps", counts["env_steps"]),
        ("seconds", result.meta["collection_seconds"]),
        ("steps/s", f"{counts['env_steps'] / max(result.meta['collection_seconds'], 1e-9):,.0f}"),
        ("unique captions", captions["unique"]),
        ("empty captions", f"{captions['fraction_empty']:.1%}"),
    ] + [(f"top {i + 1}", f"{c['caption']!r} x{c['count']}") for i, c in enumerate(captions["top"][:5])]:
        table.add_row(name, str(value))
    console.print(table)
    return 0


def collect_argv(
    out,
    *,
    task: str,
    pairs: int,
    seed: int,
    num_envs: int,
    policy: str = "random",
    mention_stairs: bool = False,
    mention_explored: bool = False,
    progress=True,
):
    """The `motif collect` command line of a pipeline step."""
    argv = ["collect", "--task", task, "--pairs", str(pairs), "--seed", str(seed), "--num-envs", str(num_envs)]
    argv += ["--out", str(out)] + ([] if progress else ["--no-progress"])
    argv += ["--mention-stairs"] if mention_stairs else []
    argv += ["--mention-explored"] if mention_explored else []
    return argv + (["--policy", policy] if policy != "random" else [])


__all__ = ["add_arguments", "collect_argv", "run", "settings_from_args"]
