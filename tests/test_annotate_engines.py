"""`motif annotate --engines 2` on a local Ray cluster, one engine killed mid-run: every pair ends up
labelled, every saved answer's caption pair is in the cache once, and the labels are those of one
engine. Engines are Ray actors asking a scripted OpenAI-compatible server, or llama.cpp's server
running the bundled SmolLM2."""

import json
import subprocess
import time

import numpy as np
import pytest

from llm_support import BIN, distinct_pairs, engine_env, free_port, labels_of, llamacpp_server, motif
from motif_jax.annotate.engines import split
from motif_jax.cli import main


def test_split_keeps_order_and_makes_no_empty_units():
    assert split(list(range(5)), 2) == [[0, 1], [2, 3, 4]]
    assert split([7], 4) == [[7]]
    assert sum(split(list(range(100)), 8), []) == list(range(100))


@pytest.mark.parametrize(
    "flags, words",
    [(("--backend", "rules", "--engines", "2"), "run LLM engines"), (("--engines", "0"), "at least 1")],
)
def test_engine_options_are_checked_first(tmp_path, capsys, flags, words):
    path = distinct_pairs(tmp_path / "ds", 2)
    assert main(["annotate", str(path), *flags]) == 2
    assert words in capsys.readouterr().err


@pytest.fixture(scope="module")
def cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def kill_engine_when(ray, proc, ready, restart: bool, timeout: float = 300) -> None:
    """Once ``ready()``, kill the run's engine 1 (its worker process, through Ray)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if ready():
            names = [
                a
                for a in ray.util.list_named_actors(all_namespaces=True)
                if a["name"].startswith(f"annotate-engine1-{proc.pid}")
            ]
            if names:
                ray.kill(ray.get_actor(names[0]["name"], namespace=names[0]["namespace"]), no_restart=not restart)
                return
        time.sleep(0.05)
    pytest.fail("the run ended before engine 1 could be killed")


def run_engines(ray, path, base_url, ready, restart, *extra):
    argv = [str(BIN / "motif"), "annotate", str(path), "--backend", "openai", "--base-url", base_url]
    argv += ["--engines", "2", "--ray-address", ray.get_runtime_context().gcs_address, "--no-progress", *extra]
    argv += ["--engine-restarts", "1" if restart else "0"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=engine_env())
    kill_engine_when(ray, proc, ready, restart)
    output = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, output[-3000:]
    assert ("engine 1 died" in output) != restart, output[-3000:]  # a restarted engine redoes its own unit
    return output


def saved_keys(path, name) -> list[str]:
    lines = (path / "annotations" / f"{name}.cache.jsonl").read_text().splitlines()
    return [json.loads(line)["key"] for line in lines]


@pytest.mark.cluster
@pytest.mark.parametrize("restart", [False, True], ids=["handed-over", "restarted"])
def test_two_engines_one_killed_label_every_pair_once(cluster, tmp_path, restart):
    from test_kill import StubJudge, expected_label

    captions = [f"You see here {n} gold pieces." for n in (1, 5, 12, 40, 100, 350)] + ["It's a wall.", ""]
    pick = np.random.default_rng(0).integers(0, len(captions), size=(120, 2))
    pairs = [[captions[i], captions[j]] for i, j in pick]
    from annotate_data import write_pairs

    path = write_pairs(tmp_path / "ds", pairs)
    judge = StubJudge(delay_s=0.02)
    try:
        extra = ("--model", "stub", "--name", "stub", "--batch-size", "4", "--concurrency", "2")
        run_engines(cluster, path, judge.url, lambda: judge.count() >= 10, restart, *extra)
    finally:
        judge.close()
    labels = labels_of(path, "stub")
    assert labels.tolist() == [expected_label(a, b) for a, b in pairs]  # 0 unlabelled, the judge's verdicts
    keys = saved_keys(path, "stub")
    assert len(keys) == len(set(keys)) == len({frozenset(p) for p in map(tuple, pairs) if p[0] != p[1]})
    assert len(judge.asked) - len(keys) <= 2  # re-asked: the killed unit at most (blocks of 8 pairs, 4 units)


@pytest.mark.cluster
def test_two_engines_on_llama_cpp_server_one_killed_match_one_engine(cluster, tmp_path):
    pytest.importorskip("uvicorn")
    from motif_jax.annotate.backends.llamacpp import default_model_path

    server = llamacpp_server(default_model_path(), free_port(), tmp_path / "server.log").start()
    common = ("--model", "smol", "--name", "smol", "--mode", "logprob", "--temperature", "0", "--batch-size", "2")
    try:
        one, two = distinct_pairs(tmp_path / "one", 24, repeats=4), distinct_pairs(tmp_path / "two", 24, repeats=4)
        single = motif("annotate", str(one), "--backend", "openai", "--base-url", server.base_url, *common)
        assert single.returncode == 0, single.stderr[-2000:]
        label_file = two / "preference" / "smol.npy"
        ready = lambda: label_file.exists() and (np.load(label_file) != 3).sum() >= 4  # noqa: E731
        run_engines(cluster, two, server.base_url, ready, False, *common)
    finally:
        server.kill()
    np.testing.assert_array_equal(labels_of(two, "smol"), labels_of(one, "smol"))
    assert (labels_of(two, "smol") != 3).all()
    keys = saved_keys(two, "smol")
    assert len(keys) == len(set(keys)) == 24
