"""Helpers of the engine tests (`make test-llm`): the exported model, datasets, and real servers.

The servers are started as process groups on 127.0.0.1 at a free port and killed as a group (the
vLLM server runs its engine in a child process), so a test can stop one abruptly and start it again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from annotate_data import write_pairs

BIN = Path(sys.executable).parent
CAPTIONS = [
    "You kill the newt!",
    "It's a wall.",
    "You see here 12 gold pieces.",
    "The jackal bites!",
    "You climb down the stairs.",
    "",
    "You hear some noises in the distance.",
    "Welcome to experience level 2.",
    "You find a hidden passage.",
    "The grid bug misses!",
    "You feel hungry.",
    "There is a staircase down here.",
]
ENGINE_ENV = {
    "VLLM_CPU_KVCACHE_SPACE": "2",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
}


def engine_env() -> dict:
    return {**os.environ, **ENGINE_ENV}


def exported_model(tmp_path_factory) -> Path:
    """The SmolLM2 HF folder `make test-llm` exported (MOTIF_VLLM_MODEL), else one exported here."""
    given = os.environ.get("MOTIF_VLLM_MODEL")
    if given:
        return Path(given)
    from motif_jax.annotate.export import export_model

    return export_model(None, tmp_path_factory.mktemp("model") / "smollm2-135m-instruct")


def distinct_pairs(path: Path, n: int, seed: int = 0, repeats: int = 0) -> Path:
    """``n`` pairs of two different captions (no identical-caption ties), plus ``repeats`` pairs that
    repeat earlier ones in swapped order (answered from the cache)."""
    rng = np.random.default_rng(seed)
    pairs = []
    seen = set()
    while len(pairs) < n:
        a, b = (int(i) for i in rng.choice(len(CAPTIONS), 2, replace=False))
        if frozenset((a, b)) not in seen:
            seen.add(frozenset((a, b)))
            pairs.append([CAPTIONS[a], CAPTIONS[b]])
    pairs += [[b, a] for a, b in pairs[:repeats]]
    return write_pairs(path, pairs)


def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One OpenAI-compatible server process group on 127.0.0.1."""

    def __init__(self, argv: list[str], port: int, log: Path, ready_timeout: float = 900.0):
        self.argv, self.port, self.log, self.ready_timeout = argv, port, log, ready_timeout
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> Server:
        out = open(self.log, "ab")
        self.proc = subprocess.Popen(
            self.argv, stdout=out, stderr=subprocess.STDOUT, env=engine_env(), start_new_session=True
        )
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"server exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(1)
        self.kill()
        pytest.fail(f"server not ready after {self.ready_timeout:.0f} s: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL the whole group: an abrupt crash, engine process included."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=60)
        self.proc = None


def vllm_server(model: Path, port: int, log: Path) -> Server:
    """`vllm serve MODEL` (through its module where vllm-cpu's `vllm` script cannot start)."""
    from motif_jax.annotate.serve import vllm_serve_command

    return Server(vllm_serve_command(str(model), port, served_name="smol"), port, log)


def llamacpp_server(gguf: Path, port: int, log: Path) -> Server:
    return Server(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(gguf),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--model_alias",
            "smol",
            "--n_ctx",
            "2048",
            "--n_threads",
            "1",
            "--seed",
            "0",
        ],
        port,
        log,
    )


def motif(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    """Run the `motif` command of this environment in its own process (as a user would)."""
    return subprocess.run(
        [str(BIN / "motif"), *args], capture_output=True, text=True, env=engine_env(), timeout=timeout
    )


def labels_of(path: Path, name: str) -> np.ndarray:
    return np.load(path / "preference" / f"{name}.npy")


def cache_keys(path: Path, name: str) -> list[str]:
    import json

    cache = path / "annotations" / f"{name}.cache.jsonl"
    return [json.loads(line)["key"] for line in cache.read_text().splitlines() if line.strip()]
