"""Reward training: learns a planted preference, resumes exactly, refuses NaNs and bad input."""

import json
import shutil

import jax
import numpy as np
import pytest

from motif_jax.data import open_dataset
from motif_jax.errors import MotifError
from motif_jax.reward import load
from motif_jax.reward import losses as losses_module
from motif_jax.reward import train as train_module
from motif_jax.reward.captions import pair_rewards_from_unique, unique_captions
from motif_jax.reward.pairs import load_preferences, split_pairs
from motif_jax.reward.train import preset_config, train_reward
from reward_synthetic import encode, write_gold_dataset

ONE_DEVICE = jax.devices()[:1]


def _train(ds, out, epochs=2, resume=False, **overrides):
    config = preset_config("tiny", epochs=epochs, batch_size=64, **overrides)
    return train_reward(ds, "score", out, config, resume=resume, devices=ONE_DEVICE, progress=False, log=None)


def _weights(out):
    return jax.tree.leaves(jax.tree.map(np.asarray, load(out, devices=ONE_DEVICE).params.net.weights))


@pytest.fixture(scope="module")
def gold(tmp_path_factory):
    return write_gold_dataset(tmp_path_factory.mktemp("gold") / "ds", num_pairs=480, seed=1)


@pytest.fixture(scope="module")
def trained(gold, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "rdir"
    return out, _train(gold, out, epochs=3, tensorboard=True)


def test_learns_the_planted_signal_far_above_chance(trained):
    out, history = trained
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert history[-1]["val_acc"] > 0.9 and history[-1]["score_agreement"] > 0.9
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in lines] == [1, 2, 3] and lines[-1]["val_acc"] == history[-1]["val_acc"]
    rm = load(out, devices=ONE_DEVICE)
    raw, normalised = rm.score(np.stack([encode("You see here 42 gold pieces."), encode("You kill the newt!")]))
    assert raw[0] > raw[1] and normalised[0] > normalised[1]
    assert rm.meta["annotator"] == "score" and rm.meta["epoch"] == 3 and len(rm.quantiles) == 19
    assert any((out / "tensorboard").glob("events.out.tfevents.*"))


def test_normalisation_matches_the_training_captions(trained, gold):
    out, _ = trained
    rm = load(out, devices=ONE_DEVICE)
    messages = np.load(gold / "data" / "message.npy")
    labels = np.load(gold / "preference" / "score.npy")
    train_rows, _ = split_pairs((labels != 3).astype(np.float32), 0.2, seed=0)
    raw, normalised = rm.score(messages[train_rows].reshape(-1, 256))
    assert abs(normalised.mean()) < 1e-3 and abs(normalised.std() - 1) < 1e-3
    unique_norm = rm.score(np.unique(messages[train_rows].reshape(-1, 256), axis=0))[1]
    np.testing.assert_allclose(rm.quantiles[0.5], np.quantile(unique_norm, 0.5), rtol=1e-4, atol=1e-4)


