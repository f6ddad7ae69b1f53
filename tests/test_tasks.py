"""The Motif NetHack tasks: pure rules on crafted arrays, then scripted situations in real games."""

import gymnasium
import numpy as np
import pytest
from nle import nethack
from nle.env.tasks import TASK_ACTIONS

from motif_jax.envs import nle_rules
from motif_jax.envs.tasks import (
    DEFAULT_OBS_KEYS,
    END_REASONS,
    TASK_SPECS,
    TASKS,
    goal_reached,
    make_task_env,
    register_tasks,
)
from motif_jax.errors import MotifError

ACTION = {action: index for index, action in enumerate(TASK_ACTIONS)}
EAT = ACTION[nethack.Command.EAT]
YES = ACTION[nethack.CompassDirection.NW]  # the 'y' key
SEARCH = ACTION[nethack.Command.SEARCH]
GO_DOWN = ACTION[nethack.MiscDirection.DOWN]
GO_UP = ACTION[nethack.MiscDirection.UP]
MORE = ACTION[nethack.MiscAction.MORE]
EAT_MENU = b"What do you want to eat? [fghi or ?*] "


def caption(observation) -> str:
    return nle_rules.message_key(observation["message"]).decode("latin-1")


def press_raw_keys(env, keys) -> None:
    """Type keys outside the task action set (wizard-mode commands) to set up a situation."""
    for key in keys:
        env.nethack.step(key)


def teleport_onto_stairs(env, stairs: str = ">") -> None:
    """Wizard mode: map the level (^F), teleport (^T), jump the cursor to the stairs and confirm."""
    press_raw_keys(env, [nethack.C("f"), nethack.C("t"), ord(stairs), ord(".")])


def crafted_state(x=10, y=5, dlevel=1, condition=0, oracle_at=None, oracle_glyph=4000):
    blstats = np.zeros(nethack.BLSTATS_SHAPE, dtype=np.int64)
    blstats[nethack.NLE_BL_X], blstats[nethack.NLE_BL_Y] = x, y
    blstats[nethack.NLE_BL_DLEVEL] = dlevel
    blstats[nethack.NLE_BL_CONDITION] = condition
    glyphs = np.full(nethack.DUNGEON_SHAPE, nethack.GLYPH_CMAP_OFF, dtype=np.int16)
    if oracle_at is not None:
        glyphs[oracle_at[1], oracle_at[0]] = oracle_glyph
    return blstats, glyphs


# ------------------------------------------------------------------------------------ pure rules
def test_first_offered_letter():
    assert nle_rules.first_offered_letter(EAT_MENU) == ord("f")
    assert nle_rules.first_offered_letter(b"What do you want to eat? [a-c or ?*]") == ord("a")
    assert nle_rules.first_offered_letter(b"What do you want to eat? [*]") is None


def test_yes_eats_first_offered_item_and_other_keys_cancel():
    assert nle_rules.answer_eat_prompt(ord("y"), EAT_MENU) == ord("f")
    for key in (ord("k"), ord("s"), ord("\r"), ord("e")):
        assert nle_rules.answer_eat_prompt(key, EAT_MENU) == nle_rules.ESCAPE_KEY
    assert nle_rules.answer_eat_prompt(ord("y"), b"What do you want to eat? [*]") == nle_rules.ESCAPE_KEY


def test_floor_food_question():
    question = b"There is a lichen corpse here; eat it? [ynq] (n)"
    assert nle_rules.answer_eat_prompt(ord("y"), question) == ord("y")
    assert nle_rules.answer_eat_prompt(ord("j"), question) == nle_rules.ESCAPE_KEY
    question = b"There are 2 apples here; eat one? [ynq] (n)"
    assert nle_rules.answer_eat_prompt(ord("y"), question) == ord("y")


def test_keys_outside_eat_prompts_are_unchanged():
    for message in (b"In what direction?", b"Really attack the newt? [yn] (n)", b""):
        assert nle_rules.answer_eat_prompt(ord("y"), message) == ord("y")
        assert nle_rules.answer_eat_prompt(ord("k"), message) == ord("k")


