"""Draw terminal frames (24×80 characters + NetHack colours) as images and animated GIFs.

Frames are drawn in a 16-colour palette image ("P" mode), so a GIF of a whole episode
stays small. The font is matplotlib's bundled DejaVu Sans Mono: always installed with
matplotlib, monospaced, and it has every glyph NetHack's ASCII interface uses.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from motif_jax.errors import MotifError
from motif_jax.evaluate.ttyrec import TtyFrames

# NetHack's colour indices (CLR_BLACK .. CLR_WHITE) as RGB; 0 (black) is drawn dark grey so it stays visible.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (85, 85, 85),
    (205, 49, 49),
    (13, 188, 121),
    (229, 229, 16),
    (36, 114, 200),
    (188, 63, 188),
    (17, 168, 205),
    (204, 204, 204),
    (204, 204, 204),
    (255, 140, 0),
    (35, 209, 139),
    (245, 245, 67),
    (59, 142, 234),
    (214, 112, 214),
    (41, 184, 219),
    (255, 255, 255),
)
BACKGROUND = (0, 0, 0)
_BACKGROUND_INDEX = 16


@lru_cache(maxsize=4)
def _font(size: int):
    from matplotlib import font_manager
    from PIL import ImageFont

    path = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans Mono"), fallback_to_default=True)
    return ImageFont.truetype(path, size)


def _cell_size(font) -> tuple[int, int]:
    ascent, descent = font.getmetrics()
    return int(round(font.getlength("M"))), ascent + descent


def render_frame(chars: np.ndarray, colors: np.ndarray, cursor=None, font_size: int = 14):
    """One terminal screen as a palette ``PIL.Image``; runs of same-coloured text are drawn at once."""
    from PIL import Image, ImageDraw

    font = _font(font_size)
    cell_w, cell_h = _cell_size(font)
    rows, cols = chars.shape
    image = Image.new("P", (cols * cell_w, rows * cell_h), _BACKGROUND_INDEX)
    flat_palette = [c for rgb in PALETTE + (BACKGROUND,) for c in rgb]
    image.putpalette(flat_palette)
    draw = ImageDraw.Draw(image)
    color_index = np.asarray(colors, dtype=np.int64) & 15
    for r in range(rows):
        line = bytes(np.asarray(chars[r], dtype=np.uint8)).decode("latin-1")
        start = 0
        for c in range(1, cols + 1):
            if c == cols or color_index[r, c] != color_index[r, start]:
                text = line[start:c]
                if text.strip():
                    draw.text((start * cell_w, r * cell_h), text, font=font, fill=int(color_index[r, start]))
                start = c
    if cursor is not None:
        row, col = int(cursor[0]), int(cursor[1])
        if 0 <= row < rows and 0 <= col < cols:
            y = (row + 1) * cell_h - 2
            draw.line([(col * cell_w, y), ((col + 1) * cell_w - 1, y)], fill=15, width=2)
    return image


def frame_indices(num_frames: int, max_frames: int) -> np.ndarray:
    """At most ``max_frames`` evenly spaced frame indices, always keeping the first and the last."""
    if num_frames <= 0:
        return np.zeros((0,), np.int64)
    if num_frames <= max_frames:
        return np.arange(num_frames)
    return np.unique(np.linspace(0, num_frames - 1, max_frames).round().astype(np.int64))


def write_gif(
    frames: TtyFrames, path: str | Path, max_frames: int = 400, frame_ms: int = 120, font_size: int = 14
) -> Path:
    """Animate ``frames`` into ``path``; long episodes are subsampled to ``max_frames``, the last frame lingers."""
    if len(frames) == 0:
        raise MotifError(f"cannot write {path}: the recording has no frames")
    keep = frame_indices(len(frames), max_frames)
    images = [render_frame(frames.chars[i], frames.colors[i], frames.cursors[i], font_size) for i in keep]
    durations = [frame_ms] * len(images)
    durations[-1] = max(frame_ms, 2000)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=durations, loop=0, optimize=False)
    return path
