"""Score each distinct caption of a batch once.

A learner batch of thousands of frames holds a few hundred distinct captions (2048 random-play frames:
about 145; "It's a wall." and the empty line are half of them), and the reward model costs about as much
per caption as the policy does per frame. So the learner runs it on the distinct (caption, stat changes)
rows only and gathers the results back to every frame. A jitted model needs a fixed row count, so it is
compiled for a few sizes (64, 256, 1024, ... rows) and each batch runs the smallest that holds its distinct
rows; a batch with too many is scored row by row, as without this. The result is exact either way.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

TIER_FACTOR = 4  # each size the model may run at is 4x the last: 64, 256, 1024, ... rows
MIN_TIER = 64  # a 512-frame batch of random play holds ~60 distinct captions, 2048 frames ~145


def tiers(rows: int) -> tuple[int, ...]:
    """The row counts the model is compiled for: MIN_TIER, x4, x4, ... below ``rows``, then ``rows``."""
    sizes, size = [], MIN_TIER
    while size < rows:
        sizes.append(size)
        size *= TIER_FACTOR
    return (*sizes, rows)


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
    sizes: tuple[int, ...] | None = None,
) -> jax.Array:
    """``score`` of every row of ``messages`` (..., L) (with ``features`` (..., F)), run once per distinct row.

    ``score(messages [R, L], features [R, F] or None)`` returns (..., R) (e.g. (K, R) for K skills' models);
    the result is (..., *messages.shape[:-1]), equal to scoring every row. The model runs on the smallest
    of ``sizes`` (default :func:`tiers`) that holds the batch's distinct rows, the distinct rows first (one
    sort finds them; ``lax.switch`` picks the size at run time), or on every row when none is smaller than
    the batch. Jittable.
    """
    lead = messages.shape[:-1]
    flat = messages.reshape(-1, messages.shape[-1])
    feats = None if features is None else features.reshape(flat.shape[0], -1)
    rows = flat.shape[0]
    sizes = tuple(sorted({min(s, rows) for s in (tiers(rows) if sizes is None else (*sizes, rows))}))

    def every_row():
        return score(flat, feats)

    if len(sizes) == 1:
        out = every_row()
    else:
        keys = row_keys(flat, feats)
        _, first, inverse = jnp.unique(keys, axis=0, size=rows, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        distinct = jnp.max(inverse) + 1  # the distinct rows come first, in sorted order

        def scored_on(size):
            if size == rows:
                return every_row

            def distinct_rows():
                picked = first[:size]
                scored = score(flat[picked], None if feats is None else feats[picked])
                return jnp.take(scored, inverse, axis=-1)

            return distinct_rows

        tier = jnp.searchsorted(jnp.asarray(sizes), distinct)  # the first size >= distinct
        out = jax.lax.switch(tier, [scored_on(size) for size in sizes])
    return out.reshape(*out.shape[:-1], *lead)
