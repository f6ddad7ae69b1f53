"""The review contract end to end: `motif train-reward`, `motif inspect-reward`, `motif benchmark reward`."""

import json

import numpy as np
import pytest

from motif_jax.cli import main
from motif_jax.reward.inspect import print_report
from reward_synthetic import write_gold_dataset


@pytest.fixture(scope="module")
def contract_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    ds = write_gold_dataset(root / "ds", num_pairs=500, seed=2)
    rdir = root / "rdir"
    code = main(
        ["train-reward", str(ds), "--annotator", "score", "--preset", "tiny", "--epochs", "3", "--out", str(rdir)]
    )
    assert code == 0
    return root, ds, rdir


def test_train_reward_writes_checkpoints_and_metrics(contract_run):
    _, _, rdir = contract_run
    assert any(p.is_dir() and p.name.isdigit() for p in (rdir / "checkpoints").iterdir())
    records = [json.loads(line) for line in (rdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    for record in records:
        assert {"epoch", "train_loss", "val_loss", "val_acc"} <= set(record)
    assert records[-1]["val_acc"] > 0.8


def test_inspect_reward_writes_json_and_png(contract_run, tmp_path):
    _, _, rdir = contract_run
    out = tmp_path / "report" / "inspect.json"
    assert main(["inspect-reward", str(rdir), "--top", "20", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert len(report["top"]) == 20 and len(report["bottom"]) == 20
    caption, reward, count = report["top"][0]
    assert isinstance(caption, str) and isinstance(reward, float) and isinstance(count, int) and count >= 1
    assert "gold" in caption and "gold" not in report["bottom"][0][0]
    assert report["top"][0][1] >= report["top"][-1][1] and report["bottom"][0][1] <= report["bottom"][-1][1]
    assert report["accuracy"]["score"]["acc"] > 0.8
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and report["histogram"] == str(png)


def test_inspect_reward_counts_the_judges_captions_that_pay(contract_run, tmp_path, capsys):
    _, _, rdir = contract_run
    out = tmp_path / "inspect.json"
    args = ["inspect-reward", str(rdir), "--judge", "nethack", "--goal", "gold", "--json", str(out)]
    assert main(args) == 0
    report = json.loads(out.read_text())
    paid = report["judge"]["paid"]
    assert list(paid) == ["0.50", "0.80", "0.90", "0.95"]
    for row in paid.values():
        assert sum(row[kind][1] for kind in ("good", "neutral", "bad")) == report["unique_captions"]
    # the model learned gold: most "You see here N gold pieces." (good for the gold judge) pay at
    # the median, no kill or wall (bad for it) does, and a higher threshold never pays more
    good, bad = paid["0.50"]["good"], paid["0.50"]["bad"]
    assert good[0] / good[1] > 0.5 and bad[0] == 0 < bad[1]
    assert paid["0.95"]["neutral"][0] <= paid["0.50"]["neutral"][0]
    assert "unique captions that pay" in capsys.readouterr().out


def test_paid_by_utility_counts_strictly_above_the_threshold():
    from motif_jax.reward.inspect import paid_by_utility

    rewards = np.array([2.0, 1.0, 0.5, 0.5, -1.0])
    utilities = np.array([3, 0, 0, -1, -2])
    paid = paid_by_utility(rewards, utilities, {0.5: 0.5, 0.9: 1.0})
    assert paid["0.50"] == {"threshold": 0.5, "good": [1, 1], "neutral": [1, 2], "bad": [0, 2]}
    assert paid["0.90"] == {"threshold": 1.0, "good": [1, 1], "neutral": [0, 2], "bad": [0, 2]}


def test_inspect_table_prints_brackets_as_text(capsys):
    report = {"top": [["Really? [yn] (n)", 1.0, 2]], "bottom": [], "unique_captions": 1, "dataset": "d", "accuracy": {}}
    print_report(report)
    assert "Really? [yn] (n)" in capsys.readouterr().out


def test_cli_errors_are_one_line_exit_2(contract_run, tmp_path, capsys):
    _, ds, rdir = contract_run
    assert (
        main(["train-reward", str(ds), "--annotator", "nobody", "--preset", "tiny", "--out", str(tmp_path / "x")]) == 2
    )
    assert "no labels for annotator 'nobody'" in capsys.readouterr().err
    assert main(["train-reward", str(ds), "--annotator", "score", "--preset", "tiny", "--out", str(rdir)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["inspect-reward", str(tmp_path / "missing")]) == 2


def test_resume_flag_on_a_finished_run_is_a_no_op(contract_run, capsys):
    _, ds, rdir = contract_run
    before = (rdir / "metrics.jsonl").read_text()
    args = ["train-reward", str(ds), "--annotator", "score", "--preset", "tiny", "--epochs", "3", "--out", str(rdir)]
    assert main([*args, "--resume"]) == 0
    assert "nothing to do" in capsys.readouterr().out and (rdir / "metrics.jsonl").read_text() == before


def test_benchmark_reward_json(tmp_path):
    out = tmp_path / "bench.json"
    args = ["benchmark", "reward", "--preset", "tiny", "--batch-size", "64", "--score-batch", "256", "--seconds", "0.2"]
    assert main([*args, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["train_pairs_per_s"] > 0 and result["score_captions_per_s"] > 0 and result["devices"] == 8


def test_settings_precedence_preset_then_file_then_set_then_flags(tmp_path):
    import argparse

    from motif_jax.reward.cli import add_arguments, build_config

    config_file = tmp_path / "reward.yaml"
    config_file.write_text("lr: 0.01\nbatch_size: 64\nmodel: {channels: 16}\n")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [
            "ds",
            "--annotator",
            "a",
            "--out",
            "o",
            "--preset",
            "tiny",
            "--config",
            str(config_file),
            "--set",
            "batch_size=32",
            "--set",
            "model.mlp=[8]",
            "--lr",
            "0.002",
        ]
    )
    config = build_config(args)
    assert (config.lr, config.batch_size, config.epochs) == (0.002, 32, 3)
    model = config.model
    assert (model.channels, model.mlp, model.embed_dim) == (16, (8,), 16)
