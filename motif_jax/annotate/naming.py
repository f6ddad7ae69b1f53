"""Annotator names: which ``preference/<name>.npy`` a labelling run writes, in one place.

Reward training reads labels by these names, so the stage that writes them and the stages that read
them (reward training per skill, experiment grids) call the same functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

DEFAULT_SKILL_PROMPT = "default-transitions"


def llm_annotator(model: str, goal: str, template: str, mode: str = "generate", both_orders: bool = False) -> str:
    """Paper-style ``<model>_<goal>_<template>``; logprob and both-order labels get a suffix so they
    never land in (and resume) a file of another kind."""
    name = f"{model}_{goal}_{template}"
    return name + ("_logprob" if mode == "logprob" else "") + ("_both" if both_orders else "")


def rules_annotator(judge: str | Path | None, goal: str, soft: float = 0.0) -> str:
    """``rules-<judge file stem>_<goal>[_soft<T>]``, e.g. ``rules-nethack_gold`` or ``rules-nethack_gold_soft1``."""
    from motif_jax.annotate.rules import resolve_judge_path

    return f"rules-{resolve_judge_path(judge).stem}_{goal}" + (f"_soft{soft:g}" if soft > 0 else "")


def skill_annotator(
    skill: str,
    backend: str = "rules",
    *,
    judge: str | Path | None = None,
    model: str | None = None,
    template: str = DEFAULT_SKILL_PROMPT,
    mode: str = "generate",
    both_orders: bool = False,
    soft: float = 0.0,
) -> str:
    """The annotator `motif annotate --skills` writes for ``skill``: the usual name with the skill as the
    goal, e.g. ``rules-nethack_descender`` or ``<model>_descender_default-transitions``.

    ``model`` is the backend's short model name and ``template`` the template's name (LLM backends);
    ``soft`` the rules judge's soft-label temperature."""
    if backend == "rules":
        return rules_annotator(judge, skill, soft)
    if not model:
        raise ValueError(f"skill_annotator: backend {backend!r} needs the model name")
    return llm_annotator(model, skill, template, mode, both_orders)


def reward_annotator(skill: str, reward: Mapping) -> str:
    """The labels a skill's reward model trains on, from the skills file's ``reward`` entry: the named
    annotator (``{annotator: NAME}``), or the rules judge's labels for the skill (``{judge: J, goal: G}``)."""
    if reward.get("annotator"):
        return str(reward["annotator"])
    return skill_annotator(skill, "rules", judge=reward.get("judge"))
