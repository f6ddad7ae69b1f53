"""End-to-end training on envpool's CartPole: metrics, checkpoints, resume, NaN guard, load_policy."""

import json

import jax
import numpy as np

from motif_jax.agent.config import resolve_config
from motif_jax.agent.policy import load_policy
from motif_jax.agent.trainer import Trainer
from motif_jax.checkpoint import Checkpointer
from motif_jax.cli import main


def cartpole(steps, *overrides):
    sets = ["run.checkpoint_every=1024", "run.log_every_s=0", "run.tensorboard=false", *overrides]
    return resolve_config(preset="mlp", overrides=sets, flags={"task": "envpool:CartPole-v1", "steps": steps})


ONE = jax.devices()[:1]


def read_metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def saved_steps(run):
    return Checkpointer(run / "checkpoints").manager.all_steps()


def test_short_run_writes_metrics_checkpoints_and_loads_as_policy(tmp_path):
    progress = Trainer(cartpole(2048), tmp_path, devices=jax.devices()[:4], console=False).train()
    assert progress.env_steps == 2048 and progress.updates == 4
    records = read_metrics(tmp_path)
    assert [r["env_steps"] for r in records] == [512, 1024, 1536, 2048]
    assert any("episode_return" in r for r in records)
    assert {
        "sps",
        "sps_learner",
        "sps_actor",
        "entropy",
        "approx_kl",
        "clip_fraction",
        "grad_norm",
        "policy_lag",
        "intrinsic_share",
    } <= set(records[-1])
    assert saved_steps(tmp_path) == [1024, 2048]
    assert (tmp_path / "config.yaml").is_file()

    policy = load_policy(tmp_path)
    assert policy.task == "envpool:CartPole-v1" and policy.obs_keys == ["obs"] and policy.env_steps == 2048
    state = policy.initial_state(3)
    actions, state = policy.act({"obs": np.zeros((3, 4), np.float32)}, state, np.ones(3, bool), True, jax.random.key(0))
    assert actions.shape == (3,) and set(actions.tolist()) <= {0, 1}


def test_cli_train_and_bad_flags(tmp_path, capsys):
    run = tmp_path / "run"
    argv = [
        "train",
        "--env",
        "envpool:CartPole-v1",
        "--preset",
        "mlp",
        "--steps",
        "1024",
        "--seed",
        "1",
        "--num-envs",
        "8",
        "--out",
        str(run),
        "--set",
        "run.tensorboard=false",
    ]
    assert main(argv) == 0
    assert read_metrics(run)[-1]["env_steps"] == 1024
    assert (
        main(["train", "--env", "no-such-task", "--preset", "tiny", "--steps", "10", "--out", str(tmp_path / "x")]) == 2
    )
    assert "unknown" in capsys.readouterr().err
    assert main(["train", "--env", "envpool:CartPole-v1", "--llm-coef", "0.1", "--out", str(tmp_path / "y")]) == 2
    assert "reward model" in capsys.readouterr().err
