"""Preference pairs on the training side: targets from labels, the deterministic split, epoch
batches, and reading a global batch where each process touches only its own rows."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from motif_jax import parallel
from motif_jax.data.transitions import DELTA_KEY
from motif_jax.errors import MotifError
from motif_jax.reward import losses

SCORE_ANNOTATOR = "score"  # the verifiable baseline annotator; agreement with it is logged when present


@dataclasses.dataclass
class Preferences:
    target: np.ndarray  # (N,) float32 P(first preferred)
    weight: np.ndarray  # (N,) float32, 0 for unknown
    agree_target: np.ndarray | None = None  # score-annotator targets, when that annotator exists
    agree_weight: np.ndarray | None = None  # 1 where the score annotator is decisive


def load_preferences(ds, annotator: str) -> Preferences:
    if len(ds) == 0:
        raise MotifError(f"{ds.path}: the dataset holds no pairs")
    if annotator not in ds.annotators:
        raise MotifError(
            f"{ds.path}: no labels for annotator {annotator!r} (have: {', '.join(ds.annotators) or 'none'}); "
            "run `motif annotate` first"
        )
    target, weight = losses.preference_targets(np.asarray(ds.labels(annotator)), _soft(ds, annotator))
    if not weight.any():
        raise MotifError(f"{ds.path}: every label of annotator {annotator!r} is 3 (unknown); nothing to train on")
    prefs = Preferences(target, weight)
    if SCORE_ANNOTATOR in ds.annotators:
        score_target, score_weight = losses.preference_targets(np.asarray(ds.labels(SCORE_ANNOTATOR)))
        prefs.agree_target = score_target
        prefs.agree_weight = score_weight * (score_target != 0.5)
    return prefs


def _soft(ds, annotator: str) -> np.ndarray | None:
    soft = ds.soft_labels(annotator)
    return None if soft is None else np.asarray(soft)


def split_pairs(weight: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, val) pair indices: usable pairs (weight > 0) shuffled by ``seed`` and cut."""
    usable = np.flatnonzero(weight > 0)
    order = np.random.default_rng(seed).permutation(usable)
    n_val = int(round(len(order) * val_fraction))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def epoch_batches(rows: np.ndarray, batch_size: int, seed: int | None, epoch: int) -> np.ndarray:
    """(num_batches, batch_size) pair indices for one epoch, shuffled by (seed, epoch) unless seed is
    None; the last batch is padded with -1 (zero weight) so every step has the same shape."""
    if seed is not None:
        rows = np.random.default_rng([seed, epoch]).permutation(rows)
    num_batches = max(1, -(-len(rows) // batch_size))
    padded = np.full(num_batches * batch_size, -1, np.int64)
    padded[: len(rows)] = rows
    return padded.reshape(num_batches, batch_size)


class StatFeatures:
    """The first ``width`` stat changes of data/delta.npy as float32 (N, 2, L, width), read lazily like a
    memmap (rows first), for reward models that read them beside the caption."""

    def __init__(self, ds, width: int):
        if DELTA_KEY not in ds.keys:
            raise MotifError(
                f"{ds.path}: the reward model reads stat changes (model.features={width}) but the dataset has no "
                f"data/{DELTA_KEY}.npy; collect it again, or train with model.features=0"
            )
        self.delta, self.width = ds.data(DELTA_KEY), width
        if self.delta.ndim != 4 or self.delta.shape[-1] < width:
            raise MotifError(
                f"{ds.path}/data/{DELTA_KEY}.npy: expected shape (N, 2, L, >= {width}), got {tuple(self.delta.shape)}"
            )
        self.shape = (*self.delta.shape[:3], width)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        return np.asarray(self.delta[rows])[..., : self.width].astype(np.float32)


class BatchReader:
    """Global batch indices -> this process's rows, read from the memmap and sharded on the mesh."""

    def __init__(self, messages, prefs: Preferences, mesh, with_agreement: bool, features: StatFeatures | None = None):
        self.messages, self.prefs, self.mesh = messages, prefs, mesh
        self.with_agreement = with_agreement
        self.features = features

    def __call__(self, global_rows: np.ndarray):
        rows = global_rows[parallel.local_rows(len(global_rows))]
        real = rows >= 0
        safe = np.where(real, rows, 0)  # padding rows read pair 0 and get weight 0
        distinct, back = np.unique(safe, return_inverse=True)  # sorted reads are kinder to a memmap
        batch = {
            "messages": np.asarray(self.messages[distinct])[back],
            "target": self.prefs.target[safe],
            "weight": self.prefs.weight[safe] * real,
        }
        if self.features is not None:
            batch["features"] = self.features[distinct][back]
        if self.with_agreement:
            has = self.prefs.agree_target is not None
            batch["agree_target"] = self.prefs.agree_target[safe] if has else np.full(len(rows), 0.5, np.float32)
            batch["agree_weight"] = (self.prefs.agree_weight[safe] * real if has else np.zeros(len(rows))).astype(
                np.float32
            )
        return parallel.shard_batch(batch, self.mesh)


def prefetched(read: Callable, batches: np.ndarray) -> Iterator:
    """Read batch i+1 from disk on a thread while the device works on batch i."""
    if len(batches) == 0:
        return
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(read, batches[0])
        for next_rows in batches[1:]:
            current, pending = pending.result(), pool.submit(read, next_rows)
            yield current
        yield pending.result()


def dataset_fingerprint(ds, annotator: str, sample_rows: int = 64, features: StatFeatures | None = None) -> str:
    """sha256 over shapes, the annotator's labels and a sample of message rows (and of the stat changes a
    model reads): cheap even for huge datasets, and changes when the labels or the data they refer to are
    replaced."""
    h = hashlib.sha256()
    messages = ds.data("message")
    h.update(json.dumps([len(ds), list(messages.shape), annotator]).encode())
    h.update(np.ascontiguousarray(ds.labels(annotator)).tobytes())
    soft = ds.soft_labels(annotator)
    if soft is not None:
        h.update(np.ascontiguousarray(soft).tobytes())
    rows = np.unique(np.linspace(0, len(ds) - 1, num=min(sample_rows, len(ds))).astype(np.int64))
    h.update(np.ascontiguousarray(messages[rows]).tobytes())
    if features is not None:
        h.update(np.ascontiguousarray(features[rows]).tobytes())
    return h.hexdigest()
