"""Pure summary statistics of evaluation episodes (no I/O, no JAX), tested against hand-computed values."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats as scipy_stats


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of its two-sided 95% confidence interval (Student's t, n - 1 dof).

    The t interval rather than a bootstrap: it is exact for normal returns, needs no seed, and
    stays honest for the small episode counts an evaluation uses. A single value has no spread
    estimate, so its half-width is NaN (written as null in the JSON report).
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("mean_ci95 needs at least one value")
    mean = float(x.mean())
    if x.size == 1:
        return mean, math.nan
    sem = float(x.std(ddof=1)) / math.sqrt(x.size)
    t = float(scipy_stats.t.ppf(0.975, df=x.size - 1))
    return mean, t * sem


def success_rate(successes: Iterable[bool]) -> float:
    flags = [bool(s) for s in successes]
    if not flags:
        raise ValueError("success_rate needs at least one episode")
    return sum(flags) / len(flags)


def end_reason_counts(reasons: Iterable[str], known: Sequence[str] = ()) -> dict[str, int]:
    """Counts per end reason; every ``known`` reason is listed (0 if absent) first, in its order."""
    counts = Counter(reasons)
    out = {reason: counts.pop(reason, 0) for reason in known}
    out.update(sorted(counts.items()))
    return out


def top_captions(counts: Mapping[str, int], k: int = 10) -> list[tuple[str, int]]:
    """The ``k`` most frequent captions, ties broken alphabetically so reports are reproducible."""
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:k]


def action_shares(counts: Sequence[int], names: Sequence[str]) -> dict[str, Any]:
    """``{"steps": n, "shares": {name: share}}`` of per-action step counts, most taken first (ties by id);
    actions never taken are left out."""
    counts = [int(c) for c in counts]
    total = sum(counts)
    order = sorted((i for i, c in enumerate(counts) if c), key=lambda i: (-counts[i], i))
    return {"steps": total, "shares": {names[i]: counts[i] / total for i in order}}


def describe(values: Sequence[float]) -> dict[str, float]:
    """Mean, 95% CI half-width, min and max of one per-episode quantity."""
    mean, ci = mean_ci95(values)
    x = np.asarray(values, dtype=np.float64)
    return {"mean": mean, "ci95": ci, "min": float(x.min()), "max": float(x.max())}


def json_safe(value):
    """NaN and ±inf (a CI from a single episode) as null: strict JSON readers reject them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value
