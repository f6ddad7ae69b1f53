"""Transitions (MaestroMotif): what changed between two consecutive steps, as arrays and as one text.

An annotator that judges skills needs more than the message shown now: the message seen before it and
how the hero's stats moved. Collection stores, per step, the previous message (``data/prev_message.npy``,
same shape as ``data/message.npy``) and the stat changes since the previous step (``data/delta.npy``,
int32, last axis ``DELTA_FIELDS``); an episode's first step has an empty previous message and a zero delta.

``transition_text`` is the one text both the LLM prompts and the rules judges read::

    previous: "The door opens." | now: "There is a staircase down here." | depth +1, gold +12, hp -3

Zero changes are left out (no change at all: no third part); ``previous`` is left out when there is no
previous message to show (a dataset collected without transitions: ``now: "..."`` alone). ``hunger`` is
the change of NetHack's hunger state (0 satiated, 1 not hungry, 2 hungry, 3 weak, ...): +1 is hungrier.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PREV_MESSAGE_KEY = "prev_message"
DELTA_KEY = "delta"
TRANSITION_KEYS = (PREV_MESSAGE_KEY, DELTA_KEY)
DELTA_FIELDS = ("depth", "gold", "hp", "exp", "hunger")  # dungeon depth, gold, hit points, experience points, hunger
DELTA_DTYPE = np.dtype(np.int32)


def delta_indices() -> tuple[int, ...]:
    """blstats indices of ``DELTA_FIELDS``, from NLE's named constants."""
    from nle import nethack

    return (nethack.NLE_BL_DEPTH, nethack.NLE_BL_GOLD, nethack.NLE_BL_HP, nethack.NLE_BL_EXP, nethack.NLE_BL_HUNGER)


def stat_delta(prev_blstats: np.ndarray, blstats: np.ndarray) -> np.ndarray:
    """(..., 5) int32 changes of ``DELTA_FIELDS`` from ``prev_blstats`` to ``blstats`` (both (..., B))."""
    index = list(delta_indices())
    now = np.asarray(blstats)[..., index].astype(np.int64)
    before = np.asarray(prev_blstats)[..., index].astype(np.int64)
    return (now - before).astype(DELTA_DTYPE)


def delta_text(delta: Sequence[int] | np.ndarray | None) -> str:
    """``depth +1, gold +12, hp -3``: the non-zero changes in ``DELTA_FIELDS`` order ("" when none)."""
    if delta is None:
        return ""
    values = [int(v) for v in np.asarray(delta).reshape(-1)]
    if len(values) != len(DELTA_FIELDS):
        raise ValueError(f"delta: expected {len(DELTA_FIELDS)} values ({', '.join(DELTA_FIELDS)}), got {len(values)}")
    return ", ".join(f"{name} {value:+d}" for name, value in zip(DELTA_FIELDS, values) if value)


def transition_text(prev_message: str | None, message: str, delta: Sequence[int] | np.ndarray | None) -> str:
    """The one text of a transition: ``previous: "..." | now: "..." | depth +1, gold +12, hp -3``."""
    parts = [] if prev_message is None else [f'previous: "{_one_line(prev_message)}"']
    parts.append(f'now: "{_one_line(message)}"')
    changes = delta_text(delta)
    if changes:
        parts.append(changes)
    return " | ".join(parts)


def _one_line(text: str) -> str:
    return " ".join(text.split())
