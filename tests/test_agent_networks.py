"""Policy networks: shapes, the egocentric crop, and recurrent state reset inside the scan."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from nle import nethack

from motif_jax.agent.config import ModelConfig, resolve_config
from motif_jax.agent.networks import OUTSIDE_MAP, EmbedPatchConv, crop_around, make_policy, stat_features
from motif_jax.errors import MotifError

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
    expected = (
        jax.lax.conv_general_dilated(table[padded], kernel, (3, 3), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        + layer.dense.bias[...]
    )
    assert out.shape == (batch, 3, 3, 5)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_hoisted_gru_equals_nnx_gru_cell():
    c = ModelConfig(kind="mlp", core="gru", hidden=8, mlp_layers=[16])
    policy = make_policy(c, VEC_SPEC, 5, seed=0)
    obs = {"obs": jax.random.normal(jax.random.key(1), (2, 4, 3))}
    state = jax.random.normal(jax.random.key(2), (2, 8))
    first = jnp.zeros((2, 4), bool).at[1, 2].set(True)
    logits, _, final = policy.unroll(obs, first, state)
    features = policy.encoder({"obs": obs["obs"].reshape(8, 3)}).reshape(2, 4, -1)
    h = state
    for t in range(4):
        h = jnp.where(first[:, t, None], 0.0, h)
        h, y = policy.core(h, features[:, t])  # flax's own cell, input projection inside
        np.testing.assert_allclose(policy.policy_head(y), logits[:, t], atol=1e-5)
    np.testing.assert_allclose(h, final, atol=1e-5)


def test_gru_scan_backward_equals_autodiff_of_the_plain_recurrence():
    from motif_jax.agent.gru import _step, gru_scan

    t, b, h = 5, 3, 4
    keys = jax.random.split(jax.random.key(0), 5)
    xp = jax.random.normal(keys[0], (t, b, 3 * h))
    h0 = jax.random.normal(keys[1], (b, h))
    w_h = jax.random.normal(keys[2], (h, 3 * h)) * 0.5
    first = jax.random.bernoulli(keys[3], 0.3, (t, b))
    weights = jax.random.normal(keys[4], (t, b, h))

    def plain(xp, h0, w_h):
        def step(carry, xs):
            carry, _ = _step(w_h, carry, *xs)
            return carry, carry

        h_t, ys = jax.lax.scan(step, h0, (xp, first))
        return jnp.sum(ys * weights) + jnp.sum(h_t**2)

    def custom(xp, h0, w_h):
        ys, h_t = gru_scan(xp, first, h0, w_h)
        return jnp.sum(ys * weights) + jnp.sum(h_t**2)

    np.testing.assert_allclose(custom(xp, h0, w_h), plain(xp, h0, w_h), rtol=1e-6)
    for got, want in zip(jax.grad(custom, (0, 1, 2))(xp, h0, w_h), jax.grad(plain, (0, 1, 2))(xp, h0, w_h)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_minibatches_follow_the_paper_batch_size_at_any_env_count():
    from motif_jax.agent.config import minibatches_for

    assert minibatches_for(480, 32, 4096) == 4  # 15360 frames: 4 x 3840 is nearest 4096
    assert minibatches_for(16, 32, 4096) == 1  # fewer frames than one batch: a single minibatch
    assert minibatches_for(960, 32, 4096) == 8
    assert minibatches_for(12, 32, 64) == 6  # 384 frames: 6 x 64
    assert resolve_config(preset="paper", overrides=["env.num_envs=16"]).ppo.minibatches == 1
    assert resolve_config(preset="paper").ppo.minibatches == 4
    assert (
        resolve_config(preset="paper", overrides=["ppo.minibatch_frames=0", "ppo.minibatches=2"]).ppo.minibatches == 2
    )


def test_paper_preset_follows_the_original_policy():
    c = resolve_config(preset="paper").model
    assert (c.core, c.hidden, c.crop, c.full_map, c.message_encoder, c.activation) == (
        "gru",
        512,
        12,
        False,
        "mlp",
        "elu",
    )
    policy = make_policy(c, NLE_SPEC, 23, seed=0)
    assert not hasattr(policy.encoder, "map_out")
    n_params = sum(x.size for x in jax.tree.leaves(nnx.state(policy, nnx.Param)))
    assert 2_000_000 < n_params < 4_000_000


def test_a_config_file_refines_its_preset(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("preset: tiny\nppo:\n  epochs: 4\n  minibatches: 4\n")
    c = resolve_config(path)
    assert (c.ppo.epochs, c.ppo.minibatches, c.model.hidden) == (4, 4, 64)  # file over preset, preset over defaults
    assert resolve_config(path, overrides=["ppo.epochs=2"]).ppo.epochs == 2  # --set over the file


def test_motif_stat_scaling_matches_hand_computed_values():
    blstats = np.zeros(nethack.NLE_BLSTATS_SIZE, np.int64)
    blstats[nethack.NLE_BL_X], blstats[nethack.NLE_BL_HP], blstats[nethack.NLE_BL_GOLD] = 40, 12, 250
    blstats[nethack.NLE_BL_TIME], blstats[nethack.NLE_BL_SCORE], blstats[nethack.NLE_BL_DEPTH] = 9000, 500, 3
    x = np.asarray(stat_features(jnp.asarray(blstats[None]), "motif"))[0]
    assert x[nethack.NLE_BL_X] == pytest.approx(40 / 79)
    assert x[nethack.NLE_BL_HP] == pytest.approx(1.2)
    assert x[nethack.NLE_BL_GOLD] == pytest.approx(0.25)
    assert x[nethack.NLE_BL_TIME] == pytest.approx(5.0)  # 9.0, clipped to the original's ±5
    assert x[nethack.NLE_BL_SCORE] == 0 and x[nethack.NLE_BL_DEPTH] == 0  # zeroed, as in the original
    symlog = np.asarray(stat_features(jnp.asarray([[0, 1, -1, 9]]), "symlog"))[0]
    assert symlog == pytest.approx([0.0, np.log(2), -np.log(2), np.log(10)])


def test_the_active_skill_changes_the_policy_only_through_its_one_hot():
    spec = {"glyphs": ((21, 79), np.int16), "blstats": ((27,), np.int64), "message": ((256,), np.uint8)}
    c = resolve_config(preset="tiny", overrides=["model.num_skills=3"]).model
    policy = make_policy(c, spec, 23, 0)
    obs = {k: np.zeros((1, 2, *shape), dtype) for k, (shape, dtype) in spec.items()}
    first, state = np.zeros((1, 2), bool), policy.initial_state(1)
    logits = [policy.unroll({**obs, "skill": np.full((1, 2), k, np.int32)}, first, state)[0] for k in range(3)]
    assert not np.allclose(logits[0], logits[1]) and not np.allclose(logits[1], logits[2])
    with pytest.raises(MotifError, match="stats_norm motif needs"):
        make_policy(
            resolve_config(preset="paper", overrides=["model.stats_norm=motif"]).model,
            {**spec, "blstats": ((26,), np.int64)},
            23,
            0,
        )
