"""Per-skill reward models (MaestroMotif): the depth-change feature, `train-reward --skills`, and the stacked
intrinsic reward the learner jits (each step scored by its own skill's model, normalisation and threshold)."""

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from motif_jax.cli import main
from motif_jax.errors import MotifError
from motif_jax.reward import intrinsic_reward, load, load_skills, skill_intrinsic
from motif_jax.reward.model import ModelConfig, NetParams, apply, init_weights, stat_features
from motif_jax.reward.normalise import QUANTILE_LEVELS, NormStats, quantile_threshold
from motif_jax.reward.skills import SkillRewardParams, check_same_network, stack_skill_params
from motif_jax.reward.train import preset_config, train_reward
from reward_synthetic import _caption, encode

ONE_DEVICE = jax.devices()[:1]
TINY = preset_config("tiny").model


def write_depth_dataset(path, num_pairs=400, seed=0):
    """Captions that say nothing about the preference; the depth change (delta[..., 0]) decides it: the
    member that went deeper is preferred, equal depths tie. Other stat changes are noise. Labels
    ``depth`` (deeper preferred) and ``shallow`` (the opposite) are written."""
    rng = np.random.default_rng(seed)
    messages = np.zeros((num_pairs, 2, 1, 256), np.uint8)
    for i in range(num_pairs):
        for j in range(2):
            messages[i, j, 0] = encode(_caption(rng, bool(rng.random() < 0.3)))
    delta = rng.integers(-3, 4, (num_pairs, 2, 1, 5)).astype(np.int32)
    delta[..., 0] = rng.choice([-1, 0, 0, 1], (num_pairs, 2, 1))
    first, second = delta[:, 0, 0, 0], delta[:, 1, 0, 0]
    deeper = np.where(first > second, 0, np.where(second > first, 1, 2)).astype(np.int8)
    for folder in ("data", "preference"):
        (path / folder).mkdir(parents=True, exist_ok=True)
    np.save(path / "data" / "message.npy", messages)
    np.save(path / "data" / "prev_message.npy", np.zeros_like(messages))
    np.save(path / "data" / "delta.npy", delta)
    np.save(path / "preference" / "depth.npy", deeper)
    np.save(path / "preference" / "shallow.npy", np.where(deeper == 2, 2, 1 - deeper).astype(np.int8))
    return path


def write_skills_file(folder, rewards: dict[str, dict], quantiles: dict[str, float]):
    """A minimal skills file: every skill with a trivial code file, a trivial training policy."""
    (folder / "code").mkdir(parents=True, exist_ok=True)
    (folder / "code" / "skill.py").write_text(
        "def initiation(view):\n    return True\n\n\ndef termination(view, since_start):\n    return False\n"
    )
    (folder / "code" / "policy.py").write_text("def policy_over_skills(view, memory):\n    return view.available[0]\n")
    lines = ["skills:"]
    for name, reward in rewards.items():
        source = ", ".join(f"{k}: {v}" for k, v in reward.items())
        lines += [
            f"  {name}:",
            f"    description: be a {name}",
            f"    reward: {{{source}}}",
            f"    quantile: {quantiles[name]}",
            "    code: code/skill.py",
        ]
    lines.append("training_policy: code/policy.py")
    path = folder / "skills.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def depth_ds(tmp_path_factory):
    return write_depth_dataset(tmp_path_factory.mktemp("depth") / "ds")


# ---------------------------------------------------------------------------------------------------------
# The caption-only model is what it was.


def test_caption_only_model_is_unchanged():
    # values the caption-only tiny net gave before stat-change features existed (init seed 3)
    weights = init_weights(TINY, 3)
    paths = sorted(jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(weights)[0])
    assert paths == [
        "['convs'][0]['bias']",
        "['convs'][0]['kernel']",
        "['convs'][1]['bias']",
        "['convs'][1]['kernel']",
        "['convs'][2]['bias']",
        "['convs'][2]['kernel']",
        "['embed']['embedding']",
        "['head']['kernel']",
        "['mlp'][0]['bias']",
        "['mlp'][0]['kernel']",
    ]
    assert weights["mlp"][0]["kernel"].shape == (TINY.conv_output_length() * TINY.channels, TINY.mlp[0])
    messages = np.stack([encode(s) for s in ["", "You see here 42 gold pieces.", "You kill the newt!", "It's a wall."]])
    np.testing.assert_allclose(
        np.asarray(apply(TINY, weights, messages)),
        [0.0, 0.038325630128383636, 0.013577350415289402, 0.013527410104870796],
        rtol=1e-6,
        atol=1e-9,
    )
    assert TINY.features == 0 and stat_features(TINY, np.ones((4, 5), np.int32)) is None


