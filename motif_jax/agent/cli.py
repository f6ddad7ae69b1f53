"""`motif train`: PPO with the Motif intrinsic reward on an NLE task, or on an envpool env for validation.

Every flag maps to a config key (shown in its help); ``--set key=value`` reaches the rest.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from motif_jax.agent.config import PRESETS, TrainConfig, resolve_config, validate
from motif_jax.config import add_keys_help, add_set_argument, load_yaml
from motif_jax.errors import MotifError

# flag dest -> config key
FLAG_KEYS = {
    "env": "task",
    "preset": "preset",
    "steps": "steps",
    "seed": "seed",
    "reward": "reward.path",
    "out": "run.out",
    "extrinsic_coef": "reward.extrinsic_coef",
    "llm_coef": "reward.llm_coef",
    "beta": "reward.beta",
    "eps_quantile": "reward.eps_quantile",
    "num_envs": "env.num_envs",
    "wandb": "wandb.project",
    "skills": "skills",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_keys_help(parser, TrainConfig, "train")
    parser.add_argument("--config", help="YAML config (may `extends:` another), e.g. configs/score.yaml")
    add_set_argument(parser, "override any config key (listed below), e.g. --set ppo.lr=3e-4 (repeatable)")
    parser.add_argument("--env", help="task name or envpool:<EnvName> (config: task)")
    parser.add_argument("--preset", choices=sorted(PRESETS), help="network + sizing preset (config: preset)")
    parser.add_argument("--steps", type=int, help="total env steps (config: steps)")
    parser.add_argument("--seed", type=int, help="config: seed")
    parser.add_argument("--reward", help="reward-model checkpoint directory (config: reward.path)")
    parser.add_argument("--out", help="run directory (config: run.out)")
    parser.add_argument("--num-envs", type=int, help="config: env.num_envs")
    parser.add_argument("--extrinsic-coef", type=float, help="α_ext (config: reward.extrinsic_coef)")
    parser.add_argument("--llm-coef", type=float, help="α_llm (config: reward.llm_coef)")
    parser.add_argument("--beta", type=float, help="caption-count exponent (config: reward.beta)")
    parser.add_argument("--eps-quantile", type=float, help="intrinsic threshold quantile (config: reward.eps_quantile)")
    parser.add_argument("--skills", metavar="FILE", help="MaestroMotif skills file, e.g. nethack (config: skills)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    parser.add_argument("--wandb", metavar="PROJECT", help="also log to Weights & Biases (config: wandb.project)")
    parser.add_argument(
        "--sync",
        action="store_true",
        default=None,
        help="act with the newest params, no actor/learner overlap (config: run.sync)",
    )


def config_from_args(args: argparse.Namespace):
    """The run's config; with ``--resume``, the run's saved config.yaml with the flags given again on top."""
    flags = {key: getattr(args, dest) for dest, key in FLAG_KEYS.items() if dest != "preset"}
    flags["run.sync"] = args.sync
    base = None
    if args.resume:
        if not args.out:
            raise MotifError("--resume needs --out RUN: the run directory to continue")
        saved = Path(args.out) / "config.yaml"
        if saved.is_file():
            base = load_yaml(saved)
    return resolve_config(args.config, args.preset, args.overrides, flags, base=base)


def show_config(file: str | None, preset: str | None, overrides: list[str]) -> TrainConfig:
    """`motif config show train`: the config a run with these options would use (what it still lacks
    goes to stderr)."""
    config = resolve_config(file, preset, overrides, check=False)
    try:
        validate(config)
    except MotifError as e:
        print(f"note: {e}", file=sys.stderr)
    return config


def run(args: argparse.Namespace) -> int:
    from motif_jax.agent.trainer import Trainer

    config = config_from_args(args)
    out = config.run.out or str(Path("runs") / f"{config.task.replace(':', '-')}-{time.strftime('%Y%m%d-%H%M%S')}")
    config.run.out = out
    progress = Trainer(config, out, resume=args.resume).train()
    print(f"motif train: {progress.env_steps} env steps, {progress.updates} updates; run in {out}")
    return 0


def train_argv(
    out,
    *,
    task: str,
    steps: int,
    seed: int,
    config=None,
    preset: str | None = None,
    reward=None,
    extrinsic_coef=None,
    llm_coef=None,
    sets=(),
    extra=(),
) -> list[str]:
    """The `motif train` command line of a pipeline step (None: the config's value)."""
    argv = ["train"] + (["--config", str(config)] if config else []) + (["--preset", preset] if preset else [])
    argv += ["--env", task, "--steps", str(steps), "--seed", str(seed), "--out", str(out)]
    for flag, value in (("--reward", reward), ("--extrinsic-coef", extrinsic_coef), ("--llm-coef", llm_coef)):
        argv += [flag, str(value)] if value is not None else []
    return argv + [a for item in sets for a in ("--set", str(item))] + list(extra)
