"""The skills file: which skills exist, what each is for (the annotation goal), where its reward comes
from, its quantile and its code, the policy over skills used in training, and the zero-shot tasks.

Paths in the file are relative to the file, so a skills folder can be copied anywhere. Every problem is
one MotifError line naming the file and the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from motif_jax.errors import MotifError
from motif_jax.resources import builtin_configs, config_file

SKILL_KEYS = {"description", "reward", "quantile", "code"}
TASK_KEYS = {"description", "policy"}
TOP_KEYS = {"skills", "training_policy", "tasks"}
REWARD_SOURCES = ({"judge", "goal"}, {"annotator"})
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class SkillSpec:
    name: str
    description: str
    reward: dict  # {judge: NAME, goal: GOAL} (rules-judge labels) or {annotator: NAME}
    quantile: float
    code: Path


@dataclass(frozen=True)
class TaskPolicySpec:
    name: str
    description: str
    policy: Path


@dataclass(frozen=True)
class SkillSet:
    path: Path
    names: tuple[str, ...]  # file order: skill id 0..K-1
    skills: dict[str, SkillSpec]
    training_policy: Path
    tasks: dict[str, TaskPolicySpec]

    def skill_id(self, name: str) -> int:
        return self.names.index(name)


def skills_file(path: str | Path) -> Path:
    """``path`` if it is a file, else a shipped skills file by name (``nethack`` is ``configs/skills/nethack.yaml``)."""
    given = Path(path)
    if given.is_file():
        return given
    name = given.as_posix().removeprefix("configs/").removeprefix("skills/")
    try:
        return config_file(f"skills/{name}")
    except MotifError:
        shipped = sorted(p.stem for p in (builtin_configs() / "skills").glob("*.yaml"))
        raise MotifError(f"skills file {path} not found (shipped skills files: {', '.join(shipped)})") from None


def load_skills(path: str | Path) -> SkillSet:
    """The skill set in ``path`` (a file, or the name of a shipped one), checked field by field."""
    path = skills_file(path)
    data = _read_yaml(path)
    where = str(path)
    _no_unknown_keys(data, TOP_KEYS, where)
    folder = path.resolve().parent

    entries = _mapping(data.get("skills"), f"{where}: skills", required=True)
    skills = {name: _skill(name, entry, folder, f"{where}: skills.{name}") for name, entry in entries.items()}
    policy = _file(data.get("training_policy"), folder, f"{where}: training_policy")
    tasks_data = _mapping(data.get("tasks") or {}, f"{where}: tasks", required=False)
    tasks = {name: _task(name, entry, folder, f"{where}: tasks.{name}") for name, entry in tasks_data.items()}
    return SkillSet(path.resolve(), tuple(skills), skills, policy, tasks)


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML that refuses a key given twice in one mapping (plain YAML silently keeps the last one)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, (str, int, float, bool)):
                continue  # not a name: the field checks report it
            if key in seen:
                line = key_node.start_mark.line + 1
                raise MotifError(f"{self.name}: line {line}: {key!r} is given twice; names must be unique")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path) -> dict:
    try:
        loader = _UniqueKeyLoader(path.read_text())
        loader.name = str(path)
        try:
            data = loader.get_single_data() or {}
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        raise MotifError(f"skills file {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise MotifError(f"skills file {path} must hold a mapping at the top level")
    return data


def _skill(name: str, entry: Any, folder: Path, where: str) -> SkillSpec:
    _check_name(name, where)
    entry = _mapping(entry, where, required=True)
    _no_unknown_keys(entry, SKILL_KEYS, where)
    description = _text(entry.get("description"), f"{where}.description")
    reward = _reward(entry.get("reward"), f"{where}.reward")
    quantile = entry.get("quantile")
    if quantile is None:
        raise MotifError(f"{where}.quantile is missing; expected a number in (0, 1), e.g. 0.85")
    if isinstance(quantile, bool) or not isinstance(quantile, (int, float)) or not 0 < quantile < 1:
        raise MotifError(f"{where}.quantile must be a number in (0, 1), got {quantile!r}")
    code = _file(entry.get("code"), folder, f"{where}.code")
    return SkillSpec(name, description, reward, float(quantile), code)


def _task(name: str, entry: Any, folder: Path, where: str) -> TaskPolicySpec:
    _check_name(name, where)
    entry = _mapping(entry, where, required=True)
    _no_unknown_keys(entry, TASK_KEYS, where)
    description = _text(entry.get("description"), f"{where}.description")
    return TaskPolicySpec(name, description, _file(entry.get("policy"), folder, f"{where}.policy"))


def _reward(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise MotifError(f"{where} must be {{judge: NAME, goal: GOAL}} or {{annotator: NAME}}, got {value!r}")
    if set(value) not in REWARD_SOURCES or not all(isinstance(v, str) and v for v in value.values()):
        raise MotifError(f"{where} must be {{judge: NAME, goal: GOAL}} or {{annotator: NAME}}, got {value!r}")
    return dict(value)


def _check_name(name: Any, where: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise MotifError(f"{where}: bad name {name!r}; use letters, digits, '-' and '_'")


def _mapping(value: Any, where: str, required: bool) -> dict:
    if value is None and required:
        raise MotifError(f"{where} is missing")
    if not isinstance(value, dict) or (required and not value):
        raise MotifError(f"{where} must be a non-empty mapping, got {value!r}")
    for name in value:
        if not isinstance(name, str):
            raise MotifError(f"{where}: bad name {name!r}; use letters, digits, '-' and '_'")
    return value


def _no_unknown_keys(entry: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise MotifError(
            f"{where}: unknown key(s) {', '.join(map(str, unknown))}; expected {', '.join(sorted(allowed))}"
        )


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise MotifError(f"{where} is missing or empty; expected a text")
    return value.strip()


def _file(value: Any, folder: Path, where: str) -> Path:
    if not isinstance(value, str) or not value:
        raise MotifError(f"{where} is missing; expected a file path relative to the skills file")
    path = (folder / value).resolve()
    if not path.is_file():
        raise MotifError(f"{where}: file {value} not found (looked in {folder})")
    return path


def skills_contents(path: str | Path) -> dict:
    """What a skills file decides, by content: its YAML and the text of every code file it names (names
    relative to it), so a pipeline step redoes its work when a description or a skill's code changes."""
    skillset = load_skills(path)
    folder = skillset.path.resolve().parent
    files = [s.code for s in skillset.skills.values()] + [skillset.training_policy]
    files += [t.policy for t in skillset.tasks.values()]
    code = {}
    for f in map(Path, files):
        name = f.resolve().relative_to(folder) if f.resolve().is_relative_to(folder) else f
        code[str(name)] = f.read_text()
    rewards = {name: dict(spec.reward) for name, spec in skillset.skills.items()}
    return {"file": _read_yaml(skillset.path), "code": code, "rewards": rewards}
