"""The typed config layer: resolution order, type checks as one-line errors, presets under files,
`motif config show`. Unit-level: no stage runs."""

import argparse

import pytest
import yaml

from motif_jax.agent.config import resolve_config
from motif_jax.cli import main
from motif_jax.config import describe_keys, field_docs, merge, set_layer
from motif_jax.errors import MotifError
from motif_jax.quickstart import QuickstartConfig


def test_each_level_beats_the_previous(tmp_path):
    # defaults: ppo.lr 1e-4, ent_coef 0.003; preset mlp: lr 2.5e-4, ent_coef 0.01, clip 0.2, epochs 4
    path = tmp_path / "f.yaml"
    path.write_text("preset: mlp\nppo: {lr: 0.0003, ent_coef: 0.02, clip: 0.3}\n")
    assert resolve_config().ppo.ent_coef == 0.003  # defaults (tiny preset leaves ent_coef alone)
    assert resolve_config(preset="mlp").ppo.ent_coef == 0.01  # preset over defaults
    c = resolve_config(path, overrides=["ppo.ent_coef=0.05", "ppo.clip=0.4"], flags={"ppo.clip": 0.5})
    assert c.ppo.epochs == 4  # the preset the file names
    assert c.ppo.lr == 0.0003  # file over preset
    assert c.ppo.ent_coef == 0.05  # --set over file
    assert c.ppo.clip == 0.5  # flag over --set
    path.write_text("ppo: {lr: 1e-3}\n")  # PyYAML reads 1e-3 as a string; the schema makes it a float
    assert resolve_config(path).ppo.lr == 0.001


def test_a_file_beats_its_preset_through_extends(tmp_path):
    (tmp_path / "base.yaml").write_text("preset: paper\nppo: {epochs: 1}\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nenv: {num_envs: 64}\nppo: {minibatches: 8}\n")
    c = resolve_config(tmp_path / "child.yaml")
    # paper's minibatch_frames (4096) would give 1 minibatch for 64 envs; the file's explicit 8 wins
    assert (c.preset, c.env.num_envs, c.ppo.minibatches, c.model.crop) == ("paper", 64, 8, 12)
    (tmp_path / "tiny.yaml").write_text("preset: tiny\nppo: {epochs: 4}\n")
    assert resolve_config(tmp_path / "tiny.yaml").ppo.epochs == 4  # tiny sets epochs 1


def test_set_values_are_parsed_and_typed():
    c = resolve_config(overrides=["ppo.lr=1e-3", "model.stats_layers=[32,16]", "reward.path=null"])
    assert c.ppo.lr == 0.001 and isinstance(c.ppo.lr, float)
    assert c.model.stats_layers == [32, 16] and c.reward.path is None
    assert set_layer(["a.b=1e-3", "c=x y"]) == ("--set", {"a": {"b": 0.001}, "c": "x y"})


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["ppo.lr=abc"], "config: ppo.lr='abc' is not a float (in --set)"),
        (["ppo.lr=[1,2]"], "config: ppo.lr=[1, 2] is not a float (in --set)"),
        (["steps=1.5"], "config: steps=1.5 is not an int (in --set)"),
        (["model.stats_layers=[a]"], "config: model.stats_layers[0]='a' is not an int (in --set)"),
        (["env.obs_keys=glyphs"], "config: env.obs_keys='glyphs' is not a list of strings (in --set)"),
        (["ppo=3"], "config: ppo=3 is not a section"),
        (["model.core=transformer"], "config: model.core='transformer' is not one of gru, lstm, none"),
        (["ppo.lr"], "--set 'ppo.lr': expected key=value"),
    ],
)
def test_bad_set_values_are_one_line_naming_key_value_and_type(overrides, message):
    with pytest.raises(MotifError) as err:
        resolve_config(overrides=overrides)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_bad_file_values_and_unknown_keys_name_the_file(tmp_path):
    path = tmp_path / "f.yaml"
    path.write_text("ppo: {lr: [1, 2]}\n")
    with pytest.raises(MotifError, match=r"^config: ppo.lr=\[1, 2\] is not a float \(in .*f.yaml\)$"):
        resolve_config(path)
    path.write_text("ppo: {lrr: 1}\n")
    with pytest.raises(MotifError) as err:
        resolve_config(path)
    assert str(err.value).startswith("config: unknown key ppo.lrr; expected one of rollout, epochs, minibatches")
    assert str(err.value).endswith(f"(in {path})")


