"""Multi-process launch on CPU: two processes join one JAX job through launch/multihost.sh.

Each process contributes half of a global batch with ``motif_jax.parallel.shard_batch`` and runs a
jitted data-parallel SGD on it; both must end with the parameters a single process computes on the
whole batch, which only happens if the batch really was assembled across the two processes.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

from motif_jax import parallel
from motif_jax.metrics import METRICS_FILE
from motif_jax.reward.checkpoints import restore_inference
from motif_jax.reward.train import preset_config, train_reward
from reward_synthetic import write_gold_dataset

ROOT = Path(__file__).resolve().parents[1]
STEPS, LR, ROWS, DIM = 5, 0.1, 8, 3

WORKER = textwrap.dedent(
    f"""
    import json
    import jax, jax.numpy as jnp, numpy as np
    from motif_jax import parallel

    assert parallel.maybe_initialize_distributed()
    mesh = parallel.make_mesh()
    rng = np.random.default_rng(0)
    x_all = rng.normal(size=({ROWS}, {DIM})).astype(np.float32)
    y_all = (x_all @ np.array([1.0, -2.0, 0.5], np.float32)).astype(np.float32)
    rows = parallel.local_rows({ROWS})
    batch = parallel.shard_batch({{"x": x_all[rows], "y": y_all[rows]}}, mesh)
    w = parallel.replicate(jnp.zeros(({DIM},), jnp.float32), mesh)

    @jax.jit
    def step(w, batch):
        loss_fn = lambda w: jnp.mean((batch["x"] @ w - batch["y"]) ** 2)
        loss, grad = jax.value_and_grad(loss_fn)(w)
        return w - {LR} * grad, loss

    for _ in range({STEPS}):
        w, loss = step(w, batch)
    print("RESULT " + json.dumps({{
        "process": jax.process_index(), "processes": jax.process_count(), "devices": jax.device_count(),
        "local_rows": [rows.start, rows.stop], "w": np.asarray(w).tolist(), "loss": float(loss)}}))
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _reference_sgd() -> np.ndarray:
    """The same SGD on the full batch in one process (float64 numpy)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(ROWS, DIM)).astype(np.float32).astype(np.float64)
    y = x @ np.array([1.0, -2.0, 0.5])
    w = np.zeros(DIM)
    for _ in range(STEPS):
        w = w - LR * (2.0 / ROWS) * x.T @ (x @ w - y)
    return w


def _run_two_processes(command: list[str], cwd: Path | None = None) -> list[subprocess.CompletedProcess]:
    """Start ``command`` as processes 0 and 1 of one JAX job (2 CPU devices each) through
    launch/multihost.sh with a coordinator on a free local port; wait for both."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOTIF_", "SLURM_"))}
    env.update(
        JAX_PLATFORMS="cpu",
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
        PYTHONPATH=str(ROOT),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )
    procs = [
        subprocess.Popen(
            [
                "bash",
                str(ROOT / "launch" / "multihost.sh"),
                "--coordinator",
                f"127.0.0.1:{port}",
                "--num-processes",
                "2",
                "--process-id",
                str(i),
                "--",
                *command,
            ],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    done = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=180)
            done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for i, result in enumerate(done):
        assert result.returncode == 0, f"process {i} failed:\n{result.stderr[-3000:]}"
    return done


def test_two_processes_train_one_data_parallel_model():
    results = []
    for done in _run_two_processes([sys.executable, "-c", WORKER]):
        line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
        results.append(json.loads(line[len("RESULT ") :]))
    assert sorted(r["process"] for r in results) == [0, 1]
    assert all(r["processes"] == 2 and r["devices"] == 4 for r in results)
    assert sorted(tuple(r["local_rows"]) for r in results) == [(0, 4), (4, 8)]
    np.testing.assert_array_equal(results[0]["w"], results[1]["w"])
    np.testing.assert_allclose(results[0]["w"], _reference_sgd(), rtol=1e-5, atol=1e-6)


TIMING_KEYS = ("pairs_per_s", "epoch_seconds")  # wall-clock numbers, the only metrics allowed to differ


def test_two_processes_train_the_reward_model_like_one_process_on_four_devices(tmp_path):
    """`motif train-reward` as 2 processes x 2 CPU devices must log the metrics, normalisation
    statistics and final weights of one process on 4 devices with the same seed and global batch;
    process 0 alone writes metrics.jsonl and prints, and the shared Orbax checkpoint restores whole."""
    write_gold_dataset(tmp_path / "ds", num_pairs=120)
    procs = _run_two_processes(
        [
            "motif",
            "train-reward",
            "ds",
            "--annotator",
            "score",
            "--preset",
            "tiny",
            "--epochs",
            "2",
            "--batch-size",
            "16",
            "--seed",
            "3",
            "--out",
            "multi",
        ],
        cwd=tmp_path,
    )
    four = jax.devices()[:4]
    single = train_reward(
        tmp_path / "ds",
        "score",
        tmp_path / "single",
        preset_config("tiny", epochs=2, batch_size=16, seed=3),
        devices=four,
        progress=False,
        log=None,
    )

    multi = [json.loads(line) for line in (tmp_path / "multi" / METRICS_FILE).read_text().splitlines()]
    assert [r["epoch"] for r in multi] == [1, 2] and multi[-1]["step"] == 12  # 93 train pairs / 16 = 6 steps an epoch
    for got, want in zip(multi, single):
        assert got.keys() == want.keys()
        for key in got.keys() - set(TIMING_KEYS):
            np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6, err_msg=key)

    assert "epoch 2/2" in procs[0].stdout and "reward model saved" in procs[0].stdout
    assert not any(line.startswith(("epoch ", "reward model")) for line in procs[1].stdout.splitlines())

    mesh = parallel.make_mesh(four)
    from_multi, from_single = restore_inference(tmp_path / "multi", mesh), restore_inference(tmp_path / "single", mesh)
    assert from_multi.step == from_single.step == 12
    assert sorted(int(p.name) for p in (tmp_path / "multi" / "checkpoints").iterdir() if p.name.isdigit()) == [6, 12]
    # Gloo sums gradients in another order than one process does; Adam divides by sqrt(v), so on
    # near-zero gradients that rounding moves a weight by a visible fraction of lr (1e-3) per step.
    for got, want in zip(
        jax.tree.leaves((from_multi.weights, from_multi.stats)),
        jax.tree.leaves((from_single.weights, from_single.stats)),
    ):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-3, atol=1e-4)


