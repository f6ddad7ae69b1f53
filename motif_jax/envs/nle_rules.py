"""The Motif and MaestroMotif task rules as small pure functions on NLE observations.

Kept apart from the environment class so each rule can be tested on hand-built arrays, without
driving a game into the situation.
"""

from __future__ import annotations

import re

import numpy as np
from nle import nethack

DESCEND_MESSAGE = b"You descend the stairs."
STAIRS_DOWN_MESSAGE = b"There is a staircase down here."  # NetHack's look-here words (env option mention_stairs)
EXPLORED_STEP = 50  # env option mention_explored: one caption per this many more squares seen on a level
EAT_MENU_PROMPT = b"What do you want to eat?"
# Asked first when food lies on the floor: "There is a lichen corpse here; eat it? [ynq] (n)".
EAT_FLOOR_QUESTIONS = (b"; eat it?", b"; eat one?")
YES_KEY = ord("y")
ESCAPE_KEY = nethack.C("[")
SUCCESS_REWARD = 50.0
STALL_PENALTY = -0.01

_FIRST_OFFERED_LETTER = re.compile(rb"\[\$?([A-Za-z])")  # "[$a-d or ?*]": gold is no item to choose


def message_key(message: np.ndarray) -> bytes:
    """The caption as bytes up to its NUL: the identity used to count repeats of a message."""
    return message.tobytes().partition(b"\0")[0]


def first_offered_letter(prompt: bytes) -> int | None:
    """Inventory letter of the first item a "What do you want to eat? [fgh or ?*]" prompt offers.

    None when the prompt offers no item, only the '?*' menus. Gold ('$', offered by drop) is skipped.
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
    return _answer_item_prompt(key, message, (EAT_MENU_PROMPT,), EAT_FLOOR_QUESTIONS)


def _answer_item_prompt(key: int, message: bytes, item_prompts, yes_no_questions) -> int:
    """'y' picks the first item an item prompt offers (or says yes to a yes/no question), any other key
    cancels; outside those prompts the key is unchanged."""
    if any(prompt in message for prompt in item_prompts):
        if key == YES_KEY:
            letter = first_offered_letter(message)
            if letter is not None:
                return letter
        return ESCAPE_KEY
    if any(question in message for question in yes_no_questions):
        return YES_KEY if key == YES_KEY else ESCAPE_KEY
    return key


def score_reward(prev_score: int, score: int, prev_time: int, time: int) -> float:
    """In-game score gained, minus a small penalty when the step did not advance game time.

    The penalty discourages actions that only bounce off menus or walls without playing.
    """
    return float(score - prev_score) + (STALL_PENALTY if time == prev_time else 0.0)


# How the game ended (``nethack.how_done()``) when it is neither a success nor a death in a fight: a Monk
# who eats while satiated can choke, one who never eats starves, and climbing out of level 1 leaves the
# dungeon. Every other end (killed, drowned, poisoned, ...) is a "death".
_GAME_ENDS = {nethack.CHOKING: "choked", nethack.STARVING: "starved", nethack.ESCAPED: "escaped"}


def game_end_reason(how_done: int) -> str:
    """The end reason of a game that ended without success: choked, starved, escaped or death."""
    return _GAME_ENDS.get(int(how_done), "death")


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


# ------------------------------------------------------------------------------------ extra actions
# Questions the extra actions (quaff, drop) lead to. NLE would decline them all; with the extra actions
# the agent answers them like the eat prompt: 'y' takes the first item offered (or says yes), any other
# key cancels.
EXTRA_ITEM_PROMPTS = (b"What do you want to drink?", b"What do you want to drop?")
EXTRA_YES_NO_QUESTIONS = (b"Drink from the fountain?", b"Drink from the sink?", b"Sell it?")
EXTRA_QUESTIONS = EXTRA_ITEM_PROMPTS + EXTRA_YES_NO_QUESTIONS
# Menus the extra actions open (cast: the known spells; enhance: the skills to advance). NLE would close
# them unchosen; the env picks the first entry, so the actions cast the first spell, advance the first skill.
FIRST_MENU_ENTRY = ord("a")
MENU_COMMANDS = (int(nethack.Command.CAST), int(nethack.Command.ENHANCE))


def answer_extra_prompt(key: int, message: bytes) -> int:
    """Translate the agent's key while the game asks one of the extra actions' questions (else unchanged)."""
    return _answer_item_prompt(key, message, EXTRA_ITEM_PROMPTS, EXTRA_YES_NO_QUESTIONS)


# ------------------------------------------------------------------------------------ MaestroMotif goals
# NetHack numbers the dungeons in the order dungeon.def lists them: the Dungeons of Doom 0, Gehennom 1,
# the Gnomish Mines 2 (every game; NLE_BL_DNUM reads 2 on a Mines level).
DOOM_DUNGEON = 0
MINES_DUNGEON = 2
# Every Minetown variant has a temple altar; no other Mines level has one. Its priest, shopkeepers and
# watch live nowhere else in the Mines either, so any of them in view also says "Minetown".
TOWN_MONSTERS = ("aligned priest", "shopkeeper", "watchman", "watch captain")
ALTAR = "altar"
_KILL = re.compile(rb"\bYou (?:kill|destroy) ")


def in_dungeon(blstats, dnum: int) -> bool:
    """The agent is on a level of dungeon branch `dnum` (NLE_BL_DNUM)."""
    return int(blstats[nethack.NLE_BL_DNUM]) == dnum


def glyph_on_map(glyphs: np.ndarray, wanted) -> bool:
    """Any of the `wanted` glyph ids anywhere on the level's map (in view or remembered)."""
    return bool(np.isin(glyphs, wanted).any())


