"""Flax NNX actor-critic networks: observation encoders, an optional recurrent core, two heads.

``Policy.unroll`` runs a whole ``[B, T]`` segment: the encoder sees all ``B·T``
observations at once (one big batched matmul/conv), then the core is scanned
over time, zeroing its state wherever ``first`` marks an episode start.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from nle import nethack

from motif_jax.agent.config import ModelConfig
from motif_jax.agent.gru import gru_scan
from motif_jax.errors import MotifError

ACTIVATIONS = {"relu": jax.nn.relu, "tanh": jnp.tanh, "gelu": jax.nn.gelu, "elu": jax.nn.elu}
OUTSIDE_MAP = nethack.MAX_GLYPH  # embedding index used for padding around the map


def linear(din: int, dout: int, rngs: nnx.Rngs, scale: float = math.sqrt(2)) -> nnx.Linear:
    """Orthogonal init (scale √2 for hidden layers) as in most PPO implementations."""
    return nnx.Linear(
        din, dout, kernel_init=nnx.initializers.orthogonal(scale), bias_init=nnx.initializers.zeros_init(), rngs=rngs
    )


def symlog(x):
    """Compresses large stats (gold, score, turn counter) without clipping their sign or order."""
    return jnp.sign(x) * jnp.log1p(jnp.abs(x))


def _motif_stat_scales():
    """The original Motif policy's hand-chosen blstats scales (its VectorFeaturesWrapper), by NLE name.

    Most stats land in about [0, 1]; score, depth, dungeon number and level, monster level,
    condition bits and alignment are zeroed (multiplied by 0), as there.
    """
    bl = nethack
    scales = np.zeros(bl.NLE_BLSTATS_SIZE, np.float32)
    scales[bl.NLE_BL_X], scales[bl.NLE_BL_Y] = 1 / 79, 1 / 21
    for name in ("STR125", "DEX", "CON", "INT", "WIS", "CHA", "HP", "HPMAX", "ENE", "ENEMAX", "AC", "XP", "CAP"):
        scales[getattr(bl, f"NLE_BL_{name}")] = 1 / 10
    scales[bl.NLE_BL_GOLD], scales[bl.NLE_BL_TIME], scales[bl.NLE_BL_EXP] = 1 / 1000, 1 / 1000, 1 / 100
    scales[bl.NLE_BL_HUNGER] = 1.0
    return scales


MOTIF_STAT_SCALES = _motif_stat_scales()
MOTIF_STAT_CLIP = 5.0  # the original clipped the scaled stats to [-5, 5]


def stat_features(blstats: jax.Array, norm: str) -> jax.Array:
    """The stats as network inputs: ``symlog`` of every stat, or the original policy's ``motif`` scaling."""
    x = blstats.astype(jnp.float32)
    if norm == "motif":
        return jnp.clip(x * MOTIF_STAT_SCALES, -MOTIF_STAT_CLIP, MOTIF_STAT_CLIP)
    return symlog(x)


def crop_around(glyphs: jax.Array, y: jax.Array, x: jax.Array, size: int) -> jax.Array:
    """``size × size`` window of ``glyphs [B, H, W]`` with (y, x) at index ``size // 2``, padded with OUTSIDE_MAP.

    Odd sizes centre the agent; even ones (the original policy's 12 × 12) put it just below and right of centre.
    """
    r = size // 2
    padded = jnp.pad(glyphs, ((0, 0), (r, r), (r, r)), constant_values=OUTSIDE_MAP)
    return jax.vmap(lambda g, yy, xx: jax.lax.dynamic_slice(g, (yy, xx), (size, size)))(padded, y, x)


