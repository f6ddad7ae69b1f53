"""The NetHack tasks of the Motif and MaestroMotif papers on NLE, with gymnasium's API.

`make_task_env(task)` builds one; each task is also registered as `motif/<task>-v0` (import this
module first, or use `gymnasium.make("motif_jax.envs.tasks:motif/score-v0")`).

Observations are NLE's own buffers, as in NLE: they are overwritten by the next `step`/`reset`,
so copy what you keep. Every observation also has "message_count", the number of times this exact
message has been seen in the current episode (including now), which the intrinsic reward needs.

Env options (see `env_option_kwargs`): `character`, NLE's character string (default NLE's own,
"mon-hum-neu-mal": a human neutral male Monk), `extra_actions`, which appends cast, enhance, pray,
quaff and drop to the 23 task actions (MaestroMotif's skills need them), and `mention_stairs`, which
captions a step that ends on a staircase down with nothing else to say "There is a staircase down here."
(NetHack's own words for it): NetHack says nothing when the hero walks onto stairs, so without it a
caption-only reward model cannot know the stairs and a policy cannot see them under the hero.
`mention_explored` likewise captions exploring, which NetHack never mentions: each time 50 more squares
of a level have been seen, the next step with nothing else to say shows "You have explored 150 squares
of this level." (each text once per level, so Motif's count penalty leaves it whole).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping, Sequence

import gymnasium
import numpy as np
from nle import nethack
from nle.env.base import NLE, SKIP_EXCEPTIONS
from nle.env.tasks import TASK_ACTIONS

from motif_jax.envs import CAPTION_OPTIONS, nle_rules
from motif_jax.errors import MotifError

# What the agent reads. The 24x80 terminal (tty_chars, tty_colors) costs NLE a render per step and
# doubles the bytes per observation; ask for it where it is needed (collection, recordings).
DEFAULT_OBS_KEYS = ("glyphs", "blstats", "message")
END_REASONS = ("none", "death", "success", "time_limit", "aborted", "choked", "starved", "escaped")
DEFAULT_MAX_EPISODE_STEPS = 5000
DEFAULT_CHARACTER = "mon-hum-neu-mal"  # NLE's default character, used when none is given: a human neutral male Monk
# Appended (in this order, as actions 23..27) by the extra_actions option.
EXTRA_ACTIONS = (
    nethack.Command.CAST,
    nethack.Command.ENHANCE,
    nethack.Command.PRAY,
    nethack.Command.QUAFF,
    nethack.Command.DROP,
)
ENV_OPTIONS = ("character", "extra_actions", *CAPTION_OPTIONS)


def action_names(extra_actions: bool = False) -> tuple[str, ...]:
    """Each action id's name and key as reports show them, e.g. ``DOWN >`` (id order, as the env's actions)."""
    actions = tuple(TASK_ACTIONS) + (EXTRA_ACTIONS if extra_actions else ())
    return tuple(f"{a.name} {chr(int(a))}" if 32 < int(a) < 127 else a.name for a in actions)


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """What a task rewards and when it ends."""

    description: str
    # "score", "staircase", "oracle" (Motif); "mines", "delphi", "minetown", "golden-exit", "down-and-back",
    # "xp-then-down" (MaestroMotif: see goal_reached)
    goal: str
    target_dlevel: int = 0  # staircase: the NLE_BL_DLEVEL to reach; down-and-back: the depth to have been at
    continual: bool = False  # success is paid once and does not end the episode
    sober: bool = False  # oracle: success only when not hallucinating
    min_xp: int = 0  # xp-then-down: the experience level to reach before descending
    min_gold: int = 0  # golden-exit: gold in the purse when leaving the dungeon
    min_kills: int = 0  # golden-exit: monsters killed (counted from the captions) before leaving


@dataclasses.dataclass(frozen=True)
class EpisodeProgress:
    """What the env remembers of the game so far, for goals that span several levels (all from the game)."""

    max_depth: int = 1  # deepest NLE_BL_DEPTH so far, now included
    previous_depth: int = 1  # NLE_BL_DEPTH before this step
    xp_reached_before: bool = False  # the spec's min_xp was reached before this step
    kills: int = 0  # "You kill ..." / "You destroy ..." captions so far
    escaped: bool = False  # the game ended by climbing out of the dungeon


def _staircase(target: int, continual: bool) -> TaskSpec:
    if continual:
        text = f"+50 once when the agent descends stairs to dungeon level {target}; ends at death or time limit"
    else:
        text = f"+50 and the episode ends when the agent descends stairs to dungeon level {target}"
    return TaskSpec(text, "staircase", target_dlevel=target, continual=continual)


TASK_SPECS: dict[str, TaskSpec] = {
    "score": TaskSpec(
        "in-game score gained, -0.01 when game time does not advance; ends at death or time limit", "score"
    ),
    "staircase": _staircase(2, continual=False),
    "staircase-lvl3": _staircase(3, continual=False),
    "staircase-lvl4": _staircase(4, continual=False),
    "staircase-continual": _staircase(2, continual=True),
    "staircase-lvl3-continual": _staircase(3, continual=True),
    "staircase-lvl4-continual": _staircase(4, continual=True),
    "oracle": TaskSpec("+50 and the episode ends when the Oracle is next to the agent", "oracle"),
    "oracle-sober": TaskSpec(
        "+50 and the episode ends when the Oracle is next to the agent and it is not hallucinating",
        "oracle",
        sober=True,
    ),
    # MaestroMotif's evaluation tasks, and two small composite ones a short training run can reach.
    "gnomish-mines": TaskSpec("+50 and the episode ends when the agent enters the Gnomish Mines", "mines"),
    "delphi": TaskSpec(
        "+50 and the episode ends when the agent reaches the Oracle's level: the Oracle is on the map "
        "and the agent is not hallucinating",
        "delphi",
    ),
    "minetown": TaskSpec(
        "+50 and the episode ends when the agent reaches Minetown: a Gnomish Mines level with an altar, "
        "or a priest, shopkeeper or watchman, on the map",
        "minetown",
    ),
    "golden-exit": TaskSpec(
        "+50 and the episode ends when the agent climbs out of the dungeon (up the stairs of level 1) "
        "with at least 20 gold and 25 monsters killed",
        "golden-exit",
        min_gold=20,
        min_kills=25,
    ),
    "down-and-back": TaskSpec(
        "+50 and the episode ends when the agent is back on dungeon level 1 after having been on level 2",
        "down-and-back",
        target_dlevel=2,
    ),
    "xp2-then-down": TaskSpec(
        "+50 and the episode ends when the agent goes one level deeper after reaching experience level 2",
        "xp-then-down",
        min_xp=2,
    ),
}
TASKS: dict[str, str] = {name: spec.description for name, spec in TASK_SPECS.items()}

_MESSAGE_COUNT_SPACE = gymnasium.spaces.Box(low=0, high=np.iinfo(np.int32).max, shape=(), dtype=np.int32)
# Fields of NLE's "internal" observation (NLE names them only in comments).
_IN_YN_FUNCTION = 1  # the game waits for a single-key answer
_IN_GETLIN = 2  # the game waits for a line of text
_XWAITFORSPACE = 3  # a --More-- waits for a key
_ON_STAIRS_DOWN = 4  # the hero stands on a staircase down (NLE's own staircase task ends on it)
_SPACE_KEY = ord(" ")
_DESCEND_MESSAGE_ARRAY = np.frombuffer(nle_rules.DESCEND_MESSAGE, dtype=np.uint8)
_STAIRS_MESSAGE_ARRAY = np.frombuffer(nle_rules.STAIRS_DOWN_MESSAGE, dtype=np.uint8)
_NLE_OPTIONS = inspect.signature(NLE.__init__).parameters
_PROGRESS_GOALS = frozenset({"golden-exit", "down-and-back", "xp-then-down"})
_LEAVE_QUESTION = b"Still climb?"  # going up the stairs of level 1; NLE would decline it


def env_option_kwargs(env_options: Mapping | None) -> dict:
    """Check the env options (`character`, `extra_actions`) and return them as keyword arguments of
    `make_task_env`; None, {} or options set to None give today's setup."""
    if env_options is None:
        return {}
    expected = ", ".join(ENV_OPTIONS)
    if not isinstance(env_options, Mapping):
        raise MotifError(f"env_options: expected a mapping of {expected}, got {type(env_options).__name__}")
    unknown = sorted(set(env_options) - set(ENV_OPTIONS))
    if unknown:
        raise MotifError(f"env_options: unknown option(s) {unknown}; expected some of {expected}")
    kwargs = {name: value for name, value in env_options.items() if value is not None}  # None: the default
    character = kwargs.get("character", DEFAULT_CHARACTER)
    if not isinstance(character, str) or character.split() != [character]:
        example = DEFAULT_CHARACTER
        raise MotifError(f"env_options.character: expected an NLE character such as {example!r}, got {character!r}")
    for flag in ("extra_actions", *CAPTION_OPTIONS):
        if not isinstance(kwargs.get(flag, False), bool):
            raise MotifError(f"env_options.{flag}: expected true or false, got {kwargs[flag]!r}")
    return kwargs


