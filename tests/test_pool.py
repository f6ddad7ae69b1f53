"""The actor pool: envpool's contract on worker processes (tiny gymnasium envs, plus real NLE tasks)."""

from __future__ import annotations

import functools
import multiprocessing
import os
import signal
import time

import gymnasium
import numpy as np
import pytest

from motif_jax.envs import make_pool
from motif_jax.envs.loop import EnvLoop, LoopObserver
from motif_jax.envs.tasks import END_REASONS
from motif_jax.errors import MotifError

CARTPOLE = functools.partial(gymnasium.make, "CartPole-v1")


class CountdownEnv(gymnasium.Env):
    """Observation = steps taken this episode; reward = the action; terminates after 3 steps."""

    observation_space = gymnasium.spaces.Box(0, 10, (1,), np.int64)
    action_space = gymnasium.spaces.Discrete(5)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([self.t]), {}

    def step(self, action):
        self.t += 1
        return np.array([self.t]), float(action), self.t == 3, False, {}


class SleepyEnv(CountdownEnv):
    """Action 1 takes half a second: lets a test see which envs the pool returns first."""

    def step(self, action):
        if action == 1:
            time.sleep(0.5)
        return np.array([0]), 0.0, False, False, {}


class HangingEnv(CountdownEnv):
    """Action 1 never returns: a stand-in for an env stuck in an endless loop."""

    def step(self, action):
        if action == 1:
            time.sleep(3600)
        return super().step(action)


