"""The loop each actor process runs: step its envs as actions arrive, write results into shared memory.

Protocol (raw pipe bytes, no pickling on the hot path):
- parent -> worker, on the worker's own pipe: uint16 codes, one per env. ``local`` = step that env with
  the action already in shared memory; ``RESET_BIT | local`` = reset it; ``STOP`` = exit.
- worker -> parent, on one pipe shared by all workers: the int32 global ids of the envs whose results
  are in shared memory, one write per round of work (a write under PIPE_BUF is atomic, so ids from
  different workers never interleave mid-id).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
import traceback
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from motif_jax.envs import CAPTION_OPTIONS
from motif_jax.envs.pool_layout import FLAG_ROW, INT_ROW, PoolLayout

RESET_BIT = 0x8000
STOP = 0xFFFF
MAX_ENVS_PER_WORKER = RESET_BIT - 1

# What the next code for an env does.
_STEP, _RESET, _ABORT, _FRESH = range(4)

_EPISODE_STATS = ("score", "max_dlvl", "xlvl", "gold", "explored")
_NO_STATS = (0,) * len(_EPISODE_STATS)  # the episode-stat columns of a row with no finished episode
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
PARENT_CHECK_S = 1.0


@dataclass(frozen=True)
class TaskEnvFactory:
    """Picklable factory for a named task; imports the task module only inside the worker."""

    task: str
    obs_keys: tuple[str, ...] | None = None
    max_episode_steps: int | None = None  # None: the task's default cap
    character: str | None = None  # None: NLE's default character (see tasks.DEFAULT_CHARACTER)
    extra_actions: bool = False  # append tasks.EXTRA_ACTIONS to the 23 task actions
    mention_stairs: bool = False  # caption a staircase down under the hero (tasks.MotifNetHackTask)
    mention_explored: bool = False  # caption every 50 more squares seen on a level (tasks.MotifNetHackTask)

    def __call__(self):
        from motif_jax.envs.tasks import make_task_env

        kwargs = {} if self.max_episode_steps is None else {"max_episode_steps": self.max_episode_steps}
        if self.character is not None:
            kwargs["character"] = self.character
        if self.extra_actions:
            kwargs["extra_actions"] = True
        for flag in CAPTION_OPTIONS:
            if getattr(self, flag):
                kwargs[flag] = True
        return make_task_env(self.task, obs_keys=self.obs_keys, **kwargs)


@dataclass(frozen=True)
class WorkerSpec:
    index: int
    env_ids: tuple[int, ...]  # global ids, in local order
    factory: Callable[[], Any]
    seed: int
    layout: PoolLayout
    dict_obs: bool  # False: the env returns a bare array, stored under the key "obs"
    discrete_action: bool
    end_reasons: tuple[str, ...] = ()  # names of end_reason indices (NLE tasks); empty for generic envs
    restarted: bool = False  # replaces a crashed worker: every env's next reply reports the episode aborted
    abort_now: tuple[int, ...] = field(default=())  # local ids whose step was lost in the crash: report at once
    cpu: int | None = None  # the CPU to run on (see pool.worker_cpus); None: wherever the scheduler likes
    owner_pid: int = 0  # the process that owns the pool: the worker exits when it is gone


def episode_seed(seed: int, env_id: int, episode: int) -> int:
    """Seed of one episode of one env: independent streams per (pool seed, env, episode)."""
    return int(np.random.SeedSequence(seed, spawn_key=(env_id, episode)).generate_state(1)[0])


def exit_with_owner(owner_pid: int, interval_s: float = PARENT_CHECK_S) -> None:
    """Make this process die with the pool's owner, even when the owner is SIGKILLed and cannot close us.

    Workers are children of the forkserver, which exits when the owner does; PR_SET_PDEATHSIG (Linux)
    has the kernel kill us when that parent exits. A daemon thread also checks every ``interval_s``
    that the parent and the owner are still there (other systems, or an owner that died before the
    prctl), and exits the process if not."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    parent = os.getppid()

    def watch():
        while os.getppid() == parent and process_exists(owner_pid):
            time.sleep(interval_s)
        os._exit(1)

    threading.Thread(target=watch, name="motif-owner-watch", daemon=True).start()