def test_multihost_script_rejects_bad_process_id():
    out = subprocess.run(
        [
            "bash",
            str(ROOT / "launch" / "multihost.sh"),
            "--coordinator",
            "127.0.0.1:1",
            "--num-processes",
            "2",
            "--process-id",
            "2",
            "--",
            "true",
        ],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("SLURM_")},
    )
    assert out.returncode == 2 and "--process-id must be in [0, 2)" in out.stderr


def _tiny_dataset(path, pairs=10):
    """An original-Motif-layout dataset (no meta.json): messages and per-member scores."""
    (path / "data").mkdir(parents=True)
    (path / "info").mkdir()
    messages = np.zeros((pairs, 2, 1, 256), np.uint8)
    for i in range(pairs):
        for j in range(2):
            text = f"caption {i} {j}".encode()
            messages[i, j, 0, : len(text)] = np.frombuffer(text, np.uint8)
    np.save(path / "data" / "message.npy", messages)
    scores = np.stack([np.arange(pairs) % 3, np.full(pairs, 1)], axis=1)
    np.save(path / "info" / "score.npy", scores)
    return np.where(scores[:, 0] > scores[:, 1], 0, np.where(scores[:, 0] < scores[:, 1], 1, 2))


def test_annotate_chunks_on_several_hosts_then_verify(tmp_path, capsys):
    """Chunks run apart (`--num-chunks 4 --chunk I`, e.g. per host); the verify step lists what is left."""
    from motif_jax.annotate.verify import main as verify
    from motif_jax.cli import main

    expected = _tiny_dataset(tmp_path / "ds")
    check = ["--annotator", "sc", "--num-chunks", "4"]

    def chunks(*which):
        for chunk in which:
            argv = ["annotate", str(tmp_path / "ds"), "--backend", "score", "--name", "sc", "--no-progress"]
            assert main([*argv, "--num-chunks", "4", "--chunk", str(chunk)]) == 0

    chunks(2, 3)
    capsys.readouterr()
    assert verify([str(tmp_path / "ds"), *check]) == 1 and "still unlabelled" in capsys.readouterr().out
    chunks(0, 1)
    capsys.readouterr()
    assert verify([str(tmp_path / "ds"), *check]) == 0 and "every pair is labelled" in capsys.readouterr().out
    np.testing.assert_array_equal(np.load(tmp_path / "ds" / "preference" / "sc.npy"), expected)


