"""`motif skills check`: how often candidate skill code decides as the reference code does.

Trajectories are played fresh, with random actions in the real NLE task, because a collected pairs
dataset holds short windows from random times (no whole episodes, so no ``since_start``) and no glyphs
(so no ``in_sight``). Every step is a full observation, turned into a View as in training.

The reference code (trusted, loaded in process) drives; the candidate (possibly LLM-written) answers the
very same calls, run in the sandbox in one child per file, and the answers are compared call by call:

- initiation of every skill at every step;
- termination of every skill at every step, as if each skill ran all the time: it starts at the episode
  start and starts again on the step where the *reference* termination holds (so both codes always see
  the same ``since_start``);
- each policy over skills (the training policy and every task), as the controller runs it: at the
  episode start and whenever the active skill's reference termination holds, with ``available`` from
  the reference initiations; the candidate keeps its own ``memory``, cleared at each episode start.

No decision is taken on the last observation of an episode (the controller takes none there either).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np

from motif_jax.envs.tasks import make_task_env
from motif_jax.errors import MotifError
from motif_jax.skills.code import PolicyCode, SkillCode, load_policy, load_skill_code
from motif_jax.skills.design.sandbox import Limits, Outcome, replay
from motif_jax.skills.spec import SkillSet
from motif_jax.skills.view import Started, View, make_view

OBS_KEYS = ("glyphs", "blstats", "message", "inv_strs")
TRAINING = "training_policy"
REPLAY_LIMITS = Limits(seconds=120.0)  # one child replays a whole file's calls


@dataclasses.dataclass(frozen=True)
class Episodes:
    """Recorded views: ``episodes[e]`` is the list of the views of episode e, in step order."""

    episodes: list[list[View]]
    task: str
    seed: int

    @property
    def steps(self) -> int:
        return sum(len(views) for views in self.episodes)


def record_episodes(task: str, episodes: int, seed: int, max_steps: int) -> Episodes:
    """``episodes`` games of ``task`` with uniformly random actions, each at most ``max_steps`` steps."""
    env = make_task_env(task, seed=seed, obs_keys=OBS_KEYS, max_episode_steps=max_steps)
    rng = np.random.default_rng(seed)
    recorded = []
    try:
        for _ in range(episodes):
            obs, _ = env.reset()
            views = [make_view(obs)]
            done = False
            while not done:
                obs, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
                views.append(make_view(obs))
                done = terminated or truncated
            recorded.append(views)
    finally:
        env.close()
    return Episodes(recorded, task, seed)


class ViewTable:
    """Views as the JSON the sandbox reads, each stored once and referred to by index."""

    def __init__(self):
        self.rows: list[dict] = []
        self._index: dict[int, int] = {}

    def add(self, view: View) -> int:
        key = id(view)
        if key not in self._index:
            self._index[key] = len(self.rows)
            self.rows.append(_plain_view(view))
        return self._index[key]


def _plain_view(view: View) -> dict:
    fields = {}
    for field in dataclasses.fields(view):
        value = getattr(view, field.name)
        fields[field.name] = (
            sorted(value) if isinstance(value, frozenset) else list(value) if isinstance(value, tuple) else value
        )
    return fields


@dataclasses.dataclass
class Trace:
    """One file's calls (for the sandbox) and the reference's answers to them."""

    kind: str  # "skill" or "policy"
    name: str
    path: Path
    calls: list[list] = dataclasses.field(default_factory=list)
    reference: list = dataclasses.field(default_factory=list)


def trace_skills(recorded: Episodes, reference: dict[str, SkillCode], table: ViewTable) -> dict[str, Trace]:
    """Initiation and termination calls of every skill at every step (see the module docstring)."""
    traces = {name: Trace("skill", name, code.path) for name, code in reference.items()}
    for views in recorded.episodes:
        start = {name: 0 for name in reference}
        for t, view in enumerate(views[:-1]):
            v = table.add(view)
            for name, code in reference.items():
                trace = traces[name]
                trace.calls.append(["initiation", v])
                trace.reference.append(code.initiation(view))
                if t == 0:
                    continue
                s = start[name]
                since = Started(view.turn - views[s].turn, t - s, views[s])
                trace.calls.append(["termination", v, table.add(views[s]), since.turns, since.steps])
                done = code.termination(view, since)
                trace.reference.append(done)
                if done:
                    start[name] = t
    return traces


def trace_policy(
    name: str, recorded: Episodes, skills: dict[str, SkillCode], policy: PolicyCode, table: ViewTable
) -> Trace:
    """The policy's calls as the controller makes them, with the reference skills and policy driving."""
    trace = Trace("policy", name, policy.path)
    for views in recorded.episodes:
        memory: dict = {}
        active, start = None, 0
        for t, view in enumerate(views[:-1]):
            if active is not None:
                since = Started(view.turn - views[start].turn, t - start, views[start])
                if not skills[active].termination(view, since):
                    continue
            available = tuple(n for n, code in skills.items() if code.initiation(view))
            asked = dataclasses.replace(view, available=available)
            trace.calls.append(["policy", table.add(asked), active is None])
            active, start = policy.choose(asked, memory), t
            trace.reference.append(active)
    return trace


