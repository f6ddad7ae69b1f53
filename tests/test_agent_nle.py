"""Tiny NLE runs with the real actor pool: extrinsic only, then with a real trained reward model."""

import json

import jax
import numpy as np
import pytest

from motif_jax.agent.config import resolve_config
from motif_jax.agent.policy import load_policy
from motif_jax.agent.trainer import Trainer

ONE = jax.devices()[:1]
SETS = ["env.num_envs=4", "ppo.rollout=16", "run.log_every_s=0", "run.tensorboard=false", "run.checkpoint_every=64"]


def score_config(steps, *overrides, **flags):
    return resolve_config("configs/score.yaml", "tiny", [*SETS, *overrides], {"steps": steps, **flags})


def read_metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_tiny_score_run_without_reward_model(tmp_path):
    progress = Trainer(score_config(192, **{"reward.llm_coef": 0}), tmp_path, devices=ONE, console=False).train()
    assert progress.env_steps == 192
    records = read_metrics(tmp_path)
    assert records[-1]["intrinsic_share"] == 0 and np.isfinite(records[-1]["loss"])
    policy = load_policy(tmp_path)
    assert policy.task == "score" and policy.obs_keys == ["glyphs", "blstats", "message"]


@pytest.fixture(scope="module")
def reward_dir(tmp_path_factory):
    from motif_jax.reward.train import preset_config, train_reward
    from reward_synthetic import write_gold_dataset

    root = tmp_path_factory.mktemp("reward")
    ds = write_gold_dataset(root / "ds", num_pairs=128)
    train_reward(
        ds, "score", root / "out", preset_config("tiny", epochs=1, batch_size=64), devices=ONE, progress=False, log=None
    )
    return root / "out"


def test_tiny_score_run_with_intrinsic_reward(tmp_path, reward_dir):
    config = score_config(128, **{"reward.path": str(reward_dir), "reward.llm_coef": 0.1})
    progress = Trainer(config, tmp_path, devices=ONE, console=False).train()
    assert progress.env_steps == 128
    last = read_metrics(tmp_path)[-1]
    assert 0.0 <= last["intrinsic_share"] <= 1.0 and np.isfinite(last["reward_intrinsic"])