def test_game_end_reason_names_choking_starving_and_leaving():
    assert nle_rules.game_end_reason(nethack.CHOKING) == "choked"
    assert nle_rules.game_end_reason(nethack.STARVING) == "starved"
    assert nle_rules.game_end_reason(nethack.ESCAPED) == "escaped"
    for how in (nethack.DIED, nethack.DROWNING, nethack.POISONING, nethack.STONING):
        assert nle_rules.game_end_reason(how) == "death"
    assert set(map(nle_rules.game_end_reason, range(16))) <= set(END_REASONS)


def test_score_reward():
    assert nle_rules.score_reward(10, 15, 3, 4) == 5.0
    assert nle_rules.score_reward(10, 10, 3, 3) == pytest.approx(-0.01)
    assert nle_rules.score_reward(10, 14, 3, 3) == pytest.approx(3.99)


@pytest.mark.parametrize(
    "task, dlevel, descended, expected",
    [
        ("staircase", 2, True, True),
        ("staircase", 2, False, False),  # arrived by other means (trap door, level teleport)
        ("staircase", 3, True, False),
        ("staircase-lvl3", 2, True, False),
        ("staircase-lvl3", 3, True, True),
        ("staircase-lvl4-continual", 4, True, True),
        ("score", 2, True, False),
    ],
)
def test_staircase_goal(task, dlevel, descended, expected):
    blstats, glyphs = crafted_state(dlevel=dlevel)
    assert goal_reached(TASK_SPECS[task], blstats, glyphs, descended, oracle_glyph=4000) is expected


@pytest.mark.parametrize(
    "condition, oracle_success, sober_success",
    [
        (0, True, True),
        (nethack.BL_MASK_CONF, True, True),
        (nethack.BL_MASK_HALLU, True, False),
        (nethack.BL_MASK_HALLU | nethack.BL_MASK_CONF, True, False),  # equality with HALLU misses this
        (nethack.BL_MASK_HALLU | nethack.BL_MASK_STUN | nethack.BL_MASK_BLIND, True, False),
    ],
)
def test_oracle_goal_and_sober_hallucination_bit(condition, oracle_success, sober_success):
    blstats, glyphs = crafted_state(x=10, y=5, condition=condition, oracle_at=(11, 6))
    assert goal_reached(TASK_SPECS["oracle"], blstats, glyphs, False, 4000) is oracle_success
    assert goal_reached(TASK_SPECS["oracle-sober"], blstats, glyphs, False, 4000) is sober_success
    assert nle_rules.is_hallucinating(blstats) is (not sober_success)


def test_oracle_must_be_adjacent_also_at_the_map_edge():
    blstats, glyphs = crafted_state(x=10, y=5, oracle_at=(12, 5))
    assert not goal_reached(TASK_SPECS["oracle"], blstats, glyphs, False, 4000)
    blstats, glyphs = crafted_state(x=0, y=0, oracle_at=(1, 1))
    assert goal_reached(TASK_SPECS["oracle"], blstats, glyphs, False, 4000)


def test_oracle_glyph_is_the_oracle():
    glyph = nle_rules.find_oracle_glyph()
    assert nethack.permonst(nethack.glyph_to_mon(glyph)).mname == "Oracle"


# ------------------------------------------------------------------------------------ real games
def test_tasks_registry_and_spaces():
    assert set(TASKS) == {
        "score",
        "staircase",
        "staircase-lvl3",
        "staircase-lvl4",
        "staircase-continual",
        "staircase-lvl3-continual",
        "staircase-lvl4-continual",
        "oracle",
        "oracle-sober",
        # MaestroMotif's evaluation tasks (tests/test_maestro_tasks.py)
        "gnomish-mines",
        "delphi",
        "minetown",
        "golden-exit",
        "down-and-back",
        "xp2-then-down",
    }
    assert all(description and "\n" not in description for description in TASKS.values())
    assert END_REASONS == ("none", "death", "success", "time_limit", "aborted", "choked", "starved", "escaped")
    register_tasks()  # again: must not raise
    env = gymnasium.make("motif/staircase-lvl3-v0", seed=1)
    assert env.unwrapped.task == "staircase-lvl3"
    assert all(f"motif/{name}-v0" in gymnasium.registry for name in TASKS)
    assert env.action_space == gymnasium.spaces.Discrete(23)
    observation, _ = env.reset()
    assert set(observation) == {*DEFAULT_OBS_KEYS, "message_count"}
    assert observation in env.observation_space
    expected = {
        "glyphs": (np.int16, (21, 79)),
        "blstats": (np.int64, (27,)),
        "message": (np.uint8, (256,)),
        "message_count": (np.int32, ()),
    }
    assert {key: (value.dtype.type, value.shape) for key, value in observation.items()} == expected
    env.close()


