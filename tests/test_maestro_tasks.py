"""MaestroMotif's env options and evaluation tasks: pure rules on crafted arrays, then short real games."""

import dataclasses
import inspect

import numpy as np
import pytest
from nle import nethack
from nle.env.base import NLE
from nle.env.tasks import TASK_ACTIONS

from motif_jax.envs import make_pool, nle_rules
from motif_jax.envs.tasks import (
    DEFAULT_CHARACTER,
    EXTRA_ACTIONS,
    TASK_SPECS,
    TASKS,
    EpisodeProgress,
    env_option_kwargs,
    goal_reached,
    make_task_env,
)
from motif_jax.errors import MotifError

NEW_TASKS = ("gnomish-mines", "delphi", "minetown", "golden-exit", "down-and-back", "xp2-then-down")
ACTION = {action: index for index, action in enumerate(TASK_ACTIONS + EXTRA_ACTIONS)}
YES = ACTION[nethack.CompassDirection.NW]  # the 'y' key
SEARCH = ACTION[nethack.Command.SEARCH]
GO_DOWN = ACTION[nethack.MiscDirection.DOWN]
GO_UP = ACTION[nethack.MiscDirection.UP]
CAST, QUAFF, DROP = (ACTION[c] for c in (nethack.Command.CAST, nethack.Command.QUAFF, nethack.Command.DROP))
ORACLE, ALTAR = 4000, 2500  # made-up glyph ids for the crafted maps
SHOPKEEPER = 3000


def crafted(dnum=0, depth=1, gold=0, xp=1, condition=0, marks=()):
    blstats = np.zeros(nethack.BLSTATS_SHAPE, dtype=np.int64)
    blstats[nethack.NLE_BL_X], blstats[nethack.NLE_BL_Y] = 10, 5
    blstats[nethack.NLE_BL_DNUM], blstats[nethack.NLE_BL_DEPTH] = dnum, depth
    blstats[nethack.NLE_BL_GOLD], blstats[nethack.NLE_BL_XP] = gold, xp
    blstats[nethack.NLE_BL_CONDITION] = condition
    glyphs = np.full(nethack.DUNGEON_SHAPE, nethack.GLYPH_CMAP_OFF, dtype=np.int16)
    for column, glyph in enumerate(marks):
        glyphs[20, 70 - column] = glyph  # far from the agent at (10, 5)
    return blstats, glyphs


def reached(task, blstats, glyphs, progress=None) -> bool:
    return goal_reached(TASK_SPECS[task], blstats, glyphs, False, ORACLE, progress, ALTAR, (SHOPKEEPER,))


def caption(observation) -> str:
    return nle_rules.message_key(observation["message"]).decode("latin-1")


# ------------------------------------------------------------------------------------ pure rules
def test_new_tasks_are_registered_with_one_line_descriptions():
    assert set(NEW_TASKS) <= set(TASKS)
    assert all(TASKS[name] and "\n" not in TASKS[name] and TASKS[name].startswith("+50") for name in NEW_TASKS)
    assert not any(TASK_SPECS[name].continual for name in NEW_TASKS)


@pytest.mark.parametrize("dnum, expected", [(0, False), (1, False), (2, True), (3, False)])
def test_gnomish_mines_is_dungeon_number_two(dnum, expected):
    assert reached("gnomish-mines", *crafted(dnum=dnum, depth=4)) is expected


@pytest.mark.parametrize(
    "marks, condition, expected",
    [
        ((ORACLE,), 0, True),  # anywhere on the map, not only next to the agent
        ((), 0, False),
        ((ALTAR, SHOPKEEPER), 0, False),
        ((ORACLE,), nethack.BL_MASK_HALLU | nethack.BL_MASK_CONF, False),  # a hallucinated Oracle
        ((ORACLE,), nethack.BL_MASK_CONF, True),
    ],
)
def test_delphi_is_the_oracle_on_the_map(marks, condition, expected):
    assert reached("delphi", *crafted(depth=7, condition=condition, marks=marks)) is expected


