"""Run a fixed number of evaluation episodes through the actor pool and summarise them.

Reproducibility: the pool is stepped in lock-step (``batch_size == num_envs``), replies are put in
env-id order, and env ``i`` plays exactly ``quota[i]`` counted episodes (its later episodes are
ignored). Which episodes count therefore never depends on which worker process happens to be
faster, and the same checkpoint, seed and env count give the same report.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from motif_jax.envs.loop import EnvLoop, EnvStep, LoopObserver
from motif_jax.evaluate import stats

# info key (pool contract) -> episode field
_EPISODE_INFO = {
    "return": "episode_return",
    "length": "episode_length",
    "score": "episode_score",
    "max_dlvl": "episode_max_dlvl",
    "xlvl": "episode_xlvl",
    "gold": "episode_gold",
    "explored": "episode_explored",
    "success": "episode_success",
}
NUMERIC_FIELDS = ("return", "length", "score", "max_dlvl", "xlvl", "gold", "explored")


def episode_quotas(episodes: int, num_envs: int) -> list[int]:
    """Episodes each env must finish: as equal as possible, the first envs taking the remainder."""
    if episodes < 1 or num_envs < 1:
        raise ValueError(f"need episodes >= 1 and num_envs >= 1, got {episodes} and {num_envs}")
    base, extra = divmod(episodes, num_envs)
    return [base + (i < extra) for i in range(num_envs)]


def global_episode_index(env_id: int, nth: int, num_envs: int) -> int:
    """Env ``i``'s ``nth`` counted episode is episode ``nth * num_envs + i`` of the report."""
    return nth * num_envs + env_id


@dataclasses.dataclass(frozen=True)
class Episode:
    index: int
    env_id: int
    values: dict[str, Any]  # return, length and, for NLE tasks, score, max_dlvl, xlvl, gold, success, end_reason


def episode_from_info(info: dict[str, np.ndarray], row: int, end_reasons: tuple[str, ...]) -> dict[str, Any]:
    """The finished episode's statistics from row ``row`` of a pool reply's info."""
    values: dict[str, Any] = {}
    for field, key in _EPISODE_INFO.items():
        if key in info:
            value = info[key][row]
            values[field] = bool(value) if field == "success" else value.item()
    if "episode_end_reason" in info:
        code = int(info["episode_end_reason"][row])
        values["end_reason"] = end_reasons[code] if 0 <= code < len(end_reasons) else f"code {code}"
    return values


class _Quotas(LoopObserver):
    """Counts env ``i``'s first ``quotas[i]`` finished episodes, how often each non-empty caption was
    seen during them (``decode`` turns a batch of NLE messages into strings), the actions taken, and the
    actions taken where a caption starting with one of ``watched`` was shown."""

    def __init__(self, quotas, end_reasons, decode, on_episode, num_actions: int, watched: tuple[str, ...] = ()):
        self.quota, self.finished = np.asarray(quotas), np.zeros(len(quotas), np.int64)
        self.end_reasons, self.decode, self.on_episode = end_reasons, decode, on_episode
        self.episodes: list[Episode] = []
        self.captions: Counter = Counter()
        self.actions = np.zeros(num_actions, np.int64)
        self.watched = {text: np.zeros(num_actions, np.int64) for text in watched}
        self._shown: tuple[np.ndarray, list[str]] = (np.zeros(0, bool), [])

    def observe(self, b: EnvStep) -> None:
        counting = self.finished[b.env_ids] < self.quota[b.env_ids]
        shown = list(np.asarray(self.decode(b.obs["message"][counting]), dtype=object).reshape(-1))
        self._shown = (counting & ~b.ended, [c for c, ended in zip(shown, b.ended[counting]) if not ended])
        for caption in shown:
            if caption:
                self.captions[caption] += 1
        for row in np.flatnonzero(b.ended & counting):
            env = int(b.env_ids[row])
            episode = Episode(
                index=global_episode_index(env, int(self.finished[env]), len(self.quota)),
                env_id=env,
                values=episode_from_info(b.info, row, self.end_reasons),
            )
            self.finished[env] += 1
            self.episodes.append(episode)
            if self.on_episode is not None:
                self.on_episode(episode)

    def acted(self, b: EnvStep, actions, aux) -> None:
        rows, captions = self._shown  # rows of counted episodes that get an action, and their captions
        taken = np.asarray(actions)[rows]
        np.add.at(self.actions, taken, 1)
        for text, counts in self.watched.items():
            for action, caption in zip(taken.tolist(), captions):
                if caption.startswith(text):
                    counts[action] += 1


