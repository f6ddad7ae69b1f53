"""`motif train-reward DIR --annotator NAME --out RDIR`: fit the reward model to a dataset's preferences.

Settings come from the preset (`default`: the paper's lr 1e-5, 1024 pairs, 10 epochs; `tiny`: a small
net with lr 1e-3, 128 pairs, 3 epochs), then a YAML --config file, then --set key=value, then flags.
"""

from __future__ import annotations

import argparse
import sys

import jax

from motif_jax import config as config_io
from motif_jax import parallel
from motif_jax.reward.model import PRESETS
from motif_jax.reward.train import PRESET_TRAINING, TrainConfig, train_reward

# flag name -> TrainConfig field
FLAG_FIELDS = {"epochs": "epochs", "lr": "lr", "batch_size": "batch_size", "seed": "seed",
               "val_fraction": "val_fraction", "keep": "keep"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="pairs dataset directory (from `motif collect`, or the original Motif layout)")
    parser.add_argument("--annotator", required=True, help="labels to learn: preference/<NAME>.npy")
    parser.add_argument("--out", required=True, help="run directory: checkpoints/, metrics.jsonl")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default", help="model size and training defaults")
    parser.add_argument("--epochs", type=int, help="default: 10 (tiny: 3)")
    parser.add_argument("--lr", type=float, help="Adam learning rate; default 1e-5 (tiny: 1e-3)")
    parser.add_argument("--batch-size", type=int, help="pairs per global batch; default 1024 (tiny: 128)")
    parser.add_argument("--seed", type=int, help="split, shuffling and init seed (default 0)")
    parser.add_argument("--val-fraction", type=float, help="held-out share of the labelled pairs (default 0.2)")
    parser.add_argument("--keep", type=int, help="checkpoints to keep (default 3)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    parser.add_argument("--tensorboard", action="store_true", help="also write TensorBoard scalars to OUT/tensorboard")
    parser.add_argument("--config", help="YAML file with TrainConfig keys (preset, model, lr, batch_size, ...)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_config(args: argparse.Namespace) -> TrainConfig:
    data = {"preset": args.preset, **PRESET_TRAINING[args.preset]}
    if args.config:
        data.update(config_io.load_yaml(args.config))
    config_io.apply_overrides(data, args.set)
    for flag, field in FLAG_FIELDS.items():
        if getattr(args, flag) is not None:
            data[field] = getattr(args, flag)
    if args.tensorboard:
        data["tensorboard"] = True
    config = config_io.from_dict(TrainConfig, data, where="train-reward config")
    config.validate()
    return config


def run(args: argparse.Namespace) -> int:
    parallel.maybe_initialize_distributed()
    config = build_config(args)
    history = train_reward(args.dataset, args.annotator, args.out, config, resume=args.resume,
                           progress=not args.no_progress and sys.stderr.isatty())
    if jax.process_index() != 0:  # the other processes of a multi-host job stay quiet
        return 0
    if history:
        print(f"reward model saved under {args.out} (val_acc {history[-1]['val_acc']})")
    else:
        print(f"{args.out} already trained for {config.epochs} epochs; nothing to do")
    return 0
