"""Caption utilities: deduplicate captions of a dataset and score many captions on the device mesh.

Most NetHack steps carry the empty caption or a handful of common ones, so statistics over
a dataset are computed on unique captions with counts, scoring each distinct caption once.
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from motif_jax import parallel
from motif_jax.reward.model import MESSAGE_BYTES, NetParams


def _as_rows(messages: np.ndarray) -> np.ndarray:
    """(..., 256) uint8 -> (M,) opaque 256-byte records, so rows compare and sort as single items."""
    flat = np.ascontiguousarray(np.asarray(messages, np.uint8).reshape(-1, MESSAGE_BYTES))
    return flat.view(np.dtype((np.void, MESSAGE_BYTES)))[:, 0]


def _as_input_rows(messages: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Captions (..., 256) with their stat changes (..., F) -> (M,) opaque records of both."""
    width = features.shape[-1]
    stats = np.ascontiguousarray(np.asarray(features, np.float32).reshape(-1, width)).view(np.uint8)
    flat = np.concatenate([np.asarray(messages, np.uint8).reshape(-1, MESSAGE_BYTES), stats], axis=1)
    return np.ascontiguousarray(flat).view(np.dtype((np.void, flat.shape[1])))[:, 0]


def _from_rows(records: np.ndarray) -> np.ndarray:
    return np.frombuffer(records.tobytes(), np.uint8).reshape(-1, MESSAGE_BYTES)


def unique_captions(messages, rows: np.ndarray | None = None, chunk_pairs: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Distinct captions (U, 256) uint8 (byte-sorted) and how often each occurs among the pairs
    ``rows`` (all when None) of a (N, 2, L, 256) array-like, reading ``chunk_pairs`` pairs at a time."""
    rows = np.arange(len(messages)) if rows is None else np.asarray(rows)
    records, counts = [], []
    for start in range(0, len(rows), chunk_pairs):
        chunk = messages[rows[start : start + chunk_pairs]]
        uniq, count = np.unique(_as_rows(chunk), return_counts=True)
        records.append(uniq)
        counts.append(count)
    if not records:
        return np.zeros((0, MESSAGE_BYTES), np.uint8), np.zeros((0,), np.int64)
    uniq, inverse = np.unique(np.concatenate(records), return_inverse=True)
    total = np.bincount(inverse, weights=np.concatenate(counts)).astype(np.int64)
    return _from_rows(uniq), total


def unique_inputs(
    messages, features, rows: np.ndarray | None = None, chunk_pairs: int = 4096
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Like :func:`unique_captions` for a model that reads stat changes: the distinct (caption, features)
    inputs, (U, 256) uint8 and (U, F) float32, with their counts. ``features`` None: captions only (None)."""
    if features is None:
        captions, counts = unique_captions(messages, rows, chunk_pairs)
        return captions, None, counts
    width = features.shape[-1]
    rows = np.arange(len(messages)) if rows is None else np.asarray(rows)
    records, counts = [], []
    for start in range(0, len(rows), chunk_pairs):
        part = rows[start : start + chunk_pairs]
        uniq, count = np.unique(_as_input_rows(messages[part], features[part]), return_counts=True)
        records.append(uniq)
        counts.append(count)
    if not records:
        return np.zeros((0, MESSAGE_BYTES), np.uint8), np.zeros((0, width), np.float32), np.zeros((0,), np.int64)
    uniq, inverse = np.unique(np.concatenate(records), return_inverse=True)
    total = np.bincount(inverse, weights=np.concatenate(counts)).astype(np.int64)
    flat = np.frombuffer(uniq.tobytes(), np.uint8).reshape(len(uniq), -1)
    captions = np.ascontiguousarray(flat[:, :MESSAGE_BYTES])
    stats = np.ascontiguousarray(flat[:, MESSAGE_BYTES:]).view(np.float32).reshape(len(uniq), width)
    return captions, stats, total


@functools.lru_cache(maxsize=8)
def _replicated_forward(mesh):
    """Jitted net forward with a replicated result; cached per mesh so compilations are shared."""

    def forward(params, messages, features):
        return params(messages, features)

    return jax.jit(forward, out_shardings=parallel.replicated(mesh))


class MeshScorer:
    """Raw rewards of any number of captions, batch sharded over the mesh's ``data`` axis.

    Batches are padded to power-of-two sizes (at least one row per device), so a handful of
    shapes is ever compiled. The result is replicated, so with several processes every process
    passes the same captions and gets every score back.
    """

    def __init__(self, mesh, max_batch: int = 8192):
        self.mesh = mesh
        self.num_devices = mesh.devices.size
        self.max_batch = max(max_batch, self.num_devices)
        self._forward = _replicated_forward(mesh)

    def _bucket(self, n: int) -> int:
        size = self.num_devices
        while size < n and size < self.max_batch:
            size *= 2
        return size

    def __call__(self, params: NetParams, messages: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        """Raw rewards of captions (..., 256), flattened; ``features`` (..., F): their stat changes, for a
        model that reads them."""
        messages = np.asarray(messages, np.uint8).reshape(-1, MESSAGE_BYTES)
        if features is not None:
            features = np.asarray(features, np.float32).reshape(len(messages), -1)
        out = []
        for start in range(0, len(messages), self.max_batch):
            chunk = messages[start : start + self.max_batch]
            size = self._bucket(len(chunk))
            padded = np.zeros((size, MESSAGE_BYTES), np.uint8)
            padded[: len(chunk)] = chunk
            local_rows = parallel.local_rows(size)
            stats = None
            if features is not None:
                padded_stats = np.zeros((size, features.shape[1]), np.float32)
                padded_stats[: len(chunk)] = features[start : start + self.max_batch]
                stats = parallel.shard_batch(padded_stats[local_rows], self.mesh)
            raw = self._forward(params, parallel.shard_batch(padded[local_rows], self.mesh), stats)
            out.append(np.asarray(raw)[: len(chunk)])
        return np.concatenate(out) if out else np.zeros((0,), np.float32)


def pair_rewards_from_unique(
    messages,
    captions: np.ndarray,
    rewards: np.ndarray,
    chunk_pairs: int = 4096,
    features=None,
    unique_features: np.ndarray | None = None,
) -> np.ndarray:
    """(N, 2) reward of every pair member (mean over its L steps) of a (N, 2, L, 256) array-like, looked
    up in ``rewards`` of the byte-sorted unique ``captions`` (as returned by :func:`unique_captions`).
    For a model that reads stat changes, pass the pairs' ``features`` (N, 2, L, F) array-like and the
    ``unique_features`` of :func:`unique_inputs`: a step is then looked up by caption and stat changes."""
    keys = _as_rows(captions) if features is None else _as_input_rows(captions, unique_features)
    out = np.zeros((len(messages), 2), np.float32)
    for start in range(0, len(messages), chunk_pairs):
        chunk = np.asarray(messages[start : start + chunk_pairs])
        if features is None:
            rows = _as_rows(chunk)
        else:
            rows = _as_input_rows(chunk, np.asarray(features[start : start + chunk_pairs]))
        where = np.searchsorted(keys, rows)
        if np.any(where >= len(keys)) or np.any(keys[np.minimum(where, len(keys) - 1)] != rows):
            raise ValueError("an input of the dataset is missing from the unique inputs")
        out[start : start + len(chunk)] = rewards[where].reshape(chunk.shape[:3]).mean(axis=-1)
    return out