def oracle_level_reached(blstats, glyphs: np.ndarray, oracle_glyph: int) -> bool:
    """The Oracle (found only on her level, Delphi) is on the map, and not as a hallucination."""
    return not is_hallucinating(blstats) and glyph_on_map(glyphs, oracle_glyph)


def minetown_reached(blstats, glyphs: np.ndarray, altar_glyph: int, town_glyphs) -> bool:
    """A Mines level with an altar on the map, or with a priest, shopkeeper or watchman in view (not hallucinated)."""
    if not in_dungeon(blstats, MINES_DUNGEON):
        return False
    if glyph_on_map(glyphs, altar_glyph):
        return True
    return not is_hallucinating(blstats) and glyph_on_map(glyphs, town_glyphs)


def count_kills(message: bytes) -> int:
    """Monsters the agent killed according to one caption ("You kill the newt!", "You destroy the mummy!")."""
    return len(_KILL.findall(message))


def golden_exit_success(escaped: bool, gold: int, kills: int, min_gold: int, min_kills: int) -> bool:
    """The game ended by climbing out of the dungeon with enough gold in the purse and enough kills."""
    return escaped and gold >= min_gold and kills >= min_kills


def back_up_success(max_depth: int, depth: int, deep: int, home: int = 1) -> bool:
    """The agent has been down to depth `deep` and now stands on depth `home` again."""
    return max_depth >= deep and depth == home


def descended_after_xp(xp_reached_before: bool, previous_depth: int, depth: int) -> bool:
    """The agent went deeper on a step that began with the experience goal already reached."""
    return xp_reached_before and depth > previous_depth


def find_monster_glyphs(names) -> tuple[int, ...]:
    """The monster glyphs NetHack draws for the named monsters (looked up by name, not hard-coded)."""
    wanted = set(names)
    found = tuple(
        glyph
        for glyph in range(nethack.GLYPH_MON_OFF, nethack.GLYPH_PET_OFF)
        if nethack.permonst(nethack.glyph_to_mon(glyph)).mname in wanted
    )
    if len(found) != len(wanted):
        raise LookupError(f"this NLE build lacks some of the monsters {sorted(wanted)}")
    return found


def find_map_glyph(explanation: str) -> int:
    """The map-symbol glyph with this explanation, e.g. "altar" (looked up by name, not hard-coded)."""
    for index in range(nethack.MAXPCHARS):
        if nethack.symdef.from_idx(index).explanation == explanation:
            return nethack.GLYPH_CMAP_OFF + index
    raise LookupError(f"this NLE build has no map symbol {explanation!r}")


def explored_milestone(seen: int, mentioned: int, step: int = EXPLORED_STEP) -> int:
    """The multiple of ``step`` to caption now that ``seen`` squares of a level are seen and ``mentioned``
    were captioned last (0: nothing new to say)."""
    reached = seen // step * step
    return reached if reached > mentioned else 0


def explored_message(squares: int) -> bytes:
    """The caption of a level explored this far, e.g. "You have explored 150 squares of this level."."""
    return b"You have explored %d squares of this level." % squares


_STONE_GLYPH = nethack.GLYPH_CMAP_OFF  # S_stone, cmap 0: a square never seen (dark and unknown)


def squares_seen(glyphs: np.ndarray) -> int:
    """Map squares the hero has seen or remembers on the current level: every glyph but unexplored stone."""
    return int(np.count_nonzero(glyphs != _STONE_GLYPH))
