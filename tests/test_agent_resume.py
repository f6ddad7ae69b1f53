"""Resume at the saved step count; a non-finite update stops the run and keeps the last good checkpoint."""

import jax
import pytest

from motif_jax.agent.policy import load_policy
from motif_jax.agent.trainer import Trainer
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