class EmbedPatchConv(nnx.Module):
    """An embedding lookup followed by a convolution whose kernel equals its stride, fused.

    ``conv(embed(ids))`` over non-overlapping patches equals the sum, over the
    offsets k inside a patch, of a lookup into a per-offset table
    ``embed_table @ kernel[k]``. Computing it that way never materialises the
    embedded map ``[B, H, W, dim]``: on CPU the backward pass becomes a few
    small scatters instead of a large strided-conv gradient (about 10x faster
    for the full NetHack map), and on accelerators it is just as exact.
    ``ids [B, *spatial]`` are padded at the end of each axis with ``pad_id``.
    """

    def __init__(self, dim: int, dout: int, patch: tuple[int, ...], pad_id: int, rngs: nnx.Rngs):
        self.patch, self.pad_id, self.dim = tuple(patch), pad_id, dim
        self.dense = linear(dim * math.prod(self.patch), dout, rngs)

    def output_shape(self, spatial: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(math.ceil(n / p) for n, p in zip(spatial, self.patch))

    def __call__(self, table: jax.Array, ids: jax.Array) -> jax.Array:
        spatial, rank = ids.shape[1:], ids.ndim - 1
        out = self.output_shape(spatial)
        pad = [(0, 0)] + [(0, o * p - n) for n, o, p in zip(spatial, out, self.patch)]
        ids = jnp.pad(ids, pad, constant_values=self.pad_id)
        ids = ids.reshape([ids.shape[0]] + [d for o, p in zip(out, self.patch) for d in (o, p)])
        order = [0, *range(1, 2 * rank, 2), *range(2, 2 * rank + 1, 2)]
        ids = ids.transpose(order).reshape(ids.shape[0], *out, -1)  # [B, *out, offsets]
        if ids[..., 0].size < table.shape[0] or self.dense.out_features > self.dim:
            # Fewer patches than table rows (acting on a small batch), or wider outputs than embeddings
            # (more floats to gather from the per-offset tables): embedding then matmul is cheaper.
            patches = table[ids].reshape(*ids.shape[:-1], -1)
            return self.dense(patches)
        kernel = self.dense.kernel[...].reshape(-1, self.dim, self.dense.out_features)
        # Materialise the small per-offset tables once, so XLA does not recompute them per lookup.
        tables = jax.lax.optimization_barrier(jnp.einsum("vc,kcd->kvd", table, kernel))
        total = sum(tables[k][ids[..., k]] for k in range(tables.shape[0]))
        return total + self.dense.bias[...]


class MLP(nnx.Module):
    def __init__(self, sizes: list[int], rngs: nnx.Rngs, activation: str = "relu"):
        self.layers = nnx.List([linear(a, b, rngs) for a, b in zip(sizes[:-1], sizes[1:])])
        self.act = ACTIVATIONS[activation]

    def __call__(self, x):
        for layer in self.layers:
            x = self.act(layer(x))
        return x


class NetHackEncoder(nnx.Module):
    """Egocentric crop + optional full-map conv + bottom-line stats + caption bytes, concatenated into a torso.

    Every glyph conv has kernel = stride and is fused with the glyph embedding (``EmbedPatchConv``)
    unless its ``*_patch`` is 0. The caption goes through a char embedding, a conv and a max-pool
    (``message_encoder: conv``) or, as in the original Motif policy, bytes / 255 through an MLP (``mlp``).
    """

    def __init__(self, c: ModelConfig, obs_spec: dict, rngs: nnx.Rngs):
        self.keys = tuple(k for k in ("glyphs", "blstats", "message") if k in obs_spec)
        self.crop, self.full_map, self.message_encoder = c.crop, c.full_map, c.message_encoder
        # The active skill (MaestroMotif) enters as a one-hot appended to the stats.
        self.stats_norm, self.num_skills = c.stats_norm, c.num_skills
        self.stats_raw = c.stats_norm == "motif"  # the original also fed the scaled stats past their MLP
        self.act = ACTIVATIONS[c.activation]
        width = 0
        if "glyphs" in self.keys:
            h, w = obs_spec["glyphs"][0]
            self.glyph_embed = nnx.Embed(OUTSIDE_MAP + 1, c.glyph_dim, rngs=rngs)
            ch = c.map_channels
            if c.full_map:
                if c.map_patch:
                    self.map_patch = EmbedPatchConv(c.glyph_dim, ch, (c.map_patch, c.map_patch), OUTSIDE_MAP, rngs)
                    map_hw = self.map_patch.output_shape((h, w))
                else:
                    self.map_patch = None
                    self.map_convs = nnx.List(
                        [
                            nnx.Conv(c.glyph_dim, ch, (3, 3), strides=2, rngs=rngs),
                            nnx.Conv(ch, ch, (3, 3), strides=2, rngs=rngs),
                        ]
                    )
                    map_hw = (math.ceil(math.ceil(h / 2) / 2), math.ceil(math.ceil(w / 2) / 2))
                self.map_out = linear(math.prod(map_hw) * ch, c.torso // 2, rngs)
                width += c.torso // 2
            if c.crop_patch:
                self.crop_patch = EmbedPatchConv(c.glyph_dim, ch, (c.crop_patch, c.crop_patch), OUTSIDE_MAP, rngs)
                crop_flat = math.prod(self.crop_patch.output_shape((c.crop, c.crop))) * ch
            else:
                self.crop_patch = None
                self.crop_convs = nnx.List(
                    [
                        nnx.Conv(c.glyph_dim, ch, (3, 3), rngs=rngs),
                        nnx.Conv(ch, ch, (3, 3), rngs=rngs),
                    ]
                )
                crop_flat = c.crop * c.crop * ch
            self.crop_out = linear(crop_flat, c.torso // 2, rngs)
            width += c.torso // 2
        if "blstats" in self.keys:
            n = obs_spec["blstats"][0][0]
            if self.stats_raw and n != MOTIF_STAT_SCALES.shape[0]:
                raise MotifError(f"model.stats_norm motif needs NLE's {MOTIF_STAT_SCALES.shape[0]} blstats, got {n}")
            n += self.num_skills
            self.stats = MLP([n, *c.stats_layers], rngs, c.activation)
            width += c.stats_layers[-1] + (n if self.stats_raw else 0)
        if "message" in self.keys:
            if c.message_encoder == "mlp":
                self.msg_mlp = MLP([obs_spec["message"][0][0], *c.message_layers], rngs, c.activation)
                width += c.message_layers[-1]
            else:
                self.msg_embed = nnx.Embed(256, c.message_dim, rngs=rngs)
                if c.message_patch:
                    self.msg_patch = EmbedPatchConv(c.message_dim, c.message_channels, (c.message_patch,), 0, rngs)
                else:
                    self.msg_patch = None
                    self.msg_conv = nnx.Conv(c.message_dim, c.message_channels, (5,), rngs=rngs)
                self.msg_out = linear(c.message_channels, c.message_channels, rngs)
                width += c.message_channels
        if not width:
            raise ValueError("nethack encoder needs at least one of glyphs, blstats, message")
        self.out = linear(width, c.torso, rngs)

    def __call__(self, obs: dict) -> jax.Array:
        parts = []
        if "glyphs" in self.keys:
            glyphs = obs["glyphs"].astype(jnp.int32)
            table = self.glyph_embed.embedding[...]
            if self.full_map:
                if self.map_patch is not None:
                    x = self.act(self.map_patch(table, glyphs))
                else:
                    x = self.glyph_embed(glyphs)
                    for conv in self.map_convs:
                        x = self.act(conv(x))
                parts.append(self.act(self.map_out(x.reshape(x.shape[0], -1))))
            stats = obs["blstats"].astype(jnp.int32)
            crop = crop_around(glyphs, stats[:, nethack.NLE_BL_Y], stats[:, nethack.NLE_BL_X], self.crop)
            if self.crop_patch is not None:
                y = self.act(self.crop_patch(table, crop))
            else:
                y = self.glyph_embed(crop)
                for conv in self.crop_convs:
                    y = self.act(conv(y))
            parts.append(self.act(self.crop_out(y.reshape(y.shape[0], -1))))
        if "blstats" in self.keys:
            x = stat_features(obs["blstats"], self.stats_norm)
            if self.num_skills:
                x = jnp.concatenate([x, jax.nn.one_hot(obs["skill"], self.num_skills, dtype=x.dtype)], axis=-1)
            parts.append(self.stats(x))
            if self.stats_raw:
                parts.append(x)
        if "message" in self.keys:
            if self.message_encoder == "mlp":
                parts.append(self.msg_mlp(obs["message"].astype(jnp.float32) / 255.0))
            else:
                message = obs["message"].astype(jnp.int32)
                if self.msg_patch is not None:
                    m = self.act(self.msg_patch(self.msg_embed.embedding[...], message))
                else:
                    m = self.act(self.msg_conv(self.msg_embed(message)))
                parts.append(self.act(self.msg_out(jnp.max(m, axis=1))))
        return self.act(self.out(jnp.concatenate(parts, axis=-1)))


class VectorEncoder(nnx.Module):
    """Flat observation vector (CartPole and other classic-control envs)."""

    def __init__(self, c: ModelConfig, obs_spec: dict, rngs: nnx.Rngs):
        size = math.prod(obs_spec["obs"][0])
        self.mlp = MLP([size, *c.mlp_layers], rngs, c.activation)

    def __call__(self, obs: dict) -> jax.Array:
        x = obs["obs"]
        return self.mlp(x.reshape(x.shape[0], -1).astype(jnp.float32))


class AtariEncoder(nnx.Module):
    """Nature-DQN CNN on stacked uint8 frames ``[C, 84, 84]`` (envpool's Atari layout)."""

    def __init__(self, c: ModelConfig, obs_spec: dict, rngs: nnx.Rngs):
        channels, h, w = obs_spec["obs"][0]
        self.convs = nnx.List(
            [
                nnx.Conv(channels, 32, (8, 8), strides=4, padding="VALID", rngs=rngs),
                nnx.Conv(32, 64, (4, 4), strides=2, padding="VALID", rngs=rngs),
                nnx.Conv(64, 64, (3, 3), strides=1, padding="VALID", rngs=rngs),
            ]
        )
        h, w = (h - 8) // 4 + 1, (w - 8) // 4 + 1
        h, w = (h - 4) // 2 + 1, (w - 4) // 2 + 1
        h, w = h - 2, w - 2
        self.out = linear(h * w * 64, c.torso, rngs)

    def __call__(self, obs: dict) -> jax.Array:
        x = jnp.transpose(obs["obs"].astype(jnp.float32) / 255.0, (0, 2, 3, 1))
        for conv in self.convs:
            x = jax.nn.relu(conv(x))
        return jax.nn.relu(self.out(x.reshape(x.shape[0], -1)))


ENCODERS = {"nethack": NetHackEncoder, "mlp": VectorEncoder, "atari": AtariEncoder}


def encoder_width(c: ModelConfig) -> int:
    return c.mlp_layers[-1] if c.kind == "mlp" else c.torso


class Policy(nnx.Module):
    """Actor-critic with an optional GRU/LSTM core. The state is one array ``[B, S]`` for every core."""

    def __init__(self, c: ModelConfig, obs_spec: dict, num_actions: int, rngs: nnx.Rngs):
        self.core_kind = c.core
        self.hidden = c.hidden
        self.encoder = ENCODERS[c.kind](c, obs_spec, rngs)
        self.critic_encoder = ENCODERS[c.kind](c, obs_spec, rngs) if c.separate_critic else None
        width = encoder_width(c)
        if c.core == "gru":
            self.core = nnx.GRUCell(width, c.hidden, rngs=rngs)
        elif c.core == "lstm":
            self.core = nnx.OptimizedLSTMCell(width, c.hidden, rngs=rngs)
        else:
            self.core = None
        out = width if c.core == "none" else c.hidden
        self.policy_head = linear(out, num_actions, rngs, scale=0.01)
        self.value_head = linear(width if c.separate_critic else out, 1, rngs, scale=1.0)

    @property
    def state_size(self) -> int:
        return {"gru": self.hidden, "lstm": 2 * self.hidden}.get(self.core_kind, 1)

    def initial_state(self, batch: int) -> jax.Array:
        return jnp.zeros((batch, self.state_size), jnp.float32)

    def _lstm_step(self, state, x):
        h, c = jnp.split(state, 2, axis=-1)
        (c, h), y = self.core((c, h), x)
        return jnp.concatenate([h, c], axis=-1), y

    def unroll(self, obs: dict, first: jax.Array, state: jax.Array):
        """obs leaves ``[B, T, ...]``, first ``[B, T]`` bool, state ``[B, S]`` (before step 0).

        Returns logits ``[B, T, A]``, values ``[B, T]`` and the state after the last step.
        The GRU's input projection runs once over all ``B·T`` frames, and its recurrence
        has a hand-written backward pass (``gru.gru_scan``): the same arithmetic as ``nnx.GRUCell``.
        """
        b, t = first.shape
        flat = jax.tree.map(lambda x: x.reshape(b * t, *x.shape[2:]), obs)
        features = self.encoder(flat).reshape(b, t, -1)
        if self.core is None:
            core_out = features
        elif self.core_kind == "gru":
            xp = self.core.dense_i(features).swapaxes(0, 1)
            core_out, state = gru_scan(xp, first.swapaxes(0, 1), state, self.core.dense_h.kernel[...])
            core_out = core_out.swapaxes(0, 1)
        else:

            def step(carry, xs):
                x, is_first = xs
                return self._lstm_step(jnp.where(is_first[:, None], 0.0, carry), x)

            state, core_out = jax.lax.scan(step, state, (features.swapaxes(0, 1), first.swapaxes(0, 1)))
            core_out = core_out.swapaxes(0, 1)
        logits = self.policy_head(core_out)
        critic_in = core_out
        if self.critic_encoder is not None:
            critic_in = self.critic_encoder(flat).reshape(b, t, -1)
        values = self.value_head(critic_in)[..., 0]
        return logits, values, state

    def step(self, obs: dict, first: jax.Array, state: jax.Array):
        """One step for acting: obs leaves ``[B, ...]``. Returns logits, values, new state."""
        obs_t = jax.tree.map(lambda x: x[:, None], obs)
        logits, values, state = self.unroll(obs_t, first[:, None], state)
        return logits[:, 0], values[:, 0], state


def obs_spec_from_space(space, keys) -> dict:
    """{key: (shape, dtype)} for the keys the network reads, from a gymnasium Dict space."""
    return {k: (tuple(space[k].shape), space[k].dtype) for k in keys}


def make_policy(c: ModelConfig, obs_spec: dict, num_actions: int, seed: int) -> Policy:
    return Policy(c, obs_spec, num_actions, nnx.Rngs(seed))
