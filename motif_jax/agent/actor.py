"""Acting: jitted inference on one device driving the pool; a thread for actor/learner overlap (Sebulba).

``RolloutWorker.collect()`` steps the pool until a batch of segments is ready. The
async trainer runs it in an ``ActorThread`` that pushes batches into a bounded queue
while the learner updates, picking up new parameters as they are published (so the
data is at most one update stale); ``--sync`` calls it inline instead.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from motif_jax.agent.rollout import SegmentBuilder

EPISODE_KEYS = ("return", "length", "score", "max_dlvl", "success")


def make_act_fn(graphdef, treedef):
    """Jitted ``(param_leaves, obs, first, state, key, step, greedy) -> (actions, logp, new_state)``.

    Parameters travel as a flat list of arrays (``jax.tree.leaves``): flattening
    an nnx State at every call costs more host time than a small CPU forward
    pass. Sampling uses ``fold_in(key, step)`` inside the jit, so acting runs no
    eager random ops between steps.
    """

    def act(leaves, obs, first, state, key, step, greedy):
        params = jax.tree.unflatten(treedef, leaves)
        logits, _, state = nnx.merge(graphdef, params).step(obs, first, state)
        sampled = jax.random.categorical(jax.random.fold_in(key, step), logits)
        actions = jnp.where(greedy, jnp.argmax(logits, -1), sampled)
        logp = jnp.take_along_axis(jax.nn.log_softmax(logits), actions[:, None], -1)[:, 0]
        return actions.astype(jnp.int32), logp, state

    return jax.jit(act)


class ParamStore:
    """The newest published parameters (on the actor's device) and their version, thread-safe."""

    def __init__(self, device):
        self.device, self._lock = device, threading.Lock()
        self.params, self.version = None, -1

    def publish(self, params, version: int) -> None:
        # A copy: the learner donates its buffers to the next update.
        leaves = [jnp.array(x, copy=True) for x in jax.device_put(jax.tree.leaves(params), self.device)]
        with self._lock:
            self.params, self.version = leaves, version

    def get(self):
        """(parameter leaves in ``jax.tree.leaves`` order, version)."""
        with self._lock:
            return self.params, self.version


@dataclass
class ActorStats:
    """Counters the trainer drains at each log line."""

    env_steps: int = 0
    inference_s: float = 0.0
    env_wait_s: float = 0.0
    queue_wait_s: float = 0.0
    episodes: dict = field(default_factory=lambda: {k: [] for k in EPISODE_KEYS})

    def drain(self) -> "ActorStats":
        out = ActorStats(self.env_steps, self.inference_s, self.env_wait_s, self.queue_wait_s, self.episodes)
        self.env_steps, self.inference_s, self.env_wait_s, self.queue_wait_s = 0, 0.0, 0.0, 0.0
        self.episodes = {k: [] for k in EPISODE_KEYS}
        return out


class RolloutWorker:
    def __init__(self, pool, graphdef, param_treedef, store: ParamStore, rows: int, rollout: int, obs_spec: dict,
                 policy_keys, state_size: int, seed: int):
        self.pool, self.store, self.rows = pool, store, rows
        self.policy_keys = tuple(policy_keys)
        self.act = make_act_fn(graphdef, param_treedef)
        self.steps = 0
        self.builder = SegmentBuilder(pool.num_envs, rollout, obs_spec, state_size)
        self.state = np.zeros((pool.num_envs, state_size), np.float32)
        self.first = np.ones(pool.num_envs, bool)
        self.key = jax.random.key(seed)
        self.stats = ActorStats()
        self._lock = threading.Lock()
        self._started = False

    def collect(self) -> tuple[dict, int]:
        """Step until ``rows`` segments are ready; returns (batch, oldest param version used)."""
        if not self._started:
            self.pool.async_reset()
            self._started = True
        oldest = None
        while (batch := self.builder.take(self.rows)) is None:
            params, version = self.store.get()
            oldest = version if oldest is None else min(oldest, version)
            self._step(params)
        return batch, oldest if oldest is not None else self.store.get()[1]

    def _step(self, params) -> None:
        t0 = time.perf_counter()
        obs, rew, term, trunc, info = self.pool.recv()
        t1 = time.perf_counter()
        ids = np.asarray(info["env_id"])
        ended = np.asarray(term) | np.asarray(trunc)
        first = self.first[ids]
        state_before = self.state[ids]
        self.builder.observe(ids, obs, rew, term, ended, first, state_before)
        policy_obs = {k: obs[k] for k in self.policy_keys}
        actions, logp, state = self.act(params, policy_obs, first, state_before, self.key, np.int32(self.steps), False)
        self.steps += 1
        actions, logp, state = jax.device_get((actions, logp, state))
        self.builder.record(ids, actions, logp)
        self.state[ids] = state
        self.first[ids] = ended
        self.pool.send(actions, ids)
        t2 = time.perf_counter()
        with self._lock:
            s = self.stats
            s.env_steps += len(ids)
            s.env_wait_s += t1 - t0
            s.inference_s += t2 - t1
            if ended.any():
                self._record_episodes(info, ended)

    def _record_episodes(self, info, ended) -> None:
        for key in EPISODE_KEYS:
            name = f"episode_{key}"
            if name in info:
                self.stats.episodes[key].extend(np.asarray(info[name])[ended].tolist())

    def drain_stats(self) -> ActorStats:
        with self._lock:
            return self.stats.drain()


class ActorThread(threading.Thread):
    """Runs ``worker.collect()`` in a loop and hands each batch to the learner.

    The hand-off is a rendezvous: the actor starts its next batch only once the
    learner has taken the previous one, so every batch is acted with parameters at
    most one update older than the learner's when it trains on it.
    """

    def __init__(self, worker: RolloutWorker):
        super().__init__(name="motif-actor", daemon=True)
        self.worker = worker
        self.queue: queue.Queue = queue.Queue(maxsize=1)
        self.taken = threading.Event()
        self.stop_event = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                item = self.worker.collect()
                t0 = time.perf_counter()
                self.taken.clear()
                self.queue.put(item)
                while not self.taken.wait(timeout=0.1) and not self.stop_event.is_set():
                    pass
                with self.worker._lock:
                    self.worker.stats.queue_wait_s += time.perf_counter() - t0
        except BaseException as e:  # surfaced by get()
            self.error = e

    def get(self, timeout: float = 1.0):
        """Next batch; re-raises an actor error in the learner's thread."""
        while True:
            if self.error is not None:
                raise self.error
            try:
                item = self.queue.get(timeout=timeout)
                self.taken.set()
                return item
            except queue.Empty:
                if not self.is_alive() and self.error is None:
                    raise RuntimeError("actor thread stopped")

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=30)
