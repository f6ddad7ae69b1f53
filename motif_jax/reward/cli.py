"""`motif train-reward DIR --annotator NAME --out RDIR`: fit the reward model to a dataset's preferences.
With ``--skills FILE`` instead of ``--annotator`` (MaestroMotif): one model per skill of the skills file, each
on the labels its ``reward`` names, into RDIR/<skill>/, plus RDIR/skills.json (see `skill_training`).

Settings: the TrainConfig defaults, the preset's (`default`: the paper's lr 1e-5, 1024 pairs, 10 epochs;
`tiny`: a small net with lr 1e-3, 128 pairs, 3 epochs), a YAML --config file (which may name the preset:
its own values still win), --set key=value, then flags.
"""

from __future__ import annotations

import argparse
import sys

import jax

from motif_jax import parallel
from motif_jax.config import add_keys_help, add_set_argument, stage_layers
from motif_jax.reward.skill_training import SKILL_DEFAULTS, train_skill_rewards
from motif_jax.reward.train import PRESETS, TrainConfig, resolve_config, train_reward

# flag dest -> TrainConfig field
FLAG_FIELDS = {
    "preset": "preset",
    "epochs": "epochs",
    "lr": "lr",
    "batch_size": "batch_size",
    "seed": "seed",
    "val_fraction": "val_fraction",
    "keep": "keep",
    "tensorboard": "tensorboard",
    "wandb": "wandb.project",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_keys_help(parser, TrainConfig, "train-reward")
    parser.add_argument("dataset", help="pairs dataset directory (from `motif collect`, or the original Motif layout)")
    labels = parser.add_mutually_exclusive_group(required=True)
    labels.add_argument("--annotator", help="labels to learn: preference/<NAME>.npy")
    labels.add_argument(
        "--skills",
        metavar="FILE",
        help="skills file (or a shipped one's name): one model per skill, on the labels its reward names",
    )
    parser.add_argument(
        "--labels",
        metavar="NAME",
        help="with --skills: the annotator of every skill, {skill} filled in (default: each skill's reward entry), "
        "e.g. MODEL_{skill}_default-transitions for an LLM's `annotate --skills` labels",
    )
    parser.add_argument(
        "--no-features",
        action="store_true",
        help="with --skills: models read captions only (default: the depth change too; config: model.features)",
    )
    parser.add_argument(
        "--out", required=True, help="run directory: checkpoints/, metrics.jsonl (--skills: one per skill)"
    )
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="model size and training defaults (config: preset; default: default)",
    )
    parser.add_argument("--epochs", type=int, help="default: 10 (tiny: 3)")
    parser.add_argument("--lr", type=float, help="Adam learning rate; default 1e-5 (tiny: 1e-3)")
    parser.add_argument("--batch-size", type=int, help="pairs per global batch; default 1024 (tiny: 128)")
    parser.add_argument("--seed", type=int, help="split, shuffling and init seed (default 0)")
    parser.add_argument("--val-fraction", type=float, help="held-out share of the labelled pairs (default 0.2)")
    parser.add_argument("--keep", type=int, help="checkpoints to keep (default 3)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    parser.add_argument(
        "--tensorboard", action="store_true", default=None, help="also write TensorBoard scalars to OUT/tensorboard"
    )
    parser.add_argument("--wandb", metavar="PROJECT", help="also log to Weights & Biases (config: wandb.project)")
    parser.add_argument("--config", help="YAML file with the keys listed below (preset, model, lr, batch_size, ...)")
    add_set_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_config(args: argparse.Namespace) -> TrainConfig:
    """Preset < (with --skills: the skills' defaults) < --config < --set < flags."""
    flags = {field: getattr(args, flag) for flag, field in FLAG_FIELDS.items()}
    skills = getattr(args, "skills", None)
    if skills and args.no_features:
        flags["model.features"] = 0
    defaults = [("skills defaults", SKILL_DEFAULTS)] if skills else []
    return resolve_config([*defaults, *stage_layers(args.config, args.overrides, flags)])


def show_config(file: str | None, preset: str | None, overrides: list[str]) -> TrainConfig:
    """`motif config show train-reward`: the resolved settings, network included."""
    return resolve_config(stage_layers(file, overrides, {"preset": preset}))


def run(args: argparse.Namespace) -> int:
    parallel.maybe_initialize_distributed()
    config = build_config(args)
    if args.skills:
        return run_skills(args, config)
    history = train_reward(
        args.dataset,
        args.annotator,
        args.out,
        config,
        resume=args.resume,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    if jax.process_index() != 0:  # the other processes of a multi-host job stay quiet
        return 0
    if history:
        print(f"reward model saved under {args.out} (val_acc {history[-1]['val_acc']})")
    else:
        print(f"{args.out} already trained for {config.epochs} epochs; nothing to do")
    return 0


def run_skills(args: argparse.Namespace, config: TrainConfig) -> int:
    """Every skill's model; a rerun skips the trained ones and resumes an interrupted one (no --resume needed)."""
    histories = train_skill_rewards(
        args.dataset,
        args.skills,
        args.out,
        config,
        progress=not args.no_progress and sys.stderr.isatty(),
        labels=args.labels,
    )
    if jax.process_index() == 0:
        accuracy = ", ".join(f"{skill} {h[-1]['val_acc']}" for skill, h in histories.items() if h)
        print(f"{len(histories)} skill reward models under {args.out}" + (f" (val_acc {accuracy})" if accuracy else ""))
    return 0


def train_reward_argv(
    dataset,
    out,
    *,
    preset: str,
    epochs: int,
    seed: int,
    annotator: str | None = None,
    skills=None,
    labels_of_skills: str | None = None,
    progress=True,
):
    """The `motif train-reward` command line of a pipeline step: one annotator's model, or one per skill
    (on the labels ``labels_of_skills`` names, ``{skill}`` standing for each, else the skills file's)."""
    labels = ["--skills", str(skills)] if skills is not None else ["--annotator", str(annotator)]
    labels += ["--labels", labels_of_skills] if labels_of_skills else []
    argv = ["train-reward", str(dataset), *labels, "--preset", preset, "--epochs", str(epochs)]
    return argv + ["--seed", str(seed), "--out", str(out)] + ([] if progress else ["--no-progress"])
