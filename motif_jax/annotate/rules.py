"""The `rules` judge: caption patterns with utilities, one table per goal, read from a YAML file.

Why: where no strong LLM can run (a CPU, a test) the pipeline still needs preferences that are
known to be sensible, and an LLM's labels need a yardstick. A rules judge is both: transparent,
deterministic and instant. The caption with the higher utility is preferred; equal utilities tie.

File format (``configs/judges/nethack.yaml`` is the shipped example)::

    goals:
      defaultgoal:
        unmatched: 0            # utility of a caption no rule matches (optional, default 0)
        rules:                  # [utility, regex]; every rule that matches adds its utility once
          - [3, "You (kill|destroy) "]
          - [-1, "It's a wall"]

A caption's utility is the sum over the rules whose regex (Python ``re.search``, case-sensitive)
matches it, or ``unmatched`` when none does. The empty caption always has utility 0.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

from motif_jax.annotate.baselines import label_every_row
from motif_jax.annotate.naming import rules_annotator
from motif_jax.annotate.runner import pair_texts
from motif_jax.config import load_yaml
from motif_jax.errors import MotifError
from motif_jax.resources import builtin_configs


def judges_dir() -> Path:
    """The shipped judges (`configs/judges/`)."""
    return builtin_configs() / "judges"


DEFAULT_JUDGE = "nethack"


@dataclasses.dataclass(frozen=True)
class Rule:
    utility: float
    pattern: re.Pattern


@dataclasses.dataclass(frozen=True)
class Table:
    """The rules of one goal."""

    goal: str
    rules: tuple[Rule, ...]
    unmatched: float = 0.0

    def utility(self, caption: str) -> float:
        if not caption.strip():
            return 0.0
        hits = [r.utility for r in self.rules if r.pattern.search(caption)]
        return float(sum(hits)) if hits else float(self.unmatched)

    def matches(self, caption: str) -> list[tuple[float, str]]:
        """(utility, regex) of every rule matching ``caption``: why it got its utility."""
        return [(r.utility, r.pattern.pattern) for r in self.rules if r.pattern.search(caption)]


def resolve_judge_path(judge: str | Path | None) -> Path:
    """A judge file: a path, or the name of a file in `configs/judges/` (default ``nethack``)."""
    judge = str(judge or DEFAULT_JUDGE)
    path = Path(judge)
    if path.is_file():
        return path
    shipped = judges_dir() / f"{judge}.yaml"
    if shipped.is_file():
        return shipped
    raise MotifError(f"judge {judge!r}: no such file (and no {shipped.name} in configs/judges/)")


def load_table(judge: str | Path | None, goal: str) -> Table:
    """The table of ``goal`` in a judge file, validated with errors naming the file and field."""
    path = resolve_judge_path(judge)
    data = load_yaml(path)
    goals = data.get("goals")
    if not isinstance(goals, dict) or not goals:
        raise MotifError(f"{path}: expected a mapping 'goals: {{goal: {{rules: [...]}}}}'")
    if goal not in goals:
        raise MotifError(f"{path}: no table for goal {goal!r} (have: {', '.join(goals)})")
    return parse_table(goals[goal], goal, f"{path}: goals.{goal}")


def parse_table(section, goal: str, where: str) -> Table:
    if not isinstance(section, dict) or not isinstance(section.get("rules"), list):
        raise MotifError(f"{where}: expected a mapping with a 'rules' list")
    unknown = sorted(set(section) - {"rules", "unmatched", "about"})
    if unknown:
        raise MotifError(f"{where}: unknown key(s) {', '.join(unknown)}; expected rules, unmatched, about")
    rules = []
    for i, item in enumerate(section["rules"]):
        if not (
            isinstance(item, list)
            and len(item) == 2
            and isinstance(item[0], (int, float))
            and not isinstance(item[0], bool)
            and isinstance(item[1], str)
        ):
            raise MotifError(f"{where}.rules[{i}]: expected [utility, regex], got {item!r}")
        try:
            pattern = re.compile(item[1])
        except re.error as e:
            raise MotifError(f"{where}.rules[{i}]: bad regex {item[1]!r} ({e})") from e
        rules.append(Rule(float(item[0]), pattern))
    unmatched = section.get("unmatched", 0)
    if not isinstance(unmatched, (int, float)) or isinstance(unmatched, bool):
        raise MotifError(f"{where}.unmatched: expected a number, got {unmatched!r}")
    return Table(goal, tuple(rules), float(unmatched))


def caption_utilities(table: Table, captions: list[tuple[str, str]]) -> np.ndarray:
    """(N, 2) utilities of the pair members; each distinct caption is scored once."""
    memo: dict[str, float] = {}
    out = np.empty((len(captions), 2), np.float64)
    for i, pair in enumerate(captions):
        for j, caption in enumerate(pair):
            if caption not in memo:
                memo[caption] = table.utility(caption)
            out[i, j] = memo[caption]
    return out


def default_name(judge: str | Path | None, goal: str, soft: float = 0.0) -> str:
    """``rules-<judge file stem>_<goal>[_soft<T>]``, e.g. ``rules-nethack_gold`` (see `naming.rules_annotator`)."""
    return rules_annotator(judge, goal, soft)


def annotate_rules(
    ds, table: Table, name: str, options=None, block: int = 65536, shows: str = "captions", soft: float = 0.0
):
    """Label this chunk's pairs into ``preference/<name>.npy``. Instant and deterministic, so every
    row of the chunk is (re)written: nothing stays unknown. ``shows`` picks the texts the rules read
    (`runner.pair_texts`): captions as in Motif, transition texts, or ``now`` (``now: "..."``).
    ``soft`` > 0 also writes P(first) = sigmoid(utility difference / soft), as an LLM's log-probabilities
    would: hard labels say a descent beats an opened door as much as a door beats a blank caption."""
    utilities = lambda part: caption_utilities(table, pair_texts(ds, part, shows))  # noqa: E731
    return label_every_row(ds, name, options, utilities, block, soft=soft)
