"""Synthetic pairs datasets with a planted preference, written with plain numpy in the original
Motif layout (data/message.npy, info/score.npy, preference/<name>.npy; no meta.json)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

ITEMS = ["dagger", "apple", "scroll labeled FOO", "ring", "potion", "boulder", "chest", "wand"]
MONSTERS = ["newt", "jackal", "grid bug", "kobold", "sewer rat", "lichen"]


def _caption(rng: np.random.Generator, golden: bool) -> str:
    if golden:
        n = int(rng.integers(1, 200))
        return rng.choice([f"{n} gold pieces.", f"You see here {n} gold pieces.", f"h - {n} gold pieces (in bag)."])
    kind = int(rng.integers(0, 4))
    if kind == 0:
        return ""
    if kind == 1:
        return f"You see here a {rng.choice(ITEMS)}."
    if kind == 2:
        return f"You kill the {rng.choice(MONSTERS)}!"
    return rng.choice(["It's a wall.", "You hear some noises.", "There is a doorway here.", "The door opens."])


def encode(caption: str) -> np.ndarray:
    row = np.zeros(256, np.uint8)
    raw = caption.encode("latin-1")
    row[: len(raw)] = np.frombuffer(raw, np.uint8)
    return row


def gold_labels(golden: np.ndarray) -> np.ndarray:
    """0 when only the first member shows gold, 1 when only the second does, 2 (tie) otherwise."""
    first, second = golden[:, 0], golden[:, 1]
    return np.where(first & ~second, 0, np.where(second & ~first, 1, 2)).astype(np.int8)


def write_gold_dataset(
    path: Path,
    num_pairs: int = 400,
    seq_len: int = 1,
    seed: int = 0,
    annotator: str = "score",
    unknown_fraction: float = 0.05,
) -> Path:
    """Pairs whose captions mention gold (p = 0.35 per member) are preferred; a few labels are 3."""
    rng = np.random.default_rng(seed)
    golden = rng.random((num_pairs, 2)) < 0.35
    messages = np.zeros((num_pairs, 2, seq_len, 256), np.uint8)
    for i in range(num_pairs):
        for j in range(2):
            gold_step = int(rng.integers(0, seq_len))
            for t in range(seq_len):
                messages[i, j, t] = encode(_caption(rng, golden[i, j] and t == gold_step))
    labels = gold_labels(golden)
    labels[rng.random(num_pairs) < unknown_fraction] = 3
    for folder in ("data", "info", "preference"):
        (path / folder).mkdir(parents=True, exist_ok=True)
    np.save(path / "data" / "message.npy", messages)
    np.save(path / "info" / "score.npy", golden.astype(np.int64) * 10)
    np.save(path / "preference" / f"{annotator}.npy", labels)
    return path
