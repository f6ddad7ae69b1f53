"""From model output to Motif's int8 labels: regex verdicts, soft probabilities, both-order merging.

Labels are ``motif_jax.data.Label`` (Motif's encoding: 0 first preferred, 1 second, 2 tie, 3 unknown).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import numpy as np

from motif_jax.data.dataset import Label


def parse_verdict(reply: str, verdict_regex: str) -> int:
    """Label from a free-text reply; UNKNOWN when the regex never matches.

    The LAST match wins: models often restate the format ("answer with {"best_message": 1} or ...")
    or change their mind while reasoning, and the verdict we asked for is the final line.
    Group 1 equal to "1" or "2" (after stripping quotes and spaces) picks that caption; any other
    text the regex accepts ("None", "null", "tie", ...) is a tie.
    """
    matches = list(re.finditer(verdict_regex, reply, re.IGNORECASE))
    if not matches:
        return Label.UNKNOWN
    value = (matches[-1].group(1) or "").strip().strip("'\"").strip()
    return {"1": Label.FIRST, "2": Label.SECOND}.get(value, Label.TIE)


def swap_label(label: int) -> int:
    """The label of the same judgement with the two captions presented in the other order."""
    return {Label.FIRST: Label.SECOND, Label.SECOND: Label.FIRST}.get(int(label), int(label))


def combine_orders(label_ab: int, label_ba_swapped: int) -> int:
    """Merge the verdicts of both presentation orders (the second already mapped back).

    Agreement keeps the verdict; one unknown defers to the other; any disagreement is a tie,
    because a preference that flips with the order is position bias, not a judgement.
    """
    if label_ab == label_ba_swapped:
        return label_ab
    if label_ab == Label.UNKNOWN:
        return label_ba_swapped
    if label_ba_swapped == Label.UNKNOWN:
        return label_ab
    return Label.TIE


def probs_from_top_logprobs(top: Mapping[str, float]) -> tuple[float, float]:
    """(P("1"), P("2")) from a token -> logprob map; variants like " 1" count as "1"."""
    p1 = sum(math.exp(lp) for tok, lp in top.items() if tok.strip() == "1")
    p2 = sum(math.exp(lp) for tok, lp in top.items() if tok.strip() == "2")
    return p1, p2


def soft_label(p1: float, p2: float) -> float:
    """P(first preferred) among the two answers; NaN when the model gave neither any mass."""
    total = p1 + p2
    return float(p1 / total) if total > 0 else float("nan")


def hard_label(p_first: float, tie_band: float) -> int:
    """Threshold a soft label: within ``tie_band`` of 0.5 is a tie, NaN is unknown.

    The band is inclusive (|p - 0.5| <= band is a tie), so band 0 only calls exact 0.5 a tie.
    """
    if math.isnan(p_first):
        return Label.UNKNOWN
    if abs(p_first - 0.5) <= tie_band:
        return Label.TIE
    return Label.FIRST if p_first > 0.5 else Label.SECOND


def compare_values(values: np.ndarray) -> np.ndarray:
    """Baseline labels from a per-member value (N, 2): higher wins, equal ties, NaN unknown."""
    values = np.asarray(values, dtype=np.float64)
    a, b = values[:, 0], values[:, 1]
    labels = np.full(len(values), Label.TIE, dtype=np.int8)
    labels[a > b] = Label.FIRST
    labels[b > a] = Label.SECOND
    labels[np.isnan(a) | np.isnan(b)] = Label.UNKNOWN
    return labels
