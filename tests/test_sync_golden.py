"""Refactors must not change what training computes: with ``run.sync=true`` and a fixed seed, a tiny NLE
run with the intrinsic reward reproduces losses recorded from a known-good version of the code.

Everything goes through the `motif` command line, the interface users keep, so the internals may move.
If a change is *meant* to alter training (a new default, a bug fix), regenerate the values with
``python tests/test_sync_golden.py`` and say why in the commit.
"""

import json
import sys

import numpy as np

from motif_jax.cli import main
from reward_synthetic import write_gold_dataset

KEYS = ("loss", "value_loss", "entropy", "approx_kl", "reward_intrinsic", "grad_norm")
TRAIN = [
    "train",
    "--config",
    "configs/score.yaml",
    "--preset",
    "tiny",
    "--steps",
    "256",
    "--seed",
    "3",
    "--llm-coef",
    "0.1",
    *("--set", "run.sync=true", "--set", "env.num_envs=4", "--set", "ppo.rollout=16"),
    *("--set", "run.log_every_s=0", "--set", "run.tensorboard=false", "--set", "env.num_workers=2"),
    *("--set", "learner.devices=[0]"),  # one device: the recorded run had one
]
# Recorded from the version before the typed-batch / env-loop refactor.
GOLDEN = {
    "reward_train_loss": [0.6855860340351961],
    "reward_mean": [0.043877385556697845],
    "loss": [0.011974867433309555, -0.003224776592105627, 0.0021484107710421085, -0.004818509798496962],
    "value_loss": [0.042798466980457306, 0.012571239843964577, 0.02305140532553196, 0.008687053807079792],
    "entropy": [3.135474443435669, 3.135448455810547, 3.1354212760925293, 3.135401725769043],
    "approx_kl": [3.012828528881073e-06, 2.8926879167556763e-06, 1.0095536708831787e-06, 8.568167686462402e-07],
    "reward_intrinsic": [0.02895703725516796, 0.017759529873728752, 0.02399235963821411, 0.004284827969968319],
    "grad_norm": [1.0128400325775146, 0.9839096069335938, 1.354777455329895, 0.9838488698005676],
}


def run_and_read(root) -> dict:
    ds = write_gold_dataset(root / "ds", num_pairs=128)
    reward = ["train-reward", str(ds), "--annotator", "score", "--preset", "tiny", "--epochs", "1"]
    assert main([*reward, "--batch-size", "64", "--out", str(root / "reward"), "--no-progress"]) == 0
    assert main([*TRAIN, "--reward", str(root / "reward"), "--out", str(root / "agent")]) == 0
    rows = [json.loads(line) for line in (root / "agent" / "metrics.jsonl").read_text().splitlines()]
    val = [json.loads(line) for line in (root / "reward" / "metrics.jsonl").read_text().splitlines()]
    return {
        "reward_train_loss": [r["train_loss"] for r in val if "train_loss" in r],
        "reward_mean": [r["reward_mean"] for r in val if "reward_mean" in r],
        **{k: [r[k] for r in rows] for k in KEYS},
    }


def test_sync_training_reproduces_the_recorded_losses(tmp_path):
    got = run_and_read(tmp_path)
    for key, want in GOLDEN.items():
        np.testing.assert_allclose(got[key], want, rtol=1e-4, atol=1e-6, err_msg=key)


if __name__ == "__main__":  # print the values to paste into GOLDEN
    import tempfile
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    with tempfile.TemporaryDirectory() as d:
        print(json.dumps(run_and_read(Path(d))))