def test_resume_after_interruption_equals_uninterrupted(trained, gold, tmp_path, monkeypatch):
    reference_dir, reference = trained
    out = tmp_path / "interrupted"
    real_prefetched = train_module.prefetched
    calls = {"n": 0}

    def interrupt_in_epoch_two(read, batches):
        calls["n"] += 1
        for i, batch in enumerate(real_prefetched(read, batches)):
            if calls["n"] == 3 and i == 2:  # 3rd call = training of epoch 2 (after train + val of epoch 1)
                raise KeyboardInterrupt
            yield batch

    monkeypatch.setattr(train_module, "prefetched", interrupt_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        _train(gold, out, epochs=3)
    monkeypatch.setattr(train_module, "prefetched", real_prefetched)
    with pytest.raises(MotifError, match="--resume"):
        _train(gold, out, epochs=3)
    resumed = _train(gold, out, epochs=3, resume=True)
    assert [r["epoch"] for r in resumed] == [2, 3]
    for a, b in zip(resumed, reference[1:]):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
        assert a["val_acc"] == pytest.approx(b["val_acc"], rel=1e-6)
    for a, b in zip(_weights(out), _weights(reference_dir)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    epochs = [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]
    assert _train(gold, out, epochs=3, resume=True) == []  # already done: nothing replayed


@pytest.fixture
def nan_loss(monkeypatch):
    """Make every pair's cross-entropy NaN; the cached jitted steps are rebuilt before and after."""
    real = losses_module.pair_cross_entropy
    train_module.make_train_step.cache_clear()
    monkeypatch.setattr(losses_module, "pair_cross_entropy", lambda r, t: real(r, t) * np.nan)
    yield
    monkeypatch.undo()
    train_module.make_train_step.cache_clear()


def test_nan_loss_is_an_error_and_never_the_latest_checkpoint(trained, gold, tmp_path, nan_loss):
    out = tmp_path / "nan"
    shutil.copytree(trained[0], out)
    good_step = load(out, devices=ONE_DEVICE).step
    with pytest.raises(MotifError, match="NaN"):
        _train(gold, out, epochs=4, resume=True, tensorboard=True)
    rm = load(out, devices=ONE_DEVICE)
    assert rm.step == good_step and rm.meta["epoch"] == 3
    assert all(np.isfinite(w).all() for w in jax.tree.leaves(jax.tree.map(np.asarray, rm.params.net.weights)))


def _dataset(path, labels, num_pairs=None):
    labels = np.asarray(labels, np.int8)
    n = len(labels) if num_pairs is None else num_pairs
    (path / "data").mkdir(parents=True)
    (path / "preference").mkdir()
    np.save(path / "data" / "message.npy", np.zeros((n, 2, 1, 256), np.uint8))
    np.save(path / "preference" / "score.npy", labels)
    return path


@pytest.mark.parametrize(
    "labels, message",
    [([], "no pairs"), ([3, 3, 3, 3], "unknown"), ([0, 1, 2, 0], "divisible")],
)
def test_bad_inputs_are_clear_errors(tmp_path, labels, message):
    ds = _dataset(tmp_path / "ds", labels)
    with pytest.raises(MotifError, match=message):
        config = preset_config("tiny", batch_size=12)
        train_reward(ds, "score", tmp_path / "out", config, devices=jax.devices()[:8], progress=False, log=None)


def test_missing_annotator_and_foreign_checkpoint(gold, trained, tmp_path):
    with pytest.raises(MotifError, match="no labels for annotator 'llama'"):
        train_reward(gold, "llama", tmp_path / "o", preset_config("tiny"), devices=ONE_DEVICE, progress=False, log=None)
    other = write_gold_dataset(tmp_path / "other", num_pairs=60, seed=9)
    with pytest.raises(MotifError, match="other data"):
        _train(other, trained[0], epochs=3, resume=True)
    with pytest.raises(MotifError):
        load(tmp_path / "nothing-here")


def test_soft_labels_replace_hard_targets(tmp_path):
    ds_path = write_gold_dataset(tmp_path / "ds", num_pairs=6, seed=0)
    labels = np.load(ds_path / "preference" / "score.npy")
    soft = np.full(6, np.nan, np.float32)
    soft[0] = 0.9
    np.save(ds_path / "preference" / "score.soft.npy", soft)
    prefs = load_preferences(open_dataset(ds_path), "score")
    expected, _ = losses_module.preference_targets(labels)
    if labels[0] != 3:
        expected[0] = 0.9
    np.testing.assert_allclose(prefs.target, expected)


def test_subsequences_train_on_the_mean_step_reward(tmp_path):
    ds_path = write_gold_dataset(tmp_path / "ds", num_pairs=160, seq_len=3, seed=5)
    (history,) = _train(ds_path, tmp_path / "out", epochs=1)
    assert history["val_acc"] is not None
    rm = load(tmp_path / "out", devices=ONE_DEVICE)
    messages = np.load(ds_path / "data" / "message.npy")
    uniq, _ = unique_captions(messages)
    raw_unique, _ = rm.score(uniq)
    np.testing.assert_allclose(
        pair_rewards_from_unique(messages, uniq, raw_unique), rm.score(messages)[0].mean(axis=-1), rtol=1e-5, atol=1e-6
    )