@pytest.mark.parametrize(
    "dnum, marks, condition, expected",
    [
        (2, (ALTAR,), 0, True),
        (2, (SHOPKEEPER,), 0, True),
        (2, (), 0, False),  # an ordinary Mines level
        (0, (ALTAR, SHOPKEEPER), 0, False),  # a temple in the Dungeons of Doom
        (2, (SHOPKEEPER,), nethack.BL_MASK_HALLU, False),  # a hallucinated shopkeeper
        (2, (ALTAR,), nethack.BL_MASK_HALLU, True),  # hallucination leaves the map's furniture alone
    ],
)
def test_minetown_is_a_mines_level_with_a_temple_or_town_folk(dnum, marks, condition, expected):
    assert reached("minetown", *crafted(dnum=dnum, depth=6, condition=condition, marks=marks)) is expected


def test_kills_are_counted_from_captions():
    assert nle_rules.count_kills(b"You kill the newt!  The newt bites!") == 1
    assert nle_rules.count_kills(b"You kill it!  You destroy the kobold zombie!") == 2
    assert nle_rules.count_kills(b"You kill the poor kitten!") == 1
    for message in (b"The newt is killed!", b"Sirius bites the newt.", b"You hit the newt.", b""):
        assert nle_rules.count_kills(message) == 0


@pytest.mark.parametrize(
    "escaped, gold, kills, expected",
    [(True, 20, 25, True), (True, 100, 40, True), (True, 19, 25, False), (True, 20, 24, False), (False, 20, 25, False)],
)
def test_golden_exit(escaped, gold, kills, expected):
    blstats, glyphs = crafted(gold=gold)
    assert reached("golden-exit", blstats, glyphs, EpisodeProgress(kills=kills, escaped=escaped)) is expected


@pytest.mark.parametrize("max_depth, depth, expected", [(2, 1, True), (4, 1, True), (1, 1, False), (2, 2, False)])
def test_down_and_back(max_depth, depth, expected):
    blstats, glyphs = crafted(depth=depth)
    assert reached("down-and-back", blstats, glyphs, EpisodeProgress(max_depth=max_depth)) is expected


@pytest.mark.parametrize(
    "xp_before, previous_depth, depth, expected",
    [(True, 1, 2, True), (True, 3, 4, True), (False, 1, 2, False), (True, 2, 2, False), (True, 2, 1, False)],
)
def test_xp_then_down(xp_before, previous_depth, depth, expected):
    blstats, glyphs = crafted(depth=depth, xp=2)
    progress = EpisodeProgress(max_depth=depth, previous_depth=previous_depth, xp_reached_before=xp_before)
    assert reached("xp2-then-down", blstats, glyphs, progress) is expected


def test_glyph_lookups_by_name():
    altar = nle_rules.find_map_glyph(nle_rules.ALTAR)
    assert nethack.glyph_is_cmap(altar) and chr(nethack.symdef.from_idx(nethack.glyph_to_cmap(altar)).sym) == "_"
    town = nle_rules.find_monster_glyphs(nle_rules.TOWN_MONSTERS)
    assert sorted(nethack.permonst(nethack.glyph_to_mon(g)).mname for g in town) == sorted(nle_rules.TOWN_MONSTERS)
    with pytest.raises(LookupError):
        nle_rules.find_map_glyph("moat of lava")


def test_extra_item_prompts_take_the_first_item_and_skip_gold():
    drop = b"What do you want to drop? [$a-i or ?*] "
    assert nle_rules.first_offered_letter(drop) == ord("a")
    assert nle_rules.answer_extra_prompt(ord("y"), drop) == ord("a")
    assert nle_rules.answer_extra_prompt(ord("y"), b"What do you want to drink? [eh or ?*]") == ord("e")
    assert nle_rules.answer_extra_prompt(ord("y"), b"What do you want to drink? [*]") == nle_rules.ESCAPE_KEY
    for key in (ord("k"), ord("\r"), int(nethack.Command.QUAFF)):
        assert nle_rules.answer_extra_prompt(key, drop) == nle_rules.ESCAPE_KEY
    sell = b"Asidonhopo offers 5 gold pieces for your scroll.  Sell it? [ynaq] (y)"
    assert nle_rules.answer_extra_prompt(ord("y"), sell) == ord("y")
    assert nle_rules.answer_extra_prompt(ord("j"), sell) == nle_rules.ESCAPE_KEY
    for message in (b"Are you sure you want to pray? [yn] (n)", b"In what direction?", b""):
        assert nle_rules.answer_extra_prompt(ord("k"), message) == ord("k")