def summarize(
    episodes: list[Episode],
    captions: Counter,
    end_reasons: tuple[str, ...] = (),
    top_k: int = 10,
    actions: dict[str, Any] | None = None,
) -> dict:
    """The JSON report: headline means (``mean_return``, ``ci95``, ``success_rate``, ...), details, per episode;
    ``actions``: the action shares (:func:`stats.action_shares`), reported as given."""
    if not episodes:
        raise ValueError("no episodes to summarise")
    values = [e.values for e in episodes]
    returns = [v["return"] for v in values]
    mean_return, ci95 = stats.mean_ci95(returns)
    report: dict[str, Any] = {"episodes": len(episodes), "mean_return": mean_return, "ci95": ci95}
    report["success_rate"] = stats.success_rate(v.get("success", False) for v in values)
    details = {}
    for field in NUMERIC_FIELDS:
        if all(field in v for v in values):
            details[field] = stats.describe([v[field] for v in values])
            if field != "return":
                report["episode_length" if field == "length" else field] = details[field]["mean"]
    report["end_reasons"] = stats.end_reason_counts((v.get("end_reason", "none") for v in values), end_reasons)
    report["top_captions"] = [[caption, count] for caption, count in stats.top_captions(captions, top_k)]
    if actions is not None:
        report["actions"] = actions
    report["details"] = details
    report["per_episode"] = [{"index": e.index, "env_id": e.env_id, **e.values} for e in episodes]
    return report


class RandomPolicy:
    """Uniformly random actions: the baseline every trained agent should beat (``--policy random``)."""

    obs_keys = ("message",)

    def __init__(self, num_actions: int, task: str):
        self.num_actions = num_actions
        self.task = task
        self.config: dict = {"policy": "random"}

    def initial_state(self, batch_size: int):
        return None

    def act(self, obs, state, done, greedy, key):
        import jax

        batch = len(done)
        return np.asarray(jax.random.randint(key, (batch,), 0, self.num_actions)), state


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    task: str
    episodes: int = 20
    seed: int = 0
    greedy: bool = False
    num_envs: int = 4
    num_workers: int | None = None
    max_episode_steps: int = 5000
    record_dir: str | None = None
    record_episodes: int = 1
    top_captions: int = 10
    # captions (their beginning) whose steps get their own action shares: what the agent does when it sees them
    caption_actions: tuple[str, ...] = ()
    # MaestroMotif: a skills file, and who picks the skill: the policy over skills of `task` in that
    # file, or `skill`, one skill for whole episodes
    skills: str | None = None
    skill: str | None = None
    env_options: dict | None = None  # NLE character, extra actions, stairs captions: as the agent trained (make_pool)


