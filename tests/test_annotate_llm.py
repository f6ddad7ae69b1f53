"""End to end with the real SmolLM2-135M-Instruct: in process (llamacpp) and through llama-cpp-python's
OpenAI-compatible server (openai), in both verdict modes. Kept to a few unique pairs for speed."""

import contextlib
import re
import socket
import subprocess
import sys
import time

import httpx
import pytest

from annotate_data import write_pairs
from motif_jax.annotate.backends.llamacpp import default_model_path
from motif_jax.annotate.verdict import hard_label
from motif_jax.cli import main
from motif_jax.data import open_dataset

pytest.importorskip("llama_cpp")

PAIRS = [
    ["You kill the newt!", "It's a wall."],
    ["It's a wall.", "You kill the newt!"],  # same pair, other order: cached
    ["You see here 12 gold pieces.", ""],
    ["The jackal bites!", "The jackal bites!"],
]  # identical: tie without a call


def annotate(path, capsys, *extra):
    code = main(["annotate", str(path), "--goal", "defaultgoal", "--no-progress", "--threads", "1", *extra])
    out = capsys.readouterr().out
    assert code == 0, out
    name = re.search(r"annotator: (\S+)", out).group(1)
    return name, open_dataset(path)


def check_logprob(ds, name, full_vocabulary=True):
    """In process we see the whole distribution; a server shows only its top-20 tokens, where one
    of "1"/"2" may be missing (probability 0, so a soft label of exactly 0 or 1)."""
    labels, soft = ds.labels(name), ds.soft_labels(name)
    assert set(labels.tolist()) <= {0, 1, 2} and labels[3] == 2 and soft[3] == 0.5
    assert ((soft > 0) & (soft < 1)).all() if full_vocabulary else ((soft >= 0) & (soft <= 1)).all()
    assert soft[1] == pytest.approx(1 - soft[0], abs=1e-6)  # reused, swapped
    assert [hard_label(float(p), 0.1) for p in soft] == labels.tolist()


def check_generate(ds, name):
    labels = ds.labels(name)
    assert set(labels.tolist()) <= {0, 1, 2, 3} and labels[3] == 2
    swap = {0: 1, 1: 0, 2: 2, 3: 3}
    assert labels[1] == swap[int(labels[0])]


def test_llamacpp_logprob_and_generate(tmp_path, capsys):
    path = write_pairs(tmp_path / "pairs", PAIRS)
    name, ds = annotate(path, capsys, "--backend", "llamacpp", "--mode", "logprob")
    assert name == "smollm2-135m-instruct_defaultgoal_default_logprob"
    check_logprob(ds, name)
    name, ds = annotate(
        path,
        capsys,
        "--backend",
        "llamacpp",
        "--mode",
        "generate",
        "--max-tokens",
        "40",
        "--log-dir",
        str(tmp_path / "logs"),
    )
    assert name == "smollm2-135m-instruct_defaultgoal_default"
    check_generate(ds, name)
    logs = sorted((tmp_path / "logs" / name).glob("*.txt"))
    assert len(logs) == 2 and "### assistant" in logs[0].read_text()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def llama_server(log_path):
    pytest.importorskip("uvicorn")
    pytest.importorskip("sse_starlette")
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(default_model_path()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--n_threads",
        "1",
        "--n_threads_batch",
        "1",
        "--seed",
        "0",
        "--model_alias",
        "smollm2",
    ]
    log = open(log_path, "wb")  # the server is chatty: a pipe would fill up and block it
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.time() + 60
        while True:
            if server.poll() is not None:
                pytest.fail(f"llama_cpp.server exited: {log_path.read_text(errors='replace')[-500:]}")
            try:
                if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                pytest.fail("llama_cpp.server did not start within 60 s")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def test_openai_backend_against_llama_cpp_server(tmp_path, capsys):
    path = write_pairs(tmp_path / "pairs", PAIRS)
    with llama_server(tmp_path / "server.log") as url:
        common = ("--backend", "openai", "--base-url", url, "--model", "smollm2", "--concurrency", "2")
        name, ds = annotate(path, capsys, *common, "--mode", "logprob")
        assert name == "smollm2_defaultgoal_default_logprob"
        check_logprob(ds, name, full_vocabulary=False)
        name, ds = annotate(path, capsys, *common, "--mode", "generate", "--max-tokens", "40")
        check_generate(ds, name)