def goal_reached(
    spec: TaskSpec,
    blstats: Sequence[int],
    glyphs: np.ndarray,
    just_descended: bool,
    oracle_glyph: int,
    progress: EpisodeProgress | None = None,
    altar_glyph: int = -1,
    town_glyphs: Sequence[int] = (),
) -> bool:
    """Whether the agent achieves the task's goal in this state (never, for the score task).

    `blstats` is NLE's bottom-line vector (array or list); `just_descended` says whether the step
    that led here went down a staircase; `progress` is what the env remembers of the episode (the
    golden-exit, down-and-back and xp-then-down goals need it); `altar_glyph`/`town_glyphs` are the
    glyph ids the minetown goal looks for (see nle_rules.minetown_reached).
    """
    goal = spec.goal
    if goal == "mines":
        return nle_rules.in_dungeon(blstats, nle_rules.MINES_DUNGEON)
    if goal == "delphi":
        return nle_rules.oracle_level_reached(blstats, glyphs, oracle_glyph)
    if goal == "minetown":
        return nle_rules.minetown_reached(blstats, glyphs, altar_glyph, town_glyphs)
    if goal in _PROGRESS_GOALS:
        progress = progress or EpisodeProgress()
        depth = int(blstats[nethack.NLE_BL_DEPTH])
        if goal == "golden-exit":
            gold = int(blstats[nethack.NLE_BL_GOLD])
            return nle_rules.golden_exit_success(progress.escaped, gold, progress.kills, spec.min_gold, spec.min_kills)
        if goal == "down-and-back":
            return nle_rules.back_up_success(progress.max_depth, depth, spec.target_dlevel)
        return nle_rules.descended_after_xp(progress.xp_reached_before, progress.previous_depth, depth)
    if spec.goal == "staircase":
        dlevel = int(blstats[nethack.NLE_BL_DLEVEL])
        return nle_rules.staircase_success(just_descended, dlevel, spec.target_dlevel)
    if spec.goal == "oracle":
        if spec.sober and nle_rules.is_hallucinating(blstats):
            return False
        x, y = int(blstats[nethack.NLE_BL_X]), int(blstats[nethack.NLE_BL_Y])
        return nle_rules.oracle_in_reach(glyphs, x, y, oracle_glyph)
    return False