def test_bad_arguments_raise_motif_error():
    with pytest.raises(MotifError, match="unknown task"):
        make_task_env("stairs")
    with pytest.raises(MotifError, match="observation key"):
        make_task_env("score", obs_keys=("glyphs", "pixels"))


def test_only_requested_keys_plus_message_count():
    env = make_task_env("staircase", obs_keys=("message", "message_count", "blstats"))
    observation, _ = env.reset(seed=0)
    assert set(observation) == {"message", "blstats", "message_count"}
    assert set(env.observation_space.spaces) == set(observation)
    env.close()


def test_yes_key_eats_the_first_offered_item_in_game():
    env = make_task_env("score", obs_keys=("message", "inv_letters", "inv_strs", "blstats"))
    observation, _ = env.reset(seed=0)  # a Monk, carrying food rations as item f

    def item_f(observation) -> str:
        letters = observation["inv_letters"].tolist()
        return nle_rules.message_key(observation["inv_strs"][letters.index(ord("f"))]).decode()

    before = item_f(observation)
    observation, *_ = env.step(EAT)
    assert caption(observation).startswith("What do you want to eat? [f")
    time_before = int(observation["blstats"][nethack.NLE_BL_TIME])
    observation, *_ = env.step(YES)
    assert "eat?" not in caption(observation) and "don't have" not in caption(observation)
    assert item_f(observation) != before  # one ration fewer
    assert int(observation["blstats"][nethack.NLE_BL_TIME]) > time_before
    env.close()


def test_any_other_key_cancels_eating_in_game():
    env = make_task_env("score")
    observation, _ = env.reset(seed=0)
    observation, *_ = env.step(EAT)
    assert caption(observation).startswith("What do you want to eat?")
    observation, reward, *_ = env.step(SEARCH)
    assert caption(observation) == "Never mind."
    assert reward == pytest.approx(-0.01)  # no game time passed
    observation, *_ = env.step(SEARCH)  # back to normal play: searching is a real command again
    assert "eat" not in caption(observation)
    env.close()


@pytest.mark.parametrize(
    "task, rewards, terminated",
    [
        ("staircase", [50.0], [True]),
        ("staircase-lvl3", [0.0, 50.0], [False, True]),
        ("staircase-continual", [50.0, 0.0], [False, False]),
        ("score", [50.0, 50.0], [False, False]),  # NetHack's own score bonus for new depths
    ],
)
def test_descend_message_survives_and_staircase_success(task, rewards, terminated):
    env = make_task_env(task, wizard=True)
    env.reset(seed=0)
    for level, (expected_reward, expected_terminated) in enumerate(zip(rewards, terminated), start=2):
        teleport_onto_stairs(env)
        observation, reward, term, trunc, info = env.step(GO_DOWN)
        assert caption(observation) == "You descend the stairs."
        assert int(observation["blstats"][nethack.NLE_BL_DLEVEL]) == level
        assert (reward, term, trunc) == (expected_reward, expected_terminated, False)
    if terminated[-1]:
        episode = info["episode"]
        assert episode["end_reason"] == "success" and episode["success"]
        assert episode["return"] == 50.0 and episode["max_dlvl"] == len(rewards) + 1
    else:
        assert "episode" not in info
        observation, *_ = env.step(SEARCH)  # the kept caption does not linger
        assert caption(observation) != "You descend the stairs."
    env.close()


