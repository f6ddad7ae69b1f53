"""The caption encoder: bytes -> embedding -> 1-D conv stack with max-pooling -> MLP -> one scalar reward.

The network is defined with Flax NNX, but everything outside this module handles it as a
*pure* pytree of weights plus a static, hashable :class:`ModelConfig`: that is what Orbax
saves, what optax updates, and what the PPO learner passes into its own ``jit``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx, struct

from motif_jax.data.transitions import DELTA_FIELDS
from motif_jax.errors import MotifError

MESSAGE_BYTES = 256  # NLE's message observation
PAD_BYTE = 0
# A model with ``features`` = F reads the first F stat changes of a transition, in DELTA_FIELDS order (depth,
# gold, hp, experience points, hunger): MaestroMotif's models read F = 1, the depth change alone.
MAX_FEATURES = len(DELTA_FIELDS)


@dataclasses.dataclass(unsafe_hash=True)
class ModelConfig:
    """Sizes of the caption encoder. Hashable, so it rides along a pytree as static data (never mutated);
    not frozen, so it can sit in a config that layers are merged onto."""

    max_len: int = 256  # captions are cut to their first max_len bytes
    embed_dim: int = 32
    channels: int = 64
    kernels: tuple[int, ...] = (7, 7, 3, 3, 3, 3)
    pool_after: tuple[bool, ...] = (True, True, False, False, False, True)  # max-pool (size=stride=pool) after conv i
    pool: int = 3
    mlp: tuple[int, ...] = (128, 256, 512)
    head_bias: bool = False  # the original's last layer has a bias (it gets no gradient, see CaptionEncoder)
    features: int = 0  # stat changes read beside the caption (MaestroMotif: 1, the depth change); 0: caption only

    def __post_init__(self):
        # YAML/JSON give lists; the config must stay hashable.
        object.__setattr__(self, "kernels", tuple(int(k) for k in self.kernels))
        object.__setattr__(self, "pool_after", tuple(bool(p) for p in self.pool_after))
        object.__setattr__(self, "mlp", tuple(int(m) for m in self.mlp))
        if len(self.kernels) != len(self.pool_after):
            raise MotifError(
                f"model.kernels ({len(self.kernels)} entries) and model.pool_after ({len(self.pool_after)}) "
                "must have the same length"
            )
        if not 0 <= self.features <= MAX_FEATURES:
            raise MotifError(f"model.features must be in 0..{MAX_FEATURES}, got {self.features}")
        if not 1 <= self.max_len <= MESSAGE_BYTES:
            raise MotifError(f"model.max_len must be in 1..{MESSAGE_BYTES}, got {self.max_len}")
        if self.conv_output_length() < 1:
            raise MotifError(
                f"model: max_len {self.max_len} is too short for kernels {self.kernels} and pooling {self.pool}"
            )

    def conv_output_length(self) -> int:
        """Sequence length left after the conv stack ('valid' convolutions, floor pooling)."""
        length = self.max_len
        for kernel, pooled in zip(self.kernels, self.pool_after):
            length = length - kernel + 1
            if pooled:
                length //= self.pool
        return length


class CaptionEncoder(nnx.Module):
    """uint8 captions (..., 256) -> float32 rewards (...). With ``features`` > 0 the stat changes of the
    step (..., features) join the pooled caption features at the MLP's input, so the caption still
    decides what happened and the stats say how the character's state moved."""

    def __init__(self, config: ModelConfig, rngs: nnx.Rngs):
        self.config = config
        self.embed = nnx.Embed(256, config.embed_dim, rngs=rngs)
        widths = [config.embed_dim] + [config.channels] * len(config.kernels)
        self.convs = nnx.List(
            nnx.Conv(widths[i], widths[i + 1], kernel_size=(k,), padding="VALID", rngs=rngs)
            for i, k in enumerate(config.kernels)
        )
        dims = [config.conv_output_length() * config.channels + config.features, *config.mlp]
        self.mlp = nnx.List(nnx.Linear(dims[i], dims[i + 1], rngs=rngs) for i in range(len(config.mlp)))
        # The Bradley-Terry loss only sees reward differences, so an output bias gets no gradient but
        # numerical noise, which Adam can amplify into drift (normalisation removes offsets anyway):
        # off unless asked for (the original had one).
        self.head = nnx.Linear(dims[-1], 1, use_bias=config.head_bias, rngs=rngs)

    def __call__(self, messages: jax.Array, features: jax.Array | None = None) -> jax.Array:
        batch_shape = messages.shape[:-1]
        check_features(self.config, batch_shape, features)
        chars = messages.reshape(-1, messages.shape[-1])[:, : self.config.max_len].astype(jnp.int32)
        # Padding bytes embed to exactly zero, so trailing NULs carry no signal (like padding_idx).
        x = self.embed(chars) * (chars != PAD_BYTE)[..., None]
        for conv, pooled in zip(self.convs, self.config.pool_after):
            x = nnx.relu(conv(x))
            if pooled:
                x = nnx.max_pool(x, window_shape=(self.config.pool,), strides=(self.config.pool,))
        x = x.reshape(x.shape[0], -1)
        if self.config.features:
            stats = jnp.asarray(features, jnp.float32).reshape(x.shape[0], self.config.features)
            x = jnp.concatenate([x, stats.astype(x.dtype)], axis=-1)
        for layer in self.mlp:
            x = nnx.relu(layer(x))
        return self.head(x)[:, 0].reshape(batch_shape)


