"""`motif experiment --executor slurm` on a real one-node SLURM cluster (slurmctld + slurmd, started by
`make test-cluster` through tests/slurm/start.sh): the cells go through sbatch as a submitit job array, each
job inherits the experiment's W&B settings, and a rerun finds every cell done."""

import json
import os
import shutil
from pathlib import Path

import pytest

from motif_jax.cli import main

pytestmark = pytest.mark.slurm

GRID = """
name: slurm-grid
task: score
seeds: [0, 1]
train:
  config: {config}
  steps: 2048
  set: [env.num_envs=4, run.checkpoint_every=512, "learner.devices=[0]", run.tensorboard=false]
evaluate: {{episodes: 2, num_envs: 1, seed: 10, max_episode_steps: 30}}
conditions:
  ext: {{extrinsic_coef: 1.0, llm_coef: 0}}
executor: {{cpus_per_cell: 1, array_parallelism: 2, time_limit_min: 20}}
"""


def test_grid_runs_as_slurm_jobs_and_a_rerun_submits_nothing(tmp_path, monkeypatch):
    if not (os.environ.get("SLURM_CONF") and shutil.which("sbatch")):
        pytest.fail("no SLURM cluster: run `make test-cluster` (it starts one with tests/slurm/start.sh)")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    path = tmp_path / "grid.yaml"
    path.write_text(GRID.format(config=Path(__file__).resolve().parents[1] / "configs" / "cpu.yaml"))
    out = tmp_path / "out"
    argv = ["experiment", str(path), "--out", str(out), "--executor", "slurm", "--no-progress"]
    assert main([*argv, "--wandb", "motif-test"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["conditions"]["ext"]["n_seeds"] == 2
    (script,) = (out / "slurm").glob("*_submission.sh")  # one sbatch job array, a task per cell
    job = script.name.split("_")[0]
    assert "#SBATCH --array=0-1%2" in script.read_text()
    assert sorted(p.name for p in (out / "slurm").glob("*_log.out")) == [f"{job}_{i}_0_log.out" for i in (0, 1)]
    for seed in (0, 1):  # the jobs saw MOTIF_WANDB and WANDB_RUN_GROUP from the submitting process
        assert list((out / "cells" / f"ext_s{seed}" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert list((out / "wandb").glob("offline-run-*/files/media/table/results_*.table.json"))
    jobs_before = len(list((out / "slurm").rglob("*_submitted.pkl")))
    assert main(argv) == 0
    assert len(list((out / "slurm").rglob("*_submitted.pkl"))) == jobs_before
