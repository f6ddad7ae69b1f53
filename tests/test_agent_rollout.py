"""SegmentBuilder: out-of-order pool replies become fixed-length per-env segments."""

import numpy as np

from motif_jax.agent.rollout import SegmentBuilder

SPEC = {"obs": ((1,), np.float32)}


def feed(builder, ids, value, reward=0.0, ended=False, first=False, state=0.0):
    ids = np.asarray(ids)
    n = len(ids)
    builder.observe(
        ids,
        {"obs": np.full((n, 1), value, np.float32)},
        np.full(n, reward, np.float32),
        np.full(n, ended),
        np.full(n, ended),
        np.full(n, first),
        np.full((n, 1), state, np.float32),
    )
    builder.record(ids, np.full(n, int(value)), np.full(n, -value, np.float32))


def test_envs_advancing_at_different_rates():
    b = SegmentBuilder(num_envs=2, rollout=2, obs_spec=SPEC, state_size=1)
    feed(b, [0, 1], 0, first=True, state=5.0)  # initial state recorded at slot 0
    feed(b, [0], 1, reward=1.0)
    feed(b, [0], 2, reward=2.0, ended=True, state=7.0)  # env 0 full: emitted, slot 2 -> next slot 0
    assert b.take(2) is None
    feed(b, [0], 3, first=True)
    feed(b, [0], 4)  # env 0 second segment full
    batch = b.take(2)
    np.testing.assert_array_equal(batch.obs["obs"][:, :, 0], [[0, 1, 2], [2, 3, 4]])
    np.testing.assert_array_equal(batch.rewards[0], [0, 1, 2])
    np.testing.assert_array_equal(batch.ended[1], [True, False, False])
    np.testing.assert_array_equal(batch.first[1], [False, True, False])
    # segment 2 starts at the bootstrap obs of segment 1, with the state held before that obs
    np.testing.assert_array_equal(batch.state[:, 0], [5.0, 7.0])
    np.testing.assert_array_equal(batch.actions[1, :2], [2, 3])
    assert b.take(1) is None


def test_take_keeps_leftover_rows():
    b = SegmentBuilder(num_envs=3, rollout=1, obs_spec=SPEC, state_size=1)
    feed(b, [0, 1, 2], 0, first=True)
    feed(b, [0, 1, 2], 1)
    assert b.take(2).obs["obs"].shape == (2, 2, 1)
    feed(b, [0, 1, 2], 2)
    rows = b.take(4)
    np.testing.assert_array_equal(rows.obs["obs"][:, :, 0], [[0, 1], [1, 2], [1, 2], [1, 2]])