def evaluate(policy, settings: EvalSettings, on_episode: Callable[[Episode], None] | None = None) -> dict:
    """Play ``settings.episodes`` episodes of ``settings.task`` with ``policy`` and return the report.

    With ``record_dir``, NLE's ttyrecs of the first ``record_episodes`` episodes (report order) are
    kept there as ``episode-<index>.ttyrec3.bz2`` and listed under ``"recordings"``.
    """
    import jax

    from motif_jax.agent.config import TrainConfig
    from motif_jax.data import decode_message
    from motif_jax.envs.pool import make_pool
    from motif_jax.envs.pool_worker import TaskEnvFactory, episode_seed
    from motif_jax.envs.tasks import END_REASONS, action_names
    from motif_jax.evaluate.intrinsic import IntrinsicCaptions, intrinsic_scorer
    from motif_jax.evaluate.record import RecordingTaskFactory, collect_recordings

    num_envs = max(1, min(settings.num_envs, settings.episodes))
    action_labels = action_names(bool((settings.env_options or {}).get("extra_actions")))
    quotas = episode_quotas(settings.episodes, num_envs)
    tally = _Quotas(quotas, END_REASONS, decode_message, on_episode, len(action_labels), settings.caption_actions)
    skills = skill_observer(settings, num_envs)
    paid = []
    config = getattr(policy, "config", None)
    scorer = intrinsic_scorer(config) if isinstance(config, TrainConfig) else None
    if scorer is not None:
        names = skills[0].skillset.names if skills else ()
        paid = [IntrinsicCaptions(scorer, num_envs, decode_message, names)]
    key, state = jax.random.key(settings.seed), policy.initial_state(num_envs)

    def act(b: EnvStep):
        nonlocal key, state
        key, act_key = jax.random.split(key)
        actions, state = policy.act(b.obs, state, b.first, settings.greedy, act_key)
        return actions, None

    recording = functools.partial(RecordingTaskFactory, root=settings.record_dir)
    pool = make_pool(
        settings.task,
        num_envs,
        num_envs,  # lock-step: see the module doc
        settings.num_workers,
        settings.seed,
        _pool_obs_keys(policy, with_view=bool(skills)),
        max_episode_steps=settings.max_episode_steps,
        env_factory=recording if settings.record_dir else TaskEnvFactory,
        env_options=settings.env_options,
    )
    try:
        done = lambda: not np.any(tally.finished < tally.quota)  # noqa: E731
        EnvLoop(pool, [*skills, *paid, tally], in_env_order=True).run(act, done)
        if settings.record_dir:
            # one more step resets the envs whose last counted episode just ended, which closes its ttyrec
            pool.step(np.zeros(num_envs, np.int64), np.arange(num_envs, dtype=np.int32))
    finally:
        pool.close()
    episodes = sorted(tally.episodes, key=lambda e: e.index)
    for e in episodes if paid else ():  # the captions that paid most, per episode
        e.values["top_intrinsic"] = paid[0].episodes.get((e.env_id, (e.index - e.env_id) // num_envs), [])
    report = {"task": settings.task, "seed": settings.seed, "greedy": settings.greedy, "num_envs": num_envs}
    actions = {
        "all": stats.action_shares(tally.actions, action_labels),
        "after_caption": {text: stats.action_shares(n, action_labels) for text, n in tally.watched.items()},
    }
    report.update(summarize(episodes, tally.captions, END_REASONS, settings.top_captions, actions))
    if skills:
        chooser = f"the policy over skills of {settings.task}"
        if settings.skill:
            chooser = f"skill {settings.skill}"
        elif settings.task not in skills[0].skillset.tasks:
            chooser = f"the training policy over skills (the skills file has none for {settings.task})"
        report["skills"] = {"file": settings.skills, "chosen_by": chooser}
        if hasattr(skills[0], "drain_metrics"):
            report["skills"]["metrics"] = skills[0].drain_metrics()
    if settings.record_dir:
        wanted = [
            (e.index, episode_seed(settings.seed, e.env_id, (e.index - e.env_id) // num_envs))
            for e in episodes[: settings.record_episodes]
        ]
        report["recordings"] = [str(p) for p in collect_recordings(settings.record_dir, wanted)]
    return report


def skill_observer(settings: EvalSettings, num_envs: int) -> list[LoopObserver]:
    """[] without skills; else the observer that writes each env's skill: one fixed skill or the task's policy."""
    if not settings.skills:
        return []
    from motif_jax.skills.controller import FixedSkill, SkillController
    from motif_jax.skills.spec import load_skills

    skillset = load_skills(settings.skills)
    if settings.skill:
        return [FixedSkill(skillset, settings.skill, num_envs)]
    task = skillset.tasks.get(settings.task)  # a task without a policy: the one the skills trained under
    return [SkillController(skillset, task.policy if task else skillset.training_policy, num_envs)]


def _pool_obs_keys(policy, with_view: bool = False) -> tuple[str, ...]:
    """The policy's NLE keys plus "message" (for the caption counts; "message_count" always comes with
    it) and, for skills, what their view reads; the skill inputs come from the skill observer, not the env."""
    skip = ("message_count", "skill", "skill_depth_change")
    keys = [k for k in getattr(policy, "obs_keys", ()) if k not in skip]
    for key in ("message", *(("blstats", "glyphs") if with_view else ())):
        if key not in keys:
            keys.append(key)
    return tuple(keys)
