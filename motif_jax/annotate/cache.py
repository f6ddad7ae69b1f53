"""Answers to caption pairs, persisted as JSON lines next to the labels.

Each line is one answer in the pair's canonical order (see `pairs.canonical_order`), so reruns and
other chunks reuse it in either presentation order. Lines are appended with one ``write`` per batch;
a line cut short by a crash is skipped when reading, so the file never needs repair.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from motif_jax.errors import MotifError, disk_problem


class AnswerCache:
    """key -> (label, p_first) in canonical order; appended to ``path`` on `flush`."""

    def __init__(self, path: str | Path | None, ignore_existing: bool = False):
        """``ignore_existing`` starts empty and skips what the file already holds (``--overwrite``
        of one chunk); since the last line for a key wins, fresh answers then supersede old ones."""
        self.path = Path(path) if path else None
        self._answers: dict[str, tuple[int, float]] = {}
        self._pending: list[str] = []
        self._offset = 0
        if ignore_existing and self.path is not None and self.path.exists():
            self._offset = self.path.stat().st_size
        self.reload()

    def reload(self) -> None:
        """Pick up answers other processes (chunks) appended since we last looked."""
        if self.path is None or not self.path.exists():
            return
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        complete = data[: data.rfind(b"\n") + 1]  # a line still being written waits for next time
        self._offset += len(complete)
        for line in complete.splitlines():
            try:
                row = json.loads(line)
                key, label = str(row["key"]), int(row["label"])
                p_first = float("nan") if row.get("p_first") is None else float(row["p_first"])
            except (ValueError, KeyError, TypeError):
                continue  # a line torn by a crash
            self._answers[key] = (label, p_first)

    def __len__(self) -> int:
        return len(self._answers)

    def __contains__(self, key: str) -> bool:
        return key in self._answers

    def get(self, key: str) -> tuple[int, float] | None:
        return self._answers.get(key)

    def put(self, key: str, label: int, p_first: float) -> None:
        self._answers[key] = (int(label), float(p_first))
        p = None if math.isnan(p_first) else round(float(p_first), 6)
        self._pending.append(json.dumps({"key": key, "label": int(label), "p_first": p}) + "\n")

    def flush(self) -> None:
        """Append the new answers in a single write so concurrent chunks never interleave lines, and sync
        them to disk before the caller writes the labels they explain. A failed write (disk full) is a
        MotifError; what reached the file stays valid (a torn last line is skipped on reading)."""
        if self.path is None or not self._pending:
            self._pending.clear()
            return
        data = "".join(self._pending).encode("utf-8")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data  # end a line torn by a crash instead of gluing onto it
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            raise MotifError(
                f"{self.path}: {disk_problem(e) or e.strerror or e} while saving answers; the labels "
                "flushed before this block are kept; fix it and rerun to resume"
            ) from e
        self._pending.clear()
