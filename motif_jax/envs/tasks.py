"""The NetHack tasks of the Motif paper on NLE, with gymnasium's API.

`make_task_env(task)` builds one; each task is also registered as `motif/<task>-v0` (import this
module first, or use `gymnasium.make("motif_jax.envs.tasks:motif/score-v0")`).

Observations are NLE's own buffers, as in NLE: they are overwritten by the next `step`/`reset`,
so copy what you keep. Every observation also has "message_count", the number of times this exact
message has been seen in the current episode (including now), which the intrinsic reward needs.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Sequence

import gymnasium
import numpy as np
from nle import nethack
from nle.env.base import NLE, SKIP_EXCEPTIONS
from nle.env.tasks import TASK_ACTIONS

from motif_jax.envs import nle_rules
from motif_jax.errors import MotifError

# What the agent reads. The 24x80 terminal (tty_chars, tty_colors) costs NLE a render per step and
# doubles the bytes per observation; ask for it where it is needed (collection, recordings).
DEFAULT_OBS_KEYS = ("glyphs", "blstats", "message")
END_REASONS = ("none", "death", "success", "time_limit", "aborted")
DEFAULT_MAX_EPISODE_STEPS = 5000


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """What a task rewards and when it ends."""

    description: str
    goal: str  # "score", "staircase" or "oracle"
    target_dlevel: int = 0  # staircase: the NLE_BL_DLEVEL to reach
    continual: bool = False  # success is paid once and does not end the episode
    sober: bool = False  # oracle: success only when not hallucinating


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
}
TASKS: dict[str, str] = {name: spec.description for name, spec in TASK_SPECS.items()}

_MESSAGE_COUNT_SPACE = gymnasium.spaces.Box(low=0, high=np.iinfo(np.int32).max, shape=(), dtype=np.int32)
# Fields of NLE's "internal" observation (NLE names them only in comments).
_IN_YN_FUNCTION = 1  # the game waits for a single-key answer
_IN_GETLIN = 2  # the game waits for a line of text
_XWAITFORSPACE = 3  # a --More-- waits for a key
_SPACE_KEY = ord(" ")
_DESCEND_MESSAGE_ARRAY = np.frombuffer(nle_rules.DESCEND_MESSAGE, dtype=np.uint8)
_NLE_OPTIONS = inspect.signature(NLE.__init__).parameters


def goal_reached(
    spec: TaskSpec, blstats: Sequence[int], glyphs: np.ndarray, just_descended: bool, oracle_glyph: int
) -> bool:
    """Whether the agent achieves the task's goal in this state (never, for the score task).

    `blstats` is NLE's bottom-line vector (array or list); `just_descended` says whether the step
    that led here went down a staircase.
    """
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
    """

    def __init__(
        self,
        task: str,
        seed: int | None = None,
        obs_keys: Sequence[str] | None = None,
        max_episode_steps: int = DEFAULT_MAX_EPISODE_STEPS,
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
        super().__init__(
            observation_keys=obs_keys,
            actions=TASK_ACTIONS,
            max_episode_steps=int(max_episode_steps),
            **nle_kwargs,
        )
        self.task = task
        self.task_spec = TASK_SPECS[task]
        self._pending_seed = seed
        self._keys = [int(action) for action in TASK_ACTIONS]
        self._oracle_glyph = nle_rules.find_oracle_glyph() if self.task_spec.goal == "oracle" else -1
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

    # ----------------------------------------------------------------------------- episode state
    def _start_episode(self) -> None:
        self._counts: dict[bytes, int] = {}
        self._message_bytes = b""
        self._stats = self._blstats.tolist()  # last in-game blstats: they read zero once the game is over
        self._max_depth = self._stats[nethack.NLE_BL_DEPTH]
        self._return = 0.0
        self._success = False

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
        if self._internal[_IN_YN_FUNCTION]:
            key = nle_rules.answer_eat_prompt(key, self._message_bytes)
        observation, done = self.nethack.step(key)
        self._descended = False
        if not self._allow_all_modes or observation[self._program_state_index][0] == 1:
            observation, done = self._perform_known_steps(observation, done, exceptions=True)
        self._steps += 1

        reward, success = (0.0, False) if done else self._task_reward()
        self._return += reward
        terminated = done or (success and not self.task_spec.continual)
        truncated = not terminated and self._steps >= self._max_episode_steps
        info = {}
        if terminated or truncated:
            end_reason = "death" if done else "success" if terminated else "time_limit"
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
        spec = self.task_spec
        if spec.goal == "score":
            reward = nle_rules.score_reward(
                previous[nethack.NLE_BL_SCORE],
                stats[nethack.NLE_BL_SCORE],
                previous[nethack.NLE_BL_TIME],
                stats[nethack.NLE_BL_TIME],
            )
            return reward, False
        success = goal_reached(spec, stats, self._glyphs, self._descended, self._oracle_glyph)
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
            "success": self._success,
            "end_reason": end_reason,
        }

    # ----------------------------------------------------------------------------- NLE overrides
    def _perform_known_steps(self, observation, done, exceptions=True):
        """NLE's automatic answers (--More--, text input, unwanted questions), which also keep the
        caption "You descend the stairs.": NLE would click it away before the agent sees it."""
        internal, message = self._internal, self._message
        while not done:
            if internal[_XWAITFORSPACE]:
                if nle_rules.DESCEND_MESSAGE in message.tobytes():
                    self._descended = True
                observation, done = self.nethack.step(_SPACE_KEY)
                continue
            if internal[_IN_GETLIN]:  # we never type text
                observation, done = self.nethack.step(nle_rules.ESCAPE_KEY)
                continue
            if internal[_IN_YN_FUNCTION]:
                question = message.tobytes()
                agent_answers = self._allow_all_yn_questions or any(q in question for q in SKIP_EXCEPTIONS)
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
    **nle_kwargs,
) -> MotifNetHackTask:
    """Build one Motif task env. `seed` seeds the first reset; `nle_kwargs` go to NLE (e.g. character)."""
    return MotifNetHackTask(task, seed=seed, obs_keys=obs_keys, max_episode_steps=max_episode_steps, **nle_kwargs)


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
