"""Array checks shared by the agent's and the reward model's learners."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def all_finite(tree) -> jax.Array:
    """Whether every floating-point leaf of ``tree`` is free of NaN and inf, as a scalar bool array (so it
    also works under jit); integer and key leaves are always finite and are skipped."""
    checks = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(checks)) if checks else jnp.asarray(True)
