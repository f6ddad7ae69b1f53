"""Pure helpers that turn dataset rows into what the LLM sees, and split the work.

Why here: deduplication, caching and chunking all hinge on these few definitions (what counts as
"the same caption", which pairs a chunk owns), so they live in one small, tested module.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable

import numpy as np

from motif_jax.data import decode_message
from motif_jax.data.transitions import DELTA_FIELDS, transition_text
from motif_jax.errors import MotifError

_SPACES = re.compile(r"\s+")


def collapse_captions(captions: Iterable[str]) -> str:
    """A subsequence's captions as one text: empty ones dropped, consecutive repeats as "text (xN)"."""
    runs: list[list] = []
    for caption in captions:
        caption = caption.strip()
        if not caption:
            continue
        if runs and runs[-1][0] == caption:
            runs[-1][1] += 1
        else:
            runs.append([caption, 1])
    return "\n".join(text if count == 1 else f"{text} (x{count})" for text, count in runs)


def subsequence_caption(messages: np.ndarray) -> str:
    """(L, 256) uint8 messages of one pair member -> the caption text shown to the LLM."""
    return collapse_captions(decode_message(np.asarray(messages).reshape(-1, 256)).tolist())


def member_transition(prev_messages: np.ndarray, messages: np.ndarray, delta: np.ndarray) -> str:
    """One pair member of L steps as a transition text: the message before its first step, its captions
    (collapsed as for the LLM), and the stat changes summed over its steps."""
    prev = decode_message(np.asarray(prev_messages).reshape(-1, 256)[0])
    total = np.asarray(delta).reshape(-1, len(DELTA_FIELDS)).sum(axis=0)
    return transition_text(prev, subsequence_caption(messages), total)


def member_now(messages: np.ndarray) -> str:
    """A pair member of a dataset without transitions, in the transition text's form: ``now: "..."``."""
    return transition_text(None, subsequence_caption(messages), None)


def normalise(caption: str) -> str:
    """Whitespace runs folded to one space: captions differing only in spacing are the same."""
    return _SPACES.sub(" ", caption).strip()


def canonical_order(caption1: str, caption2: str) -> tuple[str, str, bool]:
    """The unordered pair in a fixed order, and whether that order swapped the two."""
    a, b = normalise(caption1), normalise(caption2)
    return (b, a, True) if b < a else (a, b, False)


def pair_key(caption1: str, caption2: str, template_hash: str, model: str, mode: str) -> str:
    """Cache key of an unordered caption pair under one template, model and verdict mode."""
    a, b, _ = canonical_order(caption1, caption2)
    blob = json.dumps([a, b, template_hash, model, mode]).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def chunk_range(n: int, num_chunks: int, chunk: int) -> range:
    """Rows of chunk ``chunk`` out of ``num_chunks`` near-equal contiguous chunks of ``n`` rows."""
    if num_chunks < 1 or not 0 <= chunk < num_chunks:
        raise MotifError(f"--chunk {chunk} must be in [0, --num-chunks={num_chunks})")
    return range(n * chunk // num_chunks, n * (chunk + 1) // num_chunks)
