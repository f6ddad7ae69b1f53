"""Options that reproduce the original Motif code: which caption is rewarded, the value-loss clip,
and the reward model's head."""

from types import SimpleNamespace

import jax.numpy as jnp
import numpy as np
import pytest

from motif_jax.agent import ppo
from motif_jax.agent.config import RewardConfig, resolve_config
from motif_jax.agent.learner import intrinsic_inputs, total_rewards
from motif_jax.errors import MotifError
from motif_jax.reward.checkpoints import saved_model
from motif_jax.reward.model import ModelConfig, init_weights
from motif_jax.reward.train import preset_config


def caption_batch():
    # slot captions: "", "a", "b"; counts 1, 1, 1; the fake reward is the caption's first byte / 100
    messages = np.zeros((1, 3, 256), np.uint8)
    messages[0, 1, 0], messages[0, 2, 0] = ord("a"), ord("b")
    return SimpleNamespace(
        rewards=jnp.zeros((1, 3)),
        obs={"message": jnp.asarray(messages), "message_count": jnp.array([[1, 1, 2]])},
    )


FAKE = lambda p, x: x["message"][:, 0].astype(jnp.float32) / 100 / x["count"].astype(jnp.float32) ** 3  # noqa: E731


def test_next_caption_rewards_the_observation_the_action_led_to():
    rc = RewardConfig(extrinsic_coef=0.0, llm_coef=1.0, caption="next")
    _, _, intr = total_rewards(caption_batch(), None, FAKE, rc)
    np.testing.assert_allclose(intr, [[0.97, 0.98 / 8]], rtol=1e-6)  # slots 1 and 2


def test_current_caption_rewards_the_observation_the_action_was_taken_in():
    rc = RewardConfig(extrinsic_coef=0.0, llm_coef=1.0, caption="current")
    _, _, intr = total_rewards(caption_batch(), None, FAKE, rc)
    np.testing.assert_allclose(intr, [[0.0, 0.97]], rtol=1e-6)  # slots 0 and 1


def test_value_clip_of_the_original_is_an_absolute_range():
    # v=3, old=1, target=4: plain ½·1; clipped at ±1.0 -> value 2 -> ½·max(1, 4) = 2
    v, old, tgt, m = jnp.array([3.0]), jnp.array([1.0]), jnp.array([4.0]), jnp.ones(1, bool)
    assert ppo.value_loss(v, old, tgt, 1.0, m) == pytest.approx(2.0)
    # within the range the clip changes nothing: v=1.5 -> ½·6.25
    assert ppo.value_loss(jnp.array([1.5]), old, tgt, 1.0, m) == pytest.approx(3.125)


def test_bad_faithfulness_options_are_clear_errors():
    with pytest.raises(MotifError, match="reward.caption=.previous. is not one of current, next"):
        resolve_config(preset="tiny", overrides=["reward.caption=previous"])
    with pytest.raises(MotifError, match="ppo.value_clip must be >= 0"):
        resolve_config(preset="tiny", overrides=["ppo.value_clip=-1"])
    assert resolve_config(preset="tiny").reward.caption == "next"


def count(weights):
    return sum(int(np.size(x)) for x in __import__("jax").tree.leaves(weights))


def test_default_reward_model_is_the_original_size():
    weights = init_weights(preset_config("default").model, 0)
    dims = [w["kernel"].shape for w in weights["mlp"].values()] + [weights["head"]["kernel"].shape]
    assert dims == [(320, 128), (128, 256), (256, 512), (512, 1)] and "bias" in weights["head"]
    assert count(weights) == 306_945  # ≈ 307k, as the original


def test_checkpoint_configs_without_head_bias_keep_their_old_shape():
    # a model config saved before `head_bias` existed (the earlier 320→128→128→1 head)
    old = {
        "max_len": 256,
        "embed_dim": 32,
        "channels": 64,
        "kernels": [7, 7, 3, 3, 3, 3],
        "pool_after": [True, True, False, False, False, True],
        "pool": 3,
        "mlp": [128, 128],
    }
    config = saved_model({"model": old})
    assert config == ModelConfig(mlp=(128, 128), head_bias=False)
    assert count(init_weights(config, 0)) == 158_464


def test_with_skills_the_acting_skill_and_the_depth_change_on_arrival_are_scored():
    """Transition t is scored by the model of the skill that took its action (slot t), seeing the depth change
    measured on arriving (slot t + 1): the descender's step onto the next level shows it +1."""
    batch = caption_batch()
    obs = {**batch.obs, "skill": jnp.array([[0, 1, 2]]), "skill_depth_change": jnp.array([[0.0, 1.0, 0.0]])}
    x = intrinsic_inputs(SimpleNamespace(obs=obs), "next")
    np.testing.assert_array_equal(x["skill"], [0, 1])
    np.testing.assert_array_equal(x["depth_change"], [1.0, 0.0])
    np.testing.assert_array_equal(x["count"], np.asarray(batch.obs["message_count"])[0, 1:])
