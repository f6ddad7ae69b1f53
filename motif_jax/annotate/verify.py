"""Merge and verify the labels of an annotation split into chunks (`--num-chunks K --chunk I`).

    python -m motif_jax.annotate.verify DATASET --annotator NAME [--num-chunks K] [--merge FILE ...]

Chunks that share a filesystem write into the same ``preference/<NAME>.npy``; hosts without a
shared filesystem each produce their own copy, which ``--merge`` folds in (a pair is taken from
a copy only where the dataset's file still says 3 = unknown). The report lists, per chunk, the
pairs still unlabelled; the exit status is 1 while any remain, so a launcher can retry them.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from motif_jax.annotate.pairs import chunk_range
from motif_jax.data import open_dataset
from motif_jax.data.dataset import Label
from motif_jax.errors import MotifError


@dataclasses.dataclass(frozen=True)
class MergeStats:
    filled: int  # unknown pairs in the target that the source labelled
    conflicts: int  # pairs labelled differently in both (the target's label is kept)


def merge_labels(target: np.ndarray, source: np.ndarray, target_soft=None, source_soft=None) -> MergeStats:
    """Copy ``source``'s known labels (and soft labels) into ``target`` where it is unknown, in place."""
    if target.shape != source.shape:
        raise MotifError(f"label files differ in length: {target.shape[0]} vs {source.shape[0]} pairs")
    fill = (target == Label.UNKNOWN) & (source != Label.UNKNOWN)
    conflicts = (target != Label.UNKNOWN) & (source != Label.UNKNOWN) & (target != source)
    target[fill] = source[fill]
    if target_soft is not None and source_soft is not None:
        target_soft[fill] = source_soft[fill]
    return MergeStats(filled=int(fill.sum()), conflicts=int(conflicts.sum()))


def unlabelled_per_chunk(labels: np.ndarray, num_chunks: int) -> list[tuple[int, range, int]]:
    """(chunk, its rows, how many of them are still 3) for each of ``num_chunks`` chunks."""
    out = []
    for chunk in range(num_chunks):
        rows = chunk_range(len(labels), num_chunks, chunk)
        out.append((chunk, rows, int((np.asarray(labels[rows.start : rows.stop]) == Label.UNKNOWN).sum())))
    return out


def _soft_beside(labels_path: Path) -> Path | None:
    """The soft labels belonging to a copied ``DATASET/preference/NAME.npy``: in that copy's
    ``annotations/`` folder, or next to it (older datasets)."""
    name = labels_path.name[: -len(".npy")] + ".soft.npy"
    for candidate in (labels_path.parent.parent / "annotations" / name, labels_path.with_name(name)):
        if candidate.is_file():
            return candidate
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m motif_jax.annotate.verify", description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--annotator", required=True, help="preference/<NAME>.npy to check")
    parser.add_argument("--num-chunks", type=int, default=1, help="report per chunk, as the run was split")
    parser.add_argument(
        "--merge",
        nargs="*",
        default=[],
        metavar="FILE",
        help="label files (.npy) of the same annotator from other hosts to fold in first",
    )
    args = parser.parse_args(argv)
    try:
        return _verify(args)
    except MotifError as e:
        print(f"verify: error: {e}", file=sys.stderr)
        return 2


def _verify(args: argparse.Namespace) -> int:
    console = Console()
    ds = open_dataset(args.dataset)
    if args.merge:
        labels = ds.open_labels(args.annotator)
        soft = ds.open_soft_labels(args.annotator) if ds.soft_labels(args.annotator) is not None else None
        for path in map(Path, args.merge):
            if not path.is_file():
                raise MotifError(f"--merge {path}: no such file")
            source_soft_path = _soft_beside(path)
            source_soft = np.load(source_soft_path, mmap_mode="r") if source_soft_path else None
            stats = merge_labels(labels, np.load(path, mmap_mode="r"), soft, source_soft)
            console.print(f"merged {path}: {stats.filled} pairs filled, {stats.conflicts} conflicting (kept ours)")
        labels.flush()
        if soft is not None:
            soft.flush()
    labels = np.asarray(ds.labels(args.annotator))
    table = Table(title=f"{ds.path / 'preference' / args.annotator}.npy")
    for column in ("chunk", "rows", "unlabelled"):
        table.add_column(column, justify="right")
    missing = 0
    for chunk, rows, unknown in unlabelled_per_chunk(labels, args.num_chunks):
        table.add_row(str(chunk), f"{rows.start}–{rows.stop - 1}", str(unknown))
        missing += unknown
    console.print(table)
    counts = np.bincount(labels.astype(np.int64), minlength=len(Label))
    console.print(
        f"{len(labels)} pairs: first {counts[Label.FIRST]}, second {counts[Label.SECOND]}, "
        f"tie {counts[Label.TIE]}, unlabelled {counts[Label.UNKNOWN]}"
    )
    if missing:
        console.print(f"[red]{missing} pairs still unlabelled[/red]: rerun the chunks listed above (they resume)")
        return 1
    console.print("[green]every pair is labelled[/green]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
