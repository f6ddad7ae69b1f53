"""`motif collect`: run NLE actors with a policy and write a pairs dataset, incrementally and resumably.

How pairs are drawn: every step of every env starts a subsequence with probability ``sample_prob``; the
subsequence is the next ``seq_len`` consecutive steps of that episode (dropped if the episode ends first).
Finished subsequences go to slots in a random order fixed by the seed (slot ``s`` = member ``s % 2`` of pair
``s // 2``), never next to a partner from the same episode, so the two members of a pair come from
different episodes and unrelated times. A slot's ``episode_score``
is only known when its episode ends, so slots stay *pending* per env until then; collection finishes when
every slot is filled and no slot is pending.

Transitions: every stored step also gets the message of the env's previous step and the stat changes since
that step (``data/prev_message.npy``, ``data/delta.npy``; see :mod:`motif_jax.data.transitions`), tracked per
env over every step, stored or not; an episode's first step gets an empty message and a zero delta.

Resume: the slot states and counters are saved to ``DIR/.collect/`` every few seconds (after flushing the
memmaps) and when interrupted. A rerun reloads them, keeps every finished slot, and fills the others with
fresh episodes (env seeds shifted by the attempt number). An uninterrupted run is deterministic given the
seed; a resumed one is a valid dataset but not bit-identical to it. meta.json is written last.
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from motif_jax.data.dataset import (
    META_FILE,
    PROGRESS_DIR,
    REWARD_KEY,
    DatasetWriter,
    caption_distribution,
    output_dir_state,
    remove_dataset,
)
from motif_jax.data.transitions import (
    DELTA_DTYPE,
    DELTA_FIELDS,
    DELTA_KEY,
    PREV_MESSAGE_KEY,
    TRANSITION_KEYS,
    stat_delta,
)
from motif_jax.envs import CAPTION_OPTIONS
from motif_jax.envs.loop import EnvLoop, EnvStep, LoopObserver
from motif_jax.envs.pool import make_pool
from motif_jax.errors import MotifError, disk_problem, make_dir
from motif_jax.files import write_atomic, write_json_atomic
from motif_jax.progress import ProgressBar

DEFAULT_KEYS = ("message", "blstats", "tty_chars", "tty_colors")
INFO_DTYPES = {
    "score": np.int32,  # in-game score at the subsequence's last step
    "episode_score": np.int32,  # final score of that episode (filled in when it ends)
    "turns": np.int32,  # in-game time at the last step
    "dlvl": np.int32,  # dungeon depth at the last step
    "step": np.int32,  # steps since the episode began, at the last step
    "episode_id": np.int64,  # which episode of this collection (0, 1, ... in order of start)
    # kept because the original Motif reward trainer asks for them:
    "experience_level": np.int32,  # experience level at the last step
    "character": np.dtype("<U32"),  # NLE character string (role-race-alignment-gender) of the episode
}
SLOT_EMPTY, SLOT_PENDING, SLOT_DONE = 0, 1, 2
CHECKPOINT_SECONDS = 10.0
_ATTEMPT_SEED_STRIDE = 1_000_003  # env seeds of a resumed attempt, far from those of earlier attempts


@dataclasses.dataclass(frozen=True)
class CollectSettings:
    """Everything that determines the dataset; a rerun must match it to resume or to count as complete."""

    task: str = "score"  # NLE task
    pairs: int = 2000  # number of pairs
    seed: int = 0  # seed of envs, policy and sampling
    seq_len: int = 1  # steps per pair member, L
    keys: tuple[str, ...] = DEFAULT_KEYS  # observation keys to keep (message is always kept)
    num_envs: int = 16  # parallel envs
    policy: str = "random"  # 'random' or a run/checkpoint directory of a trained agent
    sample_prob: float = 0.1  # probability that a step starts a subsequence
    mention_stairs: bool = False  # caption a staircase down under the hero (the env option of `motif train`)
    mention_explored: bool = False  # caption each 50 more squares seen on a level (the env option of `motif train`)

    def __post_init__(self):
        object.__setattr__(self, "keys", tuple(dict.fromkeys(("message", *self.keys))))  # captions always kept
        for name in ("pairs", "seq_len", "num_envs"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise MotifError(f"{name.replace('_', '-')}: expected a positive integer, got {value!r}")
        if not 0.0 < float(self.sample_prob) <= 1.0:
            raise MotifError(f"sample-prob: expected a probability in (0, 1], got {self.sample_prob!r}")
        if {"reward", "rewards"} & set(self.keys):
            raise MotifError("keys: the reward is always stored (data/rewards.npy); name observation keys only")

    def as_dict(self) -> dict[str, Any]:
        """The settings as recorded; an option left off is left out, so older datasets still match."""
        settings = {**dataclasses.asdict(self), "keys": list(self.keys)}
        for flag in CAPTION_OPTIONS:
            if not getattr(self, flag):
                del settings[flag]
        return settings


@dataclasses.dataclass
class CollectResult:
    path: Path
    meta: dict[str, Any]
    already_complete: bool = False


# ---------------------------------------------------------------------------------------------------------
# Policies: callables ``(obs, starts_episode) -> actions`` on the batch's observations (sorted by env id), with
# ``obs_keys``, the observations they read. A trained one is built by the caller (the CLI loads it with
# ``motif_jax.agent.policy.StatefulPolicy``), so collection depends on no agent code.


class RandomPolicy:
    """Uniform random actions from a seeded generator (the default collection policy)."""

    obs_keys: tuple[str, ...] = ()

    def __init__(self, num_actions: int, rng: np.random.Generator):
        self.num_actions, self.rng = num_actions, rng

    def __call__(self, obs: dict[str, np.ndarray], starts_episode: np.ndarray) -> np.ndarray:
        return self.rng.integers(self.num_actions, size=len(starts_episode))


# ---------------------------------------------------------------------------------------------------------
# Pure bookkeeping


class SubsequenceRecorder:
    """Per-env windows of ``seq_len`` consecutive steps, started at random times, never crossing episodes."""

    def __init__(self, num_envs: int, seq_len: int):
        self.seq_len = seq_len
        self.open: list[list[dict[str, np.ndarray]] | None] = [None] * num_envs

    def observe(self, env_id: int, step: dict[str, np.ndarray], start: bool, episode_ends: bool):
        """Feed one step; returns the finished window as {key: (L, ...)} or None."""
        if self.open[env_id] is None and start:
            self.open[env_id] = []
        window = self.open[env_id]
        if window is None:
            return None
        window.append(step)
        if len(window) == self.seq_len:
            self.open[env_id] = None
            return {key: np.stack([s[key] for s in window]) for key in window[0]}
        if episode_ends:
            self.open[env_id] = None  # too short: the next step belongs to a new episode
        return None


class SlotBook:
    """Which slots are empty / pending (waiting for their episode to end) / done, and the fill order.

    Slots are filled in a seeded random order, except that a subsequence never goes next to its partner
    from the same episode: it takes the first slot in the order whose partner is empty or from another
    episode (and is dropped if there is none, which only happens at the very end).
    """

    def __init__(self, num_slots: int, seed: int, states: np.ndarray | None = None):
        self.states = np.zeros(num_slots, np.uint8) if states is None else states.copy()
        self.states[self.states == SLOT_PENDING] = SLOT_EMPTY  # a pending slot's episode is lost on restart
        order = np.random.default_rng([seed, 0]).permutation(num_slots)
        self.queue = order[self.states[order] == SLOT_EMPTY]
        self.next = 0
        self.pending: dict[int, list[int]] = {}
        # episode of each slot filled in this run; slots done in an earlier attempt hold older episodes
        self.episode_of_slot = np.full(num_slots, -1, np.int64)

    @property
    def accepting(self) -> bool:
        return self.next < len(self.queue)

    @property
    def finished(self) -> bool:
        return not self.accepting and not any(self.pending.values())

    @property
    def num_done(self) -> int:
        return int(np.count_nonzero(self.states == SLOT_DONE))

    def claim(self, env_id: int, episode_id: int) -> int | None:
        """The slot for a new subsequence of ``episode_id``, or None if every free slot pairs it with itself."""
        for position in range(self.next, len(self.queue)):
            slot = int(self.queue[position])
            if self.episode_of_slot[slot ^ 1] != episode_id:  # slot ^ 1 is the other member of the pair
                break
        else:
            return None
        self.queue[[self.next, position]] = self.queue[[position, self.next]]
        self.next += 1
        self.states[slot] = SLOT_PENDING
        self.episode_of_slot[slot] = episode_id
        self.pending.setdefault(env_id, []).append(slot)
        return slot

    def episode_ended(self, env_id: int) -> list[int]:
        slots = self.pending.pop(env_id, [])
        self.states[slots] = SLOT_DONE
        return slots


def task_character() -> str:
    """The character the task envs play: NLE's default, since `make_pool` passes no other."""
    import inspect

    from nle.env.base import NLE

    return str(inspect.signature(NLE.__init__).parameters["character"].default)