def test_features_widen_only_the_first_mlp_layer_and_are_checked():
    config = ModelConfig(**{**TINY.__dict__, "features": 1})
    plain, with_depth = init_weights(TINY, 0), init_weights(config, 0)
    assert with_depth["mlp"][0]["kernel"].shape[0] == plain["mlp"][0]["kernel"].shape[0] + 1
    messages = np.stack([encode("The stairs are solidly fixed to the floor.")] * 2)
    features = stat_features(config, np.array([[1, 5, 0, 0, 0], [-1, 5, 0, 0, 0]], np.int32))
    assert features.shape == (2, 1) and features.dtype == jnp.float32
    raw = np.asarray(apply(config, with_depth, messages, features))
    assert raw[0] != raw[1]  # the same caption, another depth change
    np.testing.assert_array_equal(raw, np.asarray(apply(config, with_depth, messages, features)))  # deterministic
    with pytest.raises(MotifError, match="reads 1 stat-change feature"):
        apply(config, with_depth, messages)
    with pytest.raises(MotifError, match="captions only"):
        apply(TINY, plain, messages, features)
    with pytest.raises(MotifError, match=r"expected shape \(2, 1\)"):
        apply(config, with_depth, messages, np.zeros((2,), np.float32))
    with pytest.raises(MotifError, match="model.features"):
        ModelConfig(features=6)


# ---------------------------------------------------------------------------------------------------------
# Training with the depth change.


def test_the_depth_change_is_learned_when_it_decides_the_preference(depth_ds, tmp_path):
    config = preset_config("tiny", epochs=3, batch_size=64, model={"features": 1})
    out = tmp_path / "run"
    history = train_reward(depth_ds, "depth", out, config, devices=ONE_DEVICE, progress=False, log=None)
    assert history[-1]["val_acc"] > 0.9
    rm = load(out, devices=ONE_DEVICE)
    assert rm.features == 1 and rm.meta["model"]["features"] == 1
    caption = np.stack([encode("You see here a ring.")] * 2)
    raw, _ = rm.score(caption, np.array([[1.0], [-1.0]], np.float32))
    assert raw[0] > raw[1]
    with pytest.raises(MotifError, match="stat-change feature"):
        rm.score(caption)


def test_a_dataset_without_stat_changes_is_a_one_line_error(depth_ds, tmp_path):
    ds = tmp_path / "ds"
    shutil.copytree(depth_ds, ds)
    (ds / "data" / "delta.npy").unlink()
    (ds / "data" / "prev_message.npy").unlink()
    config = preset_config("tiny", epochs=1, batch_size=64, model={"features": 1})
    with pytest.raises(MotifError, match=r"no data/delta\.npy") as error:
        train_reward(ds, "depth", tmp_path / "out", config, devices=ONE_DEVICE, progress=False, log=None)
    assert "\n" not in str(error.value)


