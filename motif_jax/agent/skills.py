"""MaestroMotif in the trainer: the skill inputs a batch carries and the per-skill metrics of a log line.

The skill controllers (one per actor pool, ``motif_jax.skills.controller``) write each observation's
active skill and the depth change since that skill began; the network reads the skill, the per-skill
reward models read both (``learner.intrinsic_inputs``).
"""

from __future__ import annotations

import numpy as np

from motif_jax.skills.controller import SkillController
from motif_jax.skills.spec import SkillSet

SKILL_OBS_SPEC = {"skill": ((), np.dtype(np.int32)), "skill_depth_change": ((), np.dtype(np.float32))}


def make_controllers(skills: SkillSet, pools) -> list[SkillController]:
    """One controller per actor pool, running the skills file's training policy over skills."""
    return [SkillController(skills, skills.training_policy, pool.num_envs) for pool in pools]


def skill_metrics(skills: SkillSet, controllers, learner_record: dict) -> dict:
    """The controllers' metrics (mean over actor threads) and the learner's per-skill rewards by name."""
    drained = [c.drain_metrics() for c in controllers]
    out = {k: float(np.nanmean([d[k] for d in drained])) for k in drained[0]} if drained else {}
    for k, name in enumerate(skills.names):
        value = learner_record.pop(f"skill{k}_reward_intrinsic", None)
        if value is not None:
            out[f"skill/{name}/reward_intrinsic"] = value
    return {k: v for k, v in out.items() if np.isfinite(v)}