def last_step_info(
    blstats: np.ndarray, elapsed_step: int, episode_id: int, character: str = ""
) -> dict[str, int | str]:
    """Info of a subsequence from the blstats of its last step (named NLE indices, never raw numbers)."""
    from nle import nethack

    return {
        "score": int(blstats[nethack.NLE_BL_SCORE]),
        "turns": int(blstats[nethack.NLE_BL_TIME]),
        "dlvl": int(blstats[nethack.NLE_BL_DEPTH]),
        "experience_level": int(blstats[nethack.NLE_BL_XP]),
        "character": character,
        "step": int(elapsed_step),
        "episode_id": int(episode_id),
        "episode_score": -1,
    }


# ---------------------------------------------------------------------------------------------------------
# Progress files


def _progress_paths(out: Path) -> tuple[Path, Path]:
    return out / PROGRESS_DIR / "progress.json", out / PROGRESS_DIR / "slots.npy"


def _save_progress(out: Path, writer: DatasetWriter | None, book: SlotBook, counters: dict[str, Any]) -> None:
    """Flush data first, then the counters, then the slot states, each file replaced whole: what the slots
    say is done is on disk, and a kill between the two files leaves counters ahead of the slots (episode
    ids are never reused), never behind."""
    if writer is not None:
        writer.flush()
    progress_json, slots_npy = _progress_paths(out)
    write_json_atomic(progress_json, counters)
    buffer = io.BytesIO()
    np.save(buffer, book.states)
    write_atomic(slots_npy, buffer.getvalue())


