"""Typed configs for every stage: a dataclass schema, layers of values merged onto it with OmegaConf.

Resolution (later wins): the dataclass defaults, the stage's preset, the YAML file (after its
``extends:`` chain, paths relative to the file), ``--set key=value`` and explicit CLI flags. Each
layer is type-checked against the schema as it is merged (``--set`` values are parsed by OmegaConf's
grammar, so ``1e-3`` is a float and ``[a, b]`` a list); a bad value, an unknown key or a list where a
scalar belongs becomes one :class:`MotifError` line naming the key, the value and the expected type.
A field's doc is the comment on its line (or the comment lines just above it) in the dataclass.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from motif_jax.errors import MotifError
from motif_jax.resources import config_file

Layer = tuple[str, dict]  # (where the values came from, nested values)


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


def file_layers(path: str | Path, _seen: tuple = ()) -> list[Layer]:
    """A YAML file and the chain of files it ``extends:`` (relative to it), the furthest ancestor first."""
    resolved = Path(path).resolve()
    if resolved in _seen:
        raise MotifError(f"config file {path}: 'extends' forms a cycle")
    data = load_yaml(path)
    parent = data.pop("extends", None)
    if parent is None:
        return [(str(path), data)]
    if not isinstance(parent, str):
        raise MotifError(f"config file {path}: 'extends' must be a file name, got {parent!r}")
    return [*file_layers(Path(path).parent / parent, _seen + (resolved,)), (str(path), data)]


def set_layer(overrides: Sequence[str] | None) -> Layer:
    """``--set key.sub=value`` strings, values parsed by OmegaConf's grammar (``1e-3`` is a float)."""
    for item in overrides or []:
        if "=" not in item or not item.split("=", 1)[0].strip():
            raise MotifError(f"--set {item!r}: expected key=value")
    try:
        values = OmegaConf.to_container(OmegaConf.from_dotlist([i.strip() for i in overrides or []]))
    except OmegaConfBaseException as e:
        raise MotifError(f"--set {e.full_key}: {_first_line(e)}") from None
    return "--set", values


def flag_layer(flags: Mapping[str, Any] | None) -> Layer:
    """Explicit flag values keyed by dotted config keys; ``None`` (flag not given) is left out."""
    nested: dict[str, Any] = {}
    for key, value in (flags or {}).items():
        if value is None:
            continue
        *sections, leaf = key.split(".")
        node = nested
        for section in sections:
            node = node.setdefault(section, {})
        node[leaf] = value
    return "flags", nested


def stage_layers(
    file: str | Path | None,
    overrides: Sequence[str] | None,
    flags: Mapping[str, Any] | None,
) -> list[Layer]:
    """The layers above the preset: the file's chain (a shipped config may be named: ``score``), ``--set``,
    the flags."""
    return [*(file_layers(config_file(file)) if file else []), set_layer(overrides), flag_layer(flags)]


def layer_value(layers: Sequence[Layer], key: str, default: Any = None) -> Any:
    """The value of dotted ``key`` in the last layer that sets it (e.g. which preset to apply)."""
    found = default
    for _, data in layers:
        value = _get(data, key)
        if value is not _ABSENT:
            found = value
    return found


def last_setter(layers: Sequence[Layer], key: str) -> int:
    """Index of the last layer that sets dotted ``key`` (-1: none, the dataclass default stands)."""
    return max((i for i, (_, data) in enumerate(layers) if _get(data, key) is not _ABSENT), default=-1)


def merge(schema: type, layers: Sequence[Layer], choices: Mapping[str, Sequence] | None = None, prefix: str = ""):
    """An instance of dataclass ``schema`` from its defaults and ``layers`` in order, type-checked.

    ``choices`` maps dotted keys to their allowed values, checked after the merge; ``prefix`` is where
    ``schema`` sits in a bigger config (``model.``), for the error lines."""
    config = OmegaConf.structured(schema)
    for where, data in layers:
        if not data:
            continue
        if not isinstance(data, Mapping):
            raise MotifError(f"config ({where}): expected a mapping of keys to values, got {data!r}")
        try:
            config = OmegaConf.merge(config, data)
        except OmegaConfBaseException as e:
            raise MotifError(_explain(e, schema, config, data, where, prefix)) from None
    try:
        result = OmegaConf.to_object(config)
    except OmegaConfBaseException as e:
        raise MotifError(f"config: {prefix}{e.full_key}: {_first_line(e)}") from None
    for key, allowed in (choices or {}).items():
        value = functools.reduce(getattr, key.split("."), result)
        if value not in allowed:
            raise MotifError(f"config: {prefix}{key}={value!r} is not one of {', '.join(map(str, allowed))}")
    return result


def from_dict(schema: type, data: Mapping[str, Any], where: str = "config", prefix: str = ""):
    """An instance of ``schema`` from one mapping of values (e.g. a saved run's config), type-checked."""
    return merge(schema, [(where, dict(data))], prefix=prefix)


def to_yaml(config) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(config))


# ----------------------------------------------------------------------------- error lines

_ABSENT = object()


