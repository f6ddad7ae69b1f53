"""`motif annotate --backend openai` against real servers that crash mid-run: `vllm serve` (the
OpenAI-compatible server of the vLLM wheel) and llama.cpp's server, on 127.0.0.1.

The server is SIGKILLed once some blocks are labelled; the run stops with an error; the server is
started again and the same command resumes. Checked: no label written before the crash changes, no
caption pair is in the answer cache twice (no recorded answer was asked for again), and the final
labels equal those of an uninterrupted run (greedy decoding, so the answers are deterministic).
"""

import time

import numpy as np
import pytest

from llm_support import (
    cache_keys,
    distinct_pairs,
    exported_model,
    free_port,
    labels_of,
    llamacpp_server,
    motif,
    vllm_server,
)

pytestmark = pytest.mark.llm

NAME = "served"
PAIRS, REPEATS = 20, 4


def annotate(path, url, *extra):
    return motif(
        "annotate",
        str(path),
        "--backend",
        "openai",
        "--base-url",
        url,
        "--model",
        "smol",
        "--name",
        NAME,
        "--temperature",
        "0",
        "--concurrency",
        "4",
        "--batch-size",
        "4",
        "--max-retries",
        "1",
        "--no-progress",
        *extra,
    )


def crash_and_resume(tmp_path, make_server, extra):
    import subprocess

    from llm_support import BIN, engine_env

    fresh, crashed = (
        distinct_pairs(tmp_path / "fresh", PAIRS, repeats=REPEATS),
        distinct_pairs(tmp_path / "crashed", PAIRS, repeats=REPEATS),
    )
    server = make_server(free_port(), tmp_path / "server.log").start()
    try:
        done = annotate(fresh, server.base_url, *extra)
        assert done.returncode == 0, done.stderr[-2000:]
        expected = labels_of(fresh, NAME)
        assert (expected != 3).mean() > 0.9, expected  # the judge answers (labels 0/1/2) almost always

        run = subprocess.Popen(
            [
                str(BIN / "motif"),
                "annotate",
                str(crashed),
                "--backend",
                "openai",
                "--base-url",
                server.base_url,
                "--model",
                "smol",
                "--name",
                NAME,
                "--temperature",
                "0",
                "--concurrency",
                "4",
                "--batch-size",
                "4",
                "--max-retries",
                "1",
                "--no-progress",
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=engine_env(),
        )
        label_file = crashed / "preference" / f"{NAME}.npy"
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline and run.poll() is None:
            if label_file.exists() and (np.load(label_file) != 3).sum() >= 8:
                break
            time.sleep(0.2)
        server.kill()
        output = run.communicate(timeout=300)[0]
        before = labels_of(crashed, NAME)
        answered = cache_keys(crashed, NAME)
        assert run.returncode != 0, "the run should stop when its server dies: " + output[-1000:]
        assert "error" in output and "Traceback" not in output, output[-1000:]
        assert 8 <= (before != 3).sum() < PAIRS + REPEATS

        server.start()
        resumed = annotate(crashed, server.base_url, *extra)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
    finally:
        server.kill()
    after = labels_of(crashed, NAME)
    keys = cache_keys(crashed, NAME)
    assert (after[before != 3] == before[before != 3]).all()  # 0 labels lost or changed
    assert len(keys) == len(set(keys)) == PAIRS  # no pair asked (and recorded) twice
    assert keys[: len(answered)] == answered  # the rerun asked only new pairs
    np.testing.assert_array_equal(after, expected)  # same as the uninterrupted run
    return after


def test_vllm_serve_crash_resume(tmp_path, tmp_path_factory):
    model = exported_model(tmp_path_factory)
    labels = crash_and_resume(
        tmp_path,
        lambda port, log: vllm_server(model, port, log),
        ("--mode", "generate", "--max-tokens", "48", "--structured-outputs"),
    )
    assert (labels == 3).sum() == 0  # structured outputs: every reply ends with a verdict


def test_llama_cpp_server_crash_resume(tmp_path):
    pytest.importorskip("uvicorn")
    from motif_jax.annotate.backends.llamacpp import default_model_path

    crash_and_resume(
        tmp_path, lambda port, log: llamacpp_server(default_model_path(), port, log), ("--mode", "logprob")
    )