def exits(pid: int, timeout: float = 5.0) -> bool:
    """Whether process `pid` is gone (reaped) within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.01)
    return False


def by_env(obs, info):
    """Observations reordered by env id (recv returns envs in any order)."""
    order = np.argsort(info["env_id"])
    return {k: v[order] for k, v in obs.items()}


def test_shapes_dtypes_and_spaces():
    with make_pool(CARTPOLE, num_envs=4, batch_size=2, num_workers=2, seed=0) as pool:
        assert pool.num_envs == 4 and pool.batch_size == 2
        assert isinstance(pool.observation_space, gymnasium.spaces.Dict)
        assert pool.action_space == gymnasium.spaces.Discrete(2)
        pool.async_reset()
        steps_sent = np.zeros(4, int)
        for _ in range(4):  # few steps: no CartPole episode ends yet
            obs, rew, term, trunc, info = pool.recv()
            assert obs["obs"].shape == (2, 4) and obs["obs"].dtype == np.float32
            assert rew.dtype == np.float32 and rew.shape == (2,)
            assert term.dtype == trunc.dtype == np.bool_ and not (term | trunc).any()
            assert set(info) == {"env_id", "elapsed_step", "episode_return", "episode_length"}
            ids = info["env_id"]
            assert ids.dtype == np.int32 and info["elapsed_step"].dtype == np.int32
            np.testing.assert_array_equal(info["elapsed_step"], steps_sent[ids])
            np.testing.assert_array_equal(rew, (steps_sent[ids] > 0).astype(np.float32))
            pool.send(np.zeros(2, np.int64), ids)
            steps_sent[ids] += 1


def test_auto_reset_is_next_step_with_episode_stats():
    with make_pool(CountdownEnv, num_envs=2, num_workers=1) as pool:
        pool.async_reset()
        obs, rew, term, trunc, info = pool.recv()
        actions = np.array([1, 4])
        for t in (1, 2, 3):
            obs, rew, term, trunc, info = pool.step(actions, info["env_id"])
            assert (obs["obs"][:, 0] == t).all() and (info["elapsed_step"] == t).all()
            np.testing.assert_array_equal(rew, actions[info["env_id"]])
        assert term.all() and not trunc.any()
        np.testing.assert_array_equal(info["episode_return"], 3.0 * actions[info["env_id"]])
        assert (info["episode_length"] == 3).all()
        obs, rew, term, trunc, info = pool.step(actions, info["env_id"])  # ignored: first step of a new episode
        assert (obs["obs"][:, 0] == 0).all() and (rew == 0).all() and not (term | trunc).any()
        assert (info["elapsed_step"] == 0).all()


def run_actions(pool, steps):
    """Step every env with an action that depends only on (env id, step): returns obs per env id."""
    pool.async_reset()
    frames = []
    for t in range(steps):
        obs, _, _, _, info = pool.recv()
        frames.append((t, by_env(obs, info)))
        pool.send((info["env_id"] * 7 + t) % pool.action_space.n, info["env_id"])
    return frames


def test_same_seed_same_observations_whatever_the_worker_count():
    with (
        make_pool(CARTPOLE, num_envs=4, num_workers=2, seed=3) as a,
        make_pool(CARTPOLE, num_envs=4, num_workers=1, seed=3) as b,
        make_pool(CARTPOLE, num_envs=4, num_workers=2, seed=4) as c,
    ):
        fa, fb, fc = run_actions(a, 30), run_actions(b, 30), run_actions(c, 30)
    for (_, x), (_, y), _ in zip(fa, fb, fc):
        np.testing.assert_array_equal(x["obs"], y["obs"])
    assert not np.array_equal(fa[0][1]["obs"], fc[0][1]["obs"])
    assert not np.array_equal(fa[0][1]["obs"][0], fa[0][1]["obs"][1])  # envs get different seeds


def test_nle_task_pool_is_deterministic_and_reports_nle_stats():
    kwargs = dict(num_envs=2, num_workers=1, seed=5, obs_keys=("glyphs", "message"))
    with make_pool("score", **kwargs) as a, make_pool("score", **kwargs) as b:
        assert set(a.observation_space.spaces) == {"glyphs", "message", "message_count"}
        fa, fb = run_actions(a, 40), run_actions(b, 40)
        obs, *_, info = a.recv()
    for (_, x), (_, y) in zip(fa, fb):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
    assert obs["glyphs"].shape == (2, 21, 79) and obs["message"].dtype == np.uint8
    assert {"episode_score", "episode_max_dlvl", "episode_end_reason", "episode_success"} <= set(info)


def test_smaller_batches_overlap_with_the_caller():
    with make_pool(SleepyEnv, num_envs=4, batch_size=2, num_workers=4) as pool:
        pool.async_reset()
        first = [pool.recv()[-1]["env_id"].tolist() for _ in range(2)]  # every env now awaits an action
        assert sorted(first[0] + first[1]) == [0, 1, 2, 3]
        pool.send(np.array([1, 1]), np.array([2, 3]))  # envs 2 and 3 are slow
        pool.send(np.array([0, 0]), np.array([0, 1]))
        start = time.monotonic()
        *_, info = pool.recv()
        assert time.monotonic() - start < 0.4, "recv waited for the slow envs"
        assert sorted(info["env_id"].tolist()) == [0, 1]
        time.sleep(0.6)  # the caller computes; the slow envs finish meanwhile
        start = time.monotonic()
        *_, info = pool.recv()
        assert time.monotonic() - start < 0.2 and sorted(info["env_id"].tolist()) == [2, 3]


# A bound instead of a hang: before the fix in ActorPool._take, a result that the crash restart drained
# into the pending buffer while recv() was waiting was never read, and recv() waited forever.
@pytest.mark.timeout(120)
def test_killed_worker_is_restarted_and_its_envs_come_back_aborted():
    aborted = END_REASONS.index("aborted")
    with make_pool("score", num_envs=2, num_workers=2, seed=0, obs_keys=("blstats",)) as pool:
        pool.async_reset()
        obs, *_, info = pool.recv()
        obs, *_, info = pool.step(np.zeros(2, np.int64), info["env_id"])
        victim = pool.worker_pids[0]
        os.kill(victim, signal.SIGKILL)
        assert exits(victim)
        obs, rew, term, trunc, info = pool.step(np.zeros(2, np.int64), info["env_id"])
        order = np.argsort(info["env_id"])
        trunc, reason = trunc[order], info["episode_end_reason"][order]
        assert trunc.tolist() == [True, False] and reason[0] == aborted
        assert pool.restarts == 1 and pool.worker_pids[0] != victim
        obs, rew, term, trunc, info = pool.step(np.zeros(2, np.int64), info["env_id"])
        assert not (term | trunc).any()
        assert info["elapsed_step"][info["env_id"] == 0] == 0  # a fresh episode after the aborted one


def test_hung_worker_is_killed_and_restarted():
    with make_pool(HangingEnv, num_envs=2, num_workers=2, step_timeout_s=0.5) as pool:
        pool.async_reset()
        *_, info = pool.recv()
        hung = pool.worker_pids[0]
        with pytest.warns(RuntimeWarning, match="no result for 0.5 s"):
            _, _, term, trunc, info = pool.step(np.array([1, 0]), np.array([0, 1]))
        assert exits(hung) and pool.restarts == 1
        order = np.argsort(info["env_id"])
        assert trunc[order].tolist() == [True, False] and not term.any()
        _, _, term, trunc, info = pool.step(np.zeros(2, np.int64), info["env_id"])
        assert not (term | trunc).any()


def test_workers_are_pinned_to_the_usable_cpus_in_turn():
    usable = sorted(os.sched_getaffinity(0))
    with make_pool(CARTPOLE, num_envs=3, num_workers=3) as pool:
        assert [os.sched_getaffinity(pid) for pid in pool.worker_pids] == [{usable[i % len(usable)]} for i in range(3)]
    with make_pool(CARTPOLE, num_envs=2, num_workers=2, pin_workers=False) as pool:
        assert all(os.sched_getaffinity(pid) == set(usable) for pid in pool.worker_pids)


def test_close_leaves_no_child_processes():
    pool = make_pool(CARTPOLE, num_envs=3, num_workers=3)
    pids = pool.worker_pids
    pool.async_reset()
    pool.close()
    pool.close()  # idempotent
    assert not {p.pid for p in multiprocessing.active_children()} & set(pids)
    assert all(exits(pid) for pid in pids)
    with pytest.raises(MotifError, match="closed"):
        pool.recv()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(task_or_factory="no-such-task", num_envs=2), "unknown task"),
        (dict(task_or_factory="envpool:NoSuchEnv-v0", num_envs=2), "envpool cannot make it"),
        (dict(num_envs=2, batch_size=3), "batch_size"),
        (dict(num_envs=2, batch_size=0), "batch_size"),
        (dict(num_envs=0), "num_envs"),
        (dict(num_envs=2, num_workers=3), "num_workers"),
        (dict(num_envs=2, obs_keys=("nope",)), "obs_keys"),
        (dict(num_envs=2, step_timeout_s=0), "step_timeout_s"),
    ],
)
def test_bad_construction_arguments(kwargs, match):
    kwargs.setdefault("task_or_factory", CARTPOLE)
    with pytest.raises(MotifError, match=match):
        make_pool(**kwargs)


def test_bad_calls_raise_clear_errors():
    with make_pool(CARTPOLE, num_envs=2, num_workers=1) as pool:
        with pytest.raises(MotifError, match="async_reset"):
            pool.send(np.zeros(2, np.int64), np.arange(2))
        with pytest.raises(MotifError, match="async_reset"):
            pool.recv()
        pool.async_reset()
        *_, info = pool.recv()
        ids = info["env_id"]
        for actions, match in [
            (np.zeros(3, np.int64), "shape"),
            (np.zeros(2, np.float32), "integers"),
            (np.array([0, 2]), r"\[0, 2\)"),
        ]:
            with pytest.raises(MotifError, match=match):
                pool.send(actions, ids)
        with pytest.raises(MotifError, match="duplicates"):
            pool.send(np.zeros(2, np.int64), np.array([0, 0]))
        with pytest.raises(MotifError, match=r"\[0, 2\)"):
            pool.send(np.zeros(1, np.int64), np.array([5]))
        pool.send(np.zeros(1, np.int64), np.array([0]))
        with pytest.raises(MotifError, match="not awaiting"):
            pool.send(np.zeros(1, np.int64), np.array([0]))
        with pytest.raises(MotifError, match="wait forever"):
            pool.recv()


def test_env_loop_keeps_episode_bookkeeping_and_calls_hooks_in_order():
    class Recorder(LoopObserver):
        def __init__(self):
            self.seen = []

        def observe(self, b):
            b.inputs["action"] = b.env_ids + 1  # a per-env policy input, as a skill controller would set
            self.seen.append((b.env_ids.tolist(), b.first.tolist(), b.steps.tolist(), b.ended.tolist()))

        def acted(self, b, actions, aux):
            assert aux == "aux" and actions.tolist() == (b.env_ids + 1).tolist()

    recorder = Recorder()
    with make_pool(CountdownEnv, num_envs=2, num_workers=1) as pool:
        loop = EnvLoop(pool, [recorder], in_env_order=True)
        loop.run(lambda b: (b.inputs["action"], "aux"), until=lambda: len(recorder.seen) == 5)
        assert loop.stats.env_steps == 8  # the fifth batch got no action
        pool.step(np.zeros(2, np.int64), np.arange(2))  # so every env awaits one
    assert [s[0] for s in recorder.seen] == [[0, 1]] * 5
    assert [s[1] for s in recorder.seen] == [[True, True], [False, False], [False, False], [False, False], [True, True]]
    assert [s[2][0] for s in recorder.seen] == [0, 1, 2, 3, 4]
    assert [s[3][0] for s in recorder.seen] == [False, False, False, True, False]
