"""The annotation loop: pending pairs of one chunk -> dedup -> cache -> batched LLM calls -> labels.

Resumability comes from the label file itself (label 3 = not done yet) plus the answer cache: after
each block the cache lines are appended and synced, and only then the labels written, so a killed
process loses at most the block in flight, every label on disk has its answer in the cache, and a
rerun skips done pairs and re-answers cached ones for free.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

from motif_jax.annotate.asking import Asker
from motif_jax.annotate.cache import AnswerCache
from motif_jax.annotate.pairs import (
    canonical_order,
    chunk_range,
    member_now,
    member_transition,
    normalise,
    pair_key,
    subsequence_caption,
)
from motif_jax.annotate.verdict import swap_label
from motif_jax.data.dataset import Label
from motif_jax.errors import MotifError, disk_problem
from motif_jax.files import write_json_atomic
from motif_jax.progress import ProgressBar


@dataclasses.dataclass
class RunOptions:
    num_chunks: int = 1
    chunk: int = 0
    overwrite: bool = False
    batch_size: int = 64  # pairs per block (one flush per block)
    log_dir: str | Path | None = None
    progress: bool = True


@dataclasses.dataclass
class RunStats:
    name: str
    chunk_pairs: int = 0  # pairs this chunk owns
    already_done: int = 0  # labelled before this run started
    annotated: int = 0  # labelled by this run
    identical: int = 0  # ties because both captions were the same (no LLM call)
    cache_hits: int = 0  # answered from the cache (earlier run, other chunk, same block)
    asked: int = 0  # unique pairs sent to the LLM
    requests: int = 0  # LLM requests including retries and swapped orders
    retried: int = 0  # asked pairs whose first reply had no verdict
    failed: int = 0  # asked pairs still without a verdict (label 3)
    seconds: float = 0.0
    label_counts: dict = dataclasses.field(default_factory=dict)

    @property
    def pairs_per_second(self) -> float:
        return self.annotated / self.seconds if self.seconds > 0 else 0.0

    @property
    def calls_saved(self) -> int:
        """LLM questions avoided by identical captions and the pair cache."""
        return self.identical + self.cache_hits

    @property
    def failure_rate(self) -> float:
        return self.failed / self.asked if self.asked else 0.0

    def as_dict(self) -> dict:
        return {
            **dataclasses.asdict(self),
            "pairs_per_second": self.pairs_per_second,
            "calls_saved": self.calls_saved,
            "failure_rate": self.failure_rate,
        }


def pair_captions(ds, rows: np.ndarray) -> list[tuple[str, str]]:
    """(caption1, caption2) texts of dataset rows, as the LLM sees them."""
    messages = np.asarray(ds.data("message")[rows])
    return [(subsequence_caption(m[0]), subsequence_caption(m[1])) for m in messages]


TEXT_KINDS = ("captions", "transitions", "now")


def pair_texts(ds, rows: np.ndarray, shows: str = "captions") -> list[tuple[str, str]]:
    """The two texts of dataset rows that an annotator compares: ``captions`` (Motif), ``transitions``
    (previous message, message, stat changes; the dataset must have them) or ``now`` (the captions in
    the transition text's form, ``now: "..."``, for datasets without transitions)."""
    if shows == "captions":
        return pair_captions(ds, rows)
    messages = np.asarray(ds.data("message")[rows])
    if shows == "now":
        return [(member_now(m[0]), member_now(m[1])) for m in messages]
    if shows != "transitions":
        raise ValueError(f"unknown text kind {shows!r}; expected one of {TEXT_KINDS}")
    if not ds.has_transitions:
        raise MotifError(
            f"{ds.path}: has no transitions (data/prev_message.npy, data/delta.npy); collect it again with "
            "this version, or use a template that shows captions"
        )
    prev, delta = np.asarray(ds.data("prev_message")[rows]), np.asarray(ds.data("delta")[rows])
    return [
        tuple(member_transition(prev[i, j], messages[i, j], delta[i, j]) for j in range(2)) for i in range(len(rows))
    ]


def check_settings(path: Path, settings: dict, overwrite: bool) -> None:
    """Refuse to continue a label file made with other settings: mixed labels would be silent junk.

    ``path`` is the label file's settings sidecar (``PairsDataset.sidecar_path(name, ".json")``)."""
    if path.exists() and not overwrite:
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError:
            old = {}
        changed = sorted(k for k in settings if old.get(k) != settings[k])
        if changed:
            labels = path.parent.parent / "preference" / (path.name[: -len(".json")] + ".npy")
            raise MotifError(
                f"{labels} was written with other settings ({', '.join(changed)} "
                "differ): pass --overwrite to start over or --name for a new annotator"
            )
    write_json_atomic(path, settings)  # whole or not at all: a rerun compares it


def orient(label: int, p_first: float, swapped: bool) -> tuple[int, float]:
    """An answer expressed for the captions in the other order when ``swapped`` (the cache stores
    answers in canonical order)."""
    return (swap_label(label), 1.0 - p_first) if swapped else (int(label), p_first)


class BlockAnnotator:
    """Labels one block of rows: identical captions tie, the cache answers repeats, the rest is
    asked once per unordered caption pair."""

    def __init__(self, asker: Asker, cache: AnswerCache, model: str, stats: RunStats, log_dir: Path | None = None):
        self.asker, self.cache, self.model, self.stats, self.log_dir = asker, cache, model, stats, log_dir
        self.template_hash = asker.template.hash

    def label(self, rows: np.ndarray, captions: list[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray]:
        labels = np.full(len(rows), Label.UNKNOWN, dtype=np.int8)
        soft = np.full(len(rows), np.nan, dtype=np.float32)
        waiting: dict[str, list[int]] = {}  # key -> positions in this block
        questions: list[tuple[str, str]] = []  # first occurrence of each key, in dataset order
        keys: list[str] = []
        for pos, (c1, c2) in enumerate(captions):
            if normalise(c1) == normalise(c2):
                labels[pos], soft[pos] = Label.TIE, 0.5
                self.stats.identical += 1
                continue
            key = pair_key(c1, c2, self.template_hash, self.model, self.asker.cache_mode)
            if key in self.cache or key in waiting:
                self.stats.cache_hits += 1
            else:
                questions.append((c1, c2))
                keys.append(key)
            waiting.setdefault(key, []).append(pos)
        for key, (c1, c2), answer, row in zip(
            keys, questions, self.asker.ask(questions), (rows[waiting[k][0]] for k in keys)
        ):
            self.cache.put(key, *orient(answer.label, answer.p_first, canonical_order(c1, c2)[2]))
            self.stats.asked += 1
            self.stats.requests += answer.requests
            self.stats.retried += answer.retried
            self.stats.failed += answer.label == Label.UNKNOWN
            self._log(int(row), answer.transcript, answer.label)
        for key, positions in waiting.items():
            canonical = self.cache.get(key)
            for pos in positions:
                labels[pos], soft[pos] = orient(*canonical, canonical_order(*captions[pos])[2])
        return labels, soft

    def _log(self, row: int, text: str, label: int) -> None:
        if self.log_dir is not None:
            (self.log_dir / f"pair{row:09d}.txt").write_text(f"{text}\n\n### label = {label}\n")


def annotate(ds, asker: Asker, name: str, settings: dict, options: RunOptions | None = None) -> RunStats:
    """Label this chunk's pending pairs of ``ds`` into ``preference/<name>.npy`` (and the soft labels
    in logprob mode); returns what happened."""
    options = options or RunOptions()
    pair_texts(ds, np.arange(0), asker.template.shows)  # a template the dataset cannot fill fails before any file
    rows_all = chunk_range(len(ds), options.num_chunks, options.chunk)
    whole_file = options.overwrite and options.num_chunks == 1
    labels = ds.open_labels(name, overwrite=whole_file)  # first: it validates the name
    check_settings(ds.sidecar_path(name, ".json", for_writing=True), settings, options.overwrite)
    soft = ds.open_soft_labels(name, overwrite=whole_file) if asker.mode == "logprob" else None
    cache_path = ds.sidecar_path(name, ".cache.jsonl", for_writing=True)
    if whole_file and cache_path.exists():
        cache_path.unlink()
    if options.overwrite and not whole_file:
        labels[rows_all.start : rows_all.stop] = Label.UNKNOWN
        if soft is not None:
            soft[rows_all.start : rows_all.stop] = np.nan
    cache = AnswerCache(cache_path, ignore_existing=options.overwrite)
    log_dir = Path(options.log_dir) / name if options.log_dir else None
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)

    chunk_labels = np.asarray(labels[rows_all.start : rows_all.stop])
    pending = np.arange(rows_all.start, rows_all.stop)[chunk_labels == Label.UNKNOWN]
    stats = RunStats(name=name, chunk_pairs=len(rows_all), already_done=len(rows_all) - len(pending))
    block = BlockAnnotator(asker, cache, asker.backend.model_id, stats, log_dir)
    start = time.perf_counter()
    with ProgressBar(f"annotate {name}", len(pending), "pairs", enabled=options.progress) as bar:
        for begin in range(0, len(pending), max(1, options.batch_size)):
            rows = pending[begin : begin + options.batch_size]
            cache.reload()
            try:
                new_labels, new_soft = block.label(rows, pair_texts(ds, rows, asker.template.shows))
                cache.flush()  # answers first: a crash after this re-labels for free
                labels[rows] = new_labels  # the label files are fully allocated: this cannot run out
                if soft is not None:
                    soft[rows] = new_soft
                    soft.flush()
                labels.flush()
            except OSError as e:  # e.g. a transcript in --log-dir on a full disk
                raise MotifError(
                    f"{disk_problem(e) or e} while annotating; the labels flushed before this "
                    "block are kept; fix it and rerun to resume"
                ) from e
            stats.annotated += len(rows)
            bar.advance(len(rows))
    stats.seconds = time.perf_counter() - start
    final = np.asarray(labels[rows_all.start : rows_all.stop])
    stats.label_counts = {int(k): int(v) for k, v in sorted(Counter(final.tolist()).items())}
    return stats
