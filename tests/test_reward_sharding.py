"""Data-parallel training: 8 fake CPU devices follow the 1-device loss curve, and checkpoints
restore onto any device count."""

import jax
import numpy as np
import pytest

from motif_jax.reward import load
from motif_jax.reward.train import preset_config, train_reward
from reward_synthetic import write_gold_dataset


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    assert len(jax.devices()) == 8, "tests/conftest.py should provide 8 fake CPU devices"
    root = tmp_path_factory.mktemp("sharding")
    ds = write_gold_dataset(root / "ds", num_pairs=256, seed=4)
    config = preset_config("tiny", epochs=2, batch_size=64, seed=7)
    histories = {}
    for name, devices in (("one", jax.devices()[:1]), ("eight", jax.devices())):
        histories[name] = train_reward(ds, "score", root / name, config, devices=devices, progress=False, log=None)
    return root, histories


def test_eight_devices_give_the_one_device_loss_curve(runs):
    _, histories = runs
    for one, eight in zip(histories["one"], histories["eight"]):
        for key in ("train_loss", "val_loss", "train_acc", "val_acc", "reward_mean", "reward_std"):
            assert eight[key] == pytest.approx(one[key], rel=1e-4, abs=1e-6), key


def test_restore_onto_other_device_counts(runs):
    root, _ = runs
    messages = np.load(root / "ds" / "data" / "message.npy")[:50].reshape(-1, 256)
    one = load(root / "eight", devices=jax.devices()[:1])  # trained on 8, served on 1
    two = load(root / "eight", devices=jax.devices()[:2])
    assert one.params.net.weights["head"]["kernel"].sharding.device_set == {jax.devices()[0]}
    np.testing.assert_allclose(one.score(messages)[0], two.score(messages)[0], rtol=1e-5, atol=1e-6)
    from_one = load(root / "one")  # trained on 1, served on all 8
    assert len(from_one.params.net.weights["head"]["kernel"].sharding.device_set) == 8
    np.testing.assert_allclose(from_one.score(messages)[1], one.score(messages)[1], rtol=1e-3, atol=1e-4)