def _load_progress(out: Path, settings: CollectSettings) -> tuple[dict[str, Any], np.ndarray] | None:
    """Saved counters and slot states of an unfinished run, or None if it stopped before saving any."""
    progress_json, slots_npy = _progress_paths(out)
    if not progress_json.exists():
        return None
    try:
        counters = json.loads(progress_json.read_text())
        # no slots file: killed between the first two saves, before any slot was done
        states = np.load(slots_npy) if slots_npy.exists() else np.zeros(2 * settings.pairs, np.uint8)
    except (OSError, ValueError):
        raise MotifError(
            f"{out / PROGRESS_DIR}: progress of the unfinished collection is unreadable; use --overwrite"
        ) from None
    if counters.get("settings") != settings.as_dict():
        difference = _describe_difference(counters.get("settings"), settings)
        raise MotifError(
            f"{out}: holds an unfinished collection with other settings ({difference}); "
            "use --overwrite or another --out"
        )
    if states.shape != (2 * settings.pairs,):
        raise MotifError(f"{slots_npy}: wrong shape {states.shape}; use --overwrite")
    return counters, states


def _describe_difference(saved: Any, settings: CollectSettings) -> str:
    if not isinstance(saved, dict):
        return "unknown settings"
    wanted = settings.as_dict()
    diffs = [f"{k}: {saved.get(k)!r} there, {v!r} now" for k, v in wanted.items() if saved.get(k) != v]
    return "; ".join(diffs) or "same settings"


