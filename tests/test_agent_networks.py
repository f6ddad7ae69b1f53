"""Policy networks: shapes, the egocentric crop, and recurrent state reset inside the scan."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from motif_jax.agent.config import ModelConfig, resolve_config
from motif_jax.agent.networks import OUTSIDE_MAP, EmbedPatchConv, crop_around, make_policy

NLE_SPEC = {"glyphs": ((21, 79), np.int16), "blstats": ((27,), np.int64), "message": ((256,), np.uint8)}
VEC_SPEC = {"obs": ((3,), np.float32)}


def random_obs(spec, b, t, seed=0):
    rng = np.random.default_rng(seed)
    return {k: jnp.asarray(rng.integers(0, 50, (b, t) + shape).astype(dtype)) for k, (shape, dtype) in spec.items()}


@pytest.mark.parametrize("core", ["gru", "lstm"])
def test_reset_inside_scan_equals_fresh_unroll(core):
    c = ModelConfig(kind="mlp", core=core, hidden=8, mlp_layers=[16])
    policy = make_policy(c, VEC_SPEC, 5, seed=0)
    obs = {"obs": jax.random.normal(jax.random.key(1), (2, 6, 3))}
    state0 = jax.random.normal(jax.random.key(2), (2, policy.state_size))
    first = jnp.zeros((2, 6), bool).at[:, 3].set(True)
    logits, values, _ = policy.unroll(obs, first, state0)
    tail = {"obs": obs["obs"][:, 3:]}
    fresh_logits, fresh_values, _ = policy.unroll(tail, jnp.zeros((2, 3), bool), policy.initial_state(2))
    np.testing.assert_allclose(logits[:, 3:], fresh_logits, atol=1e-6)
    np.testing.assert_allclose(values[:, 3:], fresh_values, atol=1e-6)
    no_reset_logits, _, _ = policy.unroll(obs, jnp.zeros((2, 6), bool), state0)
    assert not np.allclose(no_reset_logits[:, 3:], fresh_logits, atol=1e-4)


def test_step_matches_unroll():
    c = ModelConfig(kind="mlp", core="gru", hidden=8, mlp_layers=[16])
    policy = make_policy(c, VEC_SPEC, 4, seed=0)
    obs = {"obs": jax.random.normal(jax.random.key(1), (3, 4, 3))}
    first = jnp.array([[True, False, True, False]] * 3)
    logits, _, final = policy.unroll(obs, first, policy.initial_state(3))
    state = policy.initial_state(3)
    for t in range(4):
        step_logits, _, state = policy.step({"obs": obs["obs"][:, t]}, first[:, t], state)
        np.testing.assert_allclose(step_logits, logits[:, t], atol=1e-5)
    np.testing.assert_allclose(state, final, atol=1e-5)


@pytest.mark.parametrize("preset", ["tiny", "paper"])
def test_nethack_presets_shapes(preset):
    c = resolve_config(preset=preset).model
    policy = make_policy(c, NLE_SPEC, 23, seed=0)
    obs = random_obs(NLE_SPEC, 2, 3)
    run = lambda o: policy.unroll(o, jnp.zeros((2, 3), bool), policy.initial_state(2))  # noqa: E731
    # shapes only for the big preset (its CPU forward pass is slow on a loaded machine)
    logits, values, state = jax.eval_shape(run, obs) if preset == "paper" else jax.jit(run)(obs)
    assert logits.shape == (2, 3, 23) and values.shape == (2, 3) and state.shape == (2, policy.state_size)
    if preset == "tiny":
        assert np.isfinite(np.asarray(logits)).all()


def test_crop_is_centred_and_padded_outside_the_map():
    glyphs = jnp.arange(5 * 6).reshape(1, 5, 6)
    crop = crop_around(glyphs, jnp.array([0]), jnp.array([2]), 3)  # agent on the top row, column 2
    expected = [[OUTSIDE_MAP] * 3, [1, 2, 3], [7, 8, 9]]
    np.testing.assert_array_equal(crop[0], expected)


def test_atari_encoder_shapes():
    c = resolve_config(preset="atari").model
    spec = {"obs": ((4, 84, 84), np.uint8)}
    policy = make_policy(c, spec, 4, seed=0)
    logits, values, _ = policy.unroll(random_obs(spec, 1, 2), jnp.zeros((1, 2), bool), policy.initial_state(1))
    assert logits.shape == (1, 2, 4) and values.shape == (1, 2)


@pytest.mark.parametrize("batch", [1, 40])  # 1: embed-then-matmul path; 40: per-offset table path
def test_embed_patch_conv_equals_strided_conv_of_the_embedding(batch):
    vocab, pad_id = 100, 99
    layer = EmbedPatchConv(4, 5, (3, 3), pad_id, nnx.Rngs(0))
    table = jax.random.normal(jax.random.key(1), (vocab, 4))
    ids = jax.random.randint(jax.random.key(2), (batch, 7, 8), 0, vocab - 1)
    out = layer(table, ids)
    padded = jnp.pad(ids, ((0, 0), (0, 2), (0, 1)), constant_values=pad_id)  # 7x8 -> 9x9
    kernel = layer.dense.kernel[...].reshape(3, 3, 4, 5)
    expected = jax.lax.conv_general_dilated(table[padded], kernel, (3, 3), "VALID",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC")) + layer.dense.bias[...]
    assert out.shape == (batch, 3, 3, 5)
    np.testing.assert_allclose(out, expected, atol=1e-5)