def test_env_options_are_checked():
    assert env_option_kwargs(None) == {} and env_option_kwargs({}) == {}
    assert env_option_kwargs({"character": None, "extra_actions": None}) == {}
    options = {"character": "val-dwa-law-fem", "extra_actions": True}
    assert env_option_kwargs(options) == options
    with pytest.raises(MotifError, match="unknown option"):
        env_option_kwargs({"role": "valkyrie"})
    with pytest.raises(MotifError, match="env_options.character"):
        env_option_kwargs({"character": "mon hum"})
    with pytest.raises(MotifError, match="env_options.extra_actions"):
        env_option_kwargs({"extra_actions": "yes"})
    with pytest.raises(MotifError, match="env_options.mention_stairs"):
        env_option_kwargs({"mention_stairs": 1})
    assert env_option_kwargs({"mention_stairs": True}) == {"mention_stairs": True}
    with pytest.raises(MotifError, match="env_options.mention_explored"):
        env_option_kwargs({"mention_explored": "yes"})
    with pytest.raises(MotifError, match="mapping"):
        env_option_kwargs(["extra_actions"])


def test_default_character_is_nles_own():
    assert inspect.signature(NLE.__init__).parameters["character"].default == DEFAULT_CHARACTER == "mon-hum-neu-mal"


def test_character_option_reaches_the_game():
    for character, alignment in ((None, 0), ("val-dwa-law-fem", 1)):  # the Monk is neutral, this Valkyrie lawful
        env = make_task_env("score", **env_option_kwargs({"character": character}))
        observation, _ = env.reset(seed=0)
        assert int(observation["blstats"][nethack.NLE_BL_ALIGN]) == alignment
        env.close()


# ------------------------------------------------------------------------------------ real games
def test_extra_actions_append_five_and_default_is_unchanged():
    plain, extra = make_task_env("staircase"), make_task_env("staircase", extra_actions=True)
    assert plain.action_space.n == 23 and extra.action_space.n == 28
    assert extra._keys[:23] == plain._keys == [int(a) for a in TASK_ACTIONS]
    assert extra._keys[23:] == [int(a) for a in EXTRA_ACTIONS]
    # Playing only the 23 task actions, both envs play the same game with the same rewards.
    actions = np.random.default_rng(5).integers(0, 23, size=300).tolist()
    traces = []
    for env in (plain, extra):
        observation, _ = env.reset(seed=4)
        trace = []
        for action in actions:
            observation, reward, term, trunc, _ = env.step(action)
            trace.append((reward, term, trunc, caption(observation), observation["blstats"].tolist()))
            if term or trunc:
                break
        traces.append(trace)
        env.close()
    assert traces[0] == traces[1]


def test_extra_actions_do_something_in_game():
    env = make_task_env("score", extra_actions=True, obs_keys=("blstats", "message"))
    env.reset(seed=1)  # a Monk who knows the protection spell and carries a potion (item e)
    observation, *_ = env.step(CAST)  # the env picks the first spell from the menu
    assert "golden haze" in caption(observation)
    observation, *_ = env.step(QUAFF)
    assert caption(observation).startswith("What do you want to drink? [e")
    observation, *_ = env.step(YES)
    assert "drink" not in caption(observation) and caption(observation) != "Never mind."
    observation, *_ = env.step(DROP)
    assert caption(observation).startswith("What do you want to drop?")
    observation, *_ = env.step(SEARCH)  # any other key cancels
    assert caption(observation) == "Never mind."
    env.close()


@pytest.mark.parametrize("task", NEW_TASKS)
def test_new_tasks_step_with_extra_actions_without_hanging(task):
    env = make_task_env(task, extra_actions=True, max_episode_steps=400)
    observation, _ = env.reset(seed=2)
    start = int(observation["blstats"][nethack.NLE_BL_TIME])
    rng = np.random.default_rng(3)
    for _ in range(400):
        observation, reward, term, trunc, info = env.step(int(rng.integers(0, 28)))
        assert reward in (0.0, 50.0)
        if term or trunc:
            break
    assert "episode" in info  # every episode ends: death, success or the step cap
    assert info["episode"]["end_reason"] in ("death", "choked", "starved", "escaped", "success", "time_limit")
    assert info["episode"]["success"] is (info["episode"]["end_reason"] == "success")
    assert term or info["episode"]["length"] == 400
    if not term:
        assert int(observation["blstats"][nethack.NLE_BL_TIME]) > start + 20  # the game moved on
    env.close()


