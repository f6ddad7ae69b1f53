"""`motif annotate DATASET --skills FILE` (MaestroMotif): one label file per skill, one engine for all.

Each skill is labelled as one goal: an LLM reads the skill's description as the goal text and, when the
dataset has transitions, the transitions form of the prompt; the rules backend uses the judge table the
skill's ``reward`` names (``{judge: J, goal: G}``), or else the ``--judge`` file's table named like the skill,
on transition texts (on ``now: "<caption>"`` for datasets without transitions). Labels go to
``preference/<annotator>.npy`` named by `naming.skill_annotator`; every run is resumable as a single-goal one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from motif_jax.annotate.asking import Asker
from motif_jax.annotate.naming import skill_annotator
from motif_jax.annotate.prompts import PromptTemplate, load_template, transition_wording
from motif_jax.annotate.rules import Table, annotate_rules, load_table, resolve_judge_path
from motif_jax.annotate.runner import RunOptions, RunStats, annotate, check_settings
from motif_jax.config import load_yaml
from motif_jax.errors import MotifError


def load_skill_set(path: str | Path):
    """The skills file (`motif_jax.skills.spec.load_skills`)."""
    from motif_jax.skills.spec import load_skills

    return load_skills(path)


def rules_text(ds) -> str:
    """What the rules read in a skill run: transition texts, or ``now: "<caption>"`` without transitions."""
    return "transitions" if ds.has_transitions else "now"


def skill_prompt(prompt: str | Path, ds) -> str | Path:
    """The template of a skill run: a built-in wording's transitions form when the dataset has transitions."""
    return transition_wording(prompt) if ds.has_transitions else prompt


@dataclasses.dataclass(frozen=True)
class RulesJob:
    skill: str
    name: str
    table: Table
    settings: dict


def rules_jobs(skill_set, ds, judge: str | None, soft: float = 0.0) -> tuple[list[RulesJob], list[str]]:
    """The rules job of each skill, and a note for each skill without a table (labelled by others);
    ``soft`` > 0: soft labels too, under names ending ``_soft<T>``."""
    jobs, notes = [], []
    for skill in skill_set.names:
        reward = skill_set.skills[skill].reward
        skill_judge, goal = reward.get("judge") or judge, reward.get("goal") or skill
        path = resolve_judge_path(skill_judge)
        goals = load_yaml(path).get("goals") or {}
        if "judge" not in reward and goal not in goals:
            notes.append(f"skill {skill}: no table {goal!r} in {path.name} (its reward reads {reward}); skipped")
            continue
        settings = {"backend": "rules", "judge": path.name, "goal": goal, "skill": skill, "text": rules_text(ds)}
        settings |= {"soft": soft} if soft else {}
        name = skill_annotator(skill, "rules", judge=skill_judge, soft=soft)
        jobs.append(RulesJob(skill, name, load_table(path, goal), settings))
    return jobs, notes


def annotate_skills_rules(
    ds, skill_set, judge: str | None, options: RunOptions, report: Callable = print, soft: float = 0.0
):
    """Label every skill that has a rules table (with soft labels when ``soft`` > 0); returns [(skill, stats)]."""
    jobs, notes = rules_jobs(skill_set, ds, judge, soft)
    for note in notes:
        report(note)
    done = []
    for i, job in enumerate(jobs):
        report(f"skill {i + 1}/{len(jobs)} {job.skill}: annotator {job.name}")
        check_settings(ds.sidecar_path(job.name, ".json", for_writing=True), job.settings, overwrite=True)
        shows = job.settings["text"]
        done.append((job.skill, annotate_rules(ds, job.table, job.name, options, shows=shows, soft=soft)))
    return done


def skill_templates(skill_set, ds, prompt: str | Path) -> dict[str, PromptTemplate]:
    """Each skill's template: the prompt family for the dataset, its description as the goal text."""
    chosen = skill_prompt(prompt, ds)
    templates = {}
    for skill in skill_set.names:
        description = skill_set.skills[skill].description
        if not description.strip():
            raise MotifError(f"{skill_set.path}: skills.{skill}.description is empty; it is the annotation goal")
        templates[skill] = load_template(chosen, skill, goal_text=description)
    return templates


def annotate_skills_llm(
    ds,
    templates: dict[str, PromptTemplate],
    backend,
    base_settings: dict,
    mode: str,
    both_orders: bool,
    tie_band: float,
    options: RunOptions,
    report: Callable = print,
) -> list[tuple[str, RunStats]]:
    """Label every skill with one backend (built once: with vLLM its prefix cache serves every skill)."""
    done = []
    for i, (skill, template) in enumerate(templates.items()):
        name = skill_annotator(
            skill,
            base_settings["backend"],
            model=backend.model_name,
            template=template.name,
            mode=mode,
            both_orders=both_orders,
        )
        report(f"skill {i + 1}/{len(templates)} {skill}: annotator {name}")
        settings = {
            **base_settings,
            "goal": skill,
            "skill": skill,
            "template": template.name,
            "template_hash": template.hash,
            "text": template.shows,
        }
        asker = Asker(backend, template, mode, both_orders, tie_band)
        done.append((skill, annotate(ds, asker, name, settings, dataclasses.replace(options))))
    return done
