"""`motif train-reward DATASET --skills FILE --out DIR` (MaestroMotif): one reward model per skill.

Each skill's model learns the labels its ``reward`` entry names (``preference/<annotator>.npy``) with the
ordinary trainer, into ``DIR/<skill>/`` (a normal reward run: ``motif_jax.reward.load`` reads it). Once
every skill is trained, ``DIR/skills.json`` records their order (the skill ids) and quantiles, which is
what ``motif_jax.reward.load_skills`` stacks for the learner. A rerun skips the skills already trained
and resumes an interrupted one from its last epoch checkpoint.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

from motif_jax.annotate.naming import reward_annotator
from motif_jax.checkpoint import Checkpointer
from motif_jax.data import open_dataset
from motif_jax.errors import MotifError, make_dir
from motif_jax.files import write_json_atomic
from motif_jax.reward.checkpoints import saved_model
from motif_jax.reward.pairs import StatFeatures, dataset_fingerprint
from motif_jax.reward.skills import SKILLS_FILE
from motif_jax.reward.state import CHECKPOINT_DIR
from motif_jax.reward.train import TrainConfig, _comparable, train_reward
from motif_jax.skills.spec import load_skills

SKILL_DEFAULTS = {"model": {"features": 1}}  # MaestroMotif's reward models read the depth change too


def skill_labels(skill_set, ds, skills_path: str | Path, template: str | None = None) -> dict[str, str]:
    """skill -> the annotator whose labels it learns (the skills file's ``reward``, or ``template`` with
    ``{skill}`` filled in, e.g. an LLM's ``<model>_{skill}_default-transitions``); every label file must be
    there before any training."""
    if template is not None and "{skill}" not in template:
        raise MotifError(
            f"--labels {template!r}: the annotator name needs {{skill}}, e.g. MODEL_{{skill}}_default-transitions"
        )
    labels = {
        name: template.replace("{skill}", name) if template else reward_annotator(name, skill_set.skills[name].reward)
        for name in skill_set.names
    }
    have = set(ds.annotators)
    for skill, annotator in labels.items():
        if annotator not in have:
            raise MotifError(
                f"skill {skill!r}: no labels {Path(ds.path) / 'preference' / (annotator + '.npy')} "
                f"(its reward reads {skill_set.skills[skill].reward}); run `motif annotate {ds.path} "
                f"--skills {skills_path}` first"
            )
    return labels


def already_trained(run_dir: Path, ds, annotator: str, config: TrainConfig) -> bool:
    """Whether ``run_dir``'s newest checkpoint finished ``config.epochs`` on these labels with these settings
    (anything else goes to the trainer, which resumes it or says why it cannot)."""
    directory = run_dir / CHECKPOINT_DIR
    if not directory.is_dir():
        return False
    try:
        with Checkpointer(directory, async_save=False, read_only=True) as ckpt:
            step = ckpt.latest_step()
            if step is None:
                return False
            meta = ckpt.restore_meta(step)
    except Exception:  # a damaged checkpoint: the trainer sets it aside and resumes from an older one
        return False
    features = StatFeatures(ds, config.model.features) if config.model.features else None
    return (
        int(meta.get("epoch", 0)) >= config.epochs
        and meta.get("annotator") == annotator
        and meta.get("dataset_fingerprint") == dataset_fingerprint(ds, annotator, features=features)
        and _comparable(meta.get("config", {})) == _comparable(dataclasses.asdict(config))
        and saved_model(meta) == config.model
    )


def train_skill_rewards(
    dataset: str | Path,
    skills_path: str | Path,
    out_dir: str | Path,
    config: TrainConfig,
    *,
    devices=None,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
    labels: str | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Train every skill's reward model in the skills file's order; returns each skill's per-epoch metrics
    of this call (empty for a skill already trained). Every process of a multi-host job calls this."""
    if jax.process_index() != 0:
        progress, log = False, None
    config.validate()
    skill_set = load_skills(skills_path)
    ds = open_dataset(dataset)
    labels = skill_labels(skill_set, ds, skills_path, labels)
    out_dir = Path(out_dir)
    make_dir(out_dir)
    if jax.process_index() == 0:
        (out_dir / SKILLS_FILE).unlink(missing_ok=True)  # written again once every skill is trained
    histories = {}
    for i, (skill, annotator) in enumerate(labels.items()):
        run_dir = out_dir / skill
        where = f"skill {i + 1}/{len(labels)} {skill}"
        if already_trained(run_dir, ds, annotator, config):
            if log:
                log(f"{where}: already trained ({run_dir}); skipped")
            histories[skill] = []
            continue
        if log:
            log(f"{where}: training on labels {annotator!r} -> {run_dir}")
        histories[skill] = train_reward(
            dataset,
            annotator,
            run_dir,
            config,
            resume=True,
            devices=devices,
            progress=progress,
            log=(lambda line, skill=skill: log(f"[{skill}] {line}")) if log else None,
            title=f"{skill} reward model",
        )
    if jax.process_index() == 0:
        write_json_atomic(
            out_dir / SKILLS_FILE,
            {
                "skills": list(skill_set.names),
                "quantiles": {name: skill_set.skills[name].quantile for name in skill_set.names},
                "skills_file": str(Path(skill_set.path).absolute()),
                "annotators": labels,
                "dataset": str(Path(ds.path).absolute()),
            },
        )
    return histories