def check_features(config: ModelConfig, batch_shape: tuple[int, ...], features) -> None:
    """The stat changes must come exactly when the model reads them, shaped (..., config.features)."""
    if not config.features:
        if features is not None:
            raise MotifError("this reward model reads captions only; it takes no stat-change features")
        return
    expected = (*batch_shape, config.features)
    if features is None:
        raise MotifError(f"this reward model reads {config.features} stat-change feature(s) beside each caption")
    if tuple(features.shape) != expected:
        raise MotifError(f"reward features: expected shape {expected}, got {tuple(features.shape)}")


def stat_features(config: ModelConfig, delta) -> jax.Array | None:
    """The model's input from a transition's stat changes ``delta`` (..., 5) (data/delta.npy's layout):
    (..., config.features) float32, or None for a caption-only model."""
    if not config.features:
        return None
    return jnp.asarray(delta)[..., : config.features].astype(jnp.float32)


@functools.cache
def _graphdef(config: ModelConfig):
    graphdef, _ = nnx.split(nnx.eval_shape(lambda: CaptionEncoder(config, nnx.Rngs(0))))
    return graphdef


def init_weights(config: ModelConfig, seed: int) -> dict[str, Any]:
    """Fresh weights as a pure dict pytree (deterministic in ``seed``)."""
    _, state = nnx.split(CaptionEncoder(config, nnx.Rngs(seed)))
    return nnx.to_pure_dict(state)


def abstract_weights(config: ModelConfig) -> dict[str, Any]:
    """Shapes/dtypes of the weights, without allocating them (for restoring checkpoints)."""
    return jax.eval_shape(lambda: init_weights(config, 0))


def apply(config: ModelConfig, weights: dict[str, Any], messages: jax.Array, features=None) -> jax.Array:
    """Raw reward of each caption (and its stat changes (..., config.features), when the model reads them):
    pure function of (weights, messages, features); ``config`` is static."""
    return nnx.merge(_graphdef(config), weights)(messages, features)


@struct.dataclass
class NetParams:
    """The network as a jittable pytree: weights are leaves, the config is static (hashable) data,
    so a pure function can run the net from ``params`` alone (e.g. inside the PPO learner's jit)."""

    weights: Any
    config: ModelConfig = struct.field(pytree_node=False)

    def __call__(self, messages: jax.Array, features: jax.Array | None = None) -> jax.Array:
        return apply(self.config, self.weights, messages, features)
