"""Config files: YAML mappings, overridable with ``--set key.sub=value`` on the command line.

Every CLI option has a config-file equivalent: a stage reads its defaults from a
dataclass, then a YAML file, then ``--set`` overrides, then explicit flags.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from motif_jax.errors import MotifError


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise MotifError(f"config file {path} not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise MotifError(f"config file {path} is not valid YAML: {str(e).splitlines()[0]}") from e
    if not isinstance(data, dict):
        raise MotifError(f"config file {path} must hold a mapping at the top level")
    return data


def apply_overrides(config: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Apply ``key.sub=value`` strings (values parsed as YAML scalars) to a nested dict, in place."""
    for item in overrides or []:
        if "=" not in item:
            raise MotifError(f"--set {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw else ""
        node = config
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise MotifError(f"--set {item!r}: {part!r} is not a section")
        node[parts[-1]] = value
    return config


def from_dict(cls, data: dict[str, Any], where: str = "config"):
    """Build a (possibly nested) dataclass from a dict, rejecting unknown keys by name."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise MotifError(f"{where}: unknown key(s) {', '.join(unknown)}; expected some of {', '.join(names)}")
    kwargs = {}
    for key, value in data.items():
        field = names[key]
        default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
        if dataclasses.is_dataclass(default) and isinstance(value, dict):
            value = from_dict(type(default), value, f"{where}.{key}")
        kwargs[key] = value
    return cls(**kwargs)
