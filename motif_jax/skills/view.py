"""The read-only view of one env's observation that skill code sees.

Skill and policy files (hand-written or LLM-written) read only this: plain Python values with NetHack's
names, never NLE's arrays or indices, so the code stays short and the interface stays narrow. A view is
built for every env at every step, so it is cheap: the bottom line is one ``tolist``, and what is on the
map is one table lookup over the glyphs (the table, glyph -> bit mask of names, is built once at import).
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass

import numpy as np
from nle import nethack

# Map features by NetHack's own explanation of the symbol (no cmap indices hard-coded).
_FEATURES = {
    "staircase down": "downstairs",
    "staircase up": "upstairs",
    "ladder down": "downladder",
    "ladder up": "upladder",
    "altar": "altar",
    "fountain": "fountain",
    "sink": "sink",
    "opulent throne": "throne",
    "grave": "grave",
    "trap door": "trapdoor",
    "hole": "hole",
}
# Monsters by name; every other monster (not the hero's own cell, not a pet) is "monster".
_MONSTERS = {"shopkeeper": "shopkeeper", "Oracle": "oracle", "aligned priest": "priest", "watchman": "watchman"}
LABELS = (*_FEATURES.values(), *_MONSTERS.values(), "monster", "pet", "object", "trap")


def _glyph_labels() -> np.ndarray:
    """glyph -> bit mask of the names in LABELS it shows."""
    bit = {label: np.uint32(1 << i) for i, label in enumerate(LABELS)}
    table = np.zeros(nethack.MAX_GLYPH + 1, np.uint32)  # + NO_GLYPH's slot would be out of range otherwise
    for glyph in range(nethack.MAX_GLYPH):
        label = None
        if nethack.glyph_is_cmap(glyph):
            label = _FEATURES.get(nethack.symdef.from_idx(nethack.glyph_to_cmap(glyph)).explanation)
            if label is None and nethack.glyph_is_trap(glyph):
                label = "trap"
        elif nethack.glyph_is_pet(glyph):
            label = "pet"
        elif nethack.glyph_is_monster(glyph):
            label = _MONSTERS.get(nethack.permonst(nethack.glyph_to_mon(glyph)).mname, "monster")
        elif nethack.glyph_is_object(glyph):
            label = "object"
        if label is not None:
            table[glyph] = bit[label]
            if label in _MONSTERS.values():
                table[glyph] |= bit["monster"]  # a shopkeeper is also a monster in sight
    return table


GLYPH_LABELS = _glyph_labels()
_LABEL_SETS: dict[int, frozenset[str]] = {}  # bit mask -> names, filled as masks are seen


def labels_of(mask: int) -> frozenset[str]:
    names = _LABEL_SETS.get(mask)
    if names is None:
        names = _LABEL_SETS[mask] = frozenset(label for i, label in enumerate(LABELS) if mask >> i & 1)
    return names


@dataclass(frozen=True, slots=True)
class View:
    """What skill code may read about one env now (see docs/skills.md)."""

    message: str = ""
    depth: int = 1  # levels below the surface, across branches
    dlvl: int = 1  # level number within the current dungeon branch
    dungeon: int = 0  # branch number: 0 the Dungeons of Doom, 2 the Gnomish Mines, ...
    hp: int = 0
    max_hp: int = 0
    gold: int = 0
    xp_level: int = 1
    xp_points: int = 0
    hunger: int = 1  # 0 satiated, 1 not hungry, 2 hungry, 3 weak, 4 fainting
    turn: int = 1
    score: int = 0
    in_sight: frozenset[str] = frozenset()  # names of things on the map (see LABELS); not the hero's own cell
    inventory: tuple[str, ...] = ()  # item texts; empty when the env does not report them
    available: tuple[str, ...] = ()  # skills whose initiation holds now (set for policies only)


@dataclass(frozen=True, slots=True)
class Started:
    """Where the active skill began: game turns and agent steps since, and the view at its start."""

    turns: int
    steps: int
    view: View


def make_view(obs: dict[str, np.ndarray], available: tuple[str, ...] = (), lazy_sight: bool = False) -> View:
    """The view of one env's observation (``blstats``, ``message``; ``glyphs``, ``inv_strs`` when present).

    ``lazy_sight``: ``in_sight`` is worked out from the glyphs on first use (two thirds of a view's cost),
    so the glyphs must stay as they are while the view is read; see :class:`SightOnDemand`."""
    batch = {key: value[None] for key, value in obs.items()}
    return make_views(batch, available, lazy_sight)[0]


def make_views(obs: dict[str, np.ndarray], available: tuple[str, ...] = (), lazy_sight: bool = False) -> list[View]:
    """:func:`make_view` of every row of a batch of observations (leading axis: envs), built in one pass:
    the controller makes one per env per step, so the bottom lines convert to Python in one call."""
    rows = obs["blstats"].tolist()
    messages = [row.partition(b"\0")[0].decode("latin-1") for row in map(bytes, obs["message"])]
    glyphs, inv = obs.get("glyphs"), obs.get("inv_strs")
    available = tuple(available)
    views = []
    for i, bl in enumerate(rows):
        x, y = bl[nethack.NLE_BL_X], bl[nethack.NLE_BL_Y]
        if glyphs is None:
            in_sight = frozenset()
        elif lazy_sight:
            in_sight = SightOnDemand(glyphs[i], x, y)
        else:
            in_sight = labels_of(_mask_in_sight(glyphs[i], x, y))
        views.append(
            View(
                message=messages[i],
                depth=bl[_DEPTH],
                dlvl=bl[_DLEVEL],
                dungeon=bl[_DNUM],
                hp=bl[_HP],
                max_hp=bl[_HPMAX],
                gold=bl[_GOLD],
                xp_level=bl[_XP],
                xp_points=bl[_EXP],
                hunger=bl[_HUNGER],
                turn=bl[_TIME],
                score=bl[_SCORE],
                in_sight=in_sight,
                inventory=() if inv is None else tuple(_text(row) for row in inv[i][inv[i][:, 0] != 0]),
                available=available,
            )
        )
    return views


# Where View's fields sit in the bottom line
_DEPTH, _DLEVEL, _DNUM = nethack.NLE_BL_DEPTH, nethack.NLE_BL_DLEVEL, nethack.NLE_BL_DNUM
_HP, _HPMAX, _GOLD = nethack.NLE_BL_HP, nethack.NLE_BL_HPMAX, nethack.NLE_BL_GOLD
_XP, _EXP, _HUNGER = nethack.NLE_BL_XP, nethack.NLE_BL_EXP, nethack.NLE_BL_HUNGER
_TIME, _SCORE = nethack.NLE_BL_TIME, nethack.NLE_BL_SCORE


class SightOnDemand(Set):
    """``View.in_sight`` worked out on first use. The controller builds a view of every env at every step,
    but most steps run only the active skill's termination, which rarely asks what is in sight; the
    controller freezes it (``frozenset(view.in_sight)``) before keeping a view past the step."""

    __slots__ = ("_glyphs", "_x", "_y", "_names")

    def __init__(self, glyphs: np.ndarray, x: int, y: int):
        self._glyphs, self._x, self._y, self._names = glyphs, x, y, None

    def _get(self) -> frozenset[str]:
        if self._names is None:
            self._names = labels_of(_mask_in_sight(self._glyphs, self._x, self._y))
            self._glyphs = None
        return self._names

    def __contains__(self, name) -> bool:
        return name in self._get()

    def __iter__(self):
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())

    def __hash__(self) -> int:
        return hash(self._get())

    def __repr__(self) -> str:
        return repr(self._get())


def _mask_in_sight(glyphs: np.ndarray, x: int, y: int) -> int:
    codes = GLYPH_LABELS[glyphs]
    if 0 <= y < codes.shape[0] and 0 <= x < codes.shape[1]:
        codes[y, x] = 0  # the hero's own cell shows the hero (a monster glyph), not what is around
    return int(np.bitwise_or.reduce(codes, axis=None))


def _text(row: np.ndarray) -> str:
    return row.tobytes().partition(b"\0")[0].decode("latin-1")
