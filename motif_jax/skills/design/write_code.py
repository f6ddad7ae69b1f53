"""The LLM writes skill and policy code against its own unit test, and refines it (MaestroMotif).

One *group* is what one file holds: a skill's ``initiation`` and ``termination``, or a task's
``policy_over_skills``. Per group, in one conversation: the model writes a unit test (``def test():``),
then the code; the sandbox runs the test against the code; if the test passes, the model sees the output
and is asked whether the code is correct (yes/no). A round is accepted when the test passes and the model
does not say no (an unreadable verdict counts as yes: the passing test is the objective part, and a
model that rambles should not lose working code). A failing test needs no question: the model is shown
the output and asked for a rewrite at once; so is a "no". A test without any ``assert`` fails the round
(it would accept anything). At most ``rounds`` rounds.

Accepted code goes to ``<skill>.py`` / ``policy_<task>.py`` in the output folder with a provenance JSON
beside it (every message and round), and ``skills.yaml`` there is the input skills file pointing at them.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable
from pathlib import Path

import yaml

from motif_jax.annotate.backends import Backend, Sampling
from motif_jax.errors import MotifError
from motif_jax.files import write_atomic, write_json_atomic
from motif_jax.skills.design.prompts import Prompts, extract_code, extract_test
from motif_jax.skills.design.sandbox import POLICY_FUNCTIONS, SKILL_FUNCTIONS, Limits, Outcome, run_unit_test
from motif_jax.skills.spec import SkillSet

DEFAULT_ROUNDS = 4
DEFAULT_TEMPERATURE = 0.2
DEFAULT_LIMITS = Limits()


@dataclasses.dataclass(frozen=True)
class Group:
    """One file to write: a skill (initiation + termination) or a task's policy over skills."""

    kind: str  # "skill" or "policy"
    name: str  # the skill's or the task's name
    test_request: str
    code_request: str

    @property
    def required(self) -> tuple[str, ...]:
        return SKILL_FUNCTIONS if self.kind == "skill" else POLICY_FUNCTIONS

    @property
    def stem(self) -> str:
        return self.name if self.kind == "skill" else f"policy_{self.name}"

    @property
    def label(self) -> str:
        return f"skill {self.name}" if self.kind == "skill" else f"task {self.name} (policy)"


@dataclasses.dataclass
class Round:
    number: int
    code: str | None
    test: str | None
    passed: bool
    reason: str
    output: str
    seconds: float
    verdict: str | None  # "yes", "no", "unreadable", or None when not asked (the test failed)
    accepted: bool


@dataclasses.dataclass
class GroupResult:
    group: Group
    rounds: list[Round]
    conversation: list[dict]

    @property
    def accepted_round(self) -> int | None:
        return next((r.number for r in self.rounds if r.accepted), None)

    @property
    def code(self) -> str | None:
        return next((r.code for r in self.rounds if r.accepted), None)


def groups_of(skillset: SkillSet, prompts: Prompts, skills: list[str], tasks: list[str]) -> list[Group]:
    """The groups to write, skills first (in file order), then tasks."""
    found = []
    for name in skills:
        spec = skillset.skills[name]
        found.append(
            Group("skill", name, prompts.skill_test(name, spec.description), prompts.say("skill_code", skill=name))
        )
    descriptions = {name: spec.description for name, spec in skillset.skills.items()}
    for name in tasks:
        spec = skillset.tasks[name]
        found.append(
            Group(
                "policy",
                name,
                prompts.policy_test(name, spec.description, descriptions),
                prompts.say("policy_code", task=name),
            )
        )
    return found


class Conversation:
    """One group's chat with the model; every message is kept for the provenance."""

    def __init__(self, backend: Backend, system: str):
        self.backend = backend
        self.messages = [{"role": "system", "content": system}]

    def ask(self, text: str) -> str:
        self.messages.append({"role": "user", "content": text})
        reply = self.backend.complete([list(self.messages)])[0]
        self.messages.append({"role": "assistant", "content": reply})
        return reply


def write_group(
    group: Group,
    backend: Backend,
    prompts: Prompts,
    rounds: int = DEFAULT_ROUNDS,
    limits: Limits = DEFAULT_LIMITS,
    say: Callable[[str], None] = print,
) -> GroupResult:
    """The test-and-refine loop of one group (see the module docstring). A backend error after the group's
    first answer (e.g. the conversation outgrew the context window) ends this group as failed, not the run."""
    chat = Conversation(backend, prompts.say("system"))
    history: list[Round] = []
    try:
        _refine(group, chat, prompts, rounds, limits, say, history)
    except MotifError as e:
        if len(chat.messages) <= 2:
            raise  # the first request of the group failed: the backend itself fails, not this conversation
        failed = Round(len(history) + 1, None, None, False, f"the model could not answer: {e}", "", 0.0, None, False)
        history.append(failed)
        say(f"{group.label}: round {failed.number}/{rounds}: {_describe(failed)}")
    return GroupResult(group, history, chat.messages)