@dataclasses.dataclass
class Agreement:
    """One function's comparison: decisions, agreements, and (reference, candidate) answer counts."""

    function: str  # "descender.initiation", "golden-exit.policy_over_skills", ...
    decisions: int = 0
    agree: int = 0
    errors: int = 0  # candidate calls that raised or answered a wrong type
    counts: Counter = dataclasses.field(default_factory=Counter)
    failed: str | None = None  # the whole file failed in the sandbox (did not load, timed out, refused)

    @property
    def rate(self) -> float | None:
        return self.agree / self.decisions if self.decisions and self.failed is None else None

    def as_dict(self) -> dict:
        return {
            "function": self.function,
            "decisions": self.decisions,
            "agree": self.agree,
            "rate": self.rate,
            "errors": self.errors,
            "counts": [{"reference": r, "candidate": c, "n": n} for (r, c), n in sorted(self.counts.items(), key=str)],
            "failed": self.failed,
        }


def compare(trace: Trace, outcome: Outcome) -> list[Agreement]:
    """Per function of ``trace``, how the candidate's answers (``outcome.results``) match the reference."""
    functions: dict[str, Agreement] = {}
    for call in trace.calls:
        function = f"{trace.name}.{_suffix(call)}"
        functions.setdefault(function, Agreement(function)).decisions += 1
    if not outcome.passed or outcome.results is None or len(outcome.results) != len(trace.calls):
        reason = outcome.reason if not outcome.passed else "the sandbox answered a wrong number of calls"
        for agreement in functions.values():
            agreement.failed = reason
        return list(functions.values())
    expected_type = bool if trace.kind == "skill" else str
    for call, ref, cand in zip(trace.calls, trace.reference, outcome.results):
        agreement = functions[f"{trace.name}.{_suffix(call)}"]
        if not isinstance(cand, expected_type):
            agreement.errors += 1
            cand = "error" if isinstance(cand, dict) else f"wrong type: {cand!r}"[:40]
        agreement.agree += cand == ref
        agreement.counts[(ref, cand)] += 1
    return list(functions.values())


def _suffix(call: list) -> str:
    return "policy_over_skills" if call[0] == "policy" else call[0]


def check(candidate: SkillSet, reference: SkillSet, recorded: Episodes, limits: Limits = REPLAY_LIMITS) -> dict:
    """The agreement report of every function both skill sets define (see the module docstring)."""
    ref_skills = {name: load_skill_code(reference.skills[name]) for name in reference.names}
    table = ViewTable()
    traces = [t for name, t in trace_skills(recorded, ref_skills, table).items() if name in candidate.skills]
    candidate_paths = {("skill", n): s.code for n, s in candidate.skills.items()}
    policies = {TRAINING: (reference.training_policy, candidate.training_policy)}
    policies.update(
        {n: (reference.tasks[n].policy, candidate.tasks[n].policy) for n in reference.tasks if n in candidate.tasks}
    )
    for name, (ref_path, cand_path) in policies.items():
        traces.append(trace_policy(name, recorded, ref_skills, load_policy(ref_path, reference.names), table))
        candidate_paths[("policy", name)] = cand_path
    rows = []
    for trace in traces:
        code = _read(candidate_paths[(trace.kind, trace.name)])
        rows += compare(trace, replay(code, table.rows, trace.calls, limits))
    return {
        "candidate": str(candidate.path),
        "reference": str(reference.path),
        "episodes": {
            "task": recorded.task,
            "seed": recorded.seed,
            "count": len(recorded.episodes),
            "steps": recorded.steps,
        },
        "functions": [row.as_dict() for row in rows],
        "only_in_reference": sorted(set(reference.skills) - set(candidate.skills))
        + sorted(f"task {n}" for n in set(reference.tasks) - set(candidate.tasks)),
        "only_in_candidate": sorted(set(candidate.skills) - set(reference.skills))
        + sorted(f"task {n}" for n in set(candidate.tasks) - set(reference.tasks)),
    }


def _read(path: Path) -> str:
    try:
        return Path(path).read_text()
    except OSError as e:
        raise MotifError(f"candidate code {path}: cannot read it ({e.strerror or e})") from None
