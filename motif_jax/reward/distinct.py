"""Score each distinct caption of a batch once.

A learner batch of thousands of frames holds a few hundred distinct captions (2048 random-play frames:
about 145; "It's a wall." and the empty line are half of them), and the reward model costs about as much
per caption as the policy does per frame. So the learner runs it on the distinct (caption, stat changes)
rows only and gathers the results back to every frame. It stays exact: a batch with more distinct rows
than the capacity is scored row by row, as without this.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

MIN_CAPACITY = 256  # distinct rows scored at once: 2048 random-play frames hold ~145, 4096 ~220


def distinct_capacity(rows: int) -> int:
    """How many distinct rows a batch of ``rows`` frames is scored with (more: every row is scored)."""
    return min(rows, max(MIN_CAPACITY, rows // 8))


def row_keys(messages: jax.Array, features: jax.Array | None = None) -> jax.Array:
    """Each row as uint32 words: the caption's bytes four to a word, then the stat changes' bits."""
    rows, width = messages.shape
    words = messages.astype(jnp.uint8)
    if width % 4:
        words = jnp.pad(words, ((0, 0), (0, 4 - width % 4)))
    words = jax.lax.bitcast_convert_type(words.reshape(rows, -1, 4), jnp.uint32)
    if features is None:
        return words
    return jnp.concatenate([words, jax.lax.bitcast_convert_type(features.astype(jnp.float32), jnp.uint32)], axis=1)


def per_distinct(
    score: Callable[[jax.Array, jax.Array | None], jax.Array],
    messages: jax.Array,
    features: jax.Array | None = None,
    capacity: int | None = None,
) -> jax.Array:
    """``score`` of every row of ``messages`` (..., L) (with ``features`` (..., F)), run once per distinct row.

    ``score(messages [R, L], features [R, F] or None)`` returns (..., R) (e.g. (K, R) for K skills' models);
    the result is (..., *messages.shape[:-1]), equal to scoring every row. Jittable.
    """
    lead = messages.shape[:-1]
    flat = messages.reshape(-1, messages.shape[-1])
    feats = None if features is None else features.reshape(flat.shape[0], -1)
    rows = flat.shape[0]
    capacity = distinct_capacity(rows) if capacity is None else min(capacity, rows)

    def every_row():
        return score(flat, feats)

    if capacity >= rows:
        out = every_row()
    else:
        keys = row_keys(flat, feats)
        _, first, inverse = jnp.unique(keys, axis=0, size=capacity, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        # Truncated (too many distinct rows): some row's representative is not that row; score them all.
        fits = jnp.all(keys[first[inverse]] == keys)

        def distinct_rows():
            scored = score(flat[first], None if feats is None else feats[first])
            return jnp.take(scored, inverse, axis=-1)

        out = jax.lax.cond(fits, distinct_rows, every_row)
    return out.reshape(*out.shape[:-1], *lead)