# ---------------------------------------------------------------------------------------------------------
# The collection loop


def collect(
    settings: CollectSettings,
    out: str | os.PathLike,
    overwrite: bool = False,
    show_progress: bool = True,
    checkpoint_seconds: float = CHECKPOINT_SECONDS,
    max_env_steps: int | None = None,
    policy: Callable | None = None,
) -> CollectResult:
    """Collect ``settings.pairs`` pairs into ``out`` (resuming an unfinished run there).

    ``policy`` acts when ``settings.policy`` names a trained agent (it is then required); by default a
    seeded uniform random policy acts.
    ``max_env_steps`` stops early (as an interruption would: progress saved, KeyboardInterrupt raised); it
    exists so tests can interrupt at a reproducible point.
    """
    out = Path(out)
    if settings.policy != "random" and policy is None:
        raise MotifError(f"policy {settings.policy}: pass the loaded agent as collect(..., policy=)")
    if settings.policy == "random" and policy is not None:
        raise MotifError("collect: a policy was passed but settings.policy is 'random'; name its checkpoint there")
    state = output_dir_state(out)
    if overwrite and state != "empty":
        remove_dataset(out)
        state = "empty"
    if state == "foreign":
        raise MotifError(f"{out}: exists and is not a motif dataset; choose another --out")
    if state == "complete":
        return _already_complete(out, settings)
    make_dir(out)  # before the actors start: a bad --out fails at once
    run = CollectionRun(settings, out, policy, show_progress, checkpoint_seconds, max_env_steps)
    try:
        return run.run(resume=state == "incomplete")
    except OSError as e:
        if disk_problem(e) is None:
            raise
        raise MotifError(
            f"{out}: {disk_problem(e)} while collecting; the progress saved before stays valid: "
            "fix it and rerun the same command to resume"
        ) from e


