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

import numpy as np

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


def test_two_processes_train_one_data_parallel_model():
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOTIF_")}
    env.update(JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=2", PYTHONPATH=str(ROOT))
    procs = [
        subprocess.Popen(
            ["bash", str(ROOT / "launch" / "multihost.sh"), "--coordinator", f"127.0.0.1:{port}",
             "--num-processes", "2", "--process-id", str(i), "--", sys.executable, "-c", WORKER],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(2)
    ]
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err[-3000:]
            line = next(l for l in out.splitlines() if l.startswith("RESULT "))
            results.append(json.loads(line[len("RESULT "):]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert sorted(r["process"] for r in results) == [0, 1]
    assert all(r["processes"] == 2 and r["devices"] == 4 for r in results)
    assert sorted(tuple(r["local_rows"]) for r in results) == [(0, 4), (4, 8)]
    np.testing.assert_array_equal(results[0]["w"], results[1]["w"])
    np.testing.assert_allclose(results[0]["w"], _reference_sgd(), rtol=1e-5, atol=1e-6)


def test_multihost_script_rejects_bad_process_id():
    out = subprocess.run(
        ["bash", str(ROOT / "launch" / "multihost.sh"), "--coordinator", "127.0.0.1:1", "--num-processes", "2",
         "--process-id", "2", "--", "true"],
        capture_output=True, text=True, env={k: v for k, v in os.environ.items() if not k.startswith("SLURM_")},
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


def _annotate_sh(*args):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    env = {k: v for k, v in env.items() if not k.startswith("SLURM_")}
    return subprocess.run(["bash", str(ROOT / "launch" / "annotate.sh"), *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=120)


def test_annotate_launcher_shards_over_hosts_then_verifies(tmp_path):
    expected = _tiny_dataset(tmp_path / "ds")
    incomplete = _annotate_sh(tmp_path / "ds", "--name", "sc", "--backend", "score", "--chunks-per-host", "2",
                              "--hosts", "2", "--host-index", "1")
    assert incomplete.returncode == 0, incomplete.stderr
    assert "--verify-only --num-chunks 4" in incomplete.stderr
    verify = _annotate_sh(tmp_path / "ds", "--name", "sc", "--verify-only", "--num-chunks", "4")
    assert verify.returncode == 1 and "still unlabelled" in verify.stdout  # host 0 has not run yet
    done = _annotate_sh(tmp_path / "ds", "--name", "sc", "--backend", "score", "--chunks-per-host", "2",
                        "--hosts", "2", "--host-index", "0")
    assert done.returncode == 0, done.stderr
    verify = _annotate_sh(tmp_path / "ds", "--name", "sc", "--verify-only", "--num-chunks", "4")
    assert verify.returncode == 0 and "every pair is labelled" in verify.stdout
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
    out = subprocess.run(["bash", str(ROOT / "launch" / "local.sh"), "--fake-devices", "3", "--", sys.executable, "-c", code],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["3", "None"]
