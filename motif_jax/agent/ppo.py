"""PPO math as pure functions on time-major arrays ``[T, ...]``.

Slot convention (next-step auto-reset, as in envpool and our pool): a rollout
segment holds ``T + 1`` observations. ``rewards[t]``, ``terminated[t]`` and
``ended[t]`` describe the transition *into* observation ``t + 1`` (``ended`` =
terminated or truncated). An observation that ends its episode gets a dummy
action (the env ignores it), so its slot is masked out of every loss, and
bootstrapping across it is cut. Truncated episodes bootstrap from the value of
their real last observation, which next-step auto-reset hands us for free.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
    mask = mask.astype(x.dtype)
    return jnp.sum(x * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def gae(rewards, values, terminated, ended, gamma: float, lam: float):
    """Generalised advantage estimation. values: ``[T+1, ...]``, the rest ``[T, ...]``.

    Returns (advantages, returns), both ``[T, ...]``.
    """
    not_term = 1.0 - terminated.astype(values.dtype)
    not_ended = 1.0 - ended.astype(values.dtype)
    deltas = rewards + gamma * not_term * values[1:] - values[:-1]

    def step(next_adv, xs):
        delta, cont = xs
        adv = delta + gamma * lam * cont * next_adv
        return adv, adv

    _, adv = jax.lax.scan(step, jnp.zeros_like(values[0]), (deltas, not_ended), reverse=True)
    return adv, adv + values[:-1]


def vtrace(rewards, values, terminated, ended, log_rhos, gamma: float, rho_bar: float = 1.0, c_bar: float = 1.0):
    """V-trace targets (IMPALA) for data from a slightly stale behaviour policy.

    ``log_rhos`` = log π(a|s) − log μ(a|s), ``[T, ...]``. Returns (pg_advantages, value_targets).
    """
    rhos = jnp.exp(log_rhos)
    clipped_rhos = jnp.minimum(rho_bar, rhos)
    cs = jnp.minimum(c_bar, rhos)
    not_term = 1.0 - terminated.astype(values.dtype)
    not_ended = 1.0 - ended.astype(values.dtype)
    deltas = clipped_rhos * (rewards + gamma * not_term * values[1:] - values[:-1])

    def step(next_acc, xs):
        delta, c, cont = xs
        acc = delta + gamma * c * cont * next_acc
        return acc, acc

    _, acc = jax.lax.scan(step, jnp.zeros_like(values[0]), (deltas, cs, not_ended), reverse=True)
    vs = values[:-1] + acc
    next_vs = values[1:] + not_ended * jnp.concatenate([acc[1:], jnp.zeros_like(acc[:1])], axis=0)
    pg_adv = clipped_rhos * (rewards + gamma * not_term * next_vs - values[:-1])
    return pg_adv, vs


def normalize(x, mask, eps: float = 1e-8):
    mean = masked_mean(x, mask)
    std = jnp.sqrt(masked_mean((x - mean) ** 2, mask))
    return (x - mean) / (std + eps)


def policy_loss(logp, old_logp, advantages, clip: float, mask):
    """Clipped surrogate objective (to minimise) and its diagnostics."""
    log_ratio = logp - old_logp
    ratio = jnp.exp(log_ratio)
    surrogate = jnp.minimum(ratio * advantages, jnp.clip(ratio, 1.0 - clip, 1.0 + clip) * advantages)
    loss = -masked_mean(surrogate, mask)
    approx_kl = masked_mean((ratio - 1.0) - log_ratio, mask)
    clip_fraction = masked_mean((jnp.abs(ratio - 1.0) > clip).astype(logp.dtype), mask)
    return loss, {"approx_kl": approx_kl, "clip_fraction": clip_fraction}


def value_loss(values, old_values, targets, clip: float, mask):
    """½·squared error; with ``clip > 0``, PPO2-style clipped to ±clip around the values the targets came from."""
    err = (values - targets) ** 2
    if clip > 0:
        clipped = old_values + jnp.clip(values - old_values, -clip, clip)
        err = jnp.maximum(err, (clipped - targets) ** 2)
    return 0.5 * masked_mean(err, mask)


def categorical_logp_entropy(logits, actions):
    """log π(a) for the taken actions and the entropy of each distribution."""
    logp_all = jax.nn.log_softmax(logits)
    logp = jnp.take_along_axis(logp_all, actions[..., None].astype(jnp.int32), axis=-1)[..., 0]
    entropy = -jnp.sum(jnp.exp(logp_all) * logp_all, axis=-1)
    return logp, entropy


def shaped_reward(env_reward, intrinsic, extrinsic_coef: float, llm_coef: float, env_scale: float, env_clip: float):
    """Motif's total reward: α_ext · clip(scale · r_env, ±clip) + α_llm · r_int."""
    return extrinsic_coef * jnp.clip(env_scale * env_reward, -env_clip, env_clip) + llm_coef * intrinsic
