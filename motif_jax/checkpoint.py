"""Orbax checkpoints: named array items (StandardSave) plus JSON metadata (JsonSave), async, keep-last-K.

Orbax writes a step into a temporary folder and renames it when complete, so a killed process
never leaves a half-written step that looks finished. A finished step can still be damaged later
(a truncated file, a disk error): restoring with `restore_newest` then warns, names the step and
falls back to the previous one, and a trainer that resumes moves the damaged step aside
(``STEP.unreadable``) so it can write that step again. A write that fails (disk full) is one clear
MotifError; the steps already on disk stay intact. Restoring onto another mesh or device count
works by passing the target sharding in the abstract tree.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import jax
import orbax.checkpoint as ocp

from motif_jax.errors import DISK_PHRASES, MotifError, disk_problem, make_dir

T = TypeVar("T")
UNREADABLE_SUFFIX = ".unreadable"


def one_line(error: BaseException, limit: int = 240) -> str:
    """An exception as one short line (TensorStore errors span many lines of specs)."""
    raw = error.args[0] if isinstance(error, KeyError) and error.args else error  # no repr quotes
    text = (str(raw).strip().splitlines() or [""])[0]
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    if isinstance(error, KeyError) and "not found in the checkpoint" in text:
        return f"not a checkpoint written by motif ({text})"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class _QuietDiskErrors(logging.Filter):
    """Orbax logs a full traceback per background thread when a write fails; a disk error becomes our
    own one-line MotifError instead, so its log records are dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is not None and disk_problem(error):
            return False
        return not any(phrase in record.getMessage() for phrase in DISK_PHRASES)


logging.getLogger("absl").addFilter(_QuietDiskErrors())


class Checkpointer:
    def __init__(self, directory: str | Path, max_to_keep: int = 3, async_save: bool = True, read_only: bool = False):
        """``read_only`` (evaluation, inference): create nothing."""
        self.directory = Path(directory).absolute()
        if read_only and not self.directory.is_dir():
            raise MotifError(f"{self.directory}: no such checkpoint directory")
        if not read_only:
            make_dir(self.directory, "checkpoint directory")
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            enable_async_checkpointing=async_save,
            create=not read_only,
            read_only=read_only,
        )  # a killed save's temporary folder is ignored, and replaced when that step is saved again
        self.manager = ocp.CheckpointManager(self.directory, options=options)
        self._saving: int | None = None  # step of the save in flight (async), for error messages

    # -- writing -----------------------------------------------------------------------------------
    def save(self, step: int, items: dict[str, Any], meta: dict, force: bool = False) -> bool:
        """Save array pytrees ``items`` (name -> tree) and ``meta`` (JSON) as step ``step``."""
        self.wait()  # Orbax waits for the previous save anyway; this way its failure names its own step
        args = {name: ocp.args.StandardSave(tree) for name, tree in items.items()}
        with self._write_errors(step):
            saved = self.manager.save(step, args=ocp.args.Composite(**args, meta=ocp.args.JsonSave(meta)), force=force)
        self._saving = step
        return saved

    def wait(self) -> None:
        with self._write_errors(self._saving):
            self.manager.wait_until_finished()
        self._saving = None

    def close(self) -> None:
        try:
            self.wait()
        finally:
            with self._write_errors(self._saving):
                self.manager.close()

    def _write_errors(self, step: int | None):
        return _WriteErrors(self, step)

    # -- reading -----------------------------------------------------------------------------------
    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def has_item(self, step: int, name: str) -> bool:
        return (self.directory / str(step) / name).is_dir()

    def restore_items(self, step: int, targets: dict[str, Any]) -> dict[str, Any]:
        """Items ``targets`` (name -> abstract tree, e.g. from `abstract_like`) and ``meta`` of one step."""
        args = {name: ocp.args.StandardRestore(target) for name, target in targets.items()}
        out = self.manager.restore(step, args=ocp.args.Composite(**args, meta=ocp.args.JsonRestore()))
        return {name: out[name] for name in (*targets, "meta")}

    def restore_meta(self, step: int) -> dict:
        return self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta

    def restore_newest(
        self, load: Callable[[int], T], step: int | None = None, set_aside: bool = False
    ) -> tuple[T, int]:
        """``(load(s), s)`` for the newest step ``s`` that loads (or exactly ``step``).

        A step that fails to load is reported in a warning and skipped; with ``set_aside`` (a trainer
        about to write again) it is renamed ``STEP.unreadable``. If no step loads, the newest step's
        error is raised (a MotifError as it is, anything else as a MotifError naming the step)."""
        candidates = [step] if step is not None else self.steps()[::-1]
        if not candidates:
            raise MotifError(f"no checkpoint found in {self.directory}")
        failures: list[tuple[int, BaseException]] = []
        for candidate in candidates:
            try:
                value = load(candidate)
            except Exception as e:  # noqa: BLE001 - TensorStore raises plain Exception on damaged data
                failures.append((candidate, e))
                continue
            if failures:
                self._skipped(failures, candidate, set_aside)
            return value, candidate
        newest, error = failures[0]
        if isinstance(error, MotifError):
            raise error
        older = f" (and {len(failures) - 1} older step(s))" if len(failures) > 1 else ""
        raise MotifError(
            f"checkpoint {self.directory / str(newest)} cannot be restored{older}: {one_line(error)}"
        ) from error

    def _skipped(self, failures: list[tuple[int, BaseException]], used: int, set_aside: bool) -> None:
        for step, error in failures:
            where = self.directory / str(step)
            note = ""
            if set_aside and jax.process_index() == 0:
                target = _free_name(where.with_name(where.name + UNREADABLE_SUFFIX))
                where.rename(target)
                note = f"; moved to {target.name}"
            warnings.warn(
                f"checkpoint {where} is unreadable ({one_line(error)}); using step {used} instead{note}",
                RuntimeWarning,
                stacklevel=3,
            )
        if set_aside:
            self.manager.reload()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _WriteErrors:
    """Turns a failed checkpoint write into one MotifError that says the older steps are intact."""

    def __init__(self, checkpointer: Checkpointer, step: int | None):
        self.checkpointer, self.step = checkpointer, step

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        if error is None or isinstance(error, MotifError) or not isinstance(error, Exception):
            return False
        problem = disk_problem(error)
        if problem is None:
            return False
        c = self.checkpointer
        done = [s for s in c.steps() if s != self.step]
        kept = f"the previous checkpoint (step {done[-1]}) is intact" if done else "no earlier checkpoint exists"
        step = "" if self.step is None else f" step {self.step}"
        raise MotifError(
            f"{problem} while writing checkpoint{step} in {c.directory}; {kept}; free space and rerun with --resume"
        ) from error


def _free_name(path: Path) -> Path:
    candidate, n = path, 1
    while candidate.exists():
        candidate, n = path.with_name(f"{path.name}.{n}"), n + 1
    return candidate


def abstract_like(tree: Any, sharding=None) -> Any:
    """ShapeDtypeStructs for ``tree``, optionally placed with one sharding (e.g. replicated on a new mesh)."""

    def leaf(x):
        placed = sharding if sharding is not None else getattr(x, "sharding", None)
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=placed)

    return jax.tree.map(leaf, tree)
