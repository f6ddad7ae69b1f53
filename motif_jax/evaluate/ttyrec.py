"""Read NLE's ttyrec game recordings into terminal frames (characters, colours, cursor).

NLE writes a bzip2 ttyrec per recorded episode when created with ``save_ttyrec_every``
and ``savedir``. The terminal emulation that turns the byte stream back into a 24×80
screen ships with NLE itself (``nle._pyconverter``, used by ``nle.dataset``), so we
reuse it rather than parse escape sequences ourselves.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

from motif_jax.errors import MotifError

ROWS, COLS = 24, 80
_CHUNK = 256
_EPISODE_FILE = re.compile(r"^nle\.(\d+)\.(\d+)\.ttyrec\d*\.bz2$")


@dataclasses.dataclass(frozen=True)
class TtyFrames:
    chars: np.ndarray  # (T, 24, 80) uint8
    colors: np.ndarray  # (T, 24, 80) int8, NetHack colour index (low 4 bits)
    cursors: np.ndarray  # (T, 2) int16 (row, col)
    timestamps: np.ndarray  # (T,) int64 microseconds

    def __len__(self) -> int:
        return len(self.chars)


def read_ttyrec(path: str | Path) -> TtyFrames:
    """Every frame of one ttyrec file (NLE's version-3 format)."""
    from nle import _pyconverter
    from nle.nethack import TTYREC_VERSION

    path = Path(path)
    if not path.is_file():
        raise MotifError(f"ttyrec {path} not found")
    converter = _pyconverter.Converter(ROWS, COLS, TTYREC_VERSION)
    try:
        converter.load_ttyrec(str(path))
    except Exception as e:  # the converter raises plain RuntimeErrors for unreadable files
        raise MotifError(f"ttyrec {path} could not be read: {e}") from e
    parts = []
    while True:
        chunk = {
            "chars": np.zeros((_CHUNK, ROWS, COLS), np.uint8),
            "colors": np.zeros((_CHUNK, ROWS, COLS), np.int8),
            "cursors": np.zeros((_CHUNK, 2), np.int16),
            "timestamps": np.zeros((_CHUNK,), np.int64),
        }
        remaining = converter.convert(
            chunk["chars"],
            chunk["colors"],
            chunk["cursors"],
            chunk["timestamps"],
            np.zeros((_CHUNK,), np.uint8),
            np.zeros((_CHUNK,), np.int32),
        )
        filled = _CHUNK - remaining
        parts.append({k: v[:filled] for k, v in chunk.items()})
        if remaining:
            break
    return TtyFrames(**{k: np.concatenate([p[k] for p in parts]) for k in parts[0]})


def episode_ttyrecs(directory: str | Path) -> list[Path]:
    """NLE's ttyrec files in ``directory`` (``nle.<pid>.<episode>.ttyrec3.bz2``), in episode order."""
    found = []
    for path in Path(directory).glob("*.bz2"):
        match = _EPISODE_FILE.match(path.name)
        if match:
            found.append(((int(match.group(2)), int(match.group(1))), path))
    return [path for _, path in sorted(found)]