class MotifNetHackTask(NLE):
    """One Motif task on NLE: the 23-action task set, the fixed eat action, per-episode caption
    counts, the kept "You descend the stairs." message and episode statistics at the last step.

    Step returns terminated at death or (non-continual) success, truncated at the step cap.
    With `extra_actions`, EXTRA_ACTIONS follow the 23 actions: cast casts the first known spell and
    enhance advances the first skill offered (the env picks the menus' first entry); pray's question
    is the agent's to answer ('y'); quaff and drop ask which item, answered like eat ('y': the first
    item offered, any other key cancels), as are their follow-up questions (drink from a fountain or
    sink, sell a dropped item in a shop). Without it the action set and behaviour are Motif's.
    With `mention_stairs`, a step that ends on a staircase down with an empty message line shows
    "There is a staircase down here." (see the module docstring); with `mention_explored`, the first such
    step after each 50 more squares of a level are seen shows "You have explored N squares of this
    level."; without them the captions are Motif's.
    """

    def __init__(
        self,
        task: str,
        seed: int | None = None,
        obs_keys: Sequence[str] | None = None,
        max_episode_steps: int = DEFAULT_MAX_EPISODE_STEPS,
        extra_actions: bool = False,
        mention_stairs: bool = False,
        mention_explored: bool = False,
        **nle_kwargs,
    ):
        if task not in TASK_SPECS:
            raise MotifError(f"unknown task {task!r}; expected one of {', '.join(TASK_SPECS)}")
        # "message_count" always comes with the observation; asking for it explicitly is fine.
        requested = DEFAULT_OBS_KEYS if obs_keys is None else obs_keys
        obs_keys = tuple(key for key in requested if key != "message_count")
        unknown = [key for key in obs_keys if key not in nethack.OBSERVATION_DESC]
        if unknown:
            expected = ", ".join(nethack.OBSERVATION_DESC)
            raise MotifError(f"unknown NLE observation key(s) {unknown}; expected some of: {expected}")
        if int(max_episode_steps) < 1:
            raise MotifError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
        if "fix_moon_phase" in _NLE_OPTIONS:  # moon phase from the seed, not the calendar: reproducible games
            nle_kwargs.setdefault("fix_moon_phase", True)
        actions = tuple(TASK_ACTIONS) + (EXTRA_ACTIONS if extra_actions else ())
        super().__init__(
            observation_keys=obs_keys,
            actions=actions,
            max_episode_steps=int(max_episode_steps),
            **nle_kwargs,
        )
        self.task = task
        self.task_spec = spec = TASK_SPECS[task]
        self._pending_seed = seed
        self._keys = [int(action) for action in actions]
        self._extra_actions = bool(extra_actions)
        self._mention_stairs = bool(mention_stairs)
        self._mention_explored = bool(mention_explored)
        self._oracle_glyph = nle_rules.find_oracle_glyph() if spec.goal in ("oracle", "delphi") else -1
        self._altar_glyph, self._town_glyphs = -1, ()
        if spec.goal == "minetown":
            self._altar_glyph = nle_rules.find_map_glyph(nle_rules.ALTAR)
            self._town_glyphs = nle_rules.find_monster_glyphs(nle_rules.TOWN_MONSTERS)
        self._counts_kills = spec.min_kills > 0
        # Questions NLE would decline that the agent answers instead (none in the Motif setup).
        self._agent_questions = (nle_rules.EXTRA_QUESTIONS if extra_actions else ()) + (
            (_LEAVE_QUESTION,) if spec.goal == "golden-exit" else ()
        )
        self._menu_choice: int | None = None  # what the env answers to the menu the agent's action opened
        self.observation_space = gymnasium.spaces.Dict(
            {**self.observation_space.spaces, "message_count": _MESSAGE_COUNT_SPACE}
        )
        buffers = self.nethack._obs_buffers  # NLE writes every observation into these arrays
        self._blstats = buffers["blstats"]
        self._message = buffers["message"]
        self._internal = buffers["internal"]
        self._glyphs = buffers["glyphs"]
        self._visible = {key: buffers[key] for key in obs_keys}
        self._descended = False
        self._start_episode()

    @property
    def kills(self) -> int:
        """Monsters the agent killed this episode, counted from the captions (tasks with a kill goal only)."""
        return self._kills

    # ----------------------------------------------------------------------------- episode state
    def _start_episode(self) -> None:
        self._counts: dict[bytes, int] = {}
        self._message_bytes = b""
        self._stats = self._blstats.tolist()  # last in-game blstats: they read zero once the game is over
        self._max_depth = self._stats[nethack.NLE_BL_DEPTH]
        self._return = 0.0
        self._success = False
        self._xp_reached = False
        self._kills = 0
        self._explored: dict[tuple[int, int], int] = {}  # (dungeon, level) -> map squares seen there
        self._explored_mentioned: dict[tuple[int, int], int] = {}  # (dungeon, level) -> squares last captioned

    def _observation(self) -> dict:
        key = nle_rules.message_key(self._message)
        count = self._counts.get(key, 0) + 1
        self._counts[key] = count
        self._message_bytes = key
        observation = dict(self._visible)
        observation["message_count"] = np.array(count, dtype=np.int32)
        return observation

    # ----------------------------------------------------------------------------- gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start a new game. The same seed gives the same game; unseeded resets continue the
        env's seeded random stream (or are random if it was never seeded)."""
        if seed is None and self._pending_seed is not None:
            seed, self._pending_seed = self._pending_seed, None
        gymnasium.Env.reset(self, seed=seed)
        core, disp = (int(s) for s in self.np_random.integers(0, 2**63 - 1, size=2))
        self.nethack.set_initial_seeds(core, disp, False, None)
        super().reset(options=options)  # NLE's reset clicks through the intro screens
        self._start_episode()
        return self._observation(), {}

    def step(self, action: int):
        key = self._keys[action]
        asked = self._internal[_IN_YN_FUNCTION]
        if asked:
            key = nle_rules.answer_eat_prompt(key, self._message_bytes)
            if self._extra_actions:
                key = nle_rules.answer_extra_prompt(key, self._message_bytes)
        elif self._extra_actions and key in nle_rules.MENU_COMMANDS:
            self._menu_choice = nle_rules.FIRST_MENU_ENTRY
        observation, done = self.nethack.step(key)
        self._descended = False
        if not self._allow_all_modes or observation[self._program_state_index][0] == 1:
            observation, done = self._perform_known_steps(observation, done, exceptions=True)
        self._menu_choice = None
        if self._mention_stairs and not done:
            self._mention_stairs_down()
        self._steps += 1
        if self._counts_kills:
            shown = nle_rules.message_key(self._message)
            if not (asked and shown == self._message_bytes):  # not the same question shown again
                self._kills += nle_rules.count_kills(shown)

        reward, success = self._final_reward() if done else self._task_reward()
        if self._mention_explored and not done:
            self._mention_explored_squares()
        self._return += reward
        terminated = done or (success and not self.task_spec.continual)
        truncated = not terminated and self._steps >= self._max_episode_steps
        info = {}
        if terminated or truncated:
            if done:
                # a golden exit ends the game
                end_reason = "success" if success else nle_rules.game_end_reason(self.nethack.how_done())
            else:
                end_reason = "success" if terminated else "time_limit"
            info["episode"] = self._episode_stats(end_reason)
        return self._observation(), reward, terminated, truncated, info

    # ----------------------------------------------------------------------------- task logic
    def _task_reward(self) -> tuple[float, bool]:
        """Reward of the step that just happened (game still running) and whether it succeeded."""
        previous, stats = self._stats, self._blstats.tolist()
        self._stats = stats
        depth = stats[nethack.NLE_BL_DEPTH]
        if depth > self._max_depth:
            self._max_depth = depth
        level = (stats[nethack.NLE_BL_DNUM], stats[nethack.NLE_BL_DLEVEL])
        self._explored[level] = max(self._explored.get(level, 0), nle_rules.squares_seen(self._glyphs))
        spec = self.task_spec
        progress = None
        if spec.goal in _PROGRESS_GOALS:
            progress = self._progress(previous[nethack.NLE_BL_DEPTH], escaped=False)
            if spec.min_xp and stats[nethack.NLE_BL_XP] >= spec.min_xp:
                self._xp_reached = True
        if spec.goal == "score":
            reward = nle_rules.score_reward(
                previous[nethack.NLE_BL_SCORE],
                stats[nethack.NLE_BL_SCORE],
                previous[nethack.NLE_BL_TIME],
                stats[nethack.NLE_BL_TIME],
            )
            return reward, False
        success = goal_reached(
            spec,
            stats,
            self._glyphs,
            self._descended,
            self._oracle_glyph,
            progress,
            self._altar_glyph,
            self._town_glyphs,
        )
        return self._pay(success)

    def _final_reward(self) -> tuple[float, bool]:
        """Reward of the step that ended the game: only leaving the dungeon can succeed (golden exit)."""
        if self.task_spec.goal != "golden-exit":
            return 0.0, False
        depth = self._stats[nethack.NLE_BL_DEPTH]
        escaped = self.nethack.how_done() == nethack.ESCAPED
        progress = self._progress(depth, escaped=escaped)  # the game is over: judge its last bottom line
        return self._pay(goal_reached(self.task_spec, self._stats, self._glyphs, False, -1, progress))

    def _progress(self, previous_depth: int, escaped: bool) -> EpisodeProgress:
        return EpisodeProgress(self._max_depth, previous_depth, self._xp_reached, self._kills, escaped)

    def _pay(self, success: bool) -> tuple[float, bool]:
        if not success or self._success:  # continual tasks pay the success once
            return 0.0, False
        self._success = True
        return nle_rules.SUCCESS_REWARD, True

    def _episode_stats(self, end_reason: str) -> dict:
        """The contract's episode summary, from the last in-game bottom line."""
        stats = self._stats
        return {
            "return": self._return,
            "length": self._steps,
            "score": stats[nethack.NLE_BL_SCORE],
            "max_dlvl": self._max_depth,  # deepest NLE_BL_DEPTH: counts Gnomish Mines levels by depth
            "xlvl": stats[nethack.NLE_BL_XP],
            "gold": stats[nethack.NLE_BL_GOLD],
            "explored": sum(self._explored.values()),  # map squares seen, summed over the levels visited
            "success": self._success,
            "end_reason": end_reason,
        }

    def _mention_stairs_down(self) -> None:
        """Caption a staircase down under the hero, as NetHack's look-here command would, when the
        message line is empty (every message NetHack shows stays as it is)."""
        if self._internal[_ON_STAIRS_DOWN] and not self._message[0]:
            self._message[: len(_STAIRS_MESSAGE_ARRAY)] = _STAIRS_MESSAGE_ARRAY

    def _mention_explored_squares(self) -> None:
        """Caption the next multiple of EXPLORED_STEP squares seen on this level, once, when the message
        line is empty (a caption NetHack shows is never replaced; the milestone waits for a quiet step)."""
        level = (self._stats[nethack.NLE_BL_DNUM], self._stats[nethack.NLE_BL_DLEVEL])
        squares = nle_rules.explored_milestone(self._explored.get(level, 0), self._explored_mentioned.get(level, 0))
        if squares and not self._message[0]:
            self._explored_mentioned[level] = squares
            text = nle_rules.explored_message(squares)
            self._message[: len(text)] = np.frombuffer(text, dtype=np.uint8)

    # ----------------------------------------------------------------------------- NLE overrides
    def _perform_known_steps(self, observation, done, exceptions=True):
        """NLE's automatic answers (--More--, text input, unwanted questions), which also keep the
        caption "You descend the stairs.": NLE would click it away before the agent sees it."""
        internal, message = self._internal, self._message
        while not done:
            if internal[_XWAITFORSPACE]:
                shown = message.tobytes()
                if nle_rules.DESCEND_MESSAGE in shown:
                    self._descended = True
                if self._counts_kills:
                    self._kills += nle_rules.count_kills(shown)
                key, self._menu_choice = self._menu_choice or _SPACE_KEY, None
                observation, done = self.nethack.step(key)
                continue
            if internal[_IN_GETLIN]:  # we never type text
                observation, done = self.nethack.step(nle_rules.ESCAPE_KEY)
                continue
            if internal[_IN_YN_FUNCTION]:
                question = message.tobytes()
                agent_answers = (
                    self._allow_all_yn_questions
                    or any(q in question for q in SKIP_EXCEPTIONS)
                    or any(q in question for q in self._agent_questions)
                )
                if exceptions and agent_answers:
                    break  # eat / attack / direction questions are for the agent to answer
                observation, done = self.nethack.step(nle_rules.ESCAPE_KEY)
            break
        if self._descended and not done:
            message.fill(0)
            message[: len(nle_rules.DESCEND_MESSAGE)] = _DESCEND_MESSAGE_ARRAY
        return observation, done


