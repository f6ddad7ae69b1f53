"""Which captions paid an agent most: per evaluation episode, the captions with the largest intrinsic
reward summed over the episode (per skill with MaestroMotif's per-skill models), as the original Motif's
visualisation showed them.

Each observation after an episode's first is scored as training scored it: its caption, the times it was
seen this episode, and with skills the skill that took the action leading to it and the depth change since
that skill began.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import jax
import numpy as np

from motif_jax.envs.loop import EnvStep, LoopObserver


def intrinsic_scorer(config):
    """``(obs) -> r_int`` of one batch (numpy), from the agent's own reward settings; None without one."""
    rc = config.reward
    if not rc.llm_coef or not rc.path or not Path(rc.path).exists():
        return None
    from motif_jax import parallel
    from motif_jax.agent.trainer import load_intrinsic

    params, fn = load_intrinsic(config, parallel.make_mesh(jax.devices()[:1]))
    score = jax.jit(fn)

    def scorer(x: dict) -> np.ndarray:
        return np.asarray(score(params, x))

    return scorer


class IntrinsicCaptions(LoopObserver):
    """Sums each caption's intrinsic reward per env and episode; ``episodes[(env, nth)]`` holds the top ones."""

    def __init__(self, scorer, num_envs: int, decode, skill_names=(), top_k: int = 5):
        self.scorer, self.decode, self.skill_names, self.top_k = scorer, decode, tuple(skill_names), top_k
        self.current = [Counter() for _ in range(num_envs)]
        self.last_skill = np.zeros(num_envs, np.int32)
        self.finished = np.zeros(num_envs, np.int64)
        self.episodes: dict[tuple[int, int], object] = {}

    def observe(self, b: EnvStep) -> None:
        x = {"message": b.obs["message"], "count": b.obs["message_count"]}
        if self.skill_names:
            x["skill"], x["depth_change"] = self.last_skill[b.env_ids], b.obs["skill_depth_change"]
        rewards = self.scorer(x)
        captions = self.decode(b.obs["message"])
        for row, env in enumerate(b.env_ids.tolist()):
            if not b.first[row] and rewards[row] > 0 and captions[row]:
                key = (int(x["skill"][row]) if self.skill_names else 0, captions[row])
                self.current[env][key] += float(rewards[row])
            if b.ended[row]:
                self.episodes[(env, int(self.finished[env]))] = self._top(self.current[env])
                self.finished[env] += 1
                self.current[env] = Counter()
        if self.skill_names:
            self.last_skill[b.env_ids] = b.obs["skill"]

    def _top(self, sums: Counter):
        """[[caption, summed reward], ...] best first; with skills, one such list per skill that earned any."""
        if not self.skill_names:
            return [[caption, round(r, 4)] for (_, caption), r in sums.most_common(self.top_k)]
        by_skill = defaultdict(Counter)
        for (skill, caption), r in sums.items():
            by_skill[self.skill_names[skill]][caption] += r
        return {name: [[c, round(r, 4)] for c, r in s.most_common(self.top_k)] for name, s in by_skill.items()}
