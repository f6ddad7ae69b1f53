"""Resume at the saved step count (and from the run's saved config); a non-finite update stops the run and
keeps the last good checkpoint."""

import jax
import pytest
import yaml

from motif_jax.agent.policy import load_policy
from motif_jax.agent.trainer import Trainer
from motif_jax.cli import main
from motif_jax.errors import MotifError
from test_agent_train import cartpole, read_metrics, saved_steps

ONE = jax.devices()[:1]


def test_resume_continues_then_non_finite_update_keeps_the_last_good_checkpoint(tmp_path):
    Trainer(cartpole(1024, "run.sync=true"), tmp_path, devices=ONE, console=False).train()
    with pytest.raises(MotifError, match="--resume"):
        Trainer(cartpole(2048), tmp_path, devices=ONE, console=False)
    progress = Trainer(cartpole(2048, "run.sync=true"), tmp_path, resume=True, devices=ONE, console=False).train()
    assert progress.env_steps == 2048 and progress.updates == 4
    assert [r["env_steps"] for r in read_metrics(tmp_path)] == [512, 1024, 1536, 2048]

    with pytest.raises(MotifError, match="non-finite .* last good checkpoint: step 2048"):
        Trainer(cartpole(4096, "ppo.lr=.inf"), tmp_path, resume=True, devices=ONE, console=False).train()
    assert saved_steps(tmp_path)[-1] == 2048
    assert load_policy(tmp_path).env_steps == 2048


def test_cli_resume_rebuilds_the_config_from_the_run_directory(tmp_path):
    run = tmp_path / "run"
    first = [
        "train",
        "--env",
        "envpool:CartPole-v1",
        "--preset",
        "mlp",
        "--steps",
        "1024",
        "--num-envs",
        "8",
        "--out",
        str(run),
        "--set",
        "model.mlp_layers=[32]",
        "--set",
        "run.tensorboard=false",
    ]
    assert main(first) == 0
    # Only --resume, --out and a new budget: env, preset and --set values come from RUN/config.yaml.
    assert main(["train", "--resume", "--out", str(run), "--steps", "2048"]) == 0
    assert [r["env_steps"] for r in read_metrics(run)][-1] == 2048
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["mlp_layers"] == [32] and saved["env"]["num_envs"] == 8 and saved["steps"] == 2048
    assert main(["train", "--resume", "--steps", "10"]) == 2  # --resume without --out is a clear error