def test_merge_fills_only_unknown_labels_and_counts_conflicts():
    from motif_jax.annotate.verify import merge_labels, unlabelled_per_chunk

    target = np.array([3, 0, 1, 3, 2], np.int8)
    source = np.array([1, 1, 1, 3, 2], np.int8)
    stats = merge_labels(target, source)
    assert target.tolist() == [1, 0, 1, 3, 2]
    assert (stats.filled, stats.conflicts) == (1, 1)
    assert [(c, r.start, r.stop, n) for c, r, n in unlabelled_per_chunk(target, 2)] == [(0, 0, 2, 0), (1, 2, 5, 1)]


def test_local_launcher_exposes_fake_cpu_devices_and_clears_multihost_settings():
    env = dict(os.environ, MOTIF_COORDINATOR="10.0.0.1:1", PYTHONPATH=str(ROOT))
    env.pop("XLA_FLAGS", None)
    code = "import os, jax; print(jax.device_count(), os.environ.get('MOTIF_COORDINATOR'))"
    out = subprocess.run(
        ["bash", str(ROOT / "launch" / "local.sh"), "--fake-devices", "3", "--", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["3", "None"]


LEARNER_KEYS = ("loss", "policy_loss", "value_loss", "entropy", "approx_kl", "grad_norm", "value_mean")


def test_two_processes_train_the_agent_like_one_process_on_four_devices(tmp_path):
    """`motif train --sync` as 2 processes x 2 CPU devices x 4 envs must log the losses of one
    process on 4 devices x 8 envs (envs and action sampling are keyed by global env id), write one
    checkpoint that restores on 1 device, and resume as 1 process on 8 devices."""
    from motif_jax.agent.config import resolve_config
    from motif_jax.agent.policy import load_policy
    from motif_jax.agent.trainer import Trainer
    from motif_jax.cli import main

    sets = ["run.tensorboard=false", "run.log_every_s=0", "ppo.rollout=16", "run.checkpoint_every=1000000"]
    common = [
        "--env",
        "envpool:CartPole-v1",
        "--preset",
        "mlp",
        "--sync",
        "--seed",
        "2",
        *[a for s in sets for a in ("--set", s)],
    ]
    procs = _run_two_processes(
        ["motif", "train", *common, "--num-envs", "4", "--steps", "384", "--out", "multi"], cwd=tmp_path
    )
    assert "3 updates" in procs[0].stdout
    config = resolve_config(
        preset="mlp",
        overrides=[*sets, "env.num_envs=8"],
        flags={"task": "envpool:CartPole-v1", "steps": 384, "seed": 2, "run.sync": True},
    )
    single = Trainer(config, tmp_path / "single", devices=jax.devices()[:4], console=False)
    single.train()

    read = lambda run: [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    multi, one = read("multi"), read("single")
    assert [r["updates"] for r in multi] == [r["updates"] for r in one] == [1, 2, 3]
    for got, want in zip(multi, one):
        for key in LEARNER_KEYS:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-4, atol=1e-6, err_msg=key)

    assert [p.name for p in (tmp_path / "multi" / "checkpoints").iterdir() if p.name.isdigit()] == ["384"]
    restored = load_policy(tmp_path / "multi")  # on this process's first device
    want = jax.device_get(single.train_state["params"])
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), jax.device_get(restored.params), want
    )

    # Resume the 2-process run as one process on 8 devices with the same global batch.
    assert main(["train", "--resume", "--out", str(tmp_path / "multi"), "--num-envs", "8", "--steps", "768"]) == 0
    assert [r["updates"] for r in read("multi")][-1] == 6


@pytest.mark.slow
def test_gpu_check_runs_at_small_sizes_on_cpu(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOTIF_", "SLURM_"))}
    env.update(JAX_PLATFORMS="cpu", XLA_FLAGS="", PYTHON=sys.executable, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        ["bash", str(ROOT / "launch" / "gpu_check.sh"), "--out", str(tmp_path / "check.json"), "--seconds", "3"],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads((tmp_path / "check.json").read_text())
    assert result["platform"] == "cpu" and len(result["devices"]) == 1
    assert result["train_all"]["num_envs"] == 16 and result["train_all"]["train_sps"] > 0
    assert {"learner_fps", "flops_per_frame", "params"} <= set(result["learner_all"])
    assert result["reward"]["score_captions_per_s"] > 0 and result["actor"]["host_us_per_step"] > 0
    assert result["experiment"]["conditions"]["ext+int"]["n_episodes"] == 2
    assert result["annotate"] == {"backend": "rules", "pairs": 200, "seconds": result["annotate"]["seconds"]}
