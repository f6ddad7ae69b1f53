"""Trainer configuration: dataclasses, presets and YAML files that extend each other.

Resolution order (later wins): dataclass defaults, the preset (network and sizing;
``mlp`` also carries CleanRL's CartPole PPO settings), the YAML file (after its
``extends:`` chain), ``--set key=value`` and explicit CLI flags. A file therefore
refines its preset: ``preset: tiny`` with ``ppo.epochs: 4`` trains 4 epochs.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from motif_jax.config import last_setter, layer_value, merge, stage_layers
from motif_jax.errors import MotifError
from motif_jax.tracking import MODES, WandbConfig


@dataclasses.dataclass
class EnvConfig:
    num_envs: int = 16  # parallel envs (all actor threads together)
    batch_size: int = 0  # envs per recv; 0 -> num_envs/2 (async) or num_envs (sync)
    num_workers: int = 0  # pool worker processes; 0 -> pool default
    obs_keys: list[str] = dataclasses.field(default_factory=lambda: ["glyphs", "blstats", "message"])  # observations
    character: str | None = None  # NLE character, e.g. mon-hum-neu-mal (None: NLE's default, a human neutral Monk)
    extra_actions: bool = False  # add CAST, ENHANCE, PRAY, QUAFF and DROP to the 23 task actions (MaestroMotif)
    # caption a step that ends on a staircase down with nothing else to say "There is a staircase down here."
    # NetHack says nothing there, so a caption-only reward cannot pay for finding the stairs (off: Motif's captions)
    mention_stairs: bool = False
    # caption "You have explored N squares of this level." each 50 more squares seen on a level (on a quiet
    # step): NetHack never mentions exploring, so a caption-only reward cannot pay for it (off: Motif's captions)
    mention_explored: bool = False


@dataclasses.dataclass
class ModelConfig:
    kind: str = "nethack"  # nethack | mlp | atari
    core: str = "gru"  # gru | lstm | none
    hidden: int = 512  # recurrent core width
    glyph_dim: int = 32  # glyph embedding width
    map_channels: int = 32  # channels of the glyph convs (full map and crop)
    full_map: bool = True  # also encode the whole 21x79 map (the original policy saw only the crop)
    map_patch: int = 0  # 0: two 3x3 stride-2 convs over the map; k: one k x k conv with stride k (cheap on CPU)
    crop: int = 9  # egocentric crop side (odd centres the agent; the original used 12)
    crop_patch: int = 0  # 0: two 3x3 convs over the crop; k: one k x k conv with stride k
    stats_layers: list[int] = dataclasses.field(default_factory=lambda: [64, 64])  # MLP on the scaled blstats
    # symlog: sign(x)·log(1 + |x|) of every stat | motif: the original policy's hand-chosen scales, clipped
    # to ±5, and the scaled vector also passed on raw beside its MLP
    stats_norm: str = "symlog"
    num_skills: int = 0  # > 0: the network also reads obs["skill"], the active skill's id (MaestroMotif)
    message_encoder: str = "conv"  # conv: char embedding, conv, max-pool | mlp: bytes/255 through an MLP
    message_dim: int = 32  # caption byte embedding width (conv encoder)
    message_channels: int = 64  # caption conv channels
    message_patch: int = 0  # 0: width-5 conv over the caption bytes; k: width-k conv with stride k
    message_layers: list[int] = dataclasses.field(default_factory=lambda: [128, 128])  # message_encoder: mlp
    torso: int = 512  # width of the MLP after concatenation
    mlp_layers: list[int] = dataclasses.field(default_factory=lambda: [64, 64])  # mlp kind
    activation: str = "relu"  # relu | tanh | gelu | elu
    separate_critic: bool = False  # mlp kind: own torso for the value (CleanRL layout)


@dataclasses.dataclass
class PPOConfig:
    rollout: int = 32  # transitions per env per segment
    epochs: int = 1  # passes over each segment
    minibatches: int = 4  # minibatches per epoch (env.num_envs must be a multiple)
    # > 0: ppo.minibatches becomes the divisor of env.num_envs whose minibatches come closest to this
    # many frames (the paper's SGD batch is 4096), so a preset keeps its batch size at any env count;
    # a ppo.minibatches set above the layer that set this (file over preset, --set over file) wins.
    minibatch_frames: int = 0
    lr: float = 1e-4  # Adam learning rate
    anneal_lr: bool = False  # decay lr linearly to 0 over the run
    adam_eps: float = 1e-5  # Adam epsilon
    gamma: float = 0.99  # discount
    gae_lambda: float = 0.95  # GAE lambda
    clip: float = 0.1  # PPO ratio clip
    value_clip: float = 0.0  # > 0: clip values to ±value_clip around the old ones (the original Motif: 1.0)
    vf_coef: float = 0.5  # value loss coefficient
    ent_coef: float = 0.003  # entropy bonus coefficient
    max_grad_norm: float = 4.0  # global gradient-norm clip
    norm_adv: bool = True  # normalise advantages per minibatch (off for sparse rewards: configs/cpu-sparse.yaml)
    advantage: str = "gae"  # gae | vtrace (corrects the actor's one-update policy lag)
    vtrace_rho: float = 1.0  # V-trace rho clip
    vtrace_c: float = 1.0  # V-trace c clip


@dataclasses.dataclass
class RewardConfig:
    path: str | None = None  # reward-model checkpoint; required when llm_coef > 0
    extrinsic_coef: float = 0.1  # α_ext
    llm_coef: float = 0.0  # α_llm; the task configs set the paper's 0.1
    env_scale: float = 0.1  # r = extrinsic_coef * clip(env_scale * r_env, ±env_clip) + llm_coef * r_int
    env_clip: float = 10.0  # clip of the scaled env reward
    beta: float = 3.0  # r_int divided by (episode count of the caption) ** beta
    eps_quantile: float = 0.5  # r_int only where the normalised reward exceeds this quantile
    # Whose caption a transition is rewarded for: "next" (the observation the action led to, so the
    # action that caused a message gets the credit at once) or "current" (the observation the action
    # was taken in, as the original Motif code did; its reward is then one step late).
    caption: str = "next"


@dataclasses.dataclass
class ActorConfig:
    # Actor threads per process, each with its own pool of env.num_envs / threads envs and its own
    # segment builder: one Python thread cannot feed several accelerators at hundreds of envs.
    threads: int = 1
    devices: list[int] = dataclasses.field(default_factory=list)  # local device indices for inference; [] -> [0]


@dataclasses.dataclass
class LearnerConfig:
    devices: list[int] = dataclasses.field(default_factory=list)  # local device indices of the learner mesh; [] -> all


@dataclasses.dataclass
class RunConfig:
    out: str | None = None  # run directory (default runs/<task>-<time>)
    checkpoint_every: int = 100_000  # env steps
    keep: int = 3  # checkpoints kept
    log_every_s: float = 5.0  # seconds between metric lines
    sync: bool = False  # act with the newest params each rollout (exact on-policy, no overlap)
    tensorboard: bool = True  # also write TensorBoard scalars


@dataclasses.dataclass
class TrainConfig:
    task: str = "score"  # a TASKS name, or "envpool:<EnvName>"
    preset: str = "tiny"  # paper | tiny | mlp | atari: network and sizing under the file's values
    steps: int = 1_000_000  # total env steps
    seed: int = 0  # seed of envs, init and sampling
    # MaestroMotif: a skills file (configs/skills/nethack.yaml). Its training policy over skills picks each
    # env's active skill, the network reads it, and with a per-skill reward (`motif train-reward --skills`)
    # as reward.path each step is scored by its skill's model.
    skills: str | None = None
    env: EnvConfig = dataclasses.field(default_factory=EnvConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    ppo: PPOConfig = dataclasses.field(default_factory=PPOConfig)
    reward: RewardConfig = dataclasses.field(default_factory=RewardConfig)
    actor: ActorConfig = dataclasses.field(default_factory=ActorConfig)
    learner: LearnerConfig = dataclasses.field(default_factory=LearnerConfig)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)
    wandb: WandbConfig = dataclasses.field(default_factory=WandbConfig)  # optional Weights & Biases tracking


# Keys with a fixed set of values (checked after the merge).
CHOICES: dict[str, tuple[str, ...]] = {
    "model.kind": ("nethack", "mlp", "atari"),
    "model.core": ("gru", "lstm", "none"),
    "model.message_encoder": ("conv", "mlp"),
    "model.stats_norm": ("symlog", "motif"),
    "model.activation": ("relu", "tanh", "gelu", "elu"),
    "ppo.advantage": ("gae", "vtrace"),
    "reward.caption": ("current", "next"),
    "wandb.mode": MODES,
}


PRESETS: dict[str, dict[str, Any]] = {
    # The original Motif policy: a 12x12 egocentric crop (no full map), the bottom-line stats and
    # the caption bytes through 128-128 MLPs, ELU, a GRU 512 core. The crop's glyph embedding and
    # its 2x2/stride-2 conv are fused (networks.EmbedPatchConv), so the encoder costs about a
    # million multiply-adds per frame and the GRU the rest (see `motif benchmark learner`).
    "paper": {
        "env": {"num_envs": 480},
        "model": {
            "kind": "nethack",
            "core": "gru",
            "hidden": 512,
            "glyph_dim": 32,
            "map_channels": 64,
            "full_map": False,
            "crop": 12,
            "crop_patch": 2,
            "stats_layers": [128, 128],
            "message_encoder": "mlp",
            "message_layers": [128, 128],
            "torso": 512,
            "activation": "elu",
        },
        "ppo": {"rollout": 32, "minibatch_frames": 4096, "epochs": 1},
        "run": {"checkpoint_every": 10_000_000},
    },
    # Cheap on a 2-core CPU: every conv has kernel = stride (fused with its embedding, see
    # networks.EmbedPatchConv), and 64 envs amortise each inference call over 32 envs
    # (measured: train_over_pool 0.14-0.18 with 32 envs, ~0.25 with 64). The per-glyph lookups of
    # the map and crop convs dominate both acting and learning, so they get 4 channels, and the
    # caption conv 8: an update of 2048 frames takes ~0.08 s instead of 0.13 s, an act call on
    # 32 envs ~0.7 ms instead of 0.85 ms, and training runs ~6500-7000 instead of ~5600 env steps/s.
    "tiny": {
        "env": {"num_envs": 64},
        "model": {
            "kind": "nethack",
            "core": "gru",
            "hidden": 64,
            "glyph_dim": 8,
            "map_channels": 4,
            "map_patch": 3,
            "crop": 9,
            "crop_patch": 3,
            "message_dim": 8,
            "message_channels": 8,
            "message_patch": 4,
            "torso": 64,
        },
        "ppo": {"rollout": 32, "minibatches": 2, "epochs": 1},
        "run": {"checkpoint_every": 10_000},
    },
    # CleanRL's ppo.py defaults for CartPole: separate 64-64 tanh actor and critic, no recurrence.
    "mlp": {
        "env": {"num_envs": 4, "obs_keys": ["obs"]},
        "model": {"kind": "mlp", "core": "none", "mlp_layers": [64, 64], "activation": "tanh", "separate_critic": True},
        "ppo": {
            "rollout": 128,
            "minibatches": 4,
            "epochs": 4,
            "lr": 2.5e-4,
            "anneal_lr": True,
            "gamma": 0.99,
            "gae_lambda": 0.95,
            "clip": 0.2,
            "value_clip": 0.2,
            "vf_coef": 0.5,
            "ent_coef": 0.01,
            "max_grad_norm": 0.5,
            "norm_adv": True,
            "advantage": "gae",
        },
        "reward": {"extrinsic_coef": 1.0, "llm_coef": 0.0, "env_scale": 1.0, "env_clip": 1e9},
        "run": {"log_every_s": 1.0, "checkpoint_every": 50_000},
    },
    # Nature-CNN for envpool Atari (e.g. envpool:Breakout-v5), CleanRL's Atari PPO settings.
    "atari": {
        "env": {"num_envs": 8, "obs_keys": ["obs"]},
        "model": {"kind": "atari", "core": "none", "torso": 512, "activation": "relu"},
        "ppo": {
            "rollout": 128,
            "minibatches": 4,
            "epochs": 4,
            "lr": 2.5e-4,
            "anneal_lr": True,
            "clip": 0.1,
            "value_clip": 0.1,
            "ent_coef": 0.01,
            "max_grad_norm": 0.5,
        },
        "reward": {"extrinsic_coef": 1.0, "llm_coef": 0.0, "env_scale": 1.0, "env_clip": 1.0},
    },
}


def resolve_config(
    file: str | Path | None = None,
    preset: str | None = None,
    overrides: list[str] | None = None,
    flags: dict[str, Any] | None = None,
    base: dict[str, Any] | None = None,
    check: bool = True,
) -> TrainConfig:
    """Build the run's config: defaults < preset < file < ``--set`` < flags (dotted keys), type-checked.

    ``base`` is a resumed run's saved ``config.yaml``: it sits under the file, and its preset is not
    re-applied unless a file or preset is given again, so its ``--set`` values survive. ``check=False``
    skips the checks across keys (`motif config show` prints a config that still needs ``--reward``).
    """
    layers = stage_layers(file, overrides, {**(flags or {}), "preset": preset})
    if base is not None:
        layers.insert(0, ("the run's saved config.yaml", base))
    name = layer_value(layers, "preset", TrainConfig.preset)
    if not isinstance(name, str) or name not in PRESETS:
        raise MotifError(f"preset {name!r} unknown; choose from {', '.join(PRESETS)}")
    if base is None or file or preset:
        layers.insert(0, (f"preset {name}", PRESETS[name]))
    config = merge(TrainConfig, layers, CHOICES)
    if last_setter(layers, "ppo.minibatches") > last_setter(layers, "ppo.minibatch_frames"):
        config.ppo.minibatch_frames = 0  # the explicit minibatch count wins over the preset's frames
    if config.ppo.minibatch_frames > 0:
        config.ppo.minibatches = minibatches_for(config.env.num_envs, config.ppo.rollout, config.ppo.minibatch_frames)
    if check:
        validate(config)
    return config


def minibatches_for(num_envs: int, rollout: int, frames: int) -> int:
    """The divisor d of ``num_envs`` for which ``num_envs · rollout / d`` is nearest ``frames`` (in ratio)."""
    target = num_envs * rollout / frames
    divisors = [d for d in range(1, num_envs + 1) if num_envs % d == 0]
    return min(divisors, key=lambda d: (abs(math.log(d / target)), d))


def validate(c: TrainConfig) -> None:
    checks = [
        (c.env.num_envs > 0 and c.ppo.rollout > 0, "env.num_envs and ppo.rollout must be positive"),
        (
            c.env.num_envs % max(c.ppo.minibatches, 1) == 0 and c.ppo.minibatches > 0,
            f"env.num_envs ({c.env.num_envs}) must be a multiple of ppo.minibatches ({c.ppo.minibatches})",
        ),
        (c.model.crop > 0, "model.crop must be positive"),
        (
            c.actor.threads > 0 and c.env.num_envs % c.actor.threads == 0,
            f"env.num_envs ({c.env.num_envs}) must be a positive multiple of actor.threads ({c.actor.threads})",
        ),
        (c.steps > 0, "steps must be positive"),
        (c.ppo.value_clip >= 0, "ppo.value_clip must be >= 0 (0 = off)"),
        (c.reward.llm_coef == 0 or c.reward.path, "reward.llm_coef > 0 needs a reward model: --reward DIR"),
    ]
    for ok, message in checks:
        if not ok:
            raise MotifError(f"config: {message}")


def env_options(env: EnvConfig, task: str) -> dict | None:
    """The NLE task options of ``make_pool`` (None: today's Motif setup, and all an envpool env accepts)."""
    from motif_jax.envs import CAPTION_OPTIONS

    mentions = {flag: True for flag in CAPTION_OPTIONS if getattr(env, flag)}
    if task.startswith("envpool:") or (env.character is None and not env.extra_actions and not mentions):
        return None
    return {"character": env.character, "extra_actions": env.extra_actions} | mentions


def to_dict(config: TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)
