"""The jitted learner: one update on 8 fake devices equals the same update on 1 device."""

import json
from pathlib import Path
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from motif_jax import parallel
from motif_jax.agent.config import ModelConfig, PPOConfig, RewardConfig
from motif_jax.agent.learner import Learner, total_rewards
from motif_jax.agent.networks import make_policy
from motif_jax.agent.rollout import Batch
from motif_jax.cli import main
from motif_jax.errors import MotifError

SPEC = {"obs": ((3,), np.float32)}
N, T = 16, 5


def fake_batch(state_size, seed=0):
    rng = np.random.default_rng(seed)
    ended = rng.random((N, T + 1)) < 0.15
    first = np.concatenate([np.ones((N, 1), bool), ended[:, :-1]], axis=1)
    return Batch(
        obs={"obs": rng.normal(size=(N, T + 1, 3)).astype(np.float32)},
        first=first,
        ended=ended,
        terminated=ended & (rng.random((N, T + 1)) < 0.5),
        rewards=rng.normal(size=(N, T + 1)).astype(np.float32),
        actions=rng.integers(0, 4, (N, T + 1)).astype(np.int32),
        logp=np.full((N, T + 1), np.log(0.25), np.float32),
        state=np.zeros((N, state_size), np.float32),
    )


def run_update(devices, core="gru", advantage="gae"):
    model = make_policy(ModelConfig(kind="mlp", core=core, hidden=8, mlp_layers=[16]), SPEC, 4, seed=0)
    c = PPOConfig(epochs=2, minibatches=2, lr=1e-2, advantage=advantage, value_clip=0.1)
    learner = Learner(model, c, RewardConfig(extrinsic_coef=1.0, env_scale=1.0), parallel.make_mesh(devices), 10)
    state, metrics = learner.update(learner.init_state(), fake_batch(model.state_size), None, jax.random.key(3))
    return jax.device_get(state["params"]), jax.device_get(metrics)


@pytest.mark.parametrize("core,advantage", [("gru", "gae"), ("none", "vtrace")])
def test_eight_devices_match_one(core, advantage):
    assert len(jax.devices()) == 8
    params1, m1 = run_update(jax.devices()[:1], core, advantage)
    params8, m8 = run_update(jax.devices(), core, advantage)
    for k in ("loss", "policy_loss", "value_loss", "entropy", "approx_kl", "grad_norm"):
        np.testing.assert_allclose(m1[k], m8[k], rtol=1e-4, atol=1e-6, err_msg=k)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), params1, params8)
    assert m1["finite"] and m1["loss"] != 0


def test_update_changes_params_and_reports_metrics():
    model = make_policy(ModelConfig(kind="mlp", core="lstm", hidden=8, mlp_layers=[16]), SPEC, 4, seed=0)
    learner = Learner(model, PPOConfig(minibatches=2), RewardConfig(), parallel.make_mesh(jax.devices()[:1]), 10)
    before = jax.device_get(learner.initial["params"])
    state, metrics = learner.update(learner.init_state(), fake_batch(model.state_size), None, jax.random.key(0))
    changed = jax.tree.map(lambda a, b: not np.allclose(a, b), before, jax.device_get(state["params"]))
    assert any(jax.tree.leaves(changed))
    assert {"entropy", "approx_kl", "clip_fraction", "grad_norm", "intrinsic_share"} <= set(metrics)


def test_uneven_minibatches_are_a_clear_error():
    model = make_policy(ModelConfig(kind="mlp", core="gru", hidden=8, mlp_layers=[16]), SPEC, 4, seed=0)
    learner = Learner(model, PPOConfig(minibatches=3), RewardConfig(), parallel.make_mesh(jax.devices()), 10)
    with pytest.raises(MotifError, match="minibatches"):
        learner.update(learner.init_state(), fake_batch(model.state_size), None, jax.random.key(0))


def test_intrinsic_reward_uses_the_caption_arriving_with_each_transition():
    # r_int = p · [message non-empty] / count³ ; transition t uses slot t+1's caption and count
    messages = np.zeros((1, 3, 256), np.uint8)
    messages[0, 1, 0] = ord("a")
    messages[0, 2, 0] = ord("a")
    batch = SimpleNamespace(
        rewards=jnp.array([[0.0, 20.0, 0.0]]),
        obs={"message": jnp.asarray(messages), "message_count": jnp.array([[1, 1, 2]])},
    )
    fn = lambda p, x: p * (x["message"][:, 0] > 0) / x["count"].astype(jnp.float32) ** 3  # noqa: E731
    rc = RewardConfig(extrinsic_coef=0.1, llm_coef=0.5, env_scale=0.1, env_clip=1.0)
    total, ext, intr = total_rewards(batch, jnp.float32(4.0), fn, rc)
    np.testing.assert_allclose(ext, [[0.1, 0.0]], rtol=1e-6)  # 0.1·clip(2, ±1)
    np.testing.assert_allclose(intr, [[2.0, 0.25]], rtol=1e-6)  # 0.5·4/1, 0.5·4/8
    np.testing.assert_allclose(total, ext + intr)


def test_batch_contract_names_the_wrong_field():
    from motif_jax.agent.learner import check_batch
    from motif_jax.numerics import all_finite

    check_batch(fake_batch(4))
    wrong = [
        ("actions", np.zeros((N, T + 1), np.float32), "expected <class 'int'>"),
        ("rewards", np.zeros((N, T), np.float32), "shape"),
        ("state", np.zeros((N + 1, 4), np.float32), "prefix"),
    ]
    for key, value, words in wrong:
        with pytest.raises(AssertionError, match=words):
            check_batch(fake_batch(4).replace(**{key: value}))
    assert bool(all_finite({"a": jnp.ones(2), "n": jnp.arange(2)}))
    assert not bool(all_finite({"a": jnp.array([1.0, jnp.nan])}))


def test_learner_benchmark_uses_the_config_files_preset(tmp_path):
    """`motif benchmark learner --config cpu.yaml` measures the tiny network the file names, not the paper's."""
    config = Path(__file__).parent.parent / "configs" / "cpu.yaml"
    out = tmp_path / "learner.json"
    small = ["--set", "env.num_envs=4", "--set", "ppo.rollout=4", "--set", "learner.devices=[0]"]
    small += ["--seconds", "0.1", "--json", str(out)]
    assert main(["benchmark", "learner", "--config", str(config), *small]) == 0
    result = json.loads(out.read_text())
    assert result["preset"] == "tiny" and result["params"] < 500_000
