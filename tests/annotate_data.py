"""Tiny pairs datasets in the original Motif layout (no meta.json), built with plain numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def encode(text: str) -> np.ndarray:
    row = np.zeros(256, dtype=np.uint8)
    raw = text.encode("latin-1")
    row[: len(raw)] = np.frombuffer(raw, dtype=np.uint8)
    return row


def write_pairs(path: Path, captions: list, scores=None, rewards=None) -> Path:
    """``captions``: per pair, two members, each a caption string or a list of L strings."""
    members = [[[m] if isinstance(m, str) else list(m) for m in pair] for pair in captions]
    length = max(len(m) for pair in members for m in pair)
    message = np.zeros((len(members), 2, length, 256), dtype=np.uint8)
    for i, pair in enumerate(members):
        for j, member in enumerate(pair):
            for t, text in enumerate(member):
                message[i, j, t] = encode(text)
    (path / "data").mkdir(parents=True)
    (path / "info").mkdir()
    np.save(path / "data" / "message.npy", message)
    n = len(members)
    score = np.zeros((n, 2), np.int64) if scores is None else np.asarray(scores, dtype=np.int64)
    np.save(path / "info" / "score.npy", score)
    reward = np.zeros((n, 2, length), np.float32) if rewards is None else np.asarray(rewards, np.float32)
    np.save(path / "data" / "reward.npy", reward.reshape(n, 2, length))
    return path


NETHACK_CAPTIONS = [
    "You kill the newt!",
    "It's a wall.",
    "You see here 12 gold pieces.",
    "The jackal bites!",
    "You climb down the stairs.",
    "",
]


def random_pairs(n: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(NETHACK_CAPTIONS), size=(n, 2))
    return [[NETHACK_CAPTIONS[a], NETHACK_CAPTIONS[b]] for a, b in picks]
