"""An envpool-style pool of actor processes for NLE tasks (or any picklable gymnasium env factory).

NLE's `step` holds the GIL, so envs run in worker processes, several per worker. Workers write
observations and results straight into shared memory (see `pool_layout`) and signal which envs are
done over a pipe with a few bytes per env; the parent never pickles an observation. `recv()` hands
back the first `batch_size` envs that are ready, so with `batch_size < num_envs` the other envs keep
stepping while the caller computes its next actions.

Workers are pinned one per usable CPU by default (see `worker_cpus` for why, and when not to). A worker
that dies, or owes results and sends none for `step_timeout_s`, is replaced; its unfinished envs come
back truncated with end reason "aborted" and the pool keeps serving.

Processes are started with "forkserver" (never fork): safe when JAX or CUDA is already loaded. As with
any non-fork start method, a script creating a pool needs the `if __name__ == "__main__":` guard, and a
custom env factory must be importable (defined at module level) so workers can unpickle it.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import select
import time
import warnings
import weakref
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np

from motif_jax.envs.pool_layout import ArraySpec, PoolLayout, results_from_rows
from motif_jax.envs.pool_worker import (
    MAX_ENVS_PER_WORKER,
    RESET_BIT,
    STOP,
    TaskEnvFactory,
    WorkerSpec,
    worker_main,
)
from motif_jax.errors import MotifError

# Where each env stands, as seen by the parent.
_UNSTARTED, _IDLE, _RUNNING, _READY = range(4)  # _IDLE: the caller holds its result and owes an action
_STOP_CODE = array("H", [STOP]).tobytes()
# More crashes than this within the window means a broken env, not bad luck: stop restarting.
_MAX_CRASHES, _CRASH_WINDOW_S = 5, 60.0
# An NLE step takes microseconds and a reset milliseconds: minutes of silence mean a hung worker.
DEFAULT_STEP_TIMEOUT_S = 120.0
ENVPOOL_PREFIX = "envpool:"  # names one of envpool's own envs, e.g. "envpool:CartPole-v1"


def make_pool(
    task_or_factory: str | Callable[[], gymnasium.Env],
    num_envs: int,
    batch_size: int | None = None,
    num_workers: int | None = None,
    seed: int = 0,
    obs_keys=None,
    *,
    max_episode_steps: int | None = None,
    env_factory: Callable = TaskEnvFactory,
    pin_workers: bool = True,
    cpu_offset: int = 0,
    step_timeout_s: float | None = DEFAULT_STEP_TIMEOUT_S,
    env_options: dict | None = None,
):
    """The one way to make a started pool; call `async_reset()` then `recv()`/`send()` (or `step()`), and `close()`.

    `task_or_factory`: a task name (see `motif_jax.envs.TASKS`), `envpool:<Name>` (only sizes and seed apply),
    or a picklable zero-argument callable returning a gymnasium env, e.g. `partial(gymnasium.make, "CartPole-v1")`.
    `num_workers`: None or 0 for one per usable CPU (at most one per env).
    `max_episode_steps` caps NLE task episodes (None: the task's default); `env_factory(task=, obs_keys=,
    max_episode_steps=)` makes the workers' picklable factory for a task name (evaluation's records ttyrecs).
    `pin_workers`: see `worker_cpus`; pass False when several processes on one machine each run a pool.
    `cpu_offset`: where this pool starts dealing CPUs, so several pools in one process (actor threads) spread out.
    `step_timeout_s`: a worker that owes results and sends none for this long is taken for hung, killed
    and restarted like a crashed one (its envs come back truncated); None waits forever.
    `env_options`: task names only; {"character": ..., "extra_actions": ..., "mention_stairs": ..., ...} (see
    `tasks.env_option_kwargs`), passed to `env_factory` as keywords when given. None: today's setup.
    """
    end_reasons = ()
    if env_options is not None and not (
        isinstance(task_or_factory, str) and not task_or_factory.startswith(ENVPOOL_PREFIX)
    ):
        raise MotifError("make_pool: env_options apply to NLE task names only, not to env factories or envpool envs")
    if isinstance(task_or_factory, str) and task_or_factory.startswith(ENVPOOL_PREFIX):
        from motif_jax.envs.envpool_adapter import EnvpoolAdapter

        name = task_or_factory[len(ENVPOOL_PREFIX) :]
        return EnvpoolAdapter(name, num_envs, num_envs if batch_size is None else batch_size, seed)
    if isinstance(task_or_factory, str):
        from motif_jax.envs import tasks

        if task_or_factory not in tasks.TASKS:
            raise MotifError(
                f"unknown task {task_or_factory!r}; choose from {', '.join(tasks.TASKS)} or envpool:<EnvName>"
            )
        keys = tuple(obs_keys) if obs_keys is not None else None
        options = tasks.env_option_kwargs(env_options)
        task_or_factory = env_factory(
            task=task_or_factory, obs_keys=keys, max_episode_steps=max_episode_steps, **options
        )
        obs_keys, end_reasons = None, tuple(tasks.END_REASONS)
    elif not callable(task_or_factory):
        raise MotifError(f"make_pool: expected a task name or an env factory, got {type(task_or_factory).__name__}")
    return ActorPool(
        task_or_factory,
        num_envs,
        batch_size,
        num_workers or None,
        seed,
        obs_keys=obs_keys,
        end_reasons=end_reasons,
        pin_workers=pin_workers,
        cpu_offset=cpu_offset,
        step_timeout_s=step_timeout_s,
    )


def default_num_workers() -> int:
    """One worker per CPU core this process may run on."""
    return len(os.sched_getaffinity(0))


def worker_cpus(num_workers: int, offset: int = 0) -> list[int]:
    """The CPU each worker is pinned to: this process's usable CPUs, dealt out in turn.

    Why pin: a worker sleeps between batches, and on a busy machine the scheduler then often wakes it
    on another core, whose caches hold none of its NetHack state (several MB per worker); pinned, it
    keeps its core's caches. Measured on a loaded 2-core machine: about 10% less CPU per step.
    Every pool deals from the first usable CPU, so separate processes that each run a pool should
    either restrict their CPU affinity to disjoint sets or pass `pin_workers=False`.
    """
    cpus = sorted(os.sched_getaffinity(0))
    return [cpus[(offset + i) % len(cpus)] for i in range(num_workers)]


def check_sizes(num_envs, batch_size, num_workers) -> tuple[int, int, int]:
    if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
        raise MotifError(f"num_envs must be a positive integer, got {num_envs!r}")
    batch_size = num_envs if batch_size is None else batch_size
    if not isinstance(batch_size, (int, np.integer)) or not 1 <= batch_size <= num_envs:
        raise MotifError(f"batch_size must be an integer in [1, num_envs={num_envs}], got {batch_size!r}")
    if num_workers is None:
        num_workers = min(default_num_workers(), num_envs)
    if not isinstance(num_workers, (int, np.integer)) or not 1 <= num_workers <= num_envs:
        raise MotifError(f"num_workers must be an integer in [1, num_envs={num_envs}], got {num_workers!r}")
    if -(-num_envs // num_workers) > MAX_ENVS_PER_WORKER:
        raise MotifError(f"at most {MAX_ENVS_PER_WORKER} envs per worker; use more workers")
    return int(num_envs), int(batch_size), int(num_workers)


def _array_spec(space: gymnasium.Space, what: str) -> ArraySpec:
    if isinstance(
        space,
        (gymnasium.spaces.Box, gymnasium.spaces.Discrete, gymnasium.spaces.MultiBinary, gymnasium.spaces.MultiDiscrete),
    ):
        return ArraySpec(tuple(space.shape), np.dtype(space.dtype).str)
    raise MotifError(f"{what}: the pool supports Box/Discrete/Multi* spaces, got {type(space).__name__}")


def _probe_spaces(factory, obs_keys) -> tuple[gymnasium.spaces.Dict, gymnasium.Space, bool]:
    """Observation space (as a Dict), action space and whether observations are dicts, from one env."""
    env = factory()
    try:
        obs_space, action_space = env.observation_space, env.action_space
    finally:
        env.close()
    dict_obs = isinstance(obs_space, gymnasium.spaces.Dict)
    spaces = dict(obs_space.spaces) if dict_obs else {"obs": obs_space}
    if obs_keys is not None:
        missing = [k for k in obs_keys if k not in spaces]
        if missing:
            raise MotifError(f"obs_keys {missing} not in the env's observation keys {list(spaces)}")
        spaces = {k: spaces[k] for k in obs_keys}
    return gymnasium.spaces.Dict(spaces), action_space, dict_obs


@dataclass
class _Worker:
    process: Any
    commands: Any  # write end of the worker's command pipe (a Connection; raw fd used)
    env_ids: tuple[int, ...]
    status: Any = None  # read end of the startup report pipe, closed once the worker said it is up


class ActorPool:
    """Worker processes stepping `num_envs` envs; envpool's send/recv contract (see module doc)."""

    def __init__(
        self,
        factory,
        num_envs,
        batch_size=None,
        num_workers=None,
        seed=0,
        obs_keys=None,
        end_reasons=(),
        pin_workers=True,
        cpu_offset=0,
        step_timeout_s=DEFAULT_STEP_TIMEOUT_S,
    ):
        self.num_envs, self.batch_size, self.num_workers = check_sizes(num_envs, batch_size, num_workers)
        if step_timeout_s is not None and not step_timeout_s > 0:
            raise MotifError(f"step_timeout_s must be positive or None, got {step_timeout_s!r}")
        self._timeout_ms = None if step_timeout_s is None else int(1000 * step_timeout_s)
        self.seed = int(seed)
        self._closed = True
        self.observation_space, self.action_space, dict_obs = _probe_spaces(factory, obs_keys)
        self._discrete = isinstance(self.action_space, gymnasium.spaces.Discrete)
        layout = PoolLayout(
            self.num_envs,
            {k: _array_spec(s, f"observation {k!r}") for k, s in self.observation_space.spaces.items()},
            ArraySpec((), "int64") if self._discrete else _array_spec(self.action_space, "action space"),
        )
        self._ctx = mp.get_context("forkserver")
        self._ctx.set_forkserver_preload(["motif_jax.envs.pool_worker"])  # workers start without re-imports
        self._block = layout.allocate(self._ctx)
        views = layout.views(self._block)
        self._obs = [(k[len("obs/") :], v) for k, v in views.items() if k.startswith("obs/")]
        self._actions, self._ints, self._flags = views["action"], views["ints"], views["flags"]
        self._spec = dict(
            factory=factory,
            seed=self.seed,
            layout=layout,
            dict_obs=dict_obs,
            discrete_action=self._discrete,
            end_reasons=tuple(end_reasons),
            owner_pid=os.getpid(),
        )
        self._nle_stats = bool(end_reasons)
        self._cpus = worker_cpus(self.num_workers, cpu_offset) if pin_workers else [None] * self.num_workers

        self._state = np.full(self.num_envs, _UNSTARTED, np.int8)
        self._in_flight = 0  # envs _RUNNING or _READY
        self._pending = bytearray()  # ids read off the pipe but not yet returned (only after a crash)
        self._last_ids = None  # env_id array of the last recv, accepted by send without re-validation
        self._last_start = -1  # first id of the last recv when its ids were consecutive, else -1
        self._arange_bytes = np.arange(self.num_envs, dtype=np.int32).tobytes()
        self._worker_of = np.repeat(np.arange(self.num_workers), [len(c) for c in self._chunks()])
        self._local_code = [array("H", [i]).tobytes() for c in self._chunks() for i in range(len(c))]
        self.restarts = 0
        self._recent_crashes: list[float] = []

        self._results_r, self._results_w = self._ctx.Pipe(duplex=False)
        self._results_fd = self._results_r.fileno()
        os.set_blocking(self._results_fd, False)
        self._workers: list[_Worker] = []
        self._finalizer = weakref.finalize(self, _shutdown, self._workers, [self._results_r, self._results_w])
        self._closed = False
        try:
            for index, env_ids in enumerate(self._chunks()):
                self._workers.append(self._start_worker(index, tuple(env_ids), wait=False))
            for worker in self._workers:
                self._await_startup(worker)
        except BaseException:
            self.close()
            raise
        self._poll = select.poll()
        self._poll.register(self._results_fd, select.POLLIN)
        self._fd_to_worker = {}
        for index, worker in enumerate(self._workers):
            self._watch(index, worker)

    # -- public API ----------------------------------------------------------------------------------

    def async_reset(self) -> None:
        """Reset every env; results arrive through `recv()`. Anything still in flight is discarded."""
        self._require_open()
        self._take(self._in_flight)  # let in-flight steps finish; their results are dropped
        self._state[:] = _RUNNING
        self._in_flight = self.num_envs
        self._last_ids = None
        for index, worker in enumerate(self._workers):
            self._command(index, array("H", [RESET_BIT | i for i in range(len(worker.env_ids))]).tobytes())

    def recv(self):
        """(obs, reward, terminated, truncated, info) of the first `batch_size` ready envs, any order."""
        self._require_open()
        size = self.batch_size
        if self._in_flight < size:
            if np.all(self._state == _UNSTARTED):
                raise MotifError("recv() before async_reset(): call pool.async_reset() first")
            raise MotifError(
                f"recv() would wait forever: only {self._in_flight} envs are stepping but "
                f"batch_size is {size}; send actions for the envs returned earlier"
            )
        data = self._take(size)
        self._in_flight -= size
        first = int.from_bytes(data[:4], "little")
        if data == self._arange_bytes[4 * first : 4 * (first + size)]:
            rows = slice(first, first + size)  # consecutive ids: plain slices, cheaper than gathers
            self._last_start = first
        else:
            rows = np.frombuffer(data, np.int32)
            self._last_start = -1
        obs = {key: view[rows] for key, view in self._obs}
        if isinstance(rows, slice):
            obs = {key: value.copy() for key, value in obs.items()}
        ints, flags = self._ints[rows], self._flags[rows]
        if isinstance(rows, slice):
            ints, flags = ints.copy(), flags.copy()
        self._state[rows] = _IDLE
        reward, terminated, truncated, info = results_from_rows(ints, flags, self._nle_stats)
        self._last_ids = info["env_id"]
        return obs, reward, terminated, truncated, info

    def send(self, actions, env_ids=None) -> None:
        """Queue one action per env in `env_ids` (default: the envs of the last `recv()`)."""
        self._require_open()
        if env_ids is None or env_ids is self._last_ids:
            if self._last_ids is None:
                raise MotifError("send() without env_ids needs a preceding recv() whose envs await actions")
            ids, start = self._last_ids, self._last_start
        else:
            ids, start = self._check_env_ids(env_ids), -1
        actions = self._check_actions(actions, len(ids))
        self._last_ids = None
        rows = slice(start, start + len(ids)) if start >= 0 else ids
        self._actions[rows] = actions
        self._state[rows] = _RUNNING
        self._in_flight += len(ids)
        self._dispatch(ids)

    def step(self, actions, env_ids=None):
        """`send(actions, env_ids)` then `recv()`."""
        self.send(actions, env_ids)
        return self.recv()

    def close(self) -> None:
        """Stop every worker (waiting briefly, then killing) and release the shared memory."""
        if self._closed:
            return
        self._closed = True
        self._finalizer()
        self._obs, self._actions, self._ints, self._flags, self._block = [], None, None, None, None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if not getattr(self, "_closed", True):
            self.close()

    @property
    def worker_pids(self) -> list[int]:
        return [w.process.pid for w in self._workers]

    # -- internals -----------------------------------------------------------------------------------

    def _chunks(self) -> list[np.ndarray]:
        return np.array_split(np.arange(self.num_envs), self.num_workers)

    def _require_open(self) -> None:
        if self._closed:
            raise MotifError("the pool is closed")

    def _check_env_ids(self, env_ids) -> np.ndarray:
        ids = np.asarray(env_ids)
        if ids.ndim != 1 or ids.dtype.kind not in "iu":
            raise MotifError(f"env_ids must be a 1-D integer array, got shape {ids.shape} dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_envs):
            raise MotifError(f"env_ids must lie in [0, {self.num_envs}), got {ids.tolist()}")
        if len(set(ids.tolist())) != ids.size:
            raise MotifError(f"env_ids contains duplicates: {ids.tolist()}")
        waiting = self._state[ids] == _IDLE
        if not waiting.all():
            if np.all(self._state == _UNSTARTED):
                raise MotifError("send() before async_reset(): call pool.async_reset() first")
            raise MotifError(
                f"envs {ids[~waiting].tolist()} are not awaiting an action "
                "(send only to envs returned by recv(), once each)"
            )
        return ids.astype(np.int32)

    def _check_actions(self, actions, count: int) -> np.ndarray:
        actions = np.asarray(actions)
        expected = (count, *self._actions.shape[1:])
        if actions.shape != expected:
            raise MotifError(f"actions must have shape {expected}, got {actions.shape}")
        if self._discrete:
            if actions.dtype.kind not in "iu":
                raise MotifError(f"actions must be integers for a Discrete action space, got dtype {actions.dtype}")
            n, values = int(self.action_space.n), actions.tolist()  # for small batches 4x cheaper than min/max
            if count and (min(values) < 0 or max(values) >= n):
                raise MotifError(f"actions must lie in [0, {n}), got {values}")
        elif not np.can_cast(actions.dtype, self._actions.dtype, "same_kind"):
            raise MotifError(
                f"actions of dtype {actions.dtype} do not fit the action space dtype {self._actions.dtype}"
            )
        return actions

    def _dispatch(self, ids) -> None:
        """Tell each worker which of its envs have a new action (one pipe write per worker)."""
        per_worker: dict[int, bytes] = {}
        worker_of, code = self._worker_of, self._local_code
        for env in ids.tolist():
            w = worker_of[env]
            per_worker[w] = per_worker.get(w, b"") + code[env]
        for w, codes in per_worker.items():
            self._command(w, codes)

    def _command(self, index: int, codes: bytes) -> None:
        try:
            os.write(self._workers[index].commands.fileno(), codes)
        except BrokenPipeError:
            pass  # the worker died: recv() notices, restarts it and reports these envs aborted

    def _take(self, count: int) -> bytes:
        """Exactly `count` ready env ids (int32 bytes), waiting for workers and restarting dead ones."""
        need = 4 * count
        chunks = []
        while need:
            if self._pending:  # results a restart drained from the pipe (possibly during this wait)
                chunk = bytes(self._pending[:need])
                del self._pending[:need]
                chunks.append(chunk)
                need -= len(chunk)
                continue
            try:
                data = os.read(self._results_fd, need)
            except BlockingIOError:
                if chunks:  # so that a restart or a hang check sees these envs as done
                    self._state[np.frombuffer(b"".join(chunks), np.int32)] = _READY
                self._wait()
                continue
            chunks.append(data)
            need -= len(data)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _wait(self) -> None:
        events = self._poll.poll(self._timeout_ms)
        if not events:
            self._kill_hung_workers()
        for fd, _ in events:
            if fd != self._results_fd:
                self._restart(self._fd_to_worker[fd])

    def _kill_hung_workers(self) -> None:
        """No result for `step_timeout_s`: kill every worker that owes one; `_wait` then restarts them."""
        owing = {int(w) for w in self._worker_of[self._state == _RUNNING]}
        for index in sorted(owing):
            process = self._workers[index].process
            warnings.warn(
                f"actor worker {process.name} (pid {process.pid}) sent no result for "
                f"{self._timeout_ms / 1000:g} s: killing and restarting it",
                RuntimeWarning,
                stacklevel=4,
            )
            process.kill()

    def _watch(self, index: int, worker: _Worker) -> None:
        self._poll.register(worker.process.sentinel, select.POLLIN)
        self._fd_to_worker[worker.process.sentinel] = index

    def _restart(self, index: int) -> None:
        """Replace a dead worker; its envs whose step was lost come back truncated ("aborted")."""
        dead = self._workers[index]
        self._poll.unregister(dead.process.sentinel)
        del self._fd_to_worker[dead.process.sentinel]
        dead.process.join()
        now = time.monotonic()
        self._recent_crashes = [t for t in self._recent_crashes if now - t < _CRASH_WINDOW_S] + [now]
        if len(self._recent_crashes) > _MAX_CRASHES:
            raise MotifError(
                f"actor workers crashed {len(self._recent_crashes)} times in {_CRASH_WINDOW_S} s "
                f"(last exit code {dead.process.exitcode}); see the worker traceback above"
            )
        dead.commands.close()
        # The dead worker can write no more: every result it published is in the pipe now.
        while True:
            try:
                data = os.read(self._results_fd, 1 << 16)
            except BlockingIOError:
                break
            self._pending += data
        self._state[np.frombuffer(bytes(self._pending), np.int32)] = _READY
        lost = tuple(i for i, env in enumerate(dead.env_ids) if self._state[env] == _RUNNING)
        worker = self._start_worker(index, dead.env_ids, wait=True, restarted=True, abort_now=lost)
        self._workers[index] = worker
        self._watch(index, worker)
        self.restarts += 1

    def _start_worker(self, index, env_ids, wait, restarted=False, abort_now=()) -> _Worker:
        spec = WorkerSpec(
            index=index, env_ids=env_ids, restarted=restarted, abort_now=abort_now, cpu=self._cpus[index], **self._spec
        )
        commands_r, commands_w = self._ctx.Pipe(duplex=False)
        status_r, status_w = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(
            target=worker_main,
            args=(spec, self._block, commands_r, self._results_w, status_w),
            name=f"motif-actor-{index}",
            daemon=True,
        )
        process.start()
        commands_r.close()
        status_w.close()
        worker = _Worker(process, commands_w, env_ids, status_r)
        if wait:
            self._await_startup(worker)
        return worker

    def _await_startup(self, worker: _Worker) -> None:
        try:
            kind, detail = worker.status.recv()
        except EOFError:
            kind, detail = "error", f"exited with code {worker.process.join(5) or worker.process.exitcode}"
        finally:
            worker.status.close()
        if kind != "ok":
            raise MotifError(
                f"actor worker {worker.process.name} failed to start its envs: {detail.strip().splitlines()[-1]}"
            )


def _shutdown(workers: list[_Worker], connections) -> None:
    """Stop workers politely, then forcefully; runs at close(), garbage collection or interpreter exit."""
    for worker in workers:
        try:
            os.write(worker.commands.fileno(), _STOP_CODE)
        except (OSError, ValueError):
            pass
    for worker in workers:
        worker.process.join(timeout=5)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()
        worker.commands.close()
        worker.process.close()
    for connection in connections:
        connection.close()
