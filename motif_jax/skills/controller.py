"""The skill controller: per env, which skill is active, decided by a policy over skills (call-and-return).

It is an observer of the one env loop, so it sees every batch before the policy does. For each env row:
at an episode start it clears the policy's memory and asks the policy for a skill among those whose
initiation holds; otherwise, when the active skill's termination holds, it asks for the next one. The
agent's recurrent state is not touched at a switch. It writes, aligned with ``batch.env_ids``:

- ``batch.obs["skill"]``: int32 skill ids (file order of the skills file), the network's skill input;
- ``batch.obs["skill_depth_change"]``: float32, depth now minus depth when the skill that took the last
  action began (measured before a switch; 0 at an episode's start), the per-skill reward model's input.

The last observation of an episode (``ended``) keeps the active skill: the game may be over and its
bottom line zeroed, so no decision is taken on it.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import numpy as np
from nle import nethack

from motif_jax.envs.loop import EnvStep, LoopObserver
from motif_jax.errors import MotifError
from motif_jax.skills.code import load_code
from motif_jax.skills.spec import SkillSet
from motif_jax.skills.view import Started, View, make_views

VIEW_KEYS = ("blstats", "message", "glyphs", "inv_strs")
NO_SKILL = -1


class SkillController(LoopObserver):
    """Runs ``policy_path`` over the skills of ``skillset`` for ``num_envs`` envs; see the module doc."""

    def __init__(self, skillset: SkillSet, policy_path: str | Path, num_envs: int):
        self.skillset = skillset
        skills, self.policy = load_code(skillset, policy_path)
        self._codes = [skills[name] for name in skillset.names]
        # Per env state as Python lists: the loop below touches each item a few times per step, and a
        # list item costs a tenth of a numpy scalar's read or write.
        self.active: list[int] = [NO_SKILL] * num_envs
        self.start_view: list[View | None] = [None] * num_envs
        self.skill_steps: list[int] = [0] * num_envs  # agent steps since the active skill began
        self.memory: list[dict] = [{} for _ in range(num_envs)]
        self.episode_switches: list[int] = [0] * num_envs
        self.last_depth_change: list[float] = [0.0] * num_envs
        self._lock = threading.Lock()  # the metrics may be drained from another thread
        self._reset_metrics()

    @property
    def skill_names(self) -> tuple[str, ...]:
        return self.skillset.names

    @property
    def num_skills(self) -> int:
        return len(self.skillset.names)

    def observe(self, batch: EnvStep) -> None:
        views = make_views({key: batch.obs[key] for key in VIEW_KEYS if key in batch.obs}, lazy_sight=True)
        n = len(batch.env_ids)
        ended_rows, first_rows = batch.ended.tolist(), batch.first.tolist()
        skill, depth_change = [0] * n, [0.0] * n
        with self._lock:
            steps = self._steps
            for i, (env, view) in enumerate(zip(batch.env_ids.tolist(), views)):
                ended = ended_rows[i]
                starts = first_rows[i] or self.active[env] == NO_SKILL
                # Measured against the skill that acted, before any switch: the step on which the
                # descender arrives one level down shows +1 to its reward model, not the next skill's 0.
                if not starts and view.depth > 0:  # 0: the game is over and the bottom line reads zero
                    self.last_depth_change[env] = view.depth - self.start_view[env].depth
                depth_change[i] = 0.0 if starts else self.last_depth_change[env]
                if starts:
                    if self.active[env] != NO_SKILL:
                        self._finish_activation(env)
                    self.memory[env].clear()
                    self.episode_switches[env] = 0
                    self._activate(env, view)
                elif not ended and self._terminates(env, view):
                    self._finish_activation(env)
                    self.episode_switches[env] += 1
                    self._activate(env, view)
                active = self.active[env]
                skill[i] = active
                self.skill_steps[env] += 1
                steps[active] += 1
                if ended:
                    self._finish_activation(env)
                    self._episodes += 1
                    self._switches += self.episode_switches[env]
                    self.active[env] = NO_SKILL
        batch.obs["skill"] = np.array(skill, np.int32)
        batch.obs["skill_depth_change"] = np.array(depth_change, np.float32)

    def drain_metrics(self) -> dict[str, float]:
        """Per skill since the last drain: ``skill/<name>/share`` of the steps, ``/steps``, ``/activations``,
        ``/mean_duration`` (steps, over finished activations; NaN if none) and ``skill/switches_per_episode``
        (over finished episodes; NaN if none)."""
        with self._lock:
            steps, activations = np.asarray(self._steps, np.int64), self._activations
            finished, finished_steps = self._finished, self._finished_steps
            episodes, switches = self._episodes, self._switches
            self._reset_metrics()
        total = steps.sum()
        metrics: dict[str, float] = {}
        for k, name in enumerate(self.skill_names):
            metrics[f"skill/{name}/share"] = float(steps[k] / total) if total else float("nan")
            metrics[f"skill/{name}/steps"] = int(steps[k])
            metrics[f"skill/{name}/activations"] = int(activations[k])
            metrics[f"skill/{name}/mean_duration"] = (
                float(finished_steps[k] / finished[k]) if finished[k] else float("nan")
            )
        metrics["skill/switches_per_episode"] = switches / episodes if episodes else float("nan")
        return metrics

    # ----------------------------------------------------------------------------- per env
    def _terminates(self, env: int, view: View) -> bool:
        start = self.start_view[env]
        since = Started(view.turn - start.turn, self.skill_steps[env], start)
        return self._codes[self.active[env]].termination(view, since)

    def _activate(self, env: int, view: View) -> None:
        available = tuple(code.name for code in self._codes if code.initiation(view))
        if not available:
            raise MotifError(
                f"{self.policy.where}: no skill's initiation holds (depth {view.depth}, turn {view.turn}); "
                f"skills: {', '.join(self.skill_names)}"
            )
        view = dataclasses.replace(view, available=available, in_sight=frozenset(view.in_sight))  # kept: frozen
        k = self.skill_names.index(self.policy.choose(view, self.memory[env]))
        self.active[env], self.start_view[env], self.skill_steps[env] = k, view, 0
        self.last_depth_change[env] = 0.0
        self._activations[k] += 1

    def _finish_activation(self, env: int) -> None:
        k = self.active[env]
        self._finished[k] += 1
        self._finished_steps[k] += self.skill_steps[env]

    def _reset_metrics(self) -> None:
        k = self.num_skills
        self._steps = [0] * k
        self._activations = np.zeros(k, np.int64)
        self._finished = np.zeros(k, np.int64)
        self._finished_steps = np.zeros(k, np.int64)
        self._episodes = 0
        self._switches = 0


class FixedSkill(LoopObserver):
    """One skill for whole episodes (``motif evaluate --skill NAME``): no code runs, nothing switches.

    Writes the same ``skill`` and ``skill_depth_change`` inputs as ``SkillController``, the depth change
    counted from the episode's start.
    """

    def __init__(self, skillset: SkillSet, name: str, num_envs: int):
        if name not in skillset.names:
            raise MotifError(f"{skillset.path}: no skill {name!r}; skills: {', '.join(skillset.names)}")
        self.skillset, self.skill = skillset, skillset.names.index(name)
        self.start_depth = np.zeros(num_envs, np.float32)

    def observe(self, batch: EnvStep) -> None:
        depth = batch.obs["blstats"][:, nethack.NLE_BL_DEPTH].astype(np.float32)
        starts = batch.first.astype(bool)
        self.start_depth[batch.env_ids[starts]] = depth[starts]
        change = np.where(depth > 0, depth - self.start_depth[batch.env_ids], 0.0).astype(np.float32)
        batch.obs["skill"] = np.full(len(batch.env_ids), self.skill, np.int32)
        batch.obs["skill_depth_change"] = change
