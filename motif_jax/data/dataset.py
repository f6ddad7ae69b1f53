"""Pairs datasets on disk: a memory-mapped reader, the label files, and the writer used by `motif collect`.

Layout (the original Motif layout plus a ``meta.json``)::

    <dataset>/
      meta.json                   written last, atomically; "complete": true (absent in the original layout)
      captions.json               caption distribution of the collected subsequences (ours only)
      data/<key>.npy              (N, 2, L, ...) one file per key, or shards data/<key>.00000.npy,
                                  data/<key>.00001.npy, ... concatenated along the first axis in number order;
                                  the per-step reward is data/rewards.npy (data/reward.npy in older datasets)
      data/prev_message.npy       (N, 2, L, 256) the message of the step before each step (MaestroMotif's
      data/delta.npy              transitions) and (N, 2, L, 5) int32 stat changes since it; optional
      info/<key>.npy              (N, 2) per pair member (shards named like data/)
      preference/<name>.npy       (N,) int8 labels: 0 first preferred, 1 second, 2 tie, 3 unknown
      annotations/<name>.soft.npy (N,) float32 P(first preferred), optional
      annotations/<name>.json     settings the labels were made with; <name>.cache.jsonl: answer cache
      .collect/                   only while a collection is unfinished (its resume state)

``preference/`` holds label files only: the original Motif loader reads every file there as an array
named by the part before the first dot, so any other file would break it. Older datasets kept the
sidecars in ``preference/``; they are still read there and moved out on the next annotation.

Everything is opened with ``mmap_mode="r"`` so opening a dataset costs a few header reads, whatever its size.
"""

from __future__ import annotations

import enum
import errno
import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from motif_jax.data.transitions import DELTA_FIELDS, DELTA_KEY, PREV_MESSAGE_KEY, TRANSITION_KEYS
from motif_jax.errors import MotifError, disk_problem
from motif_jax.files import write_json_atomic


class Label(enum.IntEnum):
    """A pair's preference label, in Motif's int8 encoding (kept so its datasets and tools stay compatible)."""

    FIRST = 0  # the first caption is preferred
    SECOND = 1  # the second is preferred
    TIE = 2  # no preference
    UNKNOWN = 3  # not annotated yet, or the answer could not be read


SCHEMA_VERSION = 1
MESSAGE_LENGTH = 256
META_FILE = "meta.json"
CAPTIONS_FILE = "captions.json"
PROGRESS_DIR = ".collect"  # present only while a collection is unfinished
SOFT_SUFFIX = ".soft"
ANNOTATIONS_DIR = "annotations"  # sidecars of the label files (settings, cache, soft labels)
REWARD_KEY, OLD_REWARD_KEY = "rewards", "reward"
_SHARD_RE = re.compile(r"^(?P<key>.+)\.(?P<index>\d{5})$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]*$")


def decode_message(message: np.ndarray) -> str | np.ndarray:
    """NLE message bytes -> text: bytes up to the first NUL, latin-1, stripped.

    A single message (256,) gives a ``str``; a batch (..., 256) gives an object array of strings of shape (...).
    """
    message = np.asarray(message)
    if message.shape[-1:] != (MESSAGE_LENGTH,):
        raise MotifError(f"message: expected shape (..., {MESSAGE_LENGTH}), got {message.shape}")
    if message.ndim == 1:
        return message.tobytes().split(b"\0", 1)[0].decode("latin-1").strip()
    flat = message.reshape(-1, MESSAGE_LENGTH)
    out = np.empty(len(flat), dtype=object)
    for i, row in enumerate(flat):
        out[i] = row.tobytes().split(b"\0", 1)[0].decode("latin-1").strip()
    return out.reshape(message.shape[:-1])


def new_memmap(path: Path, shape: tuple[int, ...], dtype) -> np.memmap:
    """A new .npy memmap whose disk blocks are reserved up front. A sparse file would fail only when a
    page is first written, and a failed write into a memory map kills the process (SIGBUS); reserved,
    a full disk is a one-line MotifError here instead."""
    try:
        array = np.lib.format.open_memmap(path, mode="w+", shape=shape, dtype=dtype)
        fd = os.open(path, os.O_RDWR)
        try:
            os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # a file system that cannot reserve: sparse
                raise
        finally:
            os.close(fd)
    except OSError as e:
        size = int(np.prod(shape)) * np.dtype(dtype).itemsize
        Path(path).unlink(missing_ok=True)
        raise MotifError(
            f"{path}: cannot create a {size / 2**20:.1f} MiB file ({disk_problem(e) or e.strerror or e})"
        ) from e
    return array


