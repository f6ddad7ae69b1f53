"""The GRU recurrence over a whole segment, with a hand-written backward pass.

Autodiff of ``lax.scan`` accumulates the recurrent kernel's gradient inside the
backward loop: every step reads and writes the whole ``[H, 3H]`` gradient (3 MB at
H = 512), which dominates small-batch PPO updates on CPU. Here the backward loop
carries only ``dh`` and stacks the per-step gate gradients; the kernel gradient is
then one large matmul over all ``T·B`` steps. The input projection is hoisted out
of the recurrence by the caller, so the loop holds a single ``[B, H] @ [H, 3H]`` matmul.

The arithmetic is ``flax.nnx.GRUCell``'s (sigmoid gates, tanh candidate, no bias on
the recurrent r/z/n terms): given ``xp = x @ W_i + b_i`` split into (xr, xz, xn),
``r = σ(xr + h W_hr)``, ``z = σ(xz + h W_hz)``, ``n = tanh(xn + r ⊙ (h W_hn))``,
``h' = (1 − z) ⊙ n + z ⊙ h``. The state is zeroed before every step whose ``first`` is set.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _step(w_h, h, xp, first):
    """One step; returns (h', residuals the backward pass needs)."""
    h = jnp.where(first[:, None], 0.0, h)
    xr, xz, xn = jnp.split(xp, 3, axis=-1)
    hr, hz, hn = jnp.split(h @ w_h, 3, axis=-1)
    r, z = jax.nn.sigmoid(xr + hr), jax.nn.sigmoid(xz + hz)
    n = jnp.tanh(xn + r * hn)
    return (1.0 - z) * n + z * h, (h, r, z, n, hn)


@jax.custom_vjp
def gru_scan(xp: jax.Array, first: jax.Array, h0: jax.Array, w_h: jax.Array):
    """``xp [T, B, 3H]`` input projections, ``first [T, B]`` bool, ``h0 [B, H]``, ``w_h [H, 3H]``.

    Returns ``(ys [T, B, H], h_T [B, H])``.
    """

    def step(h, xs):
        h, _ = _step(w_h, h, *xs)
        return h, h

    h_t, ys = jax.lax.scan(step, h0, (xp, first))
    return ys, h_t


def _forward(xp, first, h0, w_h):
    def step(h, xs):
        h, res = _step(w_h, h, *xs)
        return h, (h, res)

    h_t, (ys, res) = jax.lax.scan(step, h0, (xp, first))
    return (ys, h_t), (res, first, w_h)


def _backward(saved, grads):
    (h_in, r, z, n, hn), first, w_h = saved
    d_ys, d_ht = grads
    w_t = w_h.T

    def step(dh, xs):
        dy, h, r, z, n, hn, is_first = xs
        dh = dh + dy
        dn = dh * (1.0 - z) * (1.0 - n * n)
        dz = dh * (h - n) * z * (1.0 - z)
        dr = dn * hn * r * (1.0 - r)
        d_hp = jnp.concatenate([dr, dz, dn * r], axis=-1)  # gradient of h @ w_h
        dh_prev = dh * z + d_hp @ w_t
        dh_prev = jnp.where(is_first[:, None], 0.0, dh_prev)
        return dh_prev, (jnp.concatenate([dr, dz, dn], axis=-1), d_hp)

    dh0, (d_xp, d_hp) = jax.lax.scan(step, d_ht, (d_ys, h_in, r, z, n, hn, first), reverse=True)
    d_w = jnp.einsum("tbh,tbg->hg", h_in, d_hp)
    return d_xp, None, dh0, d_w


gru_scan.defvjp(_forward, _backward)