def _refine(
    group: Group,
    chat: Conversation,
    prompts: Prompts,
    rounds: int,
    limits: Limits,
    say: Callable[[str], None],
    history: list[Round],
) -> None:
    """The rounds, appended to ``history`` as they finish (so a backend error keeps the finished ones)."""
    test = extract_test(chat.ask(group.test_request))
    code = extract_code(chat.ask(group.code_request), group.required)
    outcome = None
    for number in range(1, rounds + 1):
        if outcome is not None:
            reply = chat.ask(prompts.say("rewrite", output=outcome.report()))
            test = extract_test(reply) or test
            code = extract_code(reply, group.required) or code
        outcome = _run(code, test, group.required, limits)
        verdict = None
        if outcome.passed:
            verdict = prompts.verdict_of(chat.ask(prompts.say("verdict", output=outcome.report()))) or "unreadable"
        accepted = outcome.passed and verdict != "no"
        done = Round(
            number, code, test, outcome.passed, outcome.reason, outcome.output, outcome.seconds, verdict, accepted
        )
        history.append(done)
        say(f"{group.label}: round {number}/{rounds}: {_describe(done)}")
        if accepted:
            break


def _run(code: str | None, test: str | None, required: tuple[str, ...], limits: Limits) -> Outcome:
    if test is None:
        return Outcome(False, "no unit test in the reply (expected a ```python block with def test():)")
    if code is None:
        return Outcome(False, f"no code in the reply (expected a ```python block defining {', '.join(required)})")
    if not re.search(r"^\s*assert\b", test, flags=re.MULTILINE):
        return Outcome(False, "the unit test checks nothing (write def test(): with assert statements)")
    return run_unit_test(code, test, required, limits)


def _describe(r: Round) -> str:
    if r.accepted:
        return f"test passed, model says {r.verdict}: accepted"
    if r.passed:
        return "test passed, model says no"
    return f"FAILED: {r.reason}"


def write_outputs(result: GroupResult, out: Path, settings: dict) -> Path | None:
    """The accepted code (if any) as ``<stem>.py`` and the provenance beside it, both atomically."""
    group, code = result.group, result.code
    path = out / f"{group.stem}.py" if code is not None else None
    if path is not None:
        header = (
            f"# Written by {settings['model']} (motif skills write-code) for the {group.label}; accepted in round "
            f"{result.accepted_round}. How: {group.stem}.provenance.json\n\n"
        )
        write_atomic(path, header + code)
    provenance = {
        "kind": group.kind,
        "name": group.name,
        "file": path.name if path else None,
        "accepted_round": result.accepted_round,
        **settings,
        "rounds": [_round_record(r) for r in result.rounds],
        "conversation": result.conversation,
    }
    write_json_atomic(out / f"{group.stem}.provenance.json", provenance)
    return path


def _round_record(r: Round) -> dict:
    record = dataclasses.asdict(r)
    record["verdict"] = r.verdict or "not asked (the test failed)"
    return record


def settings_of(
    backend_kind: str, backend: Backend, sampling: Sampling, prompts: Prompts, rounds: int, limits: Limits
) -> dict:
    return {
        "model": backend.model_id,
        "backend": backend_kind,
        "temperature": sampling.temperature,
        "sampling": dataclasses.asdict(sampling),
        "prompts": str(prompts.path),
        "prompts_hash": prompts.hash,
        "max_rounds": rounds,
        "sandbox": dataclasses.asdict(limits),
    }


def rewritten_skills_file(skillset: SkillSet, out: Path, written: dict[tuple[str, str], Path | None]) -> str:
    """The input skills file with the code paths of accepted groups replaced (relative to ``out``); every
    other path points back at the original file. ``written`` maps (kind, name) -> the written file or None."""
    data = yaml.safe_load(skillset.path.read_text())
    kept = []
    for name, spec in skillset.skills.items():
        data["skills"][name]["code"] = _path_for(written, ("skill", name), spec.code, out, kept)
    for name, spec in skillset.tasks.items():
        data["tasks"][name]["policy"] = _path_for(written, ("policy", name), spec.policy, out, kept)
    data["training_policy"] = _relative(skillset.training_policy, out)
    header = [f"# Written by motif skills write-code from {skillset.path}. Paths are relative to this file."]
    if kept:
        header.append(f"# Code kept from the input file (no accepted round): {', '.join(kept)}")
    return "\n".join(header) + "\n" + yaml.safe_dump(data, sort_keys=False, width=110, allow_unicode=True)


def _path_for(written: dict, key: tuple[str, str], original: Path, out: Path, kept: list[str]) -> str:
    if key in written and written[key] is not None:
        return written[key].name
    if key in written:
        kept.append(f"{'skill' if key[0] == 'skill' else 'task'} {key[1]}")
    return _relative(original, out)


def _relative(path: Path, out: Path) -> str:
    return os.path.relpath(Path(path).resolve(), out.resolve())
