"""PPO math against values worked out by hand (see the comments)."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from motif_jax.agent import ppo

R = jnp.array([1.0, 2.0, 3.0])
V = jnp.array([1.0, 2.0, 3.0, 4.0])
NO = jnp.zeros(3, bool)


def test_gae_without_episode_end():
    # γ=λ=0.5: δ = [1+1-1, 2+1.5-2, 3+2-3] = [1, 1.5, 2]; A2=2, A1=1.5+.25·2=2, A0=1+.25·2=1.5
    adv, ret = ppo.gae(R, V, NO, NO, gamma=0.5, lam=0.5)
    np.testing.assert_allclose(adv, [1.5, 2.0, 2.0])
    np.testing.assert_allclose(ret, [2.5, 4.0, 5.0])


def test_gae_termination_cuts_bootstrap_and_chain():
    # observation 2 is terminal: δ1 = 2 + 0 − 2 = 0, A1 = 0, A0 = 1 + .25·0 = 1
    term = jnp.array([False, True, False])
    adv, _ = ppo.gae(R, V, term, term, gamma=0.5, lam=0.5)
    np.testing.assert_allclose(adv[:2], [1.0, 0.0])


def test_gae_truncation_bootstraps_from_last_observation():
    # truncated at observation 2: δ1 keeps γ·V(obs2) = 1.5, but the chain stops: A1 = 1.5, A0 = 1 + .25·1.5
    ended = jnp.array([False, True, False])
    adv, _ = ppo.gae(R, V, NO, ended, gamma=0.5, lam=0.5)
    np.testing.assert_allclose(adv[:2], [1.375, 1.5])


def test_gae_batched_over_trailing_axis():
    adv, _ = ppo.gae(
        jnp.stack([R, R], 1), jnp.stack([V, V], 1), jnp.zeros((3, 2), bool), jnp.zeros((3, 2), bool), 0.5, 0.5
    )
    np.testing.assert_allclose(adv[:, 1], [1.5, 2.0, 2.0])


def test_vtrace_by_hand():
    # ρ = [1, 1, .5] (first clipped from 2 to 1), γ=.5: δ = [1, 1.5, .5·2=1]
    # acc2=1, acc1=1.5+.5·1=2, acc0=1+.5·2=2 -> vs = [3, 4, 4]
    # pg: t2 .5·(3+.5·4−3)=1, t1 2+.5·4−2=2, t0 1+.5·4−1=2
    log_rhos = jnp.log(jnp.array([2.0, 1.0, 0.5]))
    pg, vs = ppo.vtrace(R, V, NO, NO, log_rhos, gamma=0.5)
    np.testing.assert_allclose(vs, [3.0, 4.0, 4.0], rtol=1e-6)
    np.testing.assert_allclose(pg, [2.0, 2.0, 1.0], rtol=1e-6)


def test_vtrace_on_policy_equals_gae_with_lambda_one():
    term = jnp.array([False, True, False])
    pg, vs = ppo.vtrace(R, V, term, term, jnp.zeros(3), gamma=0.9)
    adv, ret = ppo.gae(R, V, term, term, gamma=0.9, lam=1.0)
    np.testing.assert_allclose(vs, ret, rtol=1e-6)
    np.testing.assert_allclose(pg[:2], adv[:2], rtol=1e-6)


def test_clipped_policy_loss_and_diagnostics():
    # ratios 1.5 and .5, A = [1, −1], clip .2: min(1.5, 1.2)=1.2 ; min(−.5, −.8)=−.8 -> loss −(1.2−.8)/2
    logp, old = jnp.log(jnp.array([1.5, 0.5])), jnp.zeros(2)
    adv, mask = jnp.array([1.0, -1.0]), jnp.ones(2, bool)
    loss, stats = ppo.policy_loss(logp, old, adv, 0.2, mask)
    assert loss == pytest.approx(-0.2)
    assert stats["clip_fraction"] == pytest.approx(1.0)
    assert stats["approx_kl"] == pytest.approx(((0.5 - math.log(1.5)) + (-0.5 - math.log(0.5))) / 2, rel=1e-5)
    masked, _ = ppo.policy_loss(logp, old, adv, 0.2, jnp.array([True, False]))
    assert masked == pytest.approx(-1.2)


def test_value_loss_clipped_and_plain():
    # v=2, old=1, target=3, clip .5: plain ½·1 ; clipped value 1.5 -> ½·max(1, 2.25)
    v, old, tgt, m = jnp.array([2.0]), jnp.array([1.0]), jnp.array([3.0]), jnp.ones(1, bool)
    assert ppo.value_loss(v, old, tgt, 0.0, m) == pytest.approx(0.5)
    assert ppo.value_loss(v, old, tgt, 0.5, m) == pytest.approx(1.125)


def test_masked_normalize_ignores_masked_entries():
    x = jnp.array([1.0, 3.0, 100.0])
    out = ppo.normalize(x, jnp.array([True, True, False]))
    np.testing.assert_allclose(out[:2], [-1.0, 1.0], rtol=1e-5)


def test_logp_and_entropy_of_uniform():
    logp, ent = ppo.categorical_logp_entropy(jnp.zeros((2, 4)), jnp.array([0, 3]))
    np.testing.assert_allclose(logp, [math.log(0.25)] * 2, rtol=1e-6)
    np.testing.assert_allclose(ent, [math.log(4)] * 2, rtol=1e-6)


def test_shaped_reward_is_motifs_formula():
    # 0.1·clip(0.1·200, ±10) + 0.1·2 = 1.0 + 0.2
    r = ppo.shaped_reward(jnp.array([200.0, -3.0]), jnp.array([2.0, 0.0]), 0.1, 0.1, 0.1, 10.0)
    np.testing.assert_allclose(r, [1.2, -0.03], rtol=1e-6)