def process_exists(pid: int) -> bool:
    if pid <= 0:
        return True  # no owner given: rely on the parent check
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_main(spec: WorkerSpec, block, commands, results, status) -> None:
    """Process entry point. Reports startup success (or the traceback) on `status`, then serves."""
    exit_with_owner(spec.owner_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it closes us
    if spec.cpu is not None:
        os.sched_setaffinity(0, {spec.cpu})
    try:
        actor = _Actor(spec, block)
    except BaseException:
        status.send(("error", traceback.format_exc()))
        return
    status.send(("ok", None))
    status.close()
    actor.serve(commands.fileno(), results.fileno())


class _Actor:
    """The envs of one worker and their per-env bookkeeping."""

    def __init__(self, spec: WorkerSpec, block):
        self.spec = spec
        views = spec.layout.views(block)
        self.actions = views["action"]
        self.ints, self.flags = views["ints"], views["flags"]
        self.ints_mv = memoryview(self.ints).cast("B")
        self.flags_mv = memoryview(self.flags).cast("B")
        self.int_stride, self.flag_stride = self.ints.strides[0], self.flags.strides[0]
        obs_views = {k[len("obs/") :]: v for k, v in views.items() if k.startswith("obs/")}
        self.gids = list(spec.env_ids)
        self.dests = [[(obs_views[k][g, ...], k if spec.dict_obs else None) for k in obs_views] for g in self.gids]
        self.aborted_reason = spec.end_reasons.index("aborted") if "aborted" in spec.end_reasons else 0
        self.envs = [spec.factory() for _ in self.gids]
        n = len(self.gids)
        # Running totals live in shared memory too, so a restarted worker can report the lost episode.
        self.returns = [float(self.ints[g, 3:4].view(np.float32)[0]) for g in self.gids]
        self.lengths = [int(self.ints[g, 4]) for g in self.gids]
        self.episodes = [int(self.ints[g, 9]) for g in self.gids]
        self.modes = [_ABORT if spec.restarted else _STEP] * n
        self.pending_abort = list(spec.abort_now)

    def serve(self, command_fd: int, result_fd: int) -> None:
        if self.pending_abort:
            os.write(result_fd, array("i", [self.handle(local) for local in self.pending_abort]).tobytes())
        while True:
            data = os.read(command_fd, 65536)
            if not data:
                return  # the parent is gone
            done = array("i")
            for code in memoryview(data).cast("H"):
                if code >= RESET_BIT:
                    if code == STOP:
                        return
                    code &= MAX_ENVS_PER_WORKER
                    self.modes[code] = _RESET
                done.append(self.handle(code))
            os.write(result_fd, done.tobytes())

    def handle(self, local: int) -> int:
        """Advance one env by one code and publish the result; returns its global id."""
        mode = self.modes[local]
        gid = self.gids[local]
        if mode == _STEP:
            env = self.envs[local]
            action = int(self.actions[gid]) if self.spec.discrete_action else self.actions[gid].copy()
            obs, reward, terminated, truncated, info = env.step(action)
            reward = float(reward)
            ret = self.returns[local] = self.returns[local] + reward
            length = self.lengths[local] = self.lengths[local] + 1
            self.write_obs(local, obs)
            if terminated or truncated:
                self.modes[local] = _RESET
                self.write_end(local, reward, bool(terminated), bool(truncated), ret, length, info)
            else:
                INT_ROW.pack_into(
                    self.ints_mv,
                    gid * self.int_stride,
                    gid,
                    reward,
                    length,
                    ret,
                    length,
                    *_NO_STATS,
                    self.episodes[local],
                )
                FLAG_ROW.pack_into(self.flags_mv, gid * self.flag_stride, False, False, False, 0)
            return gid
        if mode == _ABORT:
            ret, length = self.returns[local], self.lengths[local]
            self.reset(local)
            self.modes[local] = _FRESH
            INT_ROW.pack_into(
                self.ints_mv, gid * self.int_stride, gid, 0.0, length, ret, length, *_NO_STATS, self.episodes[local]
            )
            FLAG_ROW.pack_into(self.flags_mv, gid * self.flag_stride, False, True, False, self.aborted_reason)
            return gid
        if mode == _RESET:
            self.reset(local)
        self.modes[local] = _STEP  # _RESET or _FRESH: the reply is the first observation of an episode
        INT_ROW.pack_into(self.ints_mv, gid * self.int_stride, gid, 0.0, 0, 0.0, 0, *_NO_STATS, self.episodes[local])
        FLAG_ROW.pack_into(self.flags_mv, gid * self.flag_stride, False, False, False, 0)
        return gid

    def reset(self, local: int) -> None:
        gid = self.gids[local]
        obs, _ = self.envs[local].reset(seed=episode_seed(self.spec.seed, gid, self.episodes[local]))
        self.episodes[local] += 1
        self.returns[local], self.lengths[local] = 0.0, 0
        self.write_obs(local, obs)

    def write_obs(self, local: int, obs) -> None:
        for dest, key in self.dests[local]:
            dest[...] = obs if key is None else obs[key]

    def write_end(self, local, reward, terminated, truncated, ret, length, info) -> None:
        """The last step of an episode: the task's own episode statistics when it reports them."""
        gid = self.gids[local]
        episode = info.get("episode") if isinstance(info, dict) else None
        stats = list(_NO_STATS)
        success, reason = False, 0
        if isinstance(episode, dict):
            ret = float(episode.get("return", ret))
            length = int(episode.get("length", length))
            stats = [int(episode.get(k, 0)) for k in _EPISODE_STATS]
            success = bool(episode.get("success", False))
            name = episode.get("end_reason")
            reason = self.spec.end_reasons.index(name) if name in self.spec.end_reasons else 0
        INT_ROW.pack_into(
            self.ints_mv, gid * self.int_stride, gid, reward, length, ret, length, *stats, self.episodes[local]
        )
        FLAG_ROW.pack_into(self.flags_mv, gid * self.flag_stride, terminated, truncated, success, reason)
