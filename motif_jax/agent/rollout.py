"""Turns the pool's out-of-order replies into fixed-length per-env segments (host-side numpy).

With ``batch_size < num_envs`` the pool answers with whichever envs are ready, so
envs advance at different rates. Each env fills its own ``T + 1``-slot buffer; when
full, the row is emitted and its last slot becomes slot 0 of the env's next segment
(the bootstrap observation of one segment is the first of the next).
"""

from __future__ import annotations

import numpy as np


class SegmentBuilder:
    def __init__(self, num_envs: int, rollout: int, obs_spec: dict, state_size: int):
        self.num_envs, self.rollout = num_envs, rollout
        slots = (num_envs, rollout + 1)
        self.buf = {
            "obs": {k: np.zeros(slots + tuple(shape), dtype) for k, (shape, dtype) in obs_spec.items()},
            "first": np.zeros(slots, bool),
            "terminated": np.zeros(slots, bool),
            "ended": np.zeros(slots, bool),
            "rewards": np.zeros(slots, np.float32),
            "actions": np.zeros(slots, np.int32),
            "logp": np.zeros(slots, np.float32),
        }
        self.state = np.zeros((num_envs, state_size), np.float32)
        self.t = np.zeros(num_envs, np.int64)
        self._ready: list[dict] = []
        self._ready_rows = 0

    def observe(self, env_ids, obs: dict, rewards, terminated, ended, first, state_before) -> None:
        """Store the pool's reply for ``env_ids``; ``state_before`` = their recurrent state before this obs."""
        t = self.t[env_ids]
        for k, v in obs.items():
            if k in self.buf["obs"]:
                self.buf["obs"][k][env_ids, t] = v
        for name, value in (("rewards", rewards), ("terminated", terminated), ("ended", ended), ("first", first)):
            self.buf[name][env_ids, t] = value
        full = np.sort(env_ids[t == self.rollout])  # env order: batches do not depend on reply order
        if len(full):
            self._emit(full)
            self._rollover(full)
        starting = self.t[env_ids] == 0
        self.state[env_ids[starting]] = np.asarray(state_before)[starting]

    def record(self, env_ids, actions, logp) -> None:
        """Store the actions taken at the slot just observed and advance those envs."""
        t = self.t[env_ids]
        self.buf["actions"][env_ids, t] = actions
        self.buf["logp"][env_ids, t] = logp
        self.t[env_ids] = t + 1

    def _emit(self, ids) -> None:
        rows = {k: v[ids] for k, v in self.buf.items() if k != "obs"}
        rows["obs"] = {k: v[ids] for k, v in self.buf["obs"].items()}
        rows["state"] = self.state[ids]
        self._ready.append(rows)
        self._ready_rows += len(ids)

    def _rollover(self, ids) -> None:
        for k, v in self.buf.items():
            for arr in v.values() if k == "obs" else (v,):
                arr[ids, 0] = arr[ids, self.rollout]
        self.t[ids] = 0

    def ready_rows(self) -> int:
        return self._ready_rows

    def take(self, rows: int) -> dict | None:
        """Exactly ``rows`` finished segments (oldest first), or None if fewer are ready."""
        if self._ready_rows < rows:
            return None
        merged = concat_rows(self._ready)
        batch = slice_rows(merged, slice(0, rows))
        rest = slice_rows(merged, slice(rows, None))
        self._ready_rows -= rows
        self._ready = [rest] if self._ready_rows else []
        return batch


def concat_rows(chunks: list[dict]) -> dict:
    if len(chunks) == 1:
        return chunks[0]
    out = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0] if k != "obs"}
    out["obs"] = {k: np.concatenate([c["obs"][k] for c in chunks]) for k in chunks[0]["obs"]}
    return out


def slice_rows(batch: dict, rows: slice) -> dict:
    out = {k: v[rows] for k, v in batch.items() if k != "obs"}
    out["obs"] = {k: v[rows] for k, v in batch["obs"].items()}
    return out
