"""`motif config show STAGE`: a stage's resolved, typed config as YAML; ``--help-keys`` lists its keys.

It asks each stage's own CLI module, so it lives above every stage."""

from __future__ import annotations

import argparse
import importlib
import sys

from motif_jax.config import add_set_argument, to_yaml

# stage -> (its CLI module, that module's function(file, preset, overrides) -> the resolved config)
STAGES: dict[str, tuple[str, str]] = {
    "train": ("motif_jax.agent.cli", "show_config"),
    "train-reward": ("motif_jax.reward.cli", "show_config"),
    "annotate": ("motif_jax.annotate.cli", "show_config"),
    "collect": ("motif_jax.data.collect_cli", "show_config"),
    "quickstart": ("motif_jax.quickstart", "show_config"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "print a stage's resolved, typed config as YAML (defaults < preset < file < --set)"
    parser.add_argument("action", choices=["show"])
    parser.add_argument("stage", nargs="?", choices=sorted(STAGES), default="train", help="default: train")
    parser.add_argument("--config", help="YAML config file of that stage")
    add_set_argument(parser)
    parser.add_argument("--preset", help="the stage's preset (train, train-reward)")
    parser.add_argument("--help-keys", action="store_true", help="list the stage's keys: type, default, doc")


def run(args: argparse.Namespace) -> int:
    module_name, function = STAGES[args.stage]
    module = importlib.import_module(module_name)
    if args.help_keys:  # the key list at the bottom of the stage's own --help
        parser = argparse.ArgumentParser()
        module.add_arguments(parser)
        print(parser.epilog)
        return 0
    config = getattr(module, function)(args.config, args.preset, args.overrides)
    sys.stdout.write(to_yaml(config))
    return 0
