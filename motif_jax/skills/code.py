"""Skill and policy code: plain Python files loaded through one narrow interface.

A skill file defines ``initiation(view) -> bool`` and ``termination(view, since_start) -> bool``; a policy
file defines ``policy_over_skills(view, memory) -> str``. Each file runs in a fresh module namespace
compiled with its own path, so tracebacks name it. Hand-written and LLM-written files load the same way:
a syntax error or a missing function is reported at load time, and any exception or wrong answer at a
call becomes one MotifError line naming the file and the skill, never a traceback from deep in the loop.
(The import allow-list and time limits for untrusted LLM code belong to its sandbox, not to this loader.)
"""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from motif_jax.errors import MotifError
from motif_jax.skills.spec import SkillSet, SkillSpec
from motif_jax.skills.view import Started, View

SKILL_FUNCTIONS = {"initiation": 1, "termination": 2}  # name -> number of positional arguments
POLICY_FUNCTIONS = {"policy_over_skills": 2}


def shown(path: Path) -> str:
    """A path as the user likely typed it: relative to the working folder when it lies under it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def load_functions(path: Path, functions: dict[str, int], where: str) -> dict[str, Callable]:
    """Run the file at ``path`` in a fresh namespace and return its ``functions`` (name -> arity)."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise MotifError(f"{where}: cannot read the file ({e.strerror or e})") from None
    namespace = {"__name__": f"motif_skill_code_{Path(path).stem}", "__file__": str(path)}
    try:
        exec(compile(text, str(path), "exec"), namespace)
    except SyntaxError as e:
        raise MotifError(f"{where}: syntax error at line {e.lineno}: {e.msg}") from None
    except Exception as e:
        raise MotifError(f"{where}: running the file raised {_describe(e, path)}") from None
    found = {}
    for name, arity in functions.items():
        function = namespace.get(name)
        if function is None:
            raise MotifError(f"{where}: defines no function {name}; expected {_signature(name, arity)}")
        if not callable(function):
            raise MotifError(f"{where}: {name} is a {type(function).__name__}, not a function")
        try:
            inspect.signature(function).bind(*range(arity))
        except TypeError:
            raise MotifError(f"{where}: {name} must take {arity} argument(s): {_signature(name, arity)}") from None
        except ValueError:  # a builtin without a signature: let the call tell
            pass
        found[name] = function
    return found


class SkillCode:
    """One skill's initiation and termination, called safely."""

    def __init__(self, spec: SkillSpec):
        self.name, self.path = spec.name, spec.code
        self.where = f"skill code {shown(spec.code)} ({spec.name})"
        functions = load_functions(spec.code, SKILL_FUNCTIONS, self.where)
        self._initiation, self._termination = functions["initiation"], functions["termination"]

    def initiation(self, view: View) -> bool:
        return self._boolean("initiation", self._initiation, view)

    def termination(self, view: View, since_start: Started) -> bool:
        return self._boolean("termination", self._termination, view, since_start)

    def _boolean(self, what: str, function: Callable, *args) -> bool:
        try:
            answer = function(*args)
        except Exception as e:
            raise MotifError(f"{self.where}: {what} raised {_describe(e, self.path)}") from None
        if not isinstance(answer, (bool, np.bool_)):
            raise MotifError(f"{self.where}: {what} returned {_short(answer)}, expected True or False")
        return bool(answer)


class PolicyCode:
    """A policy over skills, called safely: it must answer one of the skills available now."""

    def __init__(self, path: Path, skill_names: Sequence[str]):
        self.path, self.skill_names = Path(path), tuple(skill_names)
        self.where = f"policy code {shown(self.path)}"
        self._choose = load_functions(self.path, POLICY_FUNCTIONS, self.where)["policy_over_skills"]

    def choose(self, view: View, memory: dict) -> str:
        try:
            answer = self._choose(view, memory)
        except Exception as e:
            raise MotifError(f"{self.where}: policy_over_skills raised {_describe(e, self.path)}") from None
        if not isinstance(answer, str):
            raise MotifError(f"{self.where}: policy_over_skills returned {_short(answer)}, expected a skill name")
        if answer not in view.available:
            kind = "an unavailable skill" if answer in self.skill_names else "an unknown skill"
            raise MotifError(
                f"{self.where}: policy_over_skills returned {kind} {answer!r}; "
                f"available now: {', '.join(view.available) or 'none'}"
            )
        return answer


def load_skill_code(spec: SkillSpec) -> SkillCode:
    return SkillCode(spec)


def load_policy(path: str | Path, skill_names: Sequence[str]) -> PolicyCode:
    return PolicyCode(Path(path), skill_names)


def load_code(skillset: SkillSet, policy_path: str | Path) -> tuple[dict[str, SkillCode], PolicyCode]:
    """Every skill's code (in skill id order) and the policy over skills at ``policy_path``."""
    skills = {name: load_skill_code(skillset.skills[name]) for name in skillset.names}
    return skills, load_policy(policy_path, skillset.names)


def _signature(name: str, arity: int) -> str:
    return f"{name}({', '.join(('view', 'since_start' if name == 'termination' else 'memory')[:arity])})"


def _describe(error: BaseException, path: Path) -> str:
    """``ZeroDivisionError: division by zero (line 7)``: the error and the last line of ``path`` it passed."""
    line = next(
        (frame.lineno for frame in reversed(traceback.extract_tb(error.__traceback__)) if frame.filename == str(path)),
        None,
    )
    text = " ".join(str(error).split())
    where = f" (line {line})" if line else ""
    return f"{type(error).__name__}: {text}{where}" if text else f"{type(error).__name__}{where}"


def _short(value) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60] + '...' if len(text) > 60 else text}"
