"""`motif benchmark {env,annotate,reward,train,learner,actor}`: steps/s measurements written as JSON.

Each target lives beside the code it measures; this module only dispatches.
"""

from __future__ import annotations

import argparse
import importlib

TARGETS = {
    "env": ("motif_jax.envs.benchmark", "actor pool vs bare NLE vs gymnasium AsyncVectorEnv"),
    "annotate": ("motif_jax.annotate.benchmark", "annotation pairs/s and LLM calls saved by deduplication"),
    "reward": ("motif_jax.reward.benchmark", "reward-model training pairs/s and scoring captions/s"),
    "train": ("motif_jax.agent.benchmark", "end-to-end trainer steps/s against the pool's ceiling"),
    "learner": ("motif_jax.agent.benchmark_learner", "the PPO update alone on a synthetic batch (no envs)"),
    "actor": (
        "motif_jax.agent.benchmark_actor",
        "one actor thread's host cost per env step, with and without inference",
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="target", metavar="TARGET", required=True)
    for name, (module_name, help_text) in TARGETS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        try:
            importlib.import_module(module_name).add_arguments(p)
        except ModuleNotFoundError as e:
            if not (e.name or "").startswith("motif_jax"):
                raise


def run(args: argparse.Namespace) -> int:
    return importlib.import_module(TARGETS[args.target][0]).run(args)
