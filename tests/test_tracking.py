"""Weights & Biases tracking, in offline mode (no account, no network): what each stage logs, that a resumed
run continues its W&B run, and that without a project nothing of wandb is imported. Also: the base install
pulls in none of the optional cluster or tracking packages."""

import argparse
import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import jax
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from motif_jax.cli import main
from motif_jax.evaluate import cli as evaluate_cli
from motif_jax.evaluate.evaluate import EvalSettings
from motif_jax.experiment.tracking import track_results
from motif_jax.reward.train import preset_config, train_reward
from motif_jax.tracking import ENV_PROJECT
from reward_synthetic import write_gold_dataset

ROOT = Path(__file__).resolve().parents[1]
CARTPOLE = ["--env", "envpool:CartPole-v1", "--preset", "mlp", "--set", "run.log_every_s=0"]
CARTPOLE += ["--set", "run.tensorboard=false", "--set", "run.checkpoint_every=512", "--set", "learner.devices=[0]"]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv(ENV_PROJECT, raising=False)
    monkeypatch.delenv("WANDB_RUN_GROUP", raising=False)


def logged(folder: Path) -> list[tuple[str, bytes]]:
    """(run id, record log) of each offline session; the log's protobuf records keep keys and values as text.
    The wandb service writes the log after ``finish`` returns: stopping it flushes it."""
    import wandb

    wandb.teardown()
    runs = sorted((folder / "wandb").glob("offline-run-*/run-*.wandb"))
    return [(p.stem.removeprefix("run-"), p.read_bytes()) for p in runs]


def test_train_logs_config_commit_and_metrics_and_a_resume_continues_the_run(tmp_path):
    run = tmp_path / "run"
    assert main(["train", *CARTPOLE, "--steps", "512", "--out", str(run), "--wandb", "motif-test"]) == 0
    assert main(["train", *CARTPOLE, "--steps", "1024", "--out", str(run), "--resume"]) == 0  # project: config.yaml
    runs = logged(run)
    assert len(runs) == 2 and runs[0][0] == runs[1][0]  # two sessions of one W&B run
    first = runs[0][1]
    for key in (b"motif-test", b"env_steps", b"episode_return", b"git_commit", b"minibatches"):
        assert key in first


def test_reward_training_logs_each_epoch(tmp_path):
    ds = write_gold_dataset(tmp_path / "ds", num_pairs=256, seed=1)
    config = preset_config("tiny", epochs=2, batch_size=64, wandb={"project": "motif-test", "name": "rm"})
    train_reward(ds, "score", tmp_path / "rdir", config, devices=jax.devices()[:1], progress=False, log=None)
    ((_, record),) = logged(tmp_path / "rdir")
    assert b"val_acc" in record and b"train-reward" in record and b"rm" in record


def test_experiment_results_go_to_one_run_of_the_group(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_PROJECT, "motif-test")  # as `motif experiment --wandb` sets it
    monkeypatch.setenv("WANDB_RUN_GROUP", "grid-group")
    (tmp_path / "experiment.yaml").write_text("name: grid\nseeds: [0, 1]\n")
    (tmp_path / "table.md").write_text("# grid\n\ntext\n\n| condition | score |\n|---|---|\n| random | 29.6 ± 5.9 |\n")
    (tmp_path / "plots").mkdir()
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "plots" / "curves.png")
    track_results(tmp_path, "grid")
    ((_, record),) = logged(tmp_path)
    assert b"grid-results" in record and b"grid-group" in record
    (table,) = (tmp_path / "wandb").glob("offline-run-*/files/media/table/results_*.table.json")
    assert json.loads(table.read_text())["data"] == [["random", "29.6 ± 5.9"]]
    assert list((tmp_path / "wandb").glob("offline-run-*/files/media/images/plots/curves_*.png"))


def test_evaluate_logs_its_report_tables(tmp_path):
    args = argparse.Namespace(policy="random", checkpoint=None, json=str(tmp_path / "eval.json"), wandb="motif-test")
    details = {"score": {"mean": 12.5, "ci95": 3.0, "min": 4, "max": 20}}
    report = {"checkpoint": "random policy", "details": details, "success_rate": 0.0, "top_captions": [["Hello", 3]]}
    evaluate_cli._track(args, report, EvalSettings(task="score", episodes=2))
    ((_, record),) = logged(tmp_path)
    assert b"evaluate-random" in record and b"score_mean" in record
    tables = sorted(p.name.split("_")[0] for p in tmp_path.glob("wandb/offline-run-*/files/media/table/*.json"))
    assert tables == ["evaluation", "top"]


def test_without_a_project_wandb_is_not_imported(tmp_path):
    code = (
        "import sys; from motif_jax.cli import main; "
        f"main(['train', *{CARTPOLE!r}, '--steps', '512', '--out', {str(tmp_path / 'run')!r}]); "
        "assert 'wandb' not in sys.modules, 'wandb was imported'"
    )
    env = {k: v for k, v in os.environ.items() if k != ENV_PROJECT}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT, timeout=120, capture_output=True)
    assert not (tmp_path / "run" / "wandb").exists()


def test_the_base_install_pulls_in_no_cluster_or_tracking_package():
    """What `pip install motif-jax` brings: the closure of the installed package's requirements without extras."""
    todo = [(Requirement("motif-jax"), "")]
    seen = set()
    while todo:
        req, extra = todo.pop()
        if req.marker and not req.marker.evaluate({"extra": extra}):
            continue
        for extra in ("", *req.extras):
            if (canonicalize_name(req.name), extra) not in seen:
                seen.add((canonicalize_name(req.name), extra))
                todo += [(Requirement(r), extra) for r in metadata.requires(req.name) or []]
    names = {name for name, _ in seen}
    assert {"motif-jax", "jax", "flax", "numpy"} <= names and not names & {"wandb", "ray", "submitit"}
