"""Turns the pool's out-of-order replies into fixed-length per-env segments (host-side numpy).

With ``batch_size < num_envs`` the pool answers with whichever envs are ready, so
envs advance at different rates. Each env fills its own ``T + 1``-slot buffer; when
full, the row is emitted and its last slot becomes slot 0 of the env's next segment
(the bootstrap observation of one segment is the first of the next).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from flax import struct


@struct.dataclass
class Batch:
    """Recurrent segments, rows first, ``T + 1`` slots each (numpy on the host, jax on the mesh).

    A pytree, so concatenating, slicing and sharding rows are ``jax.tree.map``s over every field.
    """

    obs: dict[str, Any]  # {key: [N, T+1, ...]}
    first: Any  # [N, T+1] bool: the slot starts an episode
    terminated: Any  # [N, T+1] bool: the episode terminated on arriving at the slot
    ended: Any  # [N, T+1] bool: terminated or truncated on arriving at the slot
    rewards: Any  # [N, T+1] float32: env reward received on arriving at the slot
    actions: Any  # [N, T+1] int32
    logp: Any  # [N, T+1] float32: log-probability of the action under the behaviour policy
    state: Any  # [N, S] float32: recurrent state before slot 0


class SegmentBuilder:
    def __init__(self, num_envs: int, rollout: int, obs_spec: dict, state_size: int):
        self.rollout = rollout
        slots = (num_envs, rollout + 1)
        # `state` keeps a slot axis here (the state before each slot): rollover is then the same for every field
        self.buf = Batch(
            obs={k: np.zeros(slots + tuple(shape), dtype) for k, (shape, dtype) in obs_spec.items()},
            first=np.zeros(slots, bool),
            terminated=np.zeros(slots, bool),
            ended=np.zeros(slots, bool),
            rewards=np.zeros(slots, np.float32),
            actions=np.zeros(slots, np.int32),
            logp=np.zeros(slots, np.float32),
            state=np.zeros(slots + (state_size,), np.float32),
        )
        self.t = np.zeros(num_envs, np.int64)
        self._ready: list[Batch] = []

    def observe(self, env_ids, obs: dict, rewards, terminated, ended, first, state_before) -> None:
        """Store the pool's reply for ``env_ids``; ``state_before`` = their recurrent state before this obs."""
        t = self.t[env_ids]
        arrived = Batch({k: obs[k] for k in self.buf.obs}, first, terminated, ended, rewards, None, None, state_before)
        slots = self.buf.replace(actions=None, logp=None)  # those come with record()
        jax.tree.map(lambda buf, x: buf.__setitem__((env_ids, t), x), slots, arrived)
        full = np.sort(env_ids[t == self.rollout])  # env order: batches do not depend on reply order
        if len(full):
            self._ready.append(jax.tree.map(lambda x: x[full], self.buf.replace(state=self.buf.state[:, 0])))
            for x in jax.tree.leaves(self.buf):
                x[full, 0] = x[full, self.rollout]
            self.t[full] = 0

    def record(self, env_ids, actions, logp) -> None:
        """Store the actions taken at the slot just observed and advance those envs."""
        t = self.t[env_ids]
        self.buf.actions[env_ids, t] = actions
        self.buf.logp[env_ids, t] = logp
        self.t[env_ids] = t + 1

    def take(self, rows: int) -> Batch | None:
        """Exactly ``rows`` finished segments (oldest first), or None if fewer are ready."""
        if sum(len(c.first) for c in self._ready) < rows:
            return None
        merged = concat_rows(self._ready)
        self._ready = [jax.tree.map(lambda x: x[rows:], merged)] if len(merged.first) > rows else []
        return jax.tree.map(lambda x: x[:rows], merged)


def concat_rows(chunks: list[Batch]) -> Batch:
    return chunks[0] if len(chunks) == 1 else jax.tree.map(lambda *xs: np.concatenate(xs), *chunks)
