"""How often two annotators agree on the same pairs: an LLM's labels measured against a rules judge.

Only pairs on which both give a preference (label 0 or 1) count towards the agreement rate: a tie
or an unknown says nothing about which caption is better. How often the two disagree on whether
there is a preference at all is reported next to it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from motif_jax.data.dataset import Label


def agreement(labels_a, labels_b) -> dict:
    """Agreement of two (N,) label arrays on the pairs both decided; ``rate`` is NaN when there are none."""
    a, b = np.asarray(labels_a), np.asarray(labels_b)
    if a.shape != b.shape:
        raise ValueError(f"label arrays differ in shape: {a.shape} vs {b.shape}")
    decided_a, decided_b = a <= Label.SECOND, b <= Label.SECOND
    both = decided_a & decided_b
    agree = int(np.sum(a[both] == b[both]))
    n = int(both.sum())
    return {
        "pairs": int(a.size),
        "both_decided": n,
        "agree": agree,
        "rate": agree / n if n else float("nan"),
        "only_a_decided": int(np.sum(decided_a & (b == Label.TIE))),
        "only_b_decided": int(np.sum(decided_b & (a == Label.TIE))),
    }


def annotator_backend(ds, name: str) -> str | None:
    """The backend recorded in the label file's settings sidecar (None for files without settings)."""
    path = Path(ds.sidecar_path(name, ".json"))
    try:
        return json.loads(path.read_text()).get("backend")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


def judge_comparisons(ds, name: str) -> list[tuple[str, str, dict]]:
    """(LLM annotator, rules annotator, agreement) for ``name`` against every annotator of the other
    kind in the dataset: rules judges when ``name`` is an LLM's labels, LLMs when it is a judge's (labels
    of a skill, see `skill_comparisons`, are left out)."""
    mine = annotator_backend(ds, name)
    if mine is None or mine in ("score", "return"):
        return []
    my_skill = annotator_settings(ds, name).get("skill")  # a skill's labels compare only with that skill's
    out = []
    for other in ds.annotators:
        theirs = annotator_backend(ds, other)
        if other == name or theirs is None or theirs in ("score", "return") or (theirs == "rules") == (mine == "rules"):
            continue
        if annotator_settings(ds, other).get("skill") != my_skill:
            continue
        llm, judge = (other, name) if mine == "rules" else (name, other)
        out.append((llm, judge, agreement(ds.labels(llm), ds.labels(judge))))
    return out


def describe(llm: str, judge: str, result: dict) -> str:
    rate = "n/a" if result["both_decided"] == 0 else f"{result['rate']:.1%}"
    return (
        f"agreement {llm} vs {judge}: {rate} of {result['both_decided']} pairs both decided "
        f"({result['only_a_decided']} decided only by {llm}, {result['only_b_decided']} only by {judge})"
    )


def annotator_settings(ds, name: str) -> dict:
    """The settings sidecar of a label file ({} when it has none or it is unreadable)."""
    path = Path(ds.sidecar_path(name, ".json"))
    try:
        settings = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return settings if isinstance(settings, dict) else {}


def skill_comparisons(ds, skill: str) -> list[tuple[str, str, dict]]:
    """(LLM annotator, rules annotator, agreement) of every LLM's and every rules judge's labels for one
    skill (label files whose settings name the skill, as `motif annotate --skills` writes them)."""
    llms, judges = [], []
    for name in ds.annotators:
        settings = annotator_settings(ds, name)
        if settings.get("skill") != skill or settings.get("backend") in (None, "score", "return"):
            continue
        (judges if settings["backend"] == "rules" else llms).append(name)
    return [(llm, judge, agreement(ds.labels(llm), ds.labels(judge))) for llm in llms for judge in judges]
