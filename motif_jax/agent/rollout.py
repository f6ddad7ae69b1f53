"""Turns the pool's out-of-order replies into fixed-length per-env segments (host-side numpy).

With ``batch_size < num_envs`` the pool answers with whichever envs are ready, so
envs advance at different rates. Each env fills its own ``T + 1``-slot buffer; when
full, the row is emitted and its last slot becomes slot 0 of the env's next segment
(the bootstrap observation of one segment is the first of the next).
"""

from __future__ import annotations

import numpy as np


class SegmentBuilder:
    """Per-env ``T + 1``-slot buffers; finished segments are copied once, straight into the next batch.

    ``take`` hands out the batch's arrays themselves (no concatenation) and starts a new batch;
    segments finished beyond the requested rows move to the front of the new one.
    """

    def __init__(self, num_envs: int, rollout: int, obs_spec: dict, state_size: int):
        self.num_envs, self.rollout = num_envs, rollout
        self._fields = {
            "first": ((), bool), "terminated": ((), bool), "ended": ((), bool),
            "rewards": ((), np.float32), "actions": ((), np.int32), "logp": ((), np.float32),
        }
        self._obs_spec = {k: (tuple(shape), dtype) for k, (shape, dtype) in obs_spec.items()}
        self.buf = self._arrays(num_envs)
        self.state = np.zeros((num_envs, state_size), np.float32)
        self.t = np.zeros(num_envs, np.int64)
        self._out = self._arrays(num_envs, state_size)
        self._ready_rows = 0

    def _arrays(self, rows: int, state_size: int | None = None) -> dict:
        slots = (rows, self.rollout + 1)
        out = {name: np.zeros(slots + shape, dtype) for name, (shape, dtype) in self._fields.items()}
        out["obs"] = {k: np.zeros(slots + shape, dtype) for k, (shape, dtype) in self._obs_spec.items()}
        if state_size is not None:
            out["state"] = np.zeros((rows, state_size), np.float32)
        return out

    def observe(self, env_ids, obs: dict, rewards, terminated, ended, first, state_before) -> None:
        """Store the pool's reply for ``env_ids``; ``state_before`` = their recurrent state before this obs."""
        t = self.t[env_ids]
        for k, v in obs.items():
            if k in self.buf["obs"]:
                self.buf["obs"][k][env_ids, t] = v
        for name, value in (("rewards", rewards), ("terminated", terminated), ("ended", ended), ("first", first)):
            self.buf[name][env_ids, t] = value
        done = t == self.rollout
        if done.any():
            full = np.sort(env_ids[done])  # env order: batches do not depend on reply order
            self._emit(full)
            self._rollover(full)
        starting = self.t[env_ids] == 0
        if starting.any():
            self.state[env_ids[starting]] = np.asarray(state_before)[starting]

    def record(self, env_ids, actions, logp) -> None:
        """Store the actions taken at the slot just observed and advance those envs."""
        t = self.t[env_ids]
        self.buf["actions"][env_ids, t] = actions
        self.buf["logp"][env_ids, t] = logp
        self.t[env_ids] = t + 1

    def _pairs(self, out: dict):
        """(per-env buffer, batch array) for every field, the recurrent state last."""
        for name in self._fields:
            yield self.buf[name], out[name]
        for k in self._obs_spec:
            yield self.buf["obs"][k], out["obs"][k]
        yield self.state, out["state"]

    def _emit(self, ids) -> None:
        start, stop = self._ready_rows, self._ready_rows + len(ids)
        if stop > len(self._out["first"]):
            self._out = self._grown(self._out, max(stop, 2 * len(self._out["first"])))
        for src, dst in self._pairs(self._out):
            np.take(src, ids, axis=0, out=dst[start:stop])
        self._ready_rows = stop

    def _grown(self, out: dict, rows: int) -> dict:
        bigger = self._arrays(rows, out["state"].shape[1])
        for (_, old), (_, new) in zip(self._pairs(out), self._pairs(bigger)):
            new[: self._ready_rows] = old[: self._ready_rows]
        return bigger

    def _rollover(self, ids) -> None:
        for k, v in self.buf.items():
            for arr in (v.values() if k == "obs" else (v,)):
                arr[ids, 0] = arr[ids, self.rollout]
        self.t[ids] = 0

    def ready_rows(self) -> int:
        return self._ready_rows

    def take(self, rows: int) -> dict | None:
        """Exactly ``rows`` finished segments (oldest first), or None if fewer are ready."""
        if self._ready_rows < rows:
            return None
        batch, left = self._out, self._ready_rows - rows
        self._out = self._arrays(max(self.num_envs, left), batch["state"].shape[1])
        for (_, old), (_, new) in zip(self._pairs(batch), self._pairs(self._out)):
            new[:left] = old[rows:rows + left]
        self._ready_rows = left
        return slice_rows(batch, slice(0, rows))


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
