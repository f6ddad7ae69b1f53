"""The actor pool's shared memory: what lives where, readable by the parent and every worker.

One anonymous shared block (a `multiprocessing` RawArray, so no named segment can leak) holds, per env:
the observation of each key, the action to apply, and two small rows of per-step results. The results
are rows of plain integers rather than a structured array because the parent reads a batch of them
thousands of times per second: slicing columns of a 2-D block is several times cheaper than numpy's
structured-field access, and a worker fills a row with one `struct.pack_into` call.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

# Columns of the int32 results row. Float fields are stored as float32 bit patterns in int32 slots.
INT_COLUMNS = (
    "env_id",
    "reward",  # float32 bits
    "elapsed_step",
    "episode_return",  # float32 bits; the running return, final when the episode ends
    "episode_length",
    "episode_score",
    "episode_max_dlvl",
    "episode_xlvl",
    "episode_gold",
    "episode_explored",
    "episode_index",  # how many episodes this env has started (seeds the next reset; survives a worker crash)
)
FLOAT_COLUMNS = frozenset({"reward", "episode_return"})
# Columns of the int8 flags row.
FLAG_COLUMNS = ("terminated", "truncated", "episode_success", "episode_end_reason")
BOOL_COLUMNS = frozenset({"terminated", "truncated", "episode_success"})

INT_ROW = struct.Struct("<" + "".join("f" if c in FLOAT_COLUMNS else "i" for c in INT_COLUMNS))
FLAG_ROW = struct.Struct("<" + "".join("?" if c in BOOL_COLUMNS else "b" for c in FLAG_COLUMNS))
COL = {name: i for i, name in enumerate(INT_COLUMNS)} | {name: i for i, name in enumerate(FLAG_COLUMNS)}

_ALIGN = 64


@dataclass(frozen=True)
class ArraySpec:
    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class PoolLayout:
    """Byte offsets of every per-env array inside the shared block (picklable, shared by all processes)."""

    num_envs: int
    obs: dict[str, ArraySpec]  # per-env shape and dtype of each observation key
    action: ArraySpec

    def arrays(self) -> dict[str, ArraySpec]:
        """Every array in the block, with its leading (num_envs,) axis."""
        n = self.num_envs
        out = {f"obs/{k}": ArraySpec((n, *s.shape), s.dtype) for k, s in self.obs.items()}
        out["action"] = ArraySpec((n, *self.action.shape), self.action.dtype)
        out["ints"] = ArraySpec((n, len(INT_COLUMNS)), "int32")
        out["flags"] = ArraySpec((n, len(FLAG_COLUMNS)), "int8")
        return out

    def offsets(self) -> tuple[dict[str, int], int]:
        """Start of each array, aligned to a cache line, and the total size in bytes."""
        offsets, end = {}, 0
        for name, spec in self.arrays().items():
            start = -(-end // _ALIGN) * _ALIGN
            offsets[name] = start
            end = start + int(np.prod(spec.shape)) * np.dtype(spec.dtype).itemsize
        return offsets, max(end, 1)

    def allocate(self, ctx):
        """A zeroed shared block big enough for this layout, from the given multiprocessing context."""
        return ctx.RawArray("b", self.offsets()[1])

    def views(self, block) -> dict[str, np.ndarray]:
        """numpy views of every array inside a block returned by `allocate`."""
        offsets, _ = self.offsets()
        raw = np.frombuffer(block, dtype=np.uint8)
        out = {}
        for name, spec in self.arrays().items():
            size = int(np.prod(spec.shape)) * np.dtype(spec.dtype).itemsize
            chunk = raw[offsets[name] : offsets[name] + size]
            out[name] = chunk.view(spec.dtype).reshape(spec.shape)
        return out


NLE_INFO = (
    "episode_score",
    "episode_max_dlvl",
    "episode_xlvl",
    "episode_gold",
    "episode_explored",
    "episode_success",
    "episode_end_reason",
)
_INT_INFO = [(n, i, n in FLOAT_COLUMNS) for i, n in enumerate(INT_COLUMNS) if n not in ("reward", "episode_index")]
_FLAG_INFO = [(n, i, n in BOOL_COLUMNS) for i, n in enumerate(FLAG_COLUMNS) if n not in ("terminated", "truncated")]


def results_from_rows(ints: np.ndarray, flags: np.ndarray, nle_stats: bool) -> tuple:
    """Split copied result rows (B, ...) into reward, terminated, truncated and the info dict of arrays.

    Every array is a column view of the copied rows (no further copy); `nle_stats` adds the NLE episode
    statistics to the info.
    """
    info = {}
    for name, i, is_float in _INT_INFO:
        if nle_stats or name not in NLE_INFO:
            info[name] = ints[:, i].view(np.float32) if is_float else ints[:, i]
    if nle_stats:
        for name, i, is_bool in _FLAG_INFO:
            info[name] = flags[:, i].view(np.bool_) if is_bool else flags[:, i]
    reward = ints[:, COL["reward"]].view(np.float32)
    return reward, flags[:, COL["terminated"]].view(np.bool_), flags[:, COL["truncated"]].view(np.bool_), info