def test_saved_config_is_the_base_of_a_resumed_run():
    base = yaml.safe_load(
        yaml.safe_dump(
            {"preset": "mlp", "task": "envpool:CartPole-v1", "model": {"mlp_layers": [32]}, "ppo": {"epochs": 2}}
        )
    )
    c = resolve_config(base=base, flags={"steps": 99})
    assert (c.model.mlp_layers, c.ppo.epochs, c.steps, c.model.kind) == ([32], 2, 99, "nethack")  # no preset again
    with pytest.raises(MotifError, match="is not an int"):
        resolve_config(base={"ppo": {"epochs": "many"}})


def _reward_args(*argv):
    from motif_jax.reward.cli import add_arguments, build_config

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return build_config(parser.parse_args(["ds", "--annotator", "a", "--out", "o", *argv]))


def test_train_reward_takes_the_preset_its_file_names(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("preset: tiny\n")
    c = _reward_args("--config", str(path))
    assert (c.preset, c.lr, c.batch_size, c.epochs) == ("tiny", 1e-3, 128, 3)
    path.write_text("preset: tiny\nepochs: 7\n")
    assert _reward_args("--config", str(path)).epochs == 7  # the file over its preset
    assert _reward_args("--config", str(path), "--epochs", "2").epochs == 2  # a flag over the file
    assert _reward_args().lr == 1e-5  # the default preset
    with pytest.raises(MotifError, match=r"^config: model.embed_dim='wide' is not an int"):
        _reward_args("--set", "model.embed_dim=wide")


def test_docs_come_from_the_field_comments():
    docs = field_docs(QuickstartConfig)
    assert docs["seed"] == "seed of every stage"
    lines = describe_keys(QuickstartConfig)
    assert "  train.steps (int, default 300000): env steps" in lines


def test_merge_checks_sections_of_named_entries():
    from motif_jax.experiment.spec import Experiment

    exp = merge(Experiment, [("x", {"datasets": {"play": {"pairs": "10"}}})])
    assert exp.datasets["play"].pairs == 10 and exp.datasets["play"].task == "score"


def test_config_show_prints_the_typed_config_and_fails_in_one_line(capsys):
    assert main(["config", "show", "train", "--config", "configs/score.yaml", "--set", "ppo.lr=3e-4"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["ppo"]["lr"] == 3e-4 and shown["preset"] == "paper" and shown["ppo"]["advantage"] == "vtrace"
    assert main(["config", "show", "train", "--set", "ppo.lr=abc"]) == 2
    err = capsys.readouterr().err
    assert "ppo.lr='abc'" in err and err.count("\n") == 1
    assert main(["config", "show", "collect", "--preset", "tiny"]) == 2
    assert main(["config", "show", "quickstart", "--set", "train.steps=5"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["train"]["steps"] == 5
    assert main(["config", "show", "annotate", "--help-keys"]) == 0
    assert "tie_band (float, default 0.1)" in capsys.readouterr().out


def test_shipped_cpu_config_needs_no_set_workaround(capsys):
    assert main(["config", "show", "train", "--config", "configs/cpu.yaml", "--preset", "tiny"]) == 0
    ppo = yaml.safe_load(capsys.readouterr().out)["ppo"]
    assert (ppo["epochs"], ppo["minibatches"], ppo["lr"]) == (4, 4, 5e-4)


def test_shipped_sparse_cpu_config_is_cpu_yaml_with_raw_advantages_and_captioned_stairs(capsys):
    assert main(["config", "show", "train", "--config", "configs/cpu-sparse.yaml", "--set", "task=staircase-lvl3"]) == 0
    c = yaml.safe_load(capsys.readouterr().out)
    assert c["task"] == "staircase-lvl3"  # --env (or task=) picks the goal task
    assert (c["ppo"]["norm_adv"], c["env"]["mention_stairs"], c["reward"]["extrinsic_coef"]) == (False, True, 10.0)
    assert (c["ppo"]["epochs"], c["ppo"]["lr"]) == (4, 5e-4)  # the rest is cpu.yaml's