def test_inspect_ranks_captions_with_their_depth_change(depth_ds, tmp_path):
    from motif_jax.annotate.rules import load_table
    from motif_jax.data import open_dataset
    from motif_jax.reward.captions import pair_rewards_from_unique, unique_inputs
    from motif_jax.reward.inspect import inspect_run
    from motif_jax.reward.pairs import StatFeatures

    config = preset_config("tiny", epochs=3, batch_size=64, model={"features": 1})
    out = tmp_path / "run"
    train_reward(depth_ds, "depth", out, config, devices=ONE_DEVICE, progress=False, log=None)
    report, normalised = inspect_run(out, top=5, judge="nethack", goal="descender")
    assert report["features"] == 1 and report["captions"] == 400 * 2
    ds = open_dataset(depth_ds)
    messages, features = ds.data("message"), StatFeatures(ds, 1)
    captions, stats, _ = unique_inputs(messages, features)
    assert report["unique_captions"] == len(captions) == len(normalised) > len(unique_inputs(messages, None)[0])
    # the depth change decides: going down tops the ranking, going up ends it, each shown as the judge reads it
    table = load_table("nethack", "descender")
    for text, _, count in report["top"]:
        assert text.startswith('now: "') and text.endswith('" | depth +1') and count >= 1
        assert table.utility(text) > 0
    assert all(text.endswith('" | depth -1') and table.utility(text) < 0 for text, _, _ in report["bottom"])
    # accuracy uses each pair member's caption and depth change: caption-only lookups would be near chance
    labels = np.load(depth_ds / "preference" / "depth.npy")
    assert report["accuracy"]["depth"]["pairs"] == int(np.sum(labels < 2))
    assert report["accuracy"]["depth"]["acc"] > 0.9 and report["accuracy"]["shallow"]["acc"] < 0.1
    rm = load(out, devices=ONE_DEVICE)
    looked_up = pair_rewards_from_unique(messages, captions, normalised, features=features, unique_features=stats)
    np.testing.assert_allclose(looked_up, rm.score(messages, features[:])[1].mean(axis=-1), rtol=1e-5, atol=1e-5)
    # --judge rates the same texts: every input that went down is good for the descender; nearly all pay at the median
    good = report["judge"]["paid"]["0.50"]["good"]
    went_down = int(np.sum(stats[:, 0] == 1))
    assert good[1] >= went_down and good[0] >= 0.9 * went_down


# ---------------------------------------------------------------------------------------------------------
# `motif train-reward --skills`.

QUANTILES = {"descender": 0.85, "climber": 0.5}


