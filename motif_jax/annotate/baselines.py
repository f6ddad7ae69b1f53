"""The paper's non-LLM annotators: prefer the pair member with the higher in-game score (`score`)
or the higher summed environment reward over the subsequence (`return`). Equal values tie."""

from __future__ import annotations

import time
from collections import Counter

import numpy as np

from motif_jax.annotate.pairs import chunk_range
from motif_jax.annotate.runner import RunOptions, RunStats
from motif_jax.annotate.verdict import compare_values

BASELINES = ("score", "return")


def member_values(ds, kind: str, rows: slice, score_key: str = "score") -> np.ndarray:
    """(n, 2) value of each pair member that the baseline compares."""
    if kind == "score":
        return np.asarray(ds.info(score_key)[rows], dtype=np.float64)
    if kind == "return":
        reward = np.asarray(ds.data("rewards")[rows], dtype=np.float64)
        return reward.reshape(reward.shape[0], 2, -1).sum(axis=2)
    raise ValueError(f"unknown baseline {kind!r}")


def annotate_baseline(
    ds,
    kind: str,
    name: str | None = None,
    options: RunOptions | None = None,
    score_key: str = "score",
    block: int = 65536,
) -> RunStats:
    """Label this chunk's pairs into ``preference/<name>.npy`` (name defaults to the baseline).

    Cheap and deterministic, so every row of the chunk is (re)written; `--overwrite` changes nothing.
    """
    return label_every_row(ds, name or kind, options, lambda part: member_values(ds, kind, part, score_key), block)


def soft_preferences(values: np.ndarray, temperature: float) -> np.ndarray:
    """P(first preferred) = sigmoid((v_first - v_second) / temperature) per row of ``values`` (n, 2):
    the Bradley-Terry probability under which rewards equal to ``values / temperature`` are exact, so a
    reward model fitted to it learns by how much one member beats the other, not only which does."""
    values = np.asarray(values, np.float64)
    return (1.0 / (1.0 + np.exp(-(values[:, 0] - values[:, 1]) / temperature))).astype(np.float32)


def label_every_row(
    ds, name: str, options: RunOptions | None, values, block: int = 65536, soft: float = 0.0
) -> RunStats:
    """Write ``compare_values(values(rows))`` for every row of this chunk, ``block`` rows at a time,
    and with ``soft`` > 0 the soft labels ``soft_preferences(values(rows), soft)`` beside them.

    For labellers that are instant and deterministic (baselines, rules judges): nothing stays unknown.
    ``values(rows)`` gets an index array and returns ``[len(rows), 2]`` utilities.
    """
    options = options or RunOptions()
    rows = chunk_range(len(ds), options.num_chunks, options.chunk)
    whole_file = options.overwrite and options.num_chunks == 1
    labels = ds.open_labels(name, overwrite=whole_file)
    probabilities = ds.open_soft_labels(name, overwrite=whole_file) if soft > 0 else None
    stats = RunStats(name=name, chunk_pairs=len(rows))
    start = time.perf_counter()
    for begin in range(rows.start, rows.stop, block):
        part = np.arange(begin, min(rows.stop, begin + block))
        utilities = values(part)
        labels[part] = compare_values(utilities)
        if probabilities is not None:
            probabilities[part] = soft_preferences(utilities, soft)
    labels.flush()
    if probabilities is not None:
        probabilities.flush()
    stats.seconds = time.perf_counter() - start
    stats.annotated = len(rows)
    final = np.asarray(labels[rows.start : rows.stop])
    stats.label_counts = {int(k): int(v) for k, v in sorted(Counter(final.tolist()).items())}
    return stats
