"""The PPO update: epochs × minibatches over a batch of recurrent segments, as ONE jit over the mesh.

The batch (a ``rollout.Batch``, rows = segments) is sharded along the mesh's ``data``
axis, parameters and optimiser state are replicated; XLA inserts the gradient all-reduce.
The Motif intrinsic reward is computed inside the same jit from the batch's captions
and per-episode caption counts, so the reward model runs on the accelerator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct
from jax.sharding import Mesh

from motif_jax import parallel
from motif_jax.agent import ppo
from motif_jax.agent.config import PPOConfig, RewardConfig
from motif_jax.agent.networks import Policy
from motif_jax.agent.rollout import Batch
from motif_jax.errors import MotifError
from motif_jax.numerics import all_finite

# (reward_params, {"message": [M, 256] uint8, "count": [M] int32, and with skills "skill": [M] int32,
# "depth_change": [M] float32}) -> [M] float32
IntrinsicFn = Callable[[Any, dict[str, jax.Array]], jax.Array]


def make_optimizer(c: PPOConfig, total_updates: int) -> optax.GradientTransformation:
    lr = c.lr
    if c.anneal_lr:
        lr = optax.linear_schedule(c.lr, 0.0, max(total_updates, 1) * c.epochs * c.minibatches)
    return optax.chain(optax.clip_by_global_norm(c.max_grad_norm), optax.adam(lr, eps=c.adam_eps))


@struct.dataclass
class Rows:
    """A batch's first ``T`` slots (slot ``T`` only served bootstrapping) with each slot's advantage,
    value target and the value the target came from."""

    obs: dict[str, jax.Array]
    first: jax.Array
    ended: jax.Array
    actions: jax.Array
    logp: jax.Array
    state: jax.Array
    advantages: jax.Array
    targets: jax.Array
    old_values: jax.Array


def check_batch(b: Batch) -> None:
    """``Batch``'s layout, checked with chex on static shapes and dtypes: free under jit, and a wrong
    field fails at trace time with its shape instead of as a silent broadcast."""
    steps = [b.first, b.terminated, b.ended, b.actions, b.logp, b.rewards]
    chex.assert_rank(steps, 2)
    chex.assert_equal_shape(steps)  # [N, T + 1]
    chex.assert_type([b.first, b.terminated, b.ended], bool)
    chex.assert_type(b.actions, int)
    chex.assert_type([b.logp, b.rewards], float)
    chex.assert_rank(b.state, 2)
    chex.assert_equal_shape_prefix([b.first, b.state], 1)
    chex.assert_equal_shape_prefix([b.first, *jax.tree.leaves(b.obs)], 2)


def total_rewards(batch: Batch, reward_params, intrinsic_fn: IntrinsicFn | None, rc: RewardConfig):
    """(shaped reward, extrinsic part, intrinsic part) of each transition, ``[N, T]``."""
    env_reward = batch.rewards[:, 1:]
    extrinsic = ppo.shaped_reward(env_reward, 0.0, rc.extrinsic_coef, 0.0, rc.env_scale, rc.env_clip)
    if intrinsic_fn is None or rc.llm_coef == 0:
        intrinsic = jnp.zeros_like(extrinsic)
    else:
        n, t = extrinsic.shape
        r_int = intrinsic_fn(reward_params, intrinsic_inputs(batch, rc.caption))
        intrinsic = rc.llm_coef * r_int.reshape(n, t).astype(jnp.float32)
    return extrinsic + intrinsic, extrinsic, intrinsic


def intrinsic_inputs(batch: Batch, caption: str) -> dict[str, jax.Array]:
    """What the reward model scores for each transition, flattened to ``[N·T, ...]``.

    Transition t goes from slot t to slot t + 1: it is rewarded for the caption it led to ("next") or
    the one it left ("current"). With skills, the skill that acted (slot t) picks the reward model, and
    the depth change since that skill started is the one measured on arriving (slot t + 1; the
    controller measures it before it switches skills).
    """
    slots = slice(1, None) if caption == "next" else slice(None, -1)
    out = {"message": batch.obs["message"][:, slots], "count": batch.obs["message_count"][:, slots]}
    if "skill" in batch.obs:
        out["skill"] = batch.obs["skill"][:, :-1]
        out["depth_change"] = batch.obs["skill_depth_change"][:, 1:]
    return {k: v.reshape(v.shape[0] * v.shape[1], *v.shape[2:]) for k, v in out.items()}


def advantages_and_targets(c: PPOConfig, rewards, values, logp_now, batch: Batch):
    """Per-transition advantages and value targets ``[N, T]`` from values over all ``T + 1`` slots."""
    tm = lambda x: jnp.swapaxes(x, 0, 1)  # noqa: E731  (rows-first -> time-major)
    terminated, ended = tm(batch.terminated[:, 1:]), tm(batch.ended[:, 1:])
    if c.advantage == "vtrace":
        log_rhos = tm(logp_now[:, :-1] - batch.logp[:, :-1])
        adv, targets = ppo.vtrace(
            tm(rewards), tm(values), terminated, ended, log_rhos, c.gamma, c.vtrace_rho, c.vtrace_c
        )
    else:
        adv, targets = ppo.gae(tm(rewards), tm(values), terminated, ended, c.gamma, c.gae_lambda)
    return tm(adv), tm(targets)


class Learner:
    """Holds the network definition, optimiser and the compiled update for one mesh."""

    def __init__(
        self,
        model: Policy,
        ppo_config: PPOConfig,
        reward_config: RewardConfig,
        mesh: Mesh,
        total_updates: int,
        intrinsic_fn: IntrinsicFn | None = None,
        num_skills: int = 0,
    ):
        self.c, self.rc, self.mesh, self.num_skills = ppo_config, reward_config, mesh, num_skills
        self.graphdef, params = nnx.split(model, nnx.Param)
        self.tx = make_optimizer(ppo_config, total_updates)
        self.intrinsic_fn = intrinsic_fn
        self.initial = {"params": params, "opt_state": self.tx.init(params)}
        # Without a recurrent core, minibatches can mix single transitions (as CleanRL does).
        self.flatten = model.core is None
        self._update = jax.jit(self._update_impl, donate_argnums=(0,))

    def init_state(self):
        """Train state ``{params, opt_state}`` replicated on the mesh."""
        return parallel.replicate(self.initial, self.mesh)

    def apply(self, params, obs, first, state):
        return nnx.merge(self.graphdef, params).unroll(obs, first, state)

    def _loss(self, params, mb: Rows):
        """Loss on minibatch rows of ``T`` slots (no bootstrap slot: targets are precomputed)."""
        logits, values, _ = self.apply(params, mb.obs, mb.first, mb.state)
        logp, entropy = ppo.categorical_logp_entropy(logits, mb.actions)
        mask = ~mb.ended  # a terminal observation's action is a dummy
        adv = ppo.normalize(mb.advantages, mask) if self.c.norm_adv else mb.advantages
        pg_loss, stats = ppo.policy_loss(logp, mb.logp, adv, self.c.clip, mask)
        v_loss = ppo.value_loss(values, mb.old_values, mb.targets, self.c.value_clip, mask)
        ent = ppo.masked_mean(entropy, mask)
        loss = pg_loss + self.c.vf_coef * v_loss - self.c.ent_coef * ent
        return loss, {"loss": loss, "policy_loss": pg_loss, "value_loss": v_loss, "entropy": ent, **stats}

    def _update_impl(self, train_state, batch: Batch, reward_params, key):
        check_batch(batch)
        params, opt_state = train_state["params"], train_state["opt_state"]
        rewards, extrinsic, intrinsic = total_rewards(batch, reward_params, self.intrinsic_fn, self.rc)
        logits, values, _ = self.apply(params, batch.obs, batch.first, batch.state)
        logp_now, _ = ppo.categorical_logp_entropy(logits, batch.actions)
        values = jax.lax.stop_gradient(values)
        adv, targets = advantages_and_targets(self.c, rewards, values, jax.lax.stop_gradient(logp_now), batch)
        data = training_rows(batch, adv, targets, values[:, :-1], self.flatten)
        n = data.first.shape[0]
        rows = n // self.c.minibatches
        shard = parallel.data_sharding(self.mesh)

        def minibatch_step(carry, idx):
            params, opt_state = carry
            mb = jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x[idx], shard), data)
            grads, metrics = jax.grad(self._loss, has_aux=True)(params, mb)
            updates, opt_state = self.tx.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            metrics["grad_norm"] = optax.global_norm(grads)
            return (params, opt_state), metrics

        def epoch(carry, epoch_key):
            order = jax.random.permutation(epoch_key, n).reshape(self.c.minibatches, rows)
            return jax.lax.scan(minibatch_step, carry, order)

        (params, opt_state), metrics = jax.lax.scan(epoch, (params, opt_state), jax.random.split(key, self.c.epochs))
        metrics = jax.tree.map(jnp.mean, metrics)
        mask = ~batch.ended[:, :-1]
        ext_abs, int_abs = jnp.sum(jnp.abs(extrinsic) * mask), jnp.sum(jnp.abs(intrinsic) * mask)
        metrics.update(
            reward_extrinsic=ppo.masked_mean(extrinsic, mask),
            reward_intrinsic=ppo.masked_mean(intrinsic, mask),
            intrinsic_share=int_abs / jnp.maximum(ext_abs + int_abs, 1e-8),
            value_mean=ppo.masked_mean(values[:, :-1], mask),
            finite=jnp.isfinite(metrics["loss"]) & all_finite(params),
        )
        for k in range(self.num_skills):  # the intrinsic reward each skill's steps earned
            metrics[f"skill{k}_reward_intrinsic"] = ppo.masked_mean(intrinsic, mask & (batch.obs["skill"][:, :-1] == k))
        return {"params": params, "opt_state": opt_state}, metrics

    def update(self, train_state, batch: Batch, reward_params, key):
        """One PPO update on a global batch (numpy rows of this process, or already-sharded arrays)."""
        segments, slots = batch.first.shape
        n = segments * (1 if isinstance(batch.first, jax.Array) else jax.process_count())
        rows = n * (slots - 1) if self.flatten else n
        devices = self.mesh.devices.size
        if rows % (self.c.minibatches * devices):
            raise MotifError(
                f"{rows} training rows do not split into ppo.minibatches={self.c.minibatches} "
                f"× {devices} devices evenly; change env.num_envs or ppo.minibatches"
            )
        if not isinstance(batch.first, jax.Array):
            batch = parallel.shard_batch(batch, self.mesh)
        return self._update(train_state, batch, reward_params, key)


def training_rows(batch: Batch, advantages, targets, old_values, flatten: bool) -> Rows:
    """The batch's ``Rows``; with ``flatten``, one row per slot (no recurrent state to carry)."""
    b = jax.tree.map(lambda x: x[:, :-1], batch.replace(state=None))
    data = Rows(b.obs, b.first, b.ended, b.actions, b.logp, batch.state, advantages, targets, old_values)
    if not flatten:
        return data
    n, t = advantages.shape
    rows = jax.tree.map(lambda x: x.reshape(n * t, 1, *x.shape[2:]), data.replace(state=None))
    return rows.replace(state=jnp.zeros((n * t, batch.state.shape[-1]), batch.state.dtype))