# Wizard-mode set-ups: keys outside the action set, typed straight into the game.
def press_raw_keys(env, keys) -> None:
    for key in keys:
        env.nethack.step(key)


def teleport_onto_stairs(env, stairs: str) -> None:
    press_raw_keys(env, [nethack.C("f"), nethack.C("t"), ord(stairs), ord(".")])


def level_teleport(env, special_level: str) -> None:
    """^V's menu of the dungeon's special levels: page until `special_level` shows, pick its letter."""
    press_raw_keys(env, [nethack.C("v"), ord("?"), ord("\r")])
    for _ in range(4):
        lines = [bytes(row).decode("latin-1") for row in env.nethack._obs_buffers["tty_chars"]]
        entry = [line.strip() for line in lines if f" {special_level}:" in line and " - " in line]
        if entry:
            press_raw_keys(env, [ord(entry[0][0])])
            break
        press_raw_keys(env, [ord(">")])
    else:
        raise AssertionError(f"no {special_level} in the level teleport menu")
    while env.nethack._obs_buffers["internal"][3]:  # --More--
        press_raw_keys(env, [ord(" ")])


def test_mines_and_minetown_succeed_in_game():
    mines = make_task_env("gnomish-mines", wizard=True, obs_keys=("blstats", "message", "tty_chars"))
    mines.reset(seed=0)
    assert mines.step(SEARCH)[1:3] == (0.0, False)
    level_teleport(mines, "minetn")
    observation, reward, term, trunc, info = mines.step(SEARCH)
    assert int(observation["blstats"][nethack.NLE_BL_DNUM]) == nle_rules.MINES_DUNGEON
    assert (reward, term, info["episode"]["end_reason"]) == (50.0, True, "success")
    mines.close()

    town = make_task_env("minetown", wizard=True, obs_keys=("blstats", "message", "tty_chars"))
    town.reset(seed=0)
    level_teleport(town, "minetn")
    press_raw_keys(town, [nethack.C("f")])  # map the level: its altar shows
    observation, reward, term, trunc, info = town.step(SEARCH)
    assert (reward, term, info["episode"]["success"]) == (50.0, True, True)
    town.close()


def test_delphi_succeeds_when_the_oracle_is_in_sight():
    env = make_task_env("delphi", wizard=True)
    env.reset(seed=0)
    assert env.step(SEARCH)[1:3] == (0.0, False)
    press_raw_keys(env, [nethack.C("g"), *b"Oracle\r", ord("y")])
    assert env.step(SEARCH)[1:3] == (50.0, True)
    env.close()


def test_down_and_back_in_game():
    env = make_task_env("down-and-back", wizard=True)
    env.reset(seed=0)
    teleport_onto_stairs(env, ">")
    assert env.step(GO_DOWN)[1:3] == (0.0, False)
    teleport_onto_stairs(env, "<")
    observation, reward, term, trunc, info = env.step(GO_UP)
    assert int(observation["blstats"][nethack.NLE_BL_DEPTH]) == 1
    assert (reward, term, info["episode"]["end_reason"], info["episode"]["max_dlvl"]) == (50.0, True, "success", 2)
    env.close()


def test_xp2_then_down_counts_only_descents_after_the_level_up():
    env = make_task_env("xp2-then-down", wizard=True)
    env.reset(seed=0)
    teleport_onto_stairs(env, ">")
    assert env.step(GO_DOWN)[1:3] == (0.0, False)  # deeper, but still experience level 1
    press_raw_keys(env, [ord("#"), *b"levelchange\r", *b"2\r"])
    observation, reward, term, *_ = env.step(SEARCH)
    assert int(observation["blstats"][nethack.NLE_BL_XP]) == 2 and (reward, term) == (0.0, False)
    teleport_onto_stairs(env, ">")
    assert env.step(GO_DOWN)[1:3] == (50.0, True)
    env.close()


def leave_the_dungeon(env):
    teleport_onto_stairs(env, "<")
    observation, reward, term, trunc, info = env.step(GO_UP)
    assert "Still climb?" in caption(observation) and not term  # the agent answers this one
    return env.step(YES)