@pytest.fixture(scope="module")
def skills_run(depth_ds, tmp_path_factory):
    root = tmp_path_factory.mktemp("skills")
    # descender reads the rules judge's labels for it (written here by hand), climber a named annotator
    np.save(depth_ds / "preference" / "rules-nethack_descender.npy", np.load(depth_ds / "preference" / "depth.npy"))
    skills = write_skills_file(
        root, {"descender": {"judge": "nethack", "goal": "descender"}, "climber": {"annotator": "shallow"}}, QUANTILES
    )
    out = root / "rewards"
    argv = ["train-reward", str(depth_ds), "--skills", str(skills), "--preset", "tiny", "--epochs", "2"]
    argv += ["--batch-size", "64", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    return argv, skills, out


@pytest.mark.slow  # trains two reward models (~15 s); the toy maestro grid covers the command too
def test_skills_train_one_model_each_and_record_them(skills_run):
    _, skills, out = skills_run
    meta = json.loads((out / "skills.json").read_text())
    assert meta["skills"] == ["descender", "climber"] and meta["quantiles"] == QUANTILES
    assert meta["skills_file"] == str(skills.resolve())
    assert meta["annotators"] == {"descender": "rules-nethack_descender", "climber": "shallow"}
    for skill, annotator in meta["annotators"].items():
        rm = load(out / skill, devices=ONE_DEVICE)
        assert rm.annotator == annotator and rm.features == 1 and rm.meta["epoch"] == 2
    caption = np.stack([encode("You see here a ring.")] * 2)
    up_down = np.array([[1.0], [-1.0]], np.float32)
    descender = load(out / "descender", devices=ONE_DEVICE).score(caption, up_down)[0]
    climber = load(out / "climber", devices=ONE_DEVICE).score(caption, up_down)[0]
    assert descender[0] > descender[1] and climber[0] < climber[1]  # going down pays one, going up the other


@pytest.mark.slow  # trains two reward models (~15 s); the toy maestro grid covers the command too
def test_a_rerun_skips_finished_skills_and_resumes_an_interrupted_one(skills_run, capsys):
    argv, _, out = skills_run
    descender_metrics = (out / "descender" / "metrics.jsonl").read_text()
    # climber interrupted after its first epoch: its last checkpoint and skills.json are gone
    steps = sorted(
        (p for p in (out / "climber" / "checkpoints").iterdir() if p.name.isdigit()), key=lambda p: int(p.name)
    )
    shutil.rmtree(steps[-1])
    (out / "skills.json").unlink()
    capsys.readouterr()
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "skill 1/2 descender: already trained" in printed
    assert "skill 2/2 climber: training" in printed and "[climber] resuming from epoch 1" in printed
    assert (out / "descender" / "metrics.jsonl").read_text() == descender_metrics
    assert load(out / "climber", devices=ONE_DEVICE).meta["epoch"] == 2 and (out / "skills.json").is_file()
    assert main(argv) == 0 and capsys.readouterr().out.count("already trained") == 2


def test_a_skill_without_its_label_file_is_named(depth_ds, tmp_path, capsys):
    skills = write_skills_file(
        tmp_path,
        {"climber": {"annotator": "shallow"}, "merchant": {"judge": "nethack", "goal": "merchant"}},
        {
            "climber": 0.5,
            "merchant": 0.85,
        },
    )
    argv = ["train-reward", str(depth_ds), "--skills", str(skills), "--preset", "tiny", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "skill 'merchant'" in err and "preference/rules-nethack_merchant.npy" in err and "\n" not in err
    assert not (tmp_path / "o" / "climber").exists()  # nothing trained before every label file is there


def test_no_features_flag_trains_caption_only_models(tmp_path):
    import argparse

    from motif_jax.reward.cli import add_arguments, build_config

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    base = ["ds", "--out", "o", "--preset", "tiny"]
    assert build_config(parser.parse_args([*base, "--skills", "f"])).model.features == 1
    assert build_config(parser.parse_args([*base, "--skills", "f", "--no-features"])).model.features == 0
    assert build_config(parser.parse_args([*base, "--skills", "f", "--set", "model.features=0"])).model.features == 0
    assert build_config(parser.parse_args([*base, "--annotator", "a"])).model.features == 0


# ---------------------------------------------------------------------------------------------------------
# The stacked intrinsic reward.


@pytest.mark.slow  # trains two reward models (~15 s); the toy maestro grid covers the command too
def test_load_skills_stacks_the_models_and_matches_each_single_model(skills_run, depth_ds):
    _, _, out = skills_run
    rewards = load_skills(out, devices=ONE_DEVICE)
    assert rewards.names == ("descender", "climber") and rewards.features == 1 and rewards.quantiles == QUANTILES
    singles = [load(out / name, devices=ONE_DEVICE) for name in rewards.names]
    for stacked, *each in zip(
        jax.tree.leaves(rewards.params.net.weights), *(jax.tree.leaves(rm.params.net.weights) for rm in singles)
    ):
        np.testing.assert_array_equal(np.asarray(stacked), np.stack([np.asarray(x) for x in each]))
    for k, rm in enumerate(singles):
        expected = quantile_threshold(rm.params.stats.quantiles, QUANTILES[rewards.names[k]])
        np.testing.assert_allclose(float(rewards.params.thresholds[k]), float(expected), rtol=1e-6)

    messages = np.load(depth_ds / "data" / "message.npy")[:32, :, 0].reshape(64, 256)
    delta = np.load(depth_ds / "data" / "delta.npy")[:32, :, 0].reshape(64, 5)
    features = stat_features(rewards.params.net.config, delta)
    counts = np.arange(64) % 3 + 1
    skills = (np.arange(64) // 5 % 2).astype(np.int32)
    got = np.asarray(jax.jit(rewards.intrinsic)(rewards.params, messages, counts, skills, features, 2.0))
    for k, rm in enumerate(singles):
        q = QUANTILES[rewards.names[k]]
        single = np.asarray(intrinsic_reward(rm.params.net, rm.params.stats, messages, counts, q, 2.0, features))
        # a caption whose reward sits on the quantile (it is one of the training inputs) may land on either
        # side of it by a rounding error; every other step must agree
        _, normalised = rm.score(messages, np.asarray(features))
        clear = (skills == k) & (np.abs(normalised - float(rewards.params.thresholds[k])) > 1e-4)
        assert clear.sum() > 0.8 * (skills == k).sum()
        np.testing.assert_allclose(got[clear], single[clear], rtol=1e-5, atol=1e-6)
    assert (got > 0).any() and (got == 0).any()


def _constant_net(config: ModelConfig, value: float) -> NetParams:
    """A net whose raw reward is ``value`` for every caption: zero weights, head bias ``value``."""
    weights = jax.tree.map(jnp.zeros_like, init_weights(config, 0))
    weights["head"]["bias"] = jnp.full((1,), value, jnp.float32)
    return NetParams(weights, config)


def test_each_step_uses_its_own_skills_net_stats_and_threshold():
    config = ModelConfig(
        max_len=32, embed_dim=4, channels=4, kernels=(3,), pool_after=(False,), mlp=(4,), head_bias=True
    )
    grid = jnp.asarray(QUANTILE_LEVELS, jnp.float32)
    # skill 0: raw 2, mean 1, std 0.5 -> normalised 2; its quantile grid is the levels themselves, so its
    # threshold at 0.5 is 0.5: pays. skill 1: raw 1, mean 0, std 1 -> normalised 1; grid levels * 2, its
    # threshold at 0.75 is 1.5: pays nothing.
    nets = [_constant_net(config, 2.0), _constant_net(config, 1.0)]
    stats = [
        NormStats(jnp.float32(1.0), jnp.float32(0.5), grid),
        NormStats(jnp.float32(0.0), jnp.float32(1.0), 2 * grid),
    ]
    params = stack_skill_params(nets, stats, [0.5, 0.75])
    assert isinstance(params, SkillRewardParams)
    np.testing.assert_allclose(np.asarray(params.thresholds), [0.5, 1.5], rtol=1e-6)
    assert params.stats.mean.shape == (2,) and params.stats.quantiles.shape == (2, 19)

    messages = np.stack([encode(t) for t in ["a", "b", "c", "d", "e", "f"]]).reshape(2, 3, 256)
    skills = np.array([[0, 1, 0], [1, 0, 0]], np.int32)
    counts = np.array([[1, 1, 2], [3, 4, 0]])
    got = np.asarray(jax.jit(skill_intrinsic)(params, messages, counts, skills, None, 1.0))
    np.testing.assert_allclose(got, [[2.0, 0.0, 1.0], [0.0, 0.5, 2.0]], rtol=1e-6)
    for k, q in enumerate([0.5, 0.75]):
        single = np.asarray(intrinsic_reward(nets[k], stats[k], messages, counts, q, 1.0))
        np.testing.assert_allclose(got[skills == k], single[skills == k], rtol=1e-6)


def test_skills_with_other_networks_or_no_skills_file_are_one_line_errors(tmp_path):
    check_same_network(tmp_path, ("a", "b"), [TINY, TINY])
    with pytest.raises(MotifError, match="skill 'b' has another network than 'a'"):
        check_same_network(tmp_path, ("a", "b"), [TINY, ModelConfig(**{**TINY.__dict__, "features": 1})])
    with pytest.raises(MotifError, match=r"skills\.json: not found"):
        load_skills(tmp_path, devices=ONE_DEVICE)
    (tmp_path / "skills.json").write_text(json.dumps({"skills": ["a"], "quantiles": {"a": 0.99}}))
    with pytest.raises(MotifError, match="quantile 0.99 of skill 'a'"):
        load_skills(tmp_path, devices=ONE_DEVICE)


def test_a_labels_template_names_every_skills_annotator(depth_ds, tmp_path):
    from motif_jax.data import open_dataset
    from motif_jax.reward.skill_training import skill_labels
    from motif_jax.skills.spec import load_skills

    skills = write_skills_file(
        tmp_path,
        {"climber": {"annotator": "shallow"}, "descender": {"judge": "nethack", "goal": "descender"}},
        {"climber": 0.5, "descender": 0.85},
    )
    for name in ("llm_climber_t", "llm_descender_t"):
        np.save(depth_ds / "preference" / f"{name}.npy", np.load(depth_ds / "preference" / "depth.npy"))
    ds = open_dataset(depth_ds)
    labels = skill_labels(load_skills(skills), ds, skills, "llm_{skill}_t")
    assert labels == {"climber": "llm_climber_t", "descender": "llm_descender_t"}
    with pytest.raises(MotifError, match=r"needs \{skill\}"):
        skill_labels(load_skills(skills), ds, skills, "llm_t")