def test_continual_success_is_paid_once():
    env = make_task_env("staircase-continual", wizard=True)
    env.reset(seed=0)
    teleport_onto_stairs(env)
    assert env.step(GO_DOWN)[1:3] == (50.0, False)
    teleport_onto_stairs(env, "<")
    observation, *_ = env.step(GO_UP)
    assert int(observation["blstats"][nethack.NLE_BL_DLEVEL]) == 1
    teleport_onto_stairs(env)
    observation, reward, term, trunc, info = env.step(GO_DOWN)
    assert caption(observation) == "You descend the stairs."
    assert (reward, term, trunc, info) == (0.0, False, False, {})
    env.close()


def test_oracle_next_to_the_agent_succeeds_in_game():
    env = make_task_env("oracle", wizard=True)
    env.reset(seed=0)
    observation, reward, term, trunc, info = env.step(SEARCH)
    assert (reward, term) == (0.0, False)
    press_raw_keys(env, [nethack.C("g"), *b"Oracle\r", ord("y")])  # create an Oracle next to the agent
    observation, reward, term, trunc, info = env.step(SEARCH)
    assert (reward, term, trunc) == (50.0, True, False)
    assert info["episode"]["end_reason"] == "success"
    env.close()


def test_message_counts_grow_within_and_reset_between_episodes():
    env = make_task_env("score")
    for _ in range(2):
        observation, _ = env.reset(seed=0)
        assert caption(observation).startswith("Hello Agent") and int(observation["message_count"]) == 1
        cancels = []
        for _ in range(3):
            env.step(EAT)
            observation, *_ = env.step(SEARCH)
            assert caption(observation) == "Never mind."
            cancels.append(int(observation["message_count"]))
        assert cancels == [1, 2, 3]
        empty = []
        for _ in range(40):
            observation, *_ = env.step(SEARCH)
            if caption(observation) == "":
                empty.append(int(observation["message_count"]))
        assert empty[:3] == [1, 2, 3] and empty == sorted(empty)
    env.close()


def play(env, actions, seed):
    observation, _ = env.reset(seed=seed)
    frames = [{key: value.copy() for key, value in observation.items()}]
    rewards = []
    for action in actions:
        observation, reward, term, trunc, _ = env.step(action)
        frames.append({key: value.copy() for key, value in observation.items()})
        rewards.append(reward)
        if term or trunc:
            break
    return frames, rewards


def test_same_seed_same_game():
    actions = np.random.default_rng(0).integers(0, 23, size=300).tolist()
    keys = ("glyphs", "blstats", "message", "tty_chars", "tty_colors")
    first, second = make_task_env("score", obs_keys=keys), make_task_env("score", seed=11, obs_keys=keys)
    frames_a, rewards_a = play(first, actions, seed=11)
    second_observation, _ = second.reset()  # the constructor's seed applies to the first reset
    assert np.array_equal(second_observation["tty_chars"], frames_a[0]["tty_chars"])
    frames_b, rewards_b = play(second, actions, seed=11)
    assert rewards_a == rewards_b and len(frames_a) == len(frames_b)
    for frame_a, frame_b in zip(frames_a, frames_b):
        for key in frame_a:
            np.testing.assert_array_equal(frame_a[key], frame_b[key], err_msg=key)
    other, _ = first.reset(seed=12)
    assert not np.array_equal(other["tty_chars"], frames_a[0]["tty_chars"])
    first.close()
    second.close()


def test_step_cap_truncates_with_time_limit_stats():
    env = make_task_env("score", max_episode_steps=25)
    env.reset(seed=3)
    for step in range(1, 26):
        observation, reward, term, trunc, info = env.step(SEARCH)
        assert not term
        assert trunc is (step == 25) and ("episode" in info) is (step == 25)
    episode = info["episode"]
    assert episode["end_reason"] == "time_limit" and episode["length"] == 25 and not episode["success"]
    assert episode["xlvl"] == 1 and episode["max_dlvl"] == 1
    observation, _ = env.reset()
    assert int(observation["message_count"]) == 1
    env.close()


