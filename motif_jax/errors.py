"""One exception type for bad user input, so the CLI can print one clear line instead of a traceback."""

from __future__ import annotations

import errno
from pathlib import Path


class MotifError(Exception):
    """A problem the user can fix (bad file, bad option, missing dependency). Message = one line."""


_DISK_ERRORS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EIO: "I/O error",
}
DISK_PHRASES = ("No space left on device", "Disk quota exceeded", "Read-only file system", "Permission denied")


def disk_problem(error: BaseException | None) -> str | None:
    """What went wrong with the disk if ``error`` (or what caused it) is a disk error, else None.
    Libraries that wrap the OS error (TensorStore) are recognised by its text."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in _DISK_ERRORS:
            return _DISK_ERRORS[error.errno]
        for phrase in DISK_PHRASES:
            if phrase in str(error):
                return phrase[0].lower() + phrase[1:]
        error = error.__cause__ or error.__context__
    return None


def make_dir(path: str | Path, what: str = "output directory") -> Path:
    """``mkdir -p`` whose failure (a file in the way, no permission, full disk) is a one-line MotifError."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MotifError(f"{path}: cannot create the {what} ({e.strerror or e})") from None
    return path