class ShardedArray:
    """Several .npy memmaps read as one array concatenated along the first axis.

    Supports ``shape``, ``dtype``, ``len()`` and indexing of the first axis with an int, a slice, an int array
    or a boolean mask (optionally followed by more indices for the other axes); results are plain ndarrays.
    """

    def __init__(self, shards: Sequence[np.ndarray]):
        if not shards:
            raise ValueError("ShardedArray needs at least one shard")
        self.shards = list(shards)
        lengths = [len(s) for s in self.shards]
        self.starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self.shape = (int(self.starts[-1]), *self.shards[0].shape[1:])
        self.dtype = self.shards[0].dtype
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def _rows(self, rows: np.ndarray) -> np.ndarray:
        n = len(self)
        if rows.size and (rows.min() < -n or rows.max() >= n):
            raise IndexError(f"index out of range for length {n}")
        rows = np.where(rows < 0, rows + n, rows)
        shard_of_row = np.searchsorted(self.starts, rows, side="right") - 1
        out = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        for shard in np.unique(shard_of_row):
            where = shard_of_row == shard
            out[where] = self.shards[shard][rows[where] - self.starts[shard]]
        return out

    def __getitem__(self, index):
        rest = ()
        if isinstance(index, tuple):
            index, rest = index[0], index[1:]
        if isinstance(index, (int, np.integer)):
            result = self._rows(np.array([index], dtype=np.int64))[0]
        elif isinstance(index, slice):
            result = self._rows(np.arange(*index.indices(len(self)), dtype=np.int64))
        else:
            index = np.asarray(index)
            if index.dtype == bool:
                if index.shape != (len(self),):
                    raise IndexError(f"boolean index of shape {index.shape} for length {len(self)}")
                index = np.flatnonzero(index)
            if not np.issubdtype(index.dtype, np.integer):
                raise IndexError(f"unsupported index dtype {index.dtype}")
            result = self._rows(index.reshape(-1).astype(np.int64)).reshape(*index.shape, *self.shape[1:])
        return result[(slice(None),) * (result.ndim - len(self.shape) + 1) + rest] if rest else result

    def __array__(self, dtype=None, copy=None):  # loads everything: for small arrays and tests only
        whole = np.concatenate([np.asarray(s) for s in self.shards])
        return whole if dtype is None else whole.astype(dtype)

    def __repr__(self) -> str:
        return f"ShardedArray(shape={self.shape}, dtype={self.dtype}, shards={len(self.shards)})"


def _open_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as e:
        raise MotifError(f"{path}: not a readable .npy file ({e})") from None


def _scan_keys(folder: Path) -> dict[str, list[Path]]:
    """key -> its file(s) in ``folder``: ``key.npy`` alone, or shards ``key.00000.npy`` ... numbered from 0."""
    single: dict[str, Path] = {}
    shards: dict[str, dict[int, Path]] = {}
    for path in sorted(folder.glob("*.npy")):
        stem = path.name[: -len(".npy")]
        match = _SHARD_RE.match(stem)
        if match:
            shards.setdefault(match["key"], {})[int(match["index"])] = path
        else:
            single[stem] = path
    keys: dict[str, list[Path]] = {key: [path] for key, path in single.items()}
    for key, numbered in shards.items():
        if key in single:
            raise MotifError(f"{folder}: both {key}.npy and shard files {key}.NNNNN.npy exist; keep one form")
        indices = sorted(numbered)
        if indices != list(range(len(indices))):
            missing = sorted(set(range(indices[-1] + 1)) - set(indices))
            raise MotifError(f"{folder}: shards of {key!r} must be numbered 00000, 00001, ...; missing {missing}")
        keys[key] = [numbered[i] for i in indices]
    return keys


def _open_key(paths: list[Path]) -> np.ndarray | ShardedArray:
    arrays = [_open_npy(p) for p in paths]
    if len(arrays) == 1:
        return arrays[0]
    for path, array in zip(paths[1:], arrays[1:]):
        if array.shape[1:] != arrays[0].shape[1:] or array.dtype != arrays[0].dtype:
            raise MotifError(
                f"{path}: shard has shape {array.shape} {array.dtype}, but {paths[0].name} has "
                f"{arrays[0].shape} {arrays[0].dtype} (all but the first axis must match)"
            )
    return ShardedArray(arrays)