class CollectionRun(LoopObserver):
    """One attempt at filling ``out``: its slot book, writer, counters and random draws. As the env loop's
    observer it cuts subsequences out of each batch into slots and saves progress now and then."""

    def __init__(self, settings, out, policy, show_progress, checkpoint_seconds, max_env_steps):
        self.settings, self.out, self.policy, self.show_progress = settings, out, policy, show_progress
        self.checkpoint_seconds, self.max_env_steps = checkpoint_seconds, max_env_steps
        self.counters: dict[str, Any] = {
            "settings": settings.as_dict(),
            "attempt": 0,
            "env_steps": 0,
            "episodes": 0,
            "next_episode_id": 0,
            "seconds": 0.0,
            "created": _now(),
        }
        self.writer: DatasetWriter | None = None
        self.recorder = SubsequenceRecorder(settings.num_envs, settings.seq_len)
        self.steps_this_run = 0

    def run(self, resume: bool) -> CollectResult:
        settings, out = self.settings, self.out
        saved = _load_progress(out, settings) if resume else None
        states = None
        if saved is not None:
            self.counters, states = saved
            self.counters["attempt"] += 1
        self.book = SlotBook(2 * settings.pairs, settings.seed, states)
        attempt = self.counters["attempt"]
        self.rng = np.random.default_rng([settings.seed, 1, attempt])
        wanted = set(settings.keys) | {"blstats"} | set(getattr(self.policy, "obs_keys", ()))
        seed = settings.seed + attempt * _ATTEMPT_SEED_STRIDE
        keys = tuple(sorted(wanted - {"message_count", "skill", "skill_depth_change"}))  # those two: the policy's
        options = {flag: True for flag in CAPTION_OPTIONS if getattr(settings, flag)} or None
        pool = make_pool(
            settings.task, settings.num_envs, settings.num_envs, seed=seed, obs_keys=keys, env_options=options
        )
        self.started = time.monotonic()
        try:
            policy = self.policy or RandomPolicy(int(pool.action_space.n), self.rng)
            self._open_writer(pool.observation_space.spaces, resume=states is not None)
            first_id = self.counters["next_episode_id"]
            self.episode_ids = np.arange(first_id, first_id + settings.num_envs)
            self.counters["next_episode_id"] = first_id + settings.num_envs
            self.character = task_character()
            self.last_checkpoint = time.monotonic()
            total, done = 2 * settings.pairs, self.book.num_done
            with ProgressBar("collect", total, "subsequences", completed=done, enabled=self.show_progress) as self.bar:
                # a skilled agent brings its skill controller, which writes the skill inputs first
                loop = EnvLoop(pool, [*getattr(policy, "observers", ()), self], in_env_order=True)
                loop.run(lambda b: (policy(b.obs, b.first), None), lambda: self.book.finished)
                self.bar.update(info=self._rate_info(0))
        except BaseException as error:
            if self.writer is not None:  # what is done stays done; the rest is redone on resume
                self.counters["seconds"] += time.monotonic() - self.started
                try:
                    _save_progress(out, self.writer, self.book, self.counters)
                except OSError:
                    if not isinstance(error, OSError):
                        raise
            raise
        finally:
            pool.close()
        self.counters["seconds"] += time.monotonic() - self.started
        return CollectResult(out, _finalize(out, self.writer, settings, self.counters))

    def _open_writer(self, spaces, resume: bool) -> None:
        settings = self.settings
        missing = [k for k in settings.keys if k not in spaces]
        if missing:
            raise MotifError(
                f"keys: the {settings.task} env has no observation {missing} (it has {', '.join(sorted(spaces))})"
            )
        (self.out / PROGRESS_DIR).mkdir(parents=True, exist_ok=True)  # marks DIR unfinished before any data exists
        specs = {key: (tuple(spaces[key].shape), np.dtype(spaces[key].dtype)) for key in settings.keys}
        specs[REWARD_KEY] = ((), np.dtype(np.float32))
        # a collection begun before transitions existed resumes without them (its files have none)
        self.transitions = not resume or all((self.out / "data" / f"{k}.npy").exists() for k in TRANSITION_KEYS)
        if self.transitions:
            specs[PREV_MESSAGE_KEY] = specs["message"]
            specs[DELTA_KEY] = ((len(DELTA_FIELDS),), DELTA_DTYPE)
            self.last_message = np.zeros((settings.num_envs, *spaces["message"].shape), spaces["message"].dtype)
            self.last_blstats = np.zeros((settings.num_envs, *spaces["blstats"].shape), spaces["blstats"].dtype)
        self.writer = DatasetWriter(self.out, settings.pairs, settings.seq_len, specs, INFO_DTYPES, resume=resume)
        _save_progress(self.out, self.writer, self.book, self.counters)

    def observe(self, b: EnvStep) -> None:
        """Record this batch's subsequences and episode ends; save progress (or stop) between batches."""
        book, obs, info, episode_ids = self.book, b.obs, b.info, self.episode_ids
        starts = self.rng.random(len(b.env_ids)) < self.settings.sample_prob
        transitions = self._transitions(b) if self.transitions else None
        for i in range(len(b.env_ids) if book.accepting else 0):
            env = int(b.env_ids[i])
            if self.recorder.open[env] is None and not starts[i]:
                continue
            step = {key: obs[key][i] for key in self.settings.keys}
            step[REWARD_KEY] = np.float32(b.reward[i])
            if transitions is not None:
                step[PREV_MESSAGE_KEY], step[DELTA_KEY] = transitions[0][i], transitions[1][i]
            window = self.recorder.observe(env, step, bool(starts[i]), bool(b.ended[i]))
            slot = book.claim(env, episode_ids[env]) if window is not None and book.accepting else None
            if slot is not None:
                row = last_step_info(obs["blstats"][i], info["elapsed_step"][i], episode_ids[env], self.character)
                self.writer.write(slot, window, row)
        for i in np.flatnonzero(b.ended):
            env = int(b.env_ids[i])
            slots = book.episode_ended(env)
            if slots:
                self.writer.set_info(slots, "episode_score", int(info["episode_score"][i]))
                self.bar.advance(len(slots))
            self.counters["episodes"] += 1
            episode_ids[env] = self.counters["next_episode_id"]
            self.counters["next_episode_id"] += 1
        if book.finished:
            return
        now = time.monotonic()
        if now - self.last_checkpoint >= self.checkpoint_seconds:
            _save_progress(self.out, self.writer, book, self.counters)
            self.last_checkpoint = now
        if self.max_env_steps is not None and self.counters["env_steps"] >= self.max_env_steps:
            raise KeyboardInterrupt(f"stopped after {self.counters['env_steps']} env steps")

    def _transitions(self, b: EnvStep) -> tuple[np.ndarray, np.ndarray]:
        """This batch's previous messages and stat changes (rows of ``b``), then remember its observations."""
        ids, first, obs = b.env_ids, b.first[:, None], b.obs
        prev_message = np.where(first, 0, self.last_message[ids]).astype(self.last_message.dtype)
        delta = np.where(first, 0, stat_delta(self.last_blstats[ids], obs["blstats"])).astype(DELTA_DTYPE)
        self.last_message[ids], self.last_blstats[ids] = obs["message"], obs["blstats"]
        return prev_message, delta

    def acted(self, b: EnvStep, actions, aux) -> None:
        self.counters["env_steps"] += len(b.env_ids)
        self.steps_this_run += len(b.env_ids)
        self.bar.update(info=self._rate_info(sum(len(s) for s in self.book.pending.values())))

    def _rate_info(self, pending: int) -> str:
        rate = self.steps_this_run / max(time.monotonic() - self.started, 1e-9)
        return f"{rate:,.0f} env steps/s, {pending} pending"


