"""The one env loop: a pool stepped by a policy. Collection, evaluation and the trainer's actors all run
their pool through `EnvLoop`; each brings a policy and observers and never calls `recv`/`send` itself.

One cycle (`EnvLoop.step`)::

    recv ─▶ EnvStep ─▶ observer.observe(batch), in order ─▶ until()? stop: these envs get no action
         ─▶ policy(batch) -> (actions, aux) ─▶ observer.acted(batch, actions, aux) ─▶ send

The loop keeps, per env, whether its observation starts an episode (``first``) and how many actions it
has taken (``steps``), and times each part of the cycle. With ``in_env_order`` a batch's rows are sorted
by env id, so random draws and per-env bookkeeping follow envs, not which worker answered first:
collection and evaluation need that to be reproducible.

Observers hold the per-env host-side logic. ``observe`` sees each batch before the policy and may put
per-env policy inputs (rows aligned with ``batch.env_ids``) in ``batch.inputs``: the actor passes its
recurrent states so; a skill controller would check each env's active skill for termination there, pick
the next one and pass the skill ids. ``acted`` sees what the policy did (actions and its ``aux``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class LoopStats:
    """Env steps acted and where the time of those cycles went."""

    env_steps: int = 0
    env_wait_s: float = 0.0  # waiting in pool.recv
    inference_s: float = 0.0  # the policy call
    host_s: float = 0.0  # observers and bookkeeping
    send_s: float = 0.0  # pool.send: writing the actions to the workers' pipes


@dataclass
class EnvStep:
    """One pool reply and the loop's per-env view of it; rows are envs ``env_ids``."""

    obs: dict[str, np.ndarray]
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    info: dict[str, np.ndarray]
    env_ids: np.ndarray
    ended: np.ndarray  # terminated | truncated: the next observation of this env starts an episode
    first: np.ndarray  # this observation starts an episode
    steps: np.ndarray  # actions each env took before this one
    inputs: dict[str, Any] = field(default_factory=dict)  # per-env policy inputs set by observers


class LoopObserver:
    """Per-env host-side hooks of a loop (see the module doc); both do nothing by default."""

    def observe(self, batch: EnvStep) -> None:
        pass

    def acted(self, batch: EnvStep, actions, aux) -> None:
        pass


class EnvLoop:
    """Steps ``pool`` (reset on the first step) for a policy ``(EnvStep) -> (actions, aux)``.

    ``stats`` is updated under ``lock``, so another thread may read or drain it.
    """

    def __init__(self, pool, observers=(), *, in_env_order: bool = False, stats: LoopStats | None = None):
        self.pool, self.observers, self.in_env_order = pool, tuple(observers), in_env_order
        self.first = np.ones(pool.num_envs, bool)
        self.steps = np.zeros(pool.num_envs, np.int32)
        self.stats = LoopStats() if stats is None else stats
        self.lock = threading.Lock()
        self._started = False

    def run(self, policy: Callable, until: Callable[[], bool]) -> None:
        """Cycle until ``until()`` holds once a batch is observed."""
        while self.step(policy, until):
            pass

    def step(self, policy: Callable, until: Callable[[], bool] | None = None) -> bool:
        """One cycle; False, with no action sent, when ``until()`` holds after the observers saw the batch."""
        if not self._started:
            self.pool.async_reset()
            self._started = True
        t0 = time.perf_counter()
        reply = self.pool.recv()
        t1 = time.perf_counter()
        obs, reward, terminated, truncated, info = reply
        order = np.argsort(info["env_id"], kind="stable") if self.in_env_order else None
        if order is not None and (order[1:] < order[:-1]).any():
            obs, info = {k: v[order] for k, v in obs.items()}, {k: np.asarray(v)[order] for k, v in info.items()}
            reward, terminated, truncated = reward[order], terminated[order], truncated[order]
        ids = info["env_id"]
        ended = np.asarray(terminated) | np.asarray(truncated)
        batch = EnvStep(obs, reward, terminated, truncated, info, ids, ended, self.first[ids], self.steps[ids])
        for observer in self.observers:
            observer.observe(batch)
        if until is not None and until():
            return False
        t2 = time.perf_counter()
        actions, aux = policy(batch)
        t3 = time.perf_counter()
        self.steps[ids] += 1
        self.first[ids] = ended
        for observer in self.observers:
            observer.acted(batch, actions, aux)
        t4 = time.perf_counter()
        self.pool.send(actions, ids)
        t5 = time.perf_counter()
        with self.lock:
            s = self.stats
            s.env_steps += len(ids)
            s.env_wait_s += t1 - t0
            s.inference_s += t3 - t2
            s.host_s += (t2 - t1) + (t4 - t3)
            s.send_s += t5 - t4
        return True
