"""`motif experiment --executor local|slurm|ray` and `--status`: the fast tests fake the `motif` stages
(test_experiment.FakeMotif) in-process; the slow ones run real tiny NetHack grids on a Ray cluster on
127.0.0.1 and on submitit's local executor, and compare them with the local executor's results."""

import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from motif_jax import pipeline
from motif_jax.cli import main
from motif_jax.errors import MotifError
from motif_jax.experiment import executors, run
from motif_jax.experiment.spec import load_experiment
from test_experiment import FakeMotif, write_experiment


def status(out, capsys) -> dict:
    capsys.readouterr()
    assert main(["experiment", "--status", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [[c.strip() for c in line.split("│")] for line in lines if line.count("│") == 4]
    return {p[1]: f"{p[2]} {p[3]}".strip() for p in rows if p[1] != "cell"}


def test_a_failed_cell_is_reported_shown_and_resubmitted_by_the_rerun(tmp_path, monkeypatch, capsys):
    exp = load_experiment(write_experiment(tmp_path))
    out = tmp_path / "out"

    class Failing(FakeMotif):
        def __call__(self, argv, log, **kw):
            if argv[0] == "train" and "--seed" in argv and argv[argv.index("--seed") + 1] == "1":
                (log.parent / "checkpoints" / "512.orbax-checkpoint-tmp").mkdir(parents=True)  # not finished
                log.write_text("$ motif train\nValueError: the learner diverged\n")
                raise MotifError(f"`motif train` failed (exit 1); see {log}")
            return super().__call__(argv, log, **kw)

    monkeypatch.setattr(pipeline, "run_motif", Failing())
    with pytest.raises(MotifError, match="1 cell.* failed: intrinsic_s1"):
        run.run_experiment(exp, out, progress=False)
    assert "(3 of 4 cells finished so far)" in (out / "table.md").read_text()
    states = status(out, capsys)
    assert states["random_s0"].startswith("done") and states["intrinsic_s1"].startswith("failed")
    assert "ValueError: the learner diverged" in states["intrinsic_s1"]
    fake = FakeMotif()
    monkeypatch.setattr(pipeline, "run_motif", fake)
    run.run_experiment(exp, out, progress=False)
    assert [c[0] for c in fake.calls] == ["train", "evaluate"]  # only the failed cell, from the start
    assert "--resume" not in fake.calls[0]
    assert not (out / "cells" / "intrinsic_s1" / "failed.json").exists()
    assert all(state.startswith("done") for state in status(out, capsys).values())


def test_status_tells_running_from_lost_and_pending(tmp_path, capsys):
    out = tmp_path / "out"
    (out / "cells" / "a_s0").mkdir(parents=True)
    (out / "cells.json").write_text(json.dumps(["a_s0", "b_s0", "c_s0", "d_s0"]))
    with executors.heartbeat(out / "cells" / "a_s0"):
        beat = {"host": socket.gethostname(), "pid": 2**22 + 7, "started": 0, "beat": time.time()}
        (out / "cells" / "b_s0").mkdir()
        (out / "cells" / "b_s0" / "running.json").write_text(json.dumps(beat))  # its process is gone
        far = {**beat, "host": "elsewhere", "beat": time.time() - executors.STALE_S - 1}
        (out / "cells" / "c_s0").mkdir()
        (out / "cells" / "c_s0" / "running.json").write_text(json.dumps(far))  # no beat for too long
        states = status(out, capsys)
    assert states["a_s0"].startswith("running") and f"pid {os.getpid()}" in states["a_s0"]
    assert [states[c] for c in ("b_s0", "c_s0", "d_s0")] == ["pending"] * 3
    assert not (out / "cells" / "a_s0" / "running.json").exists()  # removed when the cell ends
    assert main(["experiment", "--status", str(tmp_path)]) == 2  # not an experiment's folder: one-line error
    assert "no cells.json" in capsys.readouterr().err


def test_executor_flags_override_the_file_and_bad_values_name_the_field(tmp_path, monkeypatch):
    path = write_experiment(tmp_path)
    seen = {}
    monkeypatch.setattr(run, "run_experiment", lambda exp, out, progress, only: seen.setdefault("x", exp.executor))
    monkeypatch.setattr(run, "write_outputs", lambda *a: None)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "table.md").write_text("")
    argv = ["experiment", str(path), "--out", str(tmp_path / "out"), "--executor", "slurm", "--partition", "gpu"]
    assert main([*argv, "--gpus-per-cell", "2", "--time-limit-min", "90"]) == 0
    x = seen["x"]
    assert (x.kind, x.partition, x.gpus_per_cell, x.time_limit_min, x.cpus_per_cell) == ("slurm", "gpu", 2, 90, 1)
    with pytest.raises(MotifError, match="executor.kind must be local, slurm or ray"):
        load_experiment(path, ["executor.kind=kubernetes"])


def test_submitit_job_array_runs_the_grid_like_the_local_executor(tmp_path, monkeypatch):
    """submitit's in-process `debug` cluster: the same job array and bookkeeping as on SLURM."""
    path = write_experiment(tmp_path)
    monkeypatch.setattr(pipeline, "run_motif", FakeMotif())
    local = run.run_experiment(load_experiment(path), tmp_path / "local", progress=False)
    monkeypatch.setattr(pipeline, "run_motif", FakeMotif())
    exp = load_experiment(path, ["executor.kind=slurm", "executor.cluster=debug"])
    assert run.run_experiment(exp, tmp_path / "slurm", progress=False) == local
    assert (tmp_path / "slurm" / "slurm").is_dir()
    assert executors.CellJob().checkpoint("cell").args == ("cell",)  # requeued on preemption with its cell


# ----------------------------------------------------------------------------- real grids (slow)

GRID = """
name: grid
task: score
seeds: [0, 1]
train:
  config: {config}
  steps: 4096
  set: [run.sync=true, env.num_envs=4, run.checkpoint_every=512, "learner.devices=[0]"]
evaluate: {{episodes: 2, num_envs: 1, seed: 10, max_episode_steps: 30}}
conditions:
  ext: {{extrinsic_coef: 1.0, llm_coef: 0}}
  half: {{extrinsic_coef: 0.5, llm_coef: 0}}
executor: {{cpus_per_cell: 1, array_parallelism: 2}}
"""


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """The tiny grid's file and its results on the local executor."""
    folder = tmp_path_factory.mktemp("grid")
    path = folder / "grid.yaml"
    path.write_text(GRID.format(config=Path(__file__).resolve().parents[1] / "configs" / "cpu.yaml"))
    run.run_experiment(load_experiment(path), folder / "local", progress=False)
    return path, json.loads((folder / "local" / "results.json").read_text())


def cell_reports(out: Path) -> dict:
    reports = {p.parent.name: json.loads(p.read_text())["report"] for p in out.glob("cells/*/result.json")}
    return {name: {k: v for k, v in r.items() if k != "checkpoint"} for name, r in reports.items()}  # its path


def keys(obj):
    return {k: keys(v) for k, v in obj.items()} if isinstance(obj, dict) else None


@pytest.mark.cluster
def test_ray_grid_survives_a_killed_worker_and_matches_the_local_run(grid, tmp_path):
    ray = pytest.importorskip("ray")
    path, local = grid
    out = tmp_path / "ray"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        exp = load_experiment(path, ["executor.kind=ray"])
        errors = []

        def drive():
            try:
                run.run_experiment(exp, out, progress=False)
            except BaseException as err:
                errors.append(err)

        driver = threading.Thread(target=drive, daemon=True)
        driver.start()
        victim = None
        while victim is None and driver.is_alive():  # a cell in training with a checkpoint saved
            for folder in out.glob("cells/*"):
                info = executors.running(folder)
                if info and any(p.name.isdigit() for p in folder.glob("checkpoints/*")):
                    victim = folder
                    os.kill(info["pid"], signal.SIGKILL)  # the Ray worker running the cell
                    break
            time.sleep(0.05)
        driver.join(timeout=900)
    finally:
        ray.shutdown()
    assert victim is not None and not driver.is_alive() and not errors
    assert "--resume" in (victim / "train.log").read_text()  # Ray retried it; it continued from its checkpoint
    saved = json.loads((out / "results.json").read_text())
    assert keys(saved) == keys(local)
    reference = cell_reports(path.parent / "local")
    reports = cell_reports(out)
    assert set(reports) == set(reference) == {"ext_s0", "ext_s1", "half_s0", "half_s1"}
    for name in reports.keys() - {victim.name}:  # the cells not killed learnt exactly what the local run did
        assert reports[name] == reference[name], name
    for folder in out.glob("cells/*"):  # every cell trained once, the killed one once more
        assert (folder / "train.log").read_text().count("$ motif train") == 1 + (folder == victim)


@pytest.mark.cluster
def test_submitit_local_executor_grid_equals_the_local_run(grid, tmp_path):
    pytest.importorskip("submitit")
    path, local = grid
    exp = load_experiment(path, ["executor.kind=slurm", "executor.cluster=local"])
    run.run_experiment(exp, tmp_path / "slurm", progress=False)
    assert json.loads((tmp_path / "slurm" / "results.json").read_text()) == local


def test_a_second_job_of_a_running_cell_stops_and_one_of_a_done_cell_returns_its_result(tmp_path):
    """A SLURM job still queued when a rerun resubmitted its cell must not train into the same folder."""
    folder = tmp_path / "cells" / "a_s0"
    folder.mkdir(parents=True)
    cell = run.Cell("a", 0, folder, [], folder / "evaluation.partial.json", tmp_path)
    with executors.claimed(folder):
        with pytest.raises(MotifError, match="another job is running it"):
            run.run_cell(cell)
    (folder / "result.json").write_text(json.dumps({"cell": "a_s0", "seconds": 1.0}))
    assert run.run_cell(cell) == {"cell": "a_s0", "seconds": 1.0}
