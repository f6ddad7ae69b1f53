"""Acting: jitted inference on an actor device driving a pool; threads for actor/learner overlap (Sebulba).

``RolloutWorker.collect()`` steps its pool (through the shared env loop) until a batch of segments is ready. The
async trainer runs each worker in an ``ActorThread`` that pushes batches into a
bounded queue while the learner updates, picking up new parameters as they are
published to its device (so the data is at most one update stale); ``--sync``
calls every worker inline instead.

Actions are sampled with a key per (global env id, env step), so what an env does
never depends on how envs are split over threads, pools or processes.
"""

from __future__ import annotations

import dataclasses
import functools
import queue
import threading
import time
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from motif_jax.agent.rollout import SegmentBuilder
from motif_jax.envs.loop import EnvLoop, EnvStep, LoopObserver, LoopStats

EPISODE_KEYS = ("return", "length", "score", "max_dlvl", "success")


def make_act_fn(graphdef, treedef):
    """Jitted ``(param_leaves, obs, first, state, key, env_ids, env_steps, greedy) -> (actions, logp, new_state)``.

    Parameters travel as a flat list of arrays (``jax.tree.leaves``): flattening
    an nnx State at every call costs more host time than a small CPU forward
    pass. Each row samples with ``fold_in(fold_in(key, env_id), env_step)`` inside
    the jit, so acting runs no eager random ops and is independent of batching.
    """

    def act(leaves, obs, first, state, key, env_ids, env_steps, greedy):
        params = jax.tree.unflatten(treedef, leaves)
        logits, _, state = nnx.merge(graphdef, params).step(obs, first, state)
        keys = jax.vmap(lambda i, t: jax.random.fold_in(jax.random.fold_in(key, i), t))(env_ids, env_steps)
        sampled = jax.vmap(jax.random.categorical)(keys, logits)
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
        # This process's replica of each (replicated) leaf, copied: the learner donates its buffers.
        local = [x.addressable_data(0) if isinstance(x, jax.Array) else x for x in jax.tree.leaves(params)]
        leaves = [jnp.array(x, copy=True) for x in jax.device_put(local, self.device)]
        with self._lock:
            self.params, self.version = leaves, version

    def get(self):
        """(parameter leaves in ``jax.tree.leaves`` order, version)."""
        with self._lock:
            return self.params, self.version


@dataclass
class ActorStats(LoopStats):
    """The loop's counters and the actor's own; the trainer drains them at each log line."""

    queue_wait_s: float = 0.0
    episodes: dict = field(default_factory=lambda: {k: [] for k in EPISODE_KEYS})

    def drain(self) -> ActorStats:
        out = dataclasses.replace(self)
        self.__init__()
        return out

    def __add__(self, other: ActorStats) -> ActorStats:
        total = {
            f.name: getattr(self, f.name) + getattr(other, f.name)
            for f in dataclasses.fields(self)
            if f.name != "episodes"
        }
        return ActorStats(**total, episodes={k: self.episodes[k] + other.episodes[k] for k in EPISODE_KEYS})


class RolloutWorker(LoopObserver):
    """One pool's loop, its segment builder and recurrent states; acts on the device its ``store`` publishes to.

    ``env_offset`` is the global id of this pool's env 0 (over threads and processes): it keys
    the action sampling, so an env's actions depend only on the seed, its id and its step.
    ``observers`` see each batch before this worker stores it (the skill controller adds the skill ids).
    """

    def __init__(
        self,
        pool,
        graphdef,
        param_treedef,
        store: ParamStore,
        rollout: int,
        obs_spec: dict,
        policy_keys,
        state_size: int,
        seed: int,
        env_offset: int = 0,
        observers=(),
    ):
        self.store, self.rows = store, pool.num_envs
        self.policy_keys = tuple(policy_keys)
        self.act = make_act_fn(graphdef, param_treedef)
        self.builder = SegmentBuilder(pool.num_envs, rollout, obs_spec, state_size)
        self.state = np.zeros((pool.num_envs, state_size), np.float32)
        self.global_ids = np.arange(env_offset, env_offset + pool.num_envs, dtype=np.int32)
        self.key = jax.device_put(jax.random.key(seed), store.device)
        self.stats = ActorStats()
        self.observers = tuple(observers)
        self.loop = EnvLoop(pool, [*self.observers, self], stats=self.stats)

    def collect(self) -> tuple[dict, int]:
        """Step until every env has a finished segment; returns (batch, oldest param version used)."""
        oldest = None
        while (batch := self.builder.take(self.rows)) is None:
            params, version = self.store.get()
            oldest = version if oldest is None else min(oldest, version)
            self.loop.step(functools.partial(self._policy, params))
        return batch, oldest if oldest is not None else self.store.get()[1]

    def observe(self, b: EnvStep) -> None:
        b.inputs["state"] = self.state[b.env_ids]
        self.builder.observe(b.env_ids, b.obs, b.reward, b.terminated, b.ended, b.first, b.inputs["state"])
        if b.ended.any():
            with self.loop.lock:
                for key in EPISODE_KEYS:
                    if f"episode_{key}" in b.info:
                        self.stats.episodes[key].extend(np.asarray(b.info[f"episode_{key}"])[b.ended].tolist())

    def _policy(self, params, b: EnvStep):
        obs = {k: b.obs[k] for k in self.policy_keys}
        out = self.act(params, obs, b.first, b.inputs["state"], self.key, self.global_ids[b.env_ids], b.steps, False)
        actions, logp, state = jax.device_get(out)
        return actions, (logp, state)

    def acted(self, b: EnvStep, actions, aux) -> None:
        logp, state = aux
        self.builder.record(b.env_ids, actions, logp)
        self.state[b.env_ids] = state

    def drain_stats(self) -> ActorStats:
        with self.loop.lock:
            return self.stats.drain()


class ActorThread(threading.Thread):
    """Runs ``worker.collect()`` in a loop and hands each batch to the learner.

    The hand-off is a rendezvous: the actor starts its next batch only once the
    learner has taken the previous one, so every batch is acted with parameters at
    most one update older than the learner's when it trains on it.
    """

    def __init__(self, worker: RolloutWorker):
        super().__init__(name=f"motif-actor-{worker.global_ids[0]}", daemon=True)
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
                with self.worker.loop.lock:
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
                    raise RuntimeError("actor thread stopped") from None

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=30)