def _get(data: Any, key: str) -> Any:
    """``data[a][b][0]`` for the key ``a.b[0]``, or _ABSENT."""
    for part in re.findall(r"[^.\[\]]+", key):
        if isinstance(data, Mapping) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return _ABSENT
    return data


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def _field_type(schema: type, key: str) -> Any:
    """The annotated type at dotted ``key`` (list indices and dict keys step into the element type)."""
    tp: Any = schema
    for part in re.findall(r"[^.\[\]]+", key):
        tp = _unwrap_optional(tp)
        if dataclasses.is_dataclass(tp):
            tp = typing.get_type_hints(tp).get(part, _ABSENT)
        elif typing.get_origin(tp) in (list, tuple, dict):
            tp = typing.get_args(tp)[-1 if typing.get_origin(tp) is dict else 0]
        else:
            return _ABSENT
        if tp is _ABSENT:
            return _ABSENT
    return tp


def _unwrap_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def type_name(tp: Any) -> str:
    """How a type reads in an error or help line: ``a float``, ``a list of ints``, ``a string or null``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else type_name(a) for a in typing.get_args(tp))
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        element = typing.get_args(tp)[0] if typing.get_args(tp) else Any
        return f"a list of {type_name(element).split(' ', 1)[-1]}s" if element is not Any else "a list"
    if origin is dict or tp is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a section (a mapping of keys)"
    names = {float: "a float", int: "an int", bool: "a bool", str: "a string"}
    return names.get(tp, "a value")


def _explain(
    e: OmegaConfBaseException, schema: type, merged: DictConfig, data: Mapping, where: str, prefix: str
) -> str:
    """One line for an OmegaConf merge error: the key, the value given and the type expected."""
    key = e.full_key or _section_given_a_value(merged, data) or ""
    if isinstance(e, (ConfigKeyError, ConfigAttributeError)):
        section = _unwrap_optional(_field_type(schema, key.rsplit(".", 1)[0]) if "." in key else schema)
        names = [f.name for f in dataclasses.fields(section)] if dataclasses.is_dataclass(section) else []
        expected = f"; expected one of {', '.join(names)}" if names else ""
        return f"config: unknown key {prefix}{key}{expected} (in {where})"
    value = _get(data, key)
    expected = _field_type(schema, key)
    if value is _ABSENT or expected is _ABSENT:
        return f"config: {prefix}{key or 'a value'} (in {where}): {_first_line(e)}"
    return f"config: {prefix}{key}={value!r} is not {type_name(expected)} (in {where})"


def _section_given_a_value(merged: DictConfig, data: Any, prefix: str = "") -> str | None:
    """The dotted key where ``data`` holds a plain value but the schema a section (OmegaConf names none)."""
    for key, value in data.items() if isinstance(data, Mapping) else ():
        node = merged.get(key) if isinstance(merged, DictConfig) and key in merged else None
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(node, DictConfig):
            if not isinstance(value, Mapping):
                return path
            found = _section_given_a_value(node, value, path)
            if found:
                return found
    return None


# ----------------------------------------------------------------------------- docs for --help


def field_docs(schema: type) -> dict[str, str]:
    """Each field's doc: the comment on its line in the class body, else the comment lines right above it;
    a field a subclass redeclares without a comment keeps its base class's."""
    docs: dict[str, str] = {}
    for cls in reversed(schema.__mro__[:-1]):
        if dataclasses.is_dataclass(cls):
            docs.update({k: v for k, v in _own_field_docs(cls, schema).items() if v})
    return docs


def _own_field_docs(cls: type, schema: type) -> dict[str, str]:
    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return {}
    docs, above = {}, []
    for line in lines[1:]:
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(stripped.lstrip("# ").rstrip())
            continue
        match = re.match(r"\s+(\w+)\s*:[^=]*(=.*)?$", line)
        if match and match.group(1) in {f.name for f in dataclasses.fields(schema)}:
            inline = line.split("  # ", 1)[1].strip() if "  # " in line else ""
            docs[match.group(1)] = inline or " ".join(above)
        above = []
    return docs


def describe_keys(schema: type, prefix: str = "") -> list[str]:
    """One line per key of ``schema``: dotted key, type, default and doc (for ``--help``)."""
    hints, docs, lines = typing.get_type_hints(schema), field_docs(schema), []
    for f in dataclasses.fields(schema):
        key, tp = f"{prefix}{f.name}", hints[f.name]
        if dataclasses.is_dataclass(tp):
            lines += describe_keys(tp, f"{key}.")
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        shown = (
            yaml.safe_dump(
                list(default) if isinstance(default, tuple) else default, default_flow_style=True, width=1000
            )
            .strip()
            .removesuffix("\n...")
            .strip()
        )
        doc = docs.get(f.name, "")
        lines.append(f"  {key} ({type_name(tp).split(' ', 1)[-1]}, default {shown})" + (f": {doc}" if doc else ""))
    return lines


def help_epilog(schema: type, stage: str) -> str:
    """The keys a stage's config file and ``--set`` accept, for the bottom of its ``--help``."""
    return (
        f"config keys (YAML file, --set KEY=VALUE; `motif config show {stage}` prints the resolved values):\n"
        + "\n".join(describe_keys(schema))
    )


def no_preset(stage: str, preset: str | None) -> None:
    if preset is not None:
        raise MotifError(f"{stage} has no presets (--preset is for train and train-reward)")


def add_set_argument(parser: argparse.ArgumentParser, help: str = "override a config key (repeatable)") -> None:
    """The repeatable ``--set KEY=VALUE`` of every command, collected into ``args.overrides``."""
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help)


def add_keys_help(parser: argparse.ArgumentParser, schema: type, stage: str, *more: str) -> None:
    """List the stage's keys (and ``more`` lines) at the bottom of its ``--help``."""
    parser.epilog = "\n".join([help_epilog(schema, stage), *more])
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
