"""Pool the cells of each condition into one row: mean ± 95% CI over seeds × episodes.

Pure functions of the evaluation reports (``motif evaluate --json``), so the table can be checked
by hand and rebuilt from the cells at any time.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from motif_jax.evaluate import stats

FIELDS = ("success", "score", "return", "max_dlvl", "xlvl", "gold", "explored", "length")
TABLE_COLUMNS = (
    ("success", "success rate"),
    ("score", "score"),
    ("return", "return"),
    ("max_dlvl", "max depth"),
    ("xlvl", "exp. level"),
    ("gold", "gold"),
    ("explored", "squares seen"),
    ("length", "episode length"),
)
# Shown only where some condition has them: a task that never succeeds, reports from before they existed.
OPTIONAL_COLUMNS = ("success", "explored")


def episode_values(report: dict, field: str) -> list[float]:
    return [float(e[field]) for e in report.get("per_episode", []) if field in e]


def aggregate(reports_by_seed: dict[int, dict]) -> dict:
    """One condition's row from its evaluation reports (one per seed)."""
    row: dict = {"seeds": sorted(reports_by_seed), "n_seeds": len(reports_by_seed)}
    pooled = {f: [] for f in FIELDS}
    success = []
    for report in reports_by_seed.values():
        for f in FIELDS:
            pooled[f].extend(episode_values(report, f))
        success.extend(bool(e.get("success", False)) for e in report.get("per_episode", []))
    row["n_episodes"] = len(success)
    for f, values in pooled.items():
        if values:
            mean, ci = stats.mean_ci95(values)
            row[f"{f}_mean"], row[f"{f}_ci95"] = mean, ci
    if success:
        row["success_rate"] = sum(success) / len(success)
    ends = Counter(
        e["end_reason"] for r in reports_by_seed.values() for e in r.get("per_episode", []) if "end_reason" in e
    )
    if ends:  # what ended the episodes: a death, the goal, the step cap
        row["end_reasons"] = dict(sorted(ends.items(), key=lambda item: (-item[1], item[0])))
    # spread of the per-seed means: how much the training seed matters
    row["per_seed"] = {
        str(seed): {f"{f}_mean": float(np.mean(episode_values(r, f))) for f in FIELDS if episode_values(r, f)}
        for seed, r in sorted(reports_by_seed.items())
    }
    return row


def separated(a: dict, b: dict, field: str = "score") -> bool:
    """Whether the two conditions' 95% intervals for ``field`` do not overlap."""
    lo_a, hi_a = a[f"{field}_mean"] - a[f"{field}_ci95"], a[f"{field}_mean"] + a[f"{field}_ci95"]
    lo_b, hi_b = b[f"{field}_mean"] - b[f"{field}_ci95"], b[f"{field}_mean"] + b[f"{field}_ci95"]
    return hi_a < lo_b or hi_b < lo_a


def _cell(row: dict, field: str) -> str:
    mean, ci = row.get(f"{field}_mean"), row.get(f"{field}_ci95")
    if mean is None:
        return "n/a"
    if ci is None or not math.isfinite(ci):
        return f"{mean:.2f}"
    digits = 1 if abs(mean) >= 10 else 2
    return f"{mean:.{digits}f} ± {ci:.{digits}f}"


def _ends_cell(row: dict) -> str:
    """``death 71%, success 25%, time_limit 4%``: each end reason's share of the episodes, most first."""
    counts = row.get("end_reasons", {})
    total = sum(counts.values())
    return ", ".join(f"{reason} {100 * n / total:.0f}%" for reason, n in counts.items()) if total else "n/a"


def markdown_table(rows: dict[str, dict], labels: dict[str, str] | None = None) -> str:
    """Conditions as rows, mean ± 95% CI per column, then the episode and seed counts."""
    labels = labels or {}
    columns = [
        (f, title)
        for f, title in TABLE_COLUMNS
        if f not in OPTIONAL_COLUMNS or any(row.get(f"{f}_mean") for row in rows.values())
    ]
    ends = any("end_reasons" in row for row in rows.values())
    head = ["condition", *[title for _, title in columns], *(["episodes ended by"] if ends else []), "episodes (seeds)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in rows.items():
        cells = [
            labels.get(name, name),
            *[_cell(row, f) for f, _ in columns],
            *([_ends_cell(row)] if ends else []),
            f"{row['n_episodes']} ({row['n_seeds']})",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
