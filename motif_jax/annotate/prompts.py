"""Prompt templates: YAML files of Jinja2 strings, resolved for one goal into the conversations we send.

A template file is data, not code, so a user can drop in their own wording (e.g. the paper's exact
text) with ``--prompt FILE``; every field is checked up front so a typo fails before any LLM call.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import jinja2
import jinja2.meta
import yaml

from motif_jax.errors import MotifError
from motif_jax.resources import builtin_configs

GOALS = ("defaultgoal", "zeroknowledge", "combat", "gold", "stairs")
WORDINGS = ("default", "reworded")
TRANSITION_SUFFIX = "-transitions"  # the built-in wording W shows transitions in W-transitions.yaml
TRANSITION_WORDINGS = ("default" + TRANSITION_SUFFIX,)
SHOWS = ("captions", "transitions")  # what caption1/caption2 hold: captions, or transition texts
REQUIRED_FIELDS = (
    "system",
    "user",
    "goals",
    "verdict_format",
    "verdict_regex",
    "retry",
    "logprob_instruction",
    "answer_prefix",
)
OPTIONAL_FIELDS = ("name", "guided_regex", "shows")

_JINJA = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)

Message = dict[str, str]
Conversation = list[Message]


def builtin_prompt_dir() -> Path:
    """The shipped templates (`configs/prompts/`)."""
    return builtin_configs() / "prompts"


@dataclasses.dataclass(frozen=True)
class PromptTemplate:
    """One wording resolved for one goal: everything needed to build and parse conversations."""

    name: str
    goal: str
    goal_text: str
    system: str
    user: str
    verdict_format: str
    verdict_regex: str
    retry: str
    logprob_instruction: str
    answer_prefix: str
    guided_regex: str | None = None
    shows: str = "captions"  # what the two texts are: "captions" or "transitions" (transition texts)

    @property
    def hash(self) -> str:
        """Short digest of every field that changes what the model sees or how replies are read (a caption
        template's digest leaves ``shows`` out, so it is the same as before transitions existed)."""
        fields = dataclasses.asdict(self)
        if fields["shows"] == "captions":
            del fields["shows"]
        blob = json.dumps(fields, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def _render(self, source: str, **variables) -> str:
        context = {"goal": self.goal_text, "verdict_format": self.verdict_format, **variables}
        return _JINJA.from_string(source).render(**context).strip()

    def first_turn(self, caption1: str, caption2: str, mode: str = "generate") -> Conversation:
        """System + user messages; in logprob mode the user message ends with the short-answer
        instruction and an assistant message holds the answer prefix to continue from."""
        user = self._render(self.user, caption1=caption1, caption2=caption2)
        if mode == "generate":
            return [{"role": "system", "content": self._render(self.system)}, {"role": "user", "content": user}]
        if mode == "logprob":
            user = f"{user}\n\n{self._render(self.logprob_instruction)}"
            return [
                {"role": "system", "content": self._render(self.system)},
                {"role": "user", "content": user},
                {"role": "assistant", "content": self.answer_prefix},
            ]
        raise MotifError(f"unknown mode {mode!r}; expected generate or logprob")

    def retry_turn(self, conversation: Conversation, reply: str) -> Conversation:
        """The same conversation continued with the model's reply and our request for a verdict."""
        return [
            *conversation,
            {"role": "assistant", "content": reply},
            {"role": "user", "content": self._render(self.retry)},
        ]


def _check_jinja(source: str, field: str, where: str, required: tuple[str, ...] = ()) -> None:
    try:
        variables = jinja2.meta.find_undeclared_variables(_JINJA.parse(source))
    except jinja2.TemplateSyntaxError as e:
        raise MotifError(f"{where}: field {field!r} is not a valid Jinja2 template: {e.message}") from e
    allowed = {"goal", "verdict_format", "caption1", "caption2"}
    unknown = sorted(variables - allowed)
    if unknown:
        raise MotifError(
            f"{where}: field {field!r} uses unknown variable(s) {', '.join(unknown)}; "
            f"available: {', '.join(sorted(allowed))}"
        )
    missing = [v for v in required if v not in variables]
    if missing:
        raise MotifError(f"{where}: field {field!r} must use {{{{ {missing[0]} }}}}")


def _check_regex(pattern: str, field: str, where: str, groups: int) -> None:
    try:
        compiled = re.compile(pattern, re.IGNORECASE)
    except re.error as e:
        raise MotifError(f"{where}: field {field!r} is not a valid regex: {e}") from e
    if compiled.groups < groups:
        raise MotifError(f"{where}: field {field!r} needs a capture group for the verdict")


def parse_template(data: dict, goal: str, where: str, goal_text: str | None = None) -> PromptTemplate:
    """Validate a template mapping and resolve it for ``goal``; MotifError names the faulty field.

    ``goal_text`` (a skill's description) stands in for the file's text of ``goal``, which then need not exist."""
    if not isinstance(data, dict):
        raise MotifError(f"{where}: a prompt template must be a YAML mapping")
    for field in REQUIRED_FIELDS:
        if field not in data:
            raise MotifError(f"{where}: missing field {field!r} (required: {', '.join(REQUIRED_FIELDS)})")
    unknown = sorted(set(data) - set(REQUIRED_FIELDS) - set(OPTIONAL_FIELDS))
    if unknown:
        raise MotifError(f"{where}: unknown field(s) {', '.join(unknown)}")
    for field in REQUIRED_FIELDS + OPTIONAL_FIELDS:
        if field != "goals" and data.get(field) is not None and not isinstance(data[field], str):
            raise MotifError(f"{where}: field {field!r} must be a string")
    goals = data["goals"]
    if not isinstance(goals, dict) or not all(isinstance(v, str) for v in goals.values()):
        raise MotifError(f"{where}: field 'goals' must map goal names to strings")
    if goal_text is None and goal not in goals:
        raise MotifError(f"{where}: no goal {goal!r} in 'goals' (available: {', '.join(goals)})")
    _check_jinja(data["user"], "user", where, required=("caption1", "caption2"))
    for field in ("system", "retry", "logprob_instruction"):
        _check_jinja(data[field], field, where)
    _check_regex(data["verdict_regex"], "verdict_regex", where, groups=1)
    if data.get("guided_regex"):
        _check_regex(data["guided_regex"], "guided_regex", where, groups=0)
    shows = data.get("shows") or "captions"
    if shows not in SHOWS:
        raise MotifError(f"{where}: field 'shows' must be one of {', '.join(SHOWS)}, got {shows!r}")
    name = data.get("name") or Path(where).stem
    return PromptTemplate(
        name=name,
        goal=goal,
        goal_text=(goals[goal] if goal_text is None else goal_text).strip(),
        system=data["system"],
        user=data["user"],
        verdict_format=data["verdict_format"],
        verdict_regex=data["verdict_regex"],
        retry=data["retry"],
        logprob_instruction=data["logprob_instruction"],
        answer_prefix=data["answer_prefix"],
        guided_regex=data.get("guided_regex"),
        shows=shows,
    )


def transition_wording(prompt: str | Path) -> str | Path:
    """The transitions form of a built-in wording (``default`` -> ``default-transitions``); anything else
    (a file, a wording that already shows transitions) as it is."""
    if str(prompt) in WORDINGS:
        wording = f"{prompt}{TRANSITION_SUFFIX}"
        if wording not in TRANSITION_WORDINGS:
            raise MotifError(
                f"prompt {prompt}: no built-in transitions form of this wording "
                f"(have {', '.join(TRANSITION_WORDINGS)}); give one or a YAML file with shows: transitions"
            )
        return wording
    return prompt


def load_template(prompt: str | Path, goal: str, goal_text: str | None = None) -> PromptTemplate:
    """``prompt`` is a built-in wording (``default``, ``reworded``, ``default-transitions``) or a path to a
    YAML file; ``goal_text`` replaces the file's text of ``goal`` (a skill's description)."""
    path = Path(prompt)
    builtin = WORDINGS + TRANSITION_WORDINGS
    if not path.suffix and str(prompt) in builtin:
        path = builtin_prompt_dir() / f"{prompt}.yaml"
    if not path.is_file():
        raise MotifError(
            f"prompt template {prompt} not found: give one of {', '.join(builtin)} or a path to a YAML file"
        )
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise MotifError(f"prompt template {path} is not valid YAML: {str(e).splitlines()[0]}") from e
    return parse_template(data, goal, str(path), goal_text)