def _finalize(out: Path, writer: DatasetWriter, settings: CollectSettings, counters: dict[str, Any]) -> dict:
    from motif_jax import __version__

    captions = caption_distribution(writer.data["message"], top=100)
    meta = {
        "task": settings.task,
        "policy": settings.policy,
        "seed": settings.seed,
        "settings": settings.as_dict(),
        "counts": {
            "pairs": settings.pairs,
            "subsequences": 2 * settings.pairs,
            "episodes": counters["episodes"],
            "env_steps": counters["env_steps"],
            "resumed": counters["attempt"],
        },
        "captions": {k: captions[k] for k in ("steps", "unique", "fraction_empty")} | {"top": captions["top"][:10]},
        **({"transitions": transitions_meta()} if DELTA_KEY in writer.data else {}),
        "collection_seconds": round(counters["seconds"], 2),
        "created": counters["created"],
        "completed": _now(),
        "motif_jax_version": __version__,
    }
    writer.finalize(meta, captions)
    return json.loads((out / META_FILE).read_text())


def transitions_meta() -> dict:
    """meta.json's note that the dataset has transitions, and what its delta's last axis holds."""
    return {"keys": list(TRANSITION_KEYS), "delta_fields": list(DELTA_FIELDS)}


def _already_complete(out: Path, settings: CollectSettings) -> CollectResult:
    try:
        meta = json.loads((out / META_FILE).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise MotifError(f"{out / META_FILE}: unreadable ({e}); use --overwrite to collect again") from None
    if meta.get("settings") != settings.as_dict():
        raise MotifError(
            f"{out}: already holds a complete dataset with other settings "
            f"({_describe_difference(meta.get('settings'), settings)}); use --overwrite or another --out"
        )
    return CollectResult(out, meta, already_complete=True)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


__all__ = ["CollectSettings", "CollectResult", "CollectionRun", "collect", "SubsequenceRecorder", "SlotBook"]
