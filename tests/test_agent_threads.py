"""Actor threads and device roles: how envs are split over threads and devices never changes learning."""

import jax
import numpy as np
import pytest

from motif_jax.agent.config import resolve_config
from motif_jax.agent.trainer import Trainer
from motif_jax.errors import MotifError

CARTPOLE = ["run.tensorboard=false", "run.checkpoint_every=1000000", "ppo.rollout=16", "ppo.epochs=2"]


def train(tmp_path, name, *overrides, steps=3 * 8 * 16):
    config = resolve_config(
        preset="mlp",
        overrides=[*CARTPOLE, "env.num_envs=8", *overrides],
        flags={"task": "envpool:CartPole-v1", "steps": steps, "seed": 3, "run.sync": True},
    )
    trainer = Trainer(config, tmp_path / name, console=False)
    trainer.train()
    return trainer, jax.device_get(trainer.train_state["params"])


def assert_same(a, b, **tol):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, **tol), a, b)


def test_two_actor_threads_learn_exactly_what_one_thread_learns(tmp_path):
    _, one = train(tmp_path, "one")
    trainer, two = train(tmp_path, "two", "actor.threads=2")
    assert len(trainer.workers) == 2 and [w.rows for w in trainer.workers] == [4, 4]
    assert_same(one, two, rtol=1e-6, atol=1e-7)


def test_actor_and_learner_on_separate_devices_match_one_device(tmp_path):
    assert len(jax.devices()) == 8
    _, single = train(tmp_path, "single", "learner.devices=[0]")
    trainer, split = train(tmp_path, "split", "actor.devices=[1,2]", "actor.threads=2", "learner.devices=[4,5,6,7]")
    assert [w.store.device for w in trainer.workers] == [jax.devices()[1], jax.devices()[2]]
    assert list(trainer.mesh.devices.flat) == jax.devices()[4:]
    assert_same(single, split, rtol=1e-4, atol=1e-6)  # the gradient all-reduce sums in another order


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["actor.threads=3"], "multiple of actor.threads"),
        (["actor.devices=[9]"], "actor.devices"),
        (["learner.devices=[0,1,2]"], "learner devices"),
    ],
)
def test_bad_thread_and_device_settings_are_clear_errors(tmp_path, overrides, message):
    with pytest.raises(MotifError, match=message):
        train(tmp_path, "bad", *overrides)
