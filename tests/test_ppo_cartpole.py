"""Learner validation against a known result: PPO solves envpool's CartPole-v1 (slow, ~3-5 min)."""

import json

import numpy as np
import pytest

from motif_jax.cli import main


@pytest.mark.slow
def test_cartpole_reaches_475_within_500k_steps(tmp_path):
    run = tmp_path / "run"
    argv = [
        "train",
        "--env",
        "envpool:CartPole-v1",
        "--preset",
        "mlp",
        "--steps",
        "500000",
        "--seed",
        "0",
        "--out",
        str(run),
        "--set",
        "run.tensorboard=false",
        "--set",
        "learner.devices=[0]",  # the preset's 4 envs do not split over the suite's 8 fake devices
    ]
    assert main(argv) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    curve = [(r["env_steps"], r["episode_return"]) for r in records if "episode_return" in r]
    assert curve[-1][0] <= 500_000 + 512
    returns = np.array([ret for _, ret in curve])
    smoothed = np.convolve(returns, np.ones(5) / 5, mode="valid")  # 5 consecutive log windows
    assert smoothed.max() >= 475, f"best 5-window average {smoothed.max():.1f}"
    assert (run / "checkpoints").is_dir()
