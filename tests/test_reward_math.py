"""Reward-model math against hand-computed values: Bradley-Terry loss, accuracy, targets,
normalisation, quantile lookup and the intrinsic reward."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from motif_jax.errors import MotifError
from motif_jax.reward import intrinsic_reward, losses
from motif_jax.reward.intrinsic import thresholded_count_reward
from motif_jax.reward.model import NetParams, init_weights
from motif_jax.reward.normalise import QUANTILE_LEVELS, NormStats, compute_stats, quantile_threshold
from motif_jax.reward.pairs import epoch_batches, split_pairs
from motif_jax.reward.train import preset_config

TINY = preset_config("tiny").model

LN3 = math.log(3.0)


def test_pair_cross_entropy_by_hand():
    # softmax([0, ln 3]) = [1/4, 3/4]
    rewards = jnp.array([[0.0, LN3]] * 3)
    ce = losses.pair_cross_entropy(rewards, jnp.array([1.0, 0.0, 0.5]))
    np.testing.assert_allclose(ce, [math.log(4), -math.log(0.75), 0.5 * (math.log(4) - math.log(0.75))], rtol=1e-6)


def test_mean_loss_ignores_masked_pairs_and_survives_empty_batch():
    rewards = jnp.array([[0.0, LN3], [5.0, -5.0]])
    target = jnp.array([1.0, 0.0])
    assert float(losses.mean_loss(rewards, target, jnp.array([1.0, 0.0]))) == pytest.approx(math.log(4), rel=1e-6)
    assert float(losses.mean_loss(rewards, target, jnp.zeros(2))) == 0.0


def test_accuracy_counts_only_decisive_pairs_and_half_for_equal_rewards():
    rewards = jnp.array([[2.0, 1.0], [2.0, 1.0], [1.0, 1.0], [0.0, 3.0], [0.0, 3.0]])
    target = jnp.array([1.0, 0.0, 1.0, 0.5, 0.2])  # right, wrong, equal rewards, tie, soft-second (right)
    correct, decisive = losses.pair_correct(rewards, target)
    np.testing.assert_allclose(correct, [1.0, 0.0, 0.5, 0.0, 1.0])
    np.testing.assert_allclose(decisive, [1.0, 1.0, 1.0, 0.0, 1.0])
    sums = losses.preference_sums(rewards, target, jnp.array([1.0, 1.0, 1.0, 1.0, 0.0]))
    assert float(sums["correct"]) == 1.5 and float(sums["decisive"]) == 3.0 and float(sums["weight"]) == 4.0


def test_preference_targets_hard_soft_and_masked():
    labels = np.array([0, 1, 2, 3], np.int8)
    target, weight = losses.preference_targets(labels)
    np.testing.assert_array_equal(target, [1.0, 0.0, 0.5, 0.0])
    np.testing.assert_array_equal(weight, [1.0, 1.0, 1.0, 0.0])
    soft = np.array([0.8, np.nan, np.nan, 0.3], np.float32)
    target, weight = losses.preference_targets(labels, soft)
    np.testing.assert_allclose(target, [0.8, 0.0, 0.5, 0.3])
    np.testing.assert_array_equal(weight, [1.0, 1.0, 1.0, 0.0])  # label 3 stays masked


@pytest.mark.parametrize("labels, soft", [([0, 4], None), ([0, 1], [0.5, 1.5])])
def test_preference_targets_reject_bad_values(labels, soft):
    with pytest.raises(MotifError):
        losses.preference_targets(np.array(labels, np.int8), None if soft is None else np.array(soft, np.float32))


def test_sequence_reward_is_the_mean_over_steps():
    np.testing.assert_allclose(losses.sequence_reward(jnp.array([[[1.0, 2.0, 6.0], [0.0, 0.0, 3.0]]])), [[3.0, 1.0]])


def test_normalisation_stats_by_hand():
    # captions with raw rewards 1 (seen 3 times) and 3 (once): mean 1.5, std sqrt(3/4)
    stats = compute_stats(np.array([1.0, 3.0]), np.array([3, 1]))
    std = math.sqrt(0.75)
    assert float(stats.mean) == pytest.approx(1.5) and float(stats.std) == pytest.approx(std, rel=1e-6)
    low, high = -0.5 / std, 1.5 / std  # quantiles are over the two unique captions, unweighted
    np.testing.assert_allclose(stats.quantiles[0], low + 0.05 * (high - low), rtol=1e-5)
    np.testing.assert_allclose(stats.quantiles[9], (low + high) / 2, rtol=1e-5)
    with pytest.raises(MotifError):
        compute_stats(np.zeros(0), np.zeros(0))


def test_quantile_lookup_on_the_grid_and_between():
    quantiles = jnp.asarray(QUANTILE_LEVELS * 10.0, jnp.float32)  # q(level) = 10 * level
    assert float(quantile_threshold(quantiles, 0.5)) == pytest.approx(5.0)
    assert float(quantile_threshold(quantiles, 0.05)) == pytest.approx(0.5)
    assert float(quantile_threshold(quantiles, 0.95)) == pytest.approx(9.5)
    assert float(quantile_threshold(quantiles, 0.525)) == pytest.approx(5.25)
    with pytest.raises(MotifError):
        quantile_threshold(quantiles, 0.99)


def test_thresholded_count_reward_by_hand():
    normalised = jnp.array([2.0, 0.5, -1.0, 0.7, 2.0])
    counts = jnp.array([1, 2, 1, 0, 2])
    out = thresholded_count_reward(normalised, counts, 0.5, 3.0)
    # 0.5 is not above the threshold 0.5; count 0 counts as a first sight; 2 / 2**3 = 0.25
    np.testing.assert_allclose(out, [2.0, 0.0, 0.0, 0.7, 0.25], rtol=1e-6)
    np.testing.assert_allclose(thresholded_count_reward(normalised, counts, 0.5, 1.0), [2.0, 0.0, 0.0, 0.7, 1.0])


def _constant_net(value: float) -> NetParams:
    """A real network whose output is ``value`` for every caption: all weights zero except the last
    hidden layer's bias (1) and the head's weights (value / width)."""
    weights = jax.tree.map(jnp.zeros_like, init_weights(TINY, 0))
    width = TINY.mlp[-1]
    weights["mlp"][len(TINY.mlp) - 1]["bias"] = jnp.ones((width,), jnp.float32)
    weights["head"]["kernel"] = jnp.full((width, 1), value / width, jnp.float32)
    return NetParams(weights, TINY)


def test_intrinsic_reward_end_to_end_by_hand():
    messages = np.zeros((3, 256), np.uint8)
    messages[:, :4] = np.frombuffer(b"gold", np.uint8)
    counts = np.array([1, 2, 3])
    # raw 3, mean 1, std 2 -> normalised 1.0
    stats = NormStats(jnp.float32(1.0), jnp.float32(2.0), jnp.asarray(QUANTILE_LEVELS * 2 - 1, jnp.float32))
    reward = jax.jit(intrinsic_reward, static_argnames=("eps_quantile", "beta"))
    out = reward(_constant_net(3.0), stats, messages, counts, eps_quantile=0.5, beta=3.0)
    np.testing.assert_allclose(out, [1.0, 1 / 8, 1 / 27], rtol=1e-6)  # q_0.5 = 0 < 1
    at_threshold = NormStats(stats.mean, stats.std, jnp.asarray(QUANTILE_LEVELS * 2, jnp.float32))  # q_0.5 = 1.0
    np.testing.assert_array_equal(
        reward(_constant_net(3.0), at_threshold, messages, counts, eps_quantile=0.5, beta=3.0), 0.0
    )
    below = reward(_constant_net(-1.0), stats, messages, counts, eps_quantile=0.5, beta=3.0)  # normalised -1 < 0
    np.testing.assert_array_equal(below, 0.0)


def test_model_shapes_padding_and_truncation():
    config = TINY
    net = jax.jit(NetParams.__call__)
    params = NetParams(init_weights(config, 0), config)
    messages = np.zeros((4, 2, 3, 256), np.uint8)
    messages[..., :5] = np.frombuffer(b"Hello", np.uint8)
    assert net(params, messages).shape == (4, 2, 3)
    cut = messages.copy()
    cut[..., config.max_len + 5] = 77  # beyond max_len: ignored
    np.testing.assert_array_equal(net(params, messages), net(params, cut))
    other = messages.copy()
    other[..., 2] = 88
    assert not np.allclose(net(params, messages), net(params, other))
    assert jax.tree.all(
        jax.tree.map(lambda a, b: bool(jnp.all(a == b)), init_weights(config, 1), init_weights(config, 1))
    )


def test_split_and_epoch_batches_are_deterministic_and_complete():
    weight = np.ones(103, np.float32)
    weight[[5, 50]] = 0
    train, val = split_pairs(weight, 0.2, seed=3)
    assert len(val) == 20 and len(train) == 81 and not set(train) & set(val) and {5, 50}.isdisjoint({*train, *val})
    again = split_pairs(weight, 0.2, seed=3)
    np.testing.assert_array_equal(again[0], train)
    batches = epoch_batches(train, 16, seed=3, epoch=2)
    assert batches.shape == (6, 16) and (batches == -1).sum() == 96 - 81
    assert sorted(batches[batches >= 0]) == sorted(train)
    np.testing.assert_array_equal(batches, epoch_batches(train, 16, seed=3, epoch=2))
    assert not np.array_equal(batches, epoch_batches(train, 16, seed=3, epoch=3))
