"""Scoring each distinct caption once gives what scoring every frame gives: with few distinct rows, with
more than the largest size below the batch (every row scored), with stat changes and with K skills' models
at once; the model runs on the smallest size that holds the distinct rows."""

import jax
import jax.numpy as jnp
import numpy as np

from motif_jax.reward.distinct import per_distinct, row_keys, tiers
from motif_jax.reward.model import NetParams, init_weights
from motif_jax.reward.train import preset_config

TINY = preset_config("tiny").model


def captions(texts: list[str], picks) -> np.ndarray:
    rows = np.zeros((len(texts), 256), np.uint8)
    for i, text in enumerate(texts):
        rows[i, : len(text)] = np.frombuffer(text.encode(), np.uint8)
    return rows[np.asarray(picks)]


def test_sizes_grow_fourfold_up_to_the_batch():
    assert tiers(50) == (50,)  # small batches: every row
    assert tiers(64) == (64,)
    assert tiers(512) == (64, 256, 512)
    assert tiers(2048) == (64, 256, 1024, 2048)


def test_row_keys_tell_captions_and_stat_changes_apart():
    m = captions(["You hit the newt.", "You hit the newt!", ""], [0, 1, 2, 0])
    keys = np.asarray(row_keys(jnp.asarray(m)))
    assert keys.shape == (4, 64) and keys.dtype == np.uint32
    assert (keys[0] == keys[3]).all() and not (keys[0] == keys[1]).all()
    f = jnp.asarray([[1.0], [1.0], [0.0], [-1.0]])
    with_f = np.asarray(row_keys(jnp.asarray(m), f))
    assert with_f.shape == (4, 65) and not (with_f[0] == with_f[3]).all()


def test_few_distinct_rows_score_as_every_row_in_any_batch_shape():
    net = NetParams(init_weights(TINY, 0), TINY)
    rng = np.random.default_rng(0)
    texts = ["", "It's a wall.", "You kill the newt!", "Welcome to experience level 2."]
    m = jnp.asarray(captions(texts, rng.integers(0, 4, size=6 * 50)).reshape(6, 50, 256))
    scored_once = jax.jit(lambda x: per_distinct(net, x, sizes=(8,)))(m)
    assert scored_once.shape == (6, 50)
    np.testing.assert_allclose(scored_once, net(m), rtol=1e-5, atol=1e-6)
    # one score per caption text, so equal captions got exactly the same value
    assert len(np.unique(np.asarray(scored_once))) == 4


def test_more_distinct_rows_than_any_size_are_all_scored():
    net = NetParams(init_weights(TINY, 1), TINY)
    m = jnp.asarray(captions([f"message {i}" for i in range(40)], np.arange(40)))
    np.testing.assert_allclose(per_distinct(net, m, sizes=(16,)), net(m), rtol=1e-5, atol=1e-6)


def test_stat_changes_and_a_leading_skill_axis():
    def score(messages, features):  # (K=2, R): a caption's byte sum, and it plus the depth change
        total = jnp.sum(messages.astype(jnp.float32), axis=-1)
        return jnp.stack([total, total + 1000 * features[:, 0]])

    m = jnp.asarray(captions(["You descend.", "It's a wall."], [0, 0, 1, 0, 1]))
    f = jnp.asarray([[1.0], [0.0], [0.0], [1.0], [-1.0]])
    out = per_distinct(score, m, f, sizes=(4,))
    np.testing.assert_allclose(out, score(m, f))
    assert out.shape == (2, 5) and out[1, 0] == out[1, 3] != out[1, 1]


def test_the_model_sees_the_distinct_rows_only_while_they_fit():
    def rows_seen(messages, features):  # every frame gets the number of rows the model was run on
        return jnp.full(messages.shape[:1], messages.shape[0], jnp.float32)

    few = jnp.asarray(captions(["", "It's a wall."], [0, 1] * 50))
    many = jnp.asarray(captions([f"message {i}" for i in range(100)], np.arange(100)))
    assert set(np.asarray(per_distinct(rows_seen, few, sizes=(16,))).tolist()) == {16.0}
    assert set(np.asarray(per_distinct(rows_seen, many, sizes=(16,))).tolist()) == {100.0}
    # the smallest size that holds them: 20 distinct rows of 100 run at 32, not 16 or 64
    twenty = jnp.asarray(captions([f"message {i}" for i in range(20)], np.arange(100) % 20))
    seen = jax.jit(lambda x: per_distinct(rows_seen, x, sizes=(16, 32, 64)))(twenty)
    assert set(np.asarray(seen).tolist()) == {32.0}


def test_a_batch_sharded_over_eight_devices_scores_as_on_one():
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    assert len(jax.devices()) == 8
    net = NetParams(init_weights(TINY, 2), TINY)
    texts = ["", "It's a wall.", "You kill the newt!"]
    m = captions(texts, np.random.default_rng(1).integers(0, 3, size=8 * 32)).reshape(8, 32, 256)
    rows = NamedSharding(Mesh(np.array(jax.devices()), ("data",)), PartitionSpec("data"))
    sharded = jax.jit(lambda x: per_distinct(net, x, sizes=(16,)))(jax.device_put(jnp.asarray(m), rows))
    np.testing.assert_allclose(sharded, net(jnp.asarray(m)), rtol=1e-5, atol=1e-6)
