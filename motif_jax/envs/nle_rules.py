"""The Motif task rules as small pure functions on NLE observations.

Kept apart from the environment class so each rule can be tested on hand-built arrays, without
driving a game into the situation.
"""

from __future__ import annotations

import re

import numpy as np
from nle import nethack

DESCEND_MESSAGE = b"You descend the stairs."
EAT_MENU_PROMPT = b"What do you want to eat?"
# Asked first when food lies on the floor: "There is a lichen corpse here; eat it? [ynq] (n)".
EAT_FLOOR_QUESTIONS = (b"; eat it?", b"; eat one?")
YES_KEY = ord("y")
ESCAPE_KEY = nethack.C("[")
SUCCESS_REWARD = 50.0
STALL_PENALTY = -0.01

_FIRST_OFFERED_LETTER = re.compile(rb"\[([A-Za-z])")


def message_key(message: np.ndarray) -> bytes:
    """The caption as bytes up to its NUL: the identity used to count repeats of a message."""
    return message.tobytes().partition(b"\0")[0]


def first_offered_letter(prompt: bytes) -> int | None:
    """Inventory letter of the first item a "What do you want to eat? [fgh or ?*]" prompt offers.

    None when the prompt offers no item, only the '?*' menus.
    """
    match = _FIRST_OFFERED_LETTER.search(prompt)
    return match.group(1)[0] if match else None


def answer_eat_prompt(key: int, message: bytes) -> int:
    """Translate the agent's key while the game asks what to eat.

    The task action set has no inventory letters, so without this the agent could never choose a
    food item (any key it has answers "You don't have that object." and the prompt comes back).
    'y' means yes: eat the food on the floor, or the first item offered from the inventory.
    Any other key cancels the eating. Outside an eat prompt the key is returned unchanged.
    """
    if EAT_MENU_PROMPT in message:
        if key == YES_KEY:
            letter = first_offered_letter(message)
            if letter is not None:
                return letter
        return ESCAPE_KEY
    if any(question in message for question in EAT_FLOOR_QUESTIONS):
        return YES_KEY if key == YES_KEY else ESCAPE_KEY
    return key


def score_reward(prev_score: int, score: int, prev_time: int, time: int) -> float:
    """In-game score gained, minus a small penalty when the step did not advance game time.

    The penalty discourages actions that only bounce off menus or walls without playing.
    """
    return float(score - prev_score) + (STALL_PENALTY if time == prev_time else 0.0)


def staircase_success(just_descended: bool, dlevel: int, target_dlevel: int) -> bool:
    """The agent took the stairs down and arrived on the target dungeon level."""
    return just_descended and dlevel == target_dlevel


def is_hallucinating(blstats) -> bool:
    """Test the hallucination bit of the condition mask (other conditions may be set with it)."""
    return bool(int(blstats[nethack.NLE_BL_CONDITION]) & nethack.BL_MASK_HALLU)


def oracle_in_reach(glyphs: np.ndarray, x: int, y: int, oracle_glyph: int) -> bool:
    """The Oracle's glyph is in the 3x3 neighbourhood of map cell (x, y), the agent's position."""
    neighbourhood = glyphs[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2]
    return bool((neighbourhood == oracle_glyph).any())


def find_oracle_glyph() -> int:
    """The monster glyph NetHack draws for the Oracle (looked up by name, not hard-coded)."""
    for glyph in range(nethack.GLYPH_MON_OFF, nethack.GLYPH_PET_OFF):
        if nethack.permonst(nethack.glyph_to_mon(glyph)).mname == "Oracle":
            return glyph
    raise LookupError("this NLE build has no Oracle monster")