def make_task_env(
    task: str,
    seed: int | None = None,
    obs_keys: Sequence[str] | None = None,
    max_episode_steps: int = DEFAULT_MAX_EPISODE_STEPS,
    extra_actions: bool = False,
    mention_stairs: bool = False,
    mention_explored: bool = False,
    **nle_kwargs,
) -> MotifNetHackTask:
    """Build one task env. `seed` seeds the first reset; `extra_actions` appends EXTRA_ACTIONS;
    `mention_stairs` captions a staircase down under the hero, `mention_explored` every 50 more squares
    seen on a level; `nle_kwargs` go to NLE (e.g. character, default DEFAULT_CHARACTER)."""
    return MotifNetHackTask(
        task,
        seed=seed,
        obs_keys=obs_keys,
        max_episode_steps=max_episode_steps,
        extra_actions=extra_actions,
        mention_stairs=mention_stairs,
        mention_explored=mention_explored,
        **nle_kwargs,
    )


def register_tasks() -> None:
    """Register every task as `motif/<task>-v0` with gymnasium (safe to call again)."""
    for name in TASK_SPECS:
        env_id = f"motif/{name}-v0"
        if env_id not in gymnasium.registry:
            gymnasium.register(
                id=env_id,
                entry_point="motif_jax.envs.tasks:make_task_env",
                kwargs={"task": name},
                disable_env_checker=True,
                order_enforce=False,
            )


register_tasks()