class PairsDataset:
    """A pairs dataset opened read-only (our layout with meta.json, or the original Motif layout)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_dir():
            raise MotifError(f"{self.path}: no such dataset directory")
        self.meta = self._read_meta()
        data_dir = self.path / "data"
        if not data_dir.is_dir():
            raise MotifError(f"{self.path}: missing data/ folder (expected data/message.npy, ...)")
        self._data_files = _scan_keys(data_dir)
        if OLD_REWARD_KEY in self._data_files and REWARD_KEY not in self._data_files:
            self._data_files[REWARD_KEY] = self._data_files.pop(OLD_REWARD_KEY)  # written before the rename
        if "message" not in self._data_files:
            raise MotifError(f"{data_dir}: missing message.npy (captions are required)")
        self._data: dict[str, Any] = {}
        message = self.data("message")
        if message.dtype != np.uint8 or message.ndim < 4 or message.shape[1] != 2 or message.shape[-1] != 256:
            raise MotifError(
                f"{data_dir / 'message.npy'}: expected uint8 (N, 2, L, 256), got {message.dtype} {message.shape}"
            )
        self.num_pairs, self.seq_len = int(message.shape[0]), int(message.shape[2])
        for key in self._data_files:
            self._check_data(key)
        self._check_transitions()
        info_dir = self.path / "info"
        self._info_files = _scan_keys(info_dir) if info_dir.is_dir() else {}
        self._info: dict[str, Any] = {}
        for key in self._info_files:
            self._check_info(key)

    # -- metadata ------------------------------------------------------------------------------------------
    def _read_meta(self) -> dict:
        meta_path = self.path / META_FILE
        if not meta_path.exists():
            if (self.path / PROGRESS_DIR).exists():
                raise MotifError(f"{self.path}: collection did not finish; rerun `motif collect` to resume it")
            return {}
        try:
            meta = json.loads(meta_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise MotifError(f"{meta_path}: not valid JSON ({e})") from None
        if not isinstance(meta, dict) or meta.get("complete") is not True:
            raise MotifError(f'{meta_path}: dataset is not marked complete ("complete": true)')
        version = meta.get("schema_version")
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise MotifError(
                f"{meta_path}: schema_version {version!r} is not supported (this version reads <= {SCHEMA_VERSION})"
            )
        return meta

    def _check_data(self, key: str) -> None:
        array = self.data(key)
        where = self._data_files[key][0]
        if tuple(array.shape[:3]) != (self.num_pairs, 2, self.seq_len):
            raise MotifError(
                f"{where}: expected leading shape (N, 2, L) = ({self.num_pairs}, 2, {self.seq_len}), "
                f"got {tuple(array.shape)}"
            )
        described = self.meta.get("data", {})
        expected = described.get(key) or (described.get(OLD_REWARD_KEY) if key == REWARD_KEY else None)
        if expected and (list(array.shape[3:]) != list(expected["shape"]) or str(array.dtype) != expected["dtype"]):
            raise MotifError(
                f"{where}: meta.json says {expected['dtype']} (N, 2, L, *{expected['shape']}), "
                f"file has {array.dtype} {tuple(array.shape)}"
            )
        if key == REWARD_KEY and not np.issubdtype(array.dtype, np.floating):
            raise MotifError(f"{where}: expected a float array, got {array.dtype}")

    def _check_transitions(self) -> None:
        """Both transition keys or neither; the previous message shaped like the message, the delta (..., 5) ints."""
        present = [key for key in TRANSITION_KEYS if key in self._data_files]
        data_dir = self.path / "data"
        if present and len(present) != len(TRANSITION_KEYS):
            other = next(key for key in TRANSITION_KEYS if key not in present)
            raise MotifError(f"{data_dir}: has {present[0]}.npy but not {other}.npy (transitions need both)")
        if "transitions" in self.meta and not present:
            raise MotifError(f"{self.path / META_FILE}: lists transitions, but data/{DELTA_KEY}.npy is missing")
        if not present:
            return
        prev, delta = self.data(PREV_MESSAGE_KEY), self.data(DELTA_KEY)
        if prev.dtype != np.uint8 or tuple(prev.shape) != tuple(self.data("message").shape):
            raise MotifError(
                f"{data_dir / (PREV_MESSAGE_KEY + '.npy')}: expected uint8 shaped like message.npy "
                f"{tuple(self.data('message').shape)}, got {prev.dtype} {tuple(prev.shape)}"
            )
        if not np.issubdtype(delta.dtype, np.integer) or tuple(delta.shape[3:]) != (len(DELTA_FIELDS),):
            raise MotifError(
                f"{data_dir / (DELTA_KEY + '.npy')}: expected integers (N, 2, L, {len(DELTA_FIELDS)}) "
                f"({', '.join(DELTA_FIELDS)}), got {delta.dtype} {tuple(delta.shape)}"
            )

    @property
    def has_transitions(self) -> bool:
        """Whether each step comes with its previous message and stat changes (data/prev_message, data/delta)."""
        return all(key in self._data_files for key in TRANSITION_KEYS)

    def _check_info(self, key: str) -> None:
        array = self.info(key)
        if tuple(array.shape[:2]) != (self.num_pairs, 2):
            raise MotifError(
                f"{self.path / 'info' / (key + '.npy')}: expected shape (N, 2) = "
                f"({self.num_pairs}, 2), got {tuple(array.shape)}"
            )

    # -- arrays ----------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.num_pairs

    def __repr__(self) -> str:
        return f"PairsDataset({str(self.path)!r}, pairs={self.num_pairs}, seq_len={self.seq_len}, keys={self.keys})"

    @property
    def keys(self) -> list[str]:
        return sorted(self._data_files)

    @property
    def info_keys(self) -> list[str]:
        return sorted(self._info_files)

    def data(self, key: str) -> np.ndarray | ShardedArray:
        """(N, 2, L, ...) memory-mapped array of one observation key (``reward`` is ``rewards``'s old name)."""
        if key == OLD_REWARD_KEY and key not in self._data_files:
            key = REWARD_KEY
        if key not in self._data_files:
            raise MotifError(f"{self.path / 'data'}: no key {key!r} (available: {', '.join(self.keys)})")
        if key not in self._data:
            self._data[key] = _open_key(self._data_files[key])
        return self._data[key]

    def info(self, key: str) -> np.ndarray | ShardedArray:
        """(N, 2) memory-mapped per-member info (score, episode_score, turns, dlvl, ...)."""
        if key not in self._info_files:
            raise MotifError(f"{self.path / 'info'}: no key {key!r} (available: {', '.join(self.info_keys) or 'none'})")
        if key not in self._info:
            self._info[key] = _open_key(self._info_files[key])
        return self._info[key]

    # -- labels ----------------------------------------------------------------------------------------------
    @property
    def annotators(self) -> list[str]:
        folder = self.path / "preference"
        if not folder.is_dir():
            return []
        names = [p.name[: -len(".npy")] for p in folder.glob("*.npy")]
        return sorted(n for n in names if not n.endswith(SOFT_SUFFIX))  # old datasets kept .soft here

    def _check_name(self, name: str) -> None:
        if not _NAME_RE.match(name) or name.endswith(SOFT_SUFFIX):
            raise MotifError(f"annotator name {name!r}: use letters, digits, '_', '-', '.' (not ending in .soft)")

    def _label_path(self, name: str) -> Path:
        self._check_name(name)
        return self.path / "preference" / f"{name}.npy"

    def sidecar_path(self, name: str, suffix: str, for_writing: bool = False) -> Path:
        """Where the sidecar ``<name><suffix>`` of a label file lives (``.json``, ``.cache.jsonl``,
        ``.soft.npy``): ``annotations/``, or ``preference/`` for datasets written before the move.
        ``for_writing`` moves an old-location file to ``annotations/`` first, so writing never leaves
        a file in ``preference/`` that the original loader would choke on."""
        self._check_name(name)
        new = self.path / ANNOTATIONS_DIR / f"{name}{suffix}"
        old = self.path / "preference" / f"{name}{suffix}"
        if not old.exists() or new.exists():
            return new
        if not for_writing:
            return old
        new.parent.mkdir(exist_ok=True)
        try:
            os.replace(old, new)
        except FileNotFoundError:
            pass  # another chunk's process moved it first
        return new

    def _check_label_file(self, path: Path, array: np.ndarray, dtype: type) -> None:
        if array.dtype != dtype or array.shape != (self.num_pairs,):
            raise MotifError(
                f"{path}: expected {np.dtype(dtype).name} ({self.num_pairs},), got {array.dtype} {array.shape}"
            )

    def labels(self, name: str) -> np.ndarray:
        """Read-only int8 (N,) labels of one annotator: 0 first, 1 second, 2 tie, 3 unknown."""
        path = self._label_path(name)
        if not path.exists():
            raise MotifError(f"{path}: no labels for annotator {name!r} (have: {', '.join(self.annotators) or 'none'})")
        labels = _open_npy(path)
        self._check_label_file(path, labels, np.int8)
        bad = np.flatnonzero((labels < Label.FIRST) | (labels > Label.UNKNOWN))
        if bad.size:
            raise MotifError(f"{path}: label {int(labels[bad[0]])} at row {int(bad[0])} is outside 0..3")
        return labels

    def soft_labels(self, name: str) -> np.ndarray | None:
        """Read-only float32 (N,) P(first preferred), or None when the annotator wrote no soft labels."""
        path = self.sidecar_path(name, SOFT_SUFFIX + ".npy")
        if not path.exists():
            return None
        soft = _open_npy(path)
        self._check_label_file(path, soft, np.float32)
        return soft

    def _open_writable(self, path: Path, dtype: type, fill, overwrite: bool) -> np.memmap:
        if overwrite or not path.exists():
            self._create_filled(path, dtype, fill, replace=overwrite)
        try:
            array = np.lib.format.open_memmap(path, mode="r+")
        except (ValueError, OSError) as e:
            raise MotifError(f"{path}: not a readable .npy file ({e}); pass overwrite to recreate it") from None
        self._check_label_file(path, array, dtype)
        return array

    def _create_filled(self, path: Path, dtype: type, fill, replace: bool) -> None:
        """Write the filled file under a private name, then publish it in one step.

        A crash never leaves a half-initialised file, and when several annotation processes (chunks) start
        at once, exactly one creates the file (``os.link`` fails if it exists) and all share it.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        array = new_memmap(tmp, (self.num_pairs,), dtype)
        array[:] = fill
        array.flush()
        del array
        try:
            if replace:
                os.replace(tmp, path)
            else:
                os.link(tmp, path)
        except FileExistsError:
            pass  # another process created it first: use theirs
        finally:
            tmp.unlink(missing_ok=True)

    def open_labels(self, name: str, overwrite: bool = False) -> np.memmap:
        """Writable int8 (N,) labels; created filled with 3 (unknown), or reset to 3 when ``overwrite``."""
        return self._open_writable(self._label_path(name), np.int8, Label.UNKNOWN, overwrite)

    def open_soft_labels(self, name: str, overwrite: bool = False) -> np.memmap:
        """Writable float32 (N,) P(first preferred); created filled with NaN (not yet annotated)."""
        return self._open_writable(
            self.sidecar_path(name, SOFT_SUFFIX + ".npy", for_writing=True), np.float32, np.nan, overwrite
        )


def open_dataset(path: str | os.PathLike) -> PairsDataset:
    """Open a pairs dataset (ours or the original Motif layout) memory-mapped; MotifError on bad input."""
    return PairsDataset(path)


# ------------------------------------------------------------------------------------------------------------
# Writing


def output_dir_state(path: Path) -> str:
    """What an output directory holds: 'empty' (or absent), 'complete', 'incomplete' (ours) or 'foreign'."""
    if not path.exists():
        return "empty"
    if not path.is_dir():
        return "foreign"
    if (path / META_FILE).exists():
        return "complete"
    if (path / PROGRESS_DIR).is_dir():
        return "incomplete"
    return "foreign" if any(path.iterdir()) else "empty"


def remove_dataset(path: Path) -> None:
    """Delete what a collection writes (and labels, which belong to the old data); refuses foreign folders."""
    state = output_dir_state(path)
    if state == "foreign":
        raise MotifError(f"{path}: not a motif dataset; refusing to delete it (choose another --out)")
    for file in (path / META_FILE, path / CAPTIONS_FILE, *path.glob("*.tmp")):
        file.unlink(missing_ok=True)
    for name in ("data", "info", "preference", ANNOTATIONS_DIR, PROGRESS_DIR):
        shutil.rmtree(path / name, ignore_errors=True)


class DatasetWriter:
    """Creates (or reopens, to resume) one memmap per key and writes subsequences into pair slots.

    Slot ``s`` is member ``s % 2`` of pair ``s // 2``. Nothing is kept in RAM: values go straight to the
    memmaps, so memory stays bounded whatever the number of pairs. ``finalize`` writes meta.json last.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        num_pairs: int,
        seq_len: int,
        data_specs: Mapping[str, tuple[tuple[int, ...], np.dtype]],
        info_specs: Mapping[str, np.dtype],
        resume: bool = False,
    ):
        self.path = Path(path)
        self.num_pairs, self.seq_len = num_pairs, seq_len
        mode = "r+" if resume else "w+"
        (self.path / "data").mkdir(parents=True, exist_ok=True)
        (self.path / "info").mkdir(exist_ok=True)
        self.data = {
            key: self._memmap(self.path / "data" / f"{key}.npy", mode, (num_pairs, 2, seq_len, *shape), dtype)
            for key, (shape, dtype) in data_specs.items()
        }
        self.info = {
            key: self._memmap(self.path / "info" / f"{key}.npy", mode, (num_pairs, 2), dtype)
            for key, dtype in info_specs.items()
        }

    @staticmethod
    def _memmap(path: Path, mode: str, shape: tuple[int, ...], dtype) -> np.memmap:
        if mode == "w+":
            return new_memmap(path, shape, dtype)
        try:
            array = np.lib.format.open_memmap(path, mode="r+")
        except (ValueError, OSError) as e:
            raise MotifError(f"{path}: cannot resume, file unreadable ({e}); use --overwrite") from None
        if array.shape != shape or array.dtype != np.dtype(dtype):
            raise MotifError(
                f"{path}: cannot resume, has {array.dtype} {array.shape}, expected "
                f"{np.dtype(dtype)} {shape}; use --overwrite"
            )
        return array

    def write(self, slot: int, steps: Mapping[str, np.ndarray], info: Mapping[str, Any]) -> None:
        """Store one subsequence: ``steps[key]`` is (L, ...) for every data key, ``info`` one value per key."""
        pair, member = divmod(int(slot), 2)
        for key, array in self.data.items():
            array[pair, member] = steps[key]
        for key, value in info.items():
            self.info[key][pair, member] = value

    def set_info(self, slots: Sequence[int], key: str, value) -> None:
        slots = np.asarray(slots, dtype=np.int64)
        self.info[key][slots // 2, slots % 2] = value

    def flush(self) -> None:
        for array in (*self.data.values(), *self.info.values()):
            array.flush()

    def finalize(self, meta: Mapping[str, Any], captions: Mapping[str, Any] | None = None) -> None:
        """Flush everything, then write captions.json and, last and atomically, meta.json."""
        self.flush()
        if captions is not None:
            write_json_atomic(self.path / CAPTIONS_FILE, captions)
        full = {
            "schema_version": SCHEMA_VERSION,
            **meta,
            "num_pairs": self.num_pairs,
            "seq_len": self.seq_len,
            "data": {k: {"shape": list(a.shape[3:]), "dtype": str(a.dtype)} for k, a in self.data.items()},
            "info": {k: {"dtype": str(a.dtype)} for k, a in self.info.items()},
            "complete": True,
        }
        write_json_atomic(self.path / META_FILE, full)
        shutil.rmtree(self.path / PROGRESS_DIR, ignore_errors=True)


def caption_distribution(message: np.ndarray | ShardedArray, top: int = 50, chunk_pairs: int = 4096) -> dict:
    """Counts of the captions of every step in the dataset, read in chunks (bounded memory)."""
    from collections import Counter

    counts: Counter[str] = Counter()
    for start in range(0, len(message), chunk_pairs):
        chunk = np.asarray(message[start : start + chunk_pairs]).reshape(-1, MESSAGE_LENGTH)
        unique, occurrences = np.unique(chunk, axis=0, return_counts=True)
        for row, count in zip(unique, occurrences):
            counts[decode_message(row)] += int(count)
    total = sum(counts.values())
    return {
        "steps": total,
        "unique": len(counts),
        "fraction_empty": counts.get("", 0) / total if total else 0.0,
        "top": [{"caption": c, "count": n} for c, n in counts.most_common(top)],
    }