def test_golden_exit_needs_the_gold_and_the_kills(monkeypatch):
    env = make_task_env("golden-exit", wizard=True)
    env.reset(seed=0)
    press_raw_keys(env, [nethack.C("w"), *b"20 gold pieces\r"])
    observation, reward, term, trunc, info = leave_the_dungeon(env)
    assert env.kills == 0 and (reward, term) == (0.0, True)
    assert info["episode"]["end_reason"] == "escaped" and not info["episode"]["success"]
    env.close()

    easy = dataclasses.replace(TASK_SPECS["golden-exit"], min_kills=0)
    monkeypatch.setitem(TASK_SPECS, "golden-exit", easy)
    env = make_task_env("golden-exit", wizard=True)
    env.reset(seed=0)
    press_raw_keys(env, [nethack.C("w"), *b"20 gold pieces\r"])
    observation, reward, term, trunc, info = leave_the_dungeon(env)
    assert (reward, term, info["episode"]["end_reason"], info["episode"]["gold"]) == (50.0, True, "success", 20)
    env.close()


def test_kills_are_counted_in_game():
    env = make_task_env("golden-exit", wizard=True, max_episode_steps=200)
    env.reset(seed=0)
    press_raw_keys(env, [nethack.C("g"), *b"newt\r"] * 3)
    fight = {(dx, dy): ACTION[d] for d, (dx, dy) in zip(TASK_ACTIONS[1:9], _COMPASS)}
    killed_in_captions = 0
    for _ in range(60):
        blstats, glyphs = env.nethack._obs_buffers["blstats"], env.nethack._obs_buffers["glyphs"]
        x, y = int(blstats[nethack.NLE_BL_X]), int(blstats[nethack.NLE_BL_Y])
        target = next(
            (action for (dx, dy), action in fight.items() if _is_newt(glyphs[y + dy, x + dx])),
            None,
        )
        if target is None:
            break
        before = env.kills
        env.step(target)
        killed_in_captions += env.kills - before
    assert env.kills >= 1 and env.kills == killed_in_captions
    env.close()


_COMPASS = ((0, -1), (1, 0), (0, 1), (-1, 0), (1, -1), (1, 1), (-1, 1), (-1, -1))  # N E S W NE SE SW NW


def _is_newt(glyph) -> bool:
    return bool(nethack.glyph_is_monster(glyph)) and nethack.permonst(nethack.glyph_to_mon(glyph)).mname == "newt"


def test_pool_passes_env_options_to_its_envs():
    with pytest.raises(MotifError, match="env_options"):
        make_pool("staircase", 2, num_workers=1, env_options={"colour": "red"})
    options = {"extra_actions": True, "character": "val-dwa-law-fem"}
    pool = make_pool("down-and-back", 2, num_workers=1, env_options=options, pin_workers=False)
    try:
        assert pool.action_space.n == 28
        pool.async_reset()
        observation, *_, info = pool.recv()
        assert observation["blstats"][:, nethack.NLE_BL_ALIGN].tolist() == [1, 1]  # lawful Valkyries
        pool.send(np.full(2, ACTION[nethack.Command.PRAY], dtype=np.int64), info["env_id"])
        observation = pool.recv()[0]
        assert [
            caption({"message": m}).startswith("Are you sure you want to pray?") for m in observation["message"]
        ] == [
            True,
            True,
        ]
    finally:
        pool.close()
    plain = make_pool("down-and-back", 1, num_workers=1, pin_workers=False)
    try:
        assert plain.action_space.n == 23
    finally:
        plain.close()


def test_train_config_env_options():
    from motif_jax.agent.config import EnvConfig, env_options

    assert env_options(EnvConfig(), "staircase") is None  # Motif's own setup: no options at all
    assert env_options(EnvConfig(mention_stairs=True), "envpool:CartPole-v1") is None
    assert env_options(EnvConfig(mention_stairs=True), "staircase") == {
        "character": None,
        "extra_actions": False,
        "mention_stairs": True,
    }
    assert "mention_stairs" not in env_options(EnvConfig(extra_actions=True), "score")
    assert env_options(EnvConfig(mention_explored=True), "score") == {
        "character": None,
        "extra_actions": False,
        "mention_explored": True,
    }
