"""What `motif skills write-code` says to the model, and how it reads the replies.

The wording lives in a YAML file (shipped: ``configs/prompts/skills/write-code.yaml``; yours with
``--prompts FILE``), checked field by field before any model call. Replies are read leniently: code is
taken from ``` fences (a fence left open by a cut-off reply counts, a reply with no fence is taken whole),
and the verdict is the last ``Answer: yes|no`` in the reply.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path

import yaml

from motif_jax.errors import MotifError
from motif_jax.resources import config_file
from motif_jax.skills.view import LABELS

DEFAULT_PROMPTS = "prompts/skills/write-code.yaml"
# field -> the variables it must be formattable with
FIELDS = {
    "system": (),
    "interface": ("labels",),
    "skill_test": ("interface", "skill", "description"),
    "skill_code": ("skill",),
    "policy_test": ("interface", "task", "description", "skills"),
    "policy_code": ("task",),
    "verdict": ("output",),
    "rewrite": ("output",),
    "verdict_regex": (),
}
_FENCE = re.compile(r"```[ \t]*([\w+.-]*)[^\n]*\n(.*?)(?:\n[ \t]*```|\Z)", re.DOTALL)
_NOT_PYTHON = {"text", "txt", "output", "console", "bash", "sh", "shell", "json", "yaml"}


@dataclasses.dataclass(frozen=True)
class Prompts:
    path: Path
    texts: dict[str, str]
    hash: str  # of the file's text, for the provenance

    def say(self, field: str, **values) -> str:
        return self.texts[field].format(**values).strip()

    def interface(self) -> str:
        return self.say("interface", labels=", ".join(f'"{label}"' for label in LABELS))

    def skill_test(self, skill: str, description: str) -> str:
        return self.say("skill_test", interface=self.interface(), skill=skill, description=description)

    def policy_test(self, task: str, description: str, skills: dict[str, str]) -> str:
        listing = "\n".join(f"  {name}: {text}" for name, text in skills.items())
        return self.say("policy_test", interface=self.interface(), task=task, description=description, skills=listing)

    def verdict_of(self, reply: str) -> str | None:
        """The verdict: "yes", "no", or None when the reply has no readable verdict."""
        found = re.findall(self.texts["verdict_regex"], reply, flags=re.IGNORECASE)
        if found:
            return found[-1].lower()
        words = re.findall(r"[a-z]+", reply.lower())
        return words[0] if len(words) == 1 and words[0] in ("yes", "no") else None


def load_prompts(path: str | Path | None = None) -> Prompts:
    """The prompts in ``path`` (default: the shipped file), every field present and formattable."""
    path = config_file(path or DEFAULT_PROMPTS)
    try:
        text = Path(path).read_text()
        data = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as e:
        raise MotifError(f"prompts file {path}: cannot read it ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise MotifError(f"prompts file {path}: expected a mapping of the fields {', '.join(FIELDS)}")
    for field, variables in FIELDS.items():
        value = data.get(field)
        if not isinstance(value, str) or not value.strip():
            raise MotifError(f"prompts file {path}: field {field} is missing or empty; expected a text")
        if field == "verdict_regex":
            _check_regex(value, path)
            continue
        try:
            value.format(**{name: "x" for name in variables})
        except (KeyError, IndexError, ValueError) as e:
            raise MotifError(
                f"prompts file {path}: field {field} is not a valid format string ({type(e).__name__}: {e}); "
                f"its variables are {', '.join(variables) or 'none'} and literal braces are doubled"
            ) from None
    texts = {field: data[field] for field in FIELDS}
    return Prompts(Path(path).resolve(), texts, hashlib.sha256(text.encode()).hexdigest()[:16])


def _check_regex(value: str, path: Path) -> None:
    try:
        pattern = re.compile(value, re.IGNORECASE)
    except re.error as e:
        raise MotifError(f"prompts file {path}: verdict_regex is not a valid regex ({e})") from None
    if pattern.groups != 1:
        raise MotifError(f"prompts file {path}: verdict_regex must have exactly one group (yes or no)")


def code_blocks(reply: str) -> list[str]:
    """The Python blocks of a reply, in order; the whole reply when it has no fence."""
    blocks = [body for language, body in _FENCE.findall(reply) if language.lower() not in _NOT_PYTHON]
    if not blocks and "```" not in reply:
        blocks = [reply]
    return [block.strip("\n") + "\n" for block in blocks if block.strip()]


def defines(block: str, name: str) -> bool:
    return re.search(rf"^\s*def\s+{re.escape(name)}\s*\(", block, flags=re.MULTILINE) is not None


def extract_test(reply: str) -> str | None:
    """The last block that defines ``test()``."""
    return next((block for block in reversed(code_blocks(reply)) if defines(block, "test")), None)


def extract_code(reply: str, required: tuple[str, ...]) -> str | None:
    """The code in a reply: the last block defining every required function, else the blocks that define
    some of them joined (a model may send one function per block), else the last non-test block."""
    blocks = code_blocks(reply)
    full = [block for block in blocks if all(defines(block, name) for name in required)]
    if full:
        return full[-1]
    parts = [block for block in blocks if any(defines(block, name) for name in required)]
    if parts:
        return "\n\n".join(parts)
    others = [block for block in blocks if not defines(block, "test")]
    return others[-1] if others else None