def test_death_reports_last_in_game_stats():
    env = make_task_env("score")
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    total, last_blstats = 0.0, None
    for _ in range(5000):
        observation, reward, term, trunc, info = env.step(int(rng.integers(0, 23)))
        total += reward
        if term or trunc:
            break
        last_blstats = observation["blstats"].copy()
    assert term and not trunc, "this seed's random play should die well within the cap"
    episode = info["episode"]
    assert episode["end_reason"] == "death"
    assert episode["score"] == last_blstats[nethack.NLE_BL_SCORE]
    assert episode["gold"] == last_blstats[nethack.NLE_BL_GOLD]
    assert episode["xlvl"] == last_blstats[nethack.NLE_BL_XP] >= 1
    assert episode["max_dlvl"] >= 1 and episode["return"] == pytest.approx(total)
    assert set(episode) == {
        "return",
        "length",
        "score",
        "max_dlvl",
        "xlvl",
        "gold",
        "explored",
        "success",
        "end_reason",
    }
    assert episode["explored"] > 0
    env.close()


@pytest.mark.parametrize("mention", [False, True])
def test_mention_stairs_captions_only_an_empty_message_on_a_staircase_down(mention):
    env = make_task_env("staircase", wizard=True, mention_stairs=mention)
    env.reset(seed=0)
    teleport_onto_stairs(env)
    observation, reward, term, *_ = env.step(SEARCH)  # on the stairs, nothing else to say
    assert caption(observation) == ("There is a staircase down here." if mention else "")
    assert (reward, term) == (0.0, False)  # the caption changes no reward
    env.step(EAT)
    observation, *_ = env.step(SEARCH)  # a message of the game's own stays as it is
    assert caption(observation) == "Never mind."
    teleport_onto_stairs(env, "<")
    observation, *_ = env.step(SEARCH)  # a staircase up is not captioned
    assert caption(observation) != "There is a staircase down here."
    env.close()


def test_explored_milestone_is_each_multiple_of_the_step_once():
    assert nle_rules.explored_milestone(49, 0, step=50) == 0
    assert nle_rules.explored_milestone(50, 0, step=50) == 50
    assert nle_rules.explored_milestone(173, 0, step=50) == 150  # a lit room seen at once: one caption
    assert nle_rules.explored_milestone(173, 150, step=50) == 0  # already said
    assert nle_rules.explored_milestone(201, 150, step=50) == 200
    assert nle_rules.explored_message(150) == b"You have explored 150 squares of this level."


def captions_added(steps: int, **option) -> list[tuple[str, str, dict]]:
    """Play the same random actions without and with a caption option, check the game is the same, and
    return (caption without, caption with, frame with) at each step whose caption differs."""
    actions = np.random.default_rng(3).integers(0, 23, size=steps).tolist()
    plain, mention = make_task_env("staircase"), make_task_env("staircase", **option)
    frames_a, rewards_a = play(plain, actions, seed=5)
    frames_b, rewards_b = play(mention, actions, seed=5)
    plain.close()
    mention.close()
    assert rewards_a == rewards_b and len(frames_a) == len(frames_b)
    for a, b in zip(frames_a, frames_b):
        np.testing.assert_array_equal(a["glyphs"], b["glyphs"])
    return [(caption(a), caption(b), b) for a, b in zip(frames_a, frames_b) if caption(a) != caption(b)]


def test_mention_explored_captions_quiet_steps_once_per_milestone_and_changes_no_game():
    said = []
    for plain, shown, frame in captions_added(600, mention_explored=True):
        assert plain == ""  # only an empty message line gets the caption
        said.append(shown)
        squares = int(shown.split()[3])
        assert squares % 50 == 0 and nle_rules.squares_seen(frame["glyphs"]) >= squares
    assert said and len(said) == len(set(said))  # random play explores a little; each text once
    assert said == sorted(said, key=lambda text: int(text.split()[3]))


def test_mention_stairs_changes_no_game():
    for plain, shown, _ in captions_added(400, mention_stairs=True):
        assert (plain, shown) == ("", "There is a staircase down here.")
