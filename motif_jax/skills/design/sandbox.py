"""Run untrusted skill code in its own process, under a wall-clock limit and a memory cap.

The child (`harness`) gets the code as JSON on stdin and answers in JSON on stdout; see its docstring for
what it refuses. Whatever the code does (crash, hang, forbidden import, failing test, garbage output) comes
back as an `Outcome` that did not pass, with a one-line reason: never an exception in the caller. The child
starts in its own session with an empty environment (no API keys) in an empty temporary folder, and the
whole process group is killed at the limit.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HARNESS = Path(__file__).with_name("harness.py")
PACKAGE_ROOT = Path(__file__).resolve().parents[3]
SKILL_FUNCTIONS = ("initiation", "termination")
POLICY_FUNCTIONS = ("policy_over_skills",)
STARTUP_SECONDS = 60.0  # for the child to start and import its view types, before the limit counts
READY = b"motif-sandbox-ready\n"
_CHILD_ENV = {"PATH": os.defpath, "LANG": "C.UTF-8", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


@dataclasses.dataclass(frozen=True)
class Limits:
    seconds: float = 10.0  # wall clock for the whole child, start-up included
    memory_bytes: int = 1 << 30  # address space of the child (RLIMIT_AS)


@dataclasses.dataclass(frozen=True)
class Outcome:
    passed: bool
    reason: str  # one line: "the test passed", "timed out after 10 s", "refused: import of 'os' ..."
    output: str = ""  # what the code printed, and the traceback through it
    seconds: float = 0.0
    results: list | None = None  # replay: one answer per call

    def report(self) -> str:
        """What the model is shown: the verdict line, then the output."""
        head = "PASSED: " if self.passed else "FAILED: "
        return head + self.reason + (f"\n{self.output.rstrip()}" if self.output.strip() else "")


def run_unit_test(code: str, test: str, required: tuple[str, ...], limits: Limits = Limits()) -> Outcome:
    """Load ``code``, check it defines ``required``, load ``test`` beside it and call its ``test()``."""
    return run_child({"mode": "test", "code": code, "test": test, "required": list(required)}, limits)


def replay(code: str, views: list[dict], calls: list[list], limits: Limits) -> Outcome:
    """Answers of ``code``'s functions to recorded calls (see `harness._replay_call` for their form)."""
    return run_child({"mode": "replay", "code": code, "views": views, "calls": calls}, limits)


def run_child(request: dict, limits: Limits) -> Outcome:
    """One child for ``request``. The limit counts from the child's "ready" line (after its start-up and
    imports, which a busy machine may slow down), so the code itself always gets ``limits.seconds``."""
    data = json.dumps({**request, "package_root": str(PACKAGE_ROOT), "seconds": limits.seconds,
                       "memory_bytes": int(limits.memory_bytes)}).encode()  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="motif-sandbox-") as folder:
        try:
            process = subprocess.Popen(
                [sys.executable, "-I", str(HARNESS)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=folder,
                env=_CHILD_ENV,
                start_new_session=True,
            )
        except OSError as e:
            return Outcome(False, f"the sandbox could not start ({e.strerror or e})")
        try:
            early = _send_and_wait_ready(process, data)
            if early is None:
                _kill_group(process)
                return Outcome(False, f"the sandbox did not start within {STARTUP_SECONDS:g} s")
            start = time.monotonic()
            stdout, stderr = process.communicate(timeout=limits.seconds)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            return Outcome(False, f"timed out after {limits.seconds:g} s (killed)", seconds=time.monotonic() - start)
        except BaseException:
            _kill_group(process)
            raise
    return _read_answer(process.returncode, early + stdout, stderr, time.monotonic() - start)


def _send_and_wait_ready(process: subprocess.Popen, data: bytes) -> bytes | None:
    """Send the request, then wait for the child's "ready" line; returns what came after it (None: no
    ready line in time, or the child died first: then everything it wrote)."""
    try:
        process.stdin.write(data)
        process.stdin.close()
    except BrokenPipeError:
        pass
    process.stdin = None  # closed: communicate() must not flush it
    fd, seen = process.stdout.fileno(), b""
    deadline = time.monotonic() + STARTUP_SECONDS
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            break
        chunk = os.read(fd, 65536)
        if not chunk:  # the child ended before it was ready: its answer (if any) is in ``seen``
            return seen
        seen += chunk
        if READY in seen:
            return seen.partition(READY)[2]
    return None


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.communicate()


def _read_answer(returncode: int, stdout: bytes, stderr: bytes, seconds: float) -> Outcome:
    lines = stdout.decode("utf-8", "replace").strip().splitlines()
    try:
        answer = json.loads(lines[-1])
        passed, reason = bool(answer["ok"]), str(answer["reason"])
    except (IndexError, ValueError, KeyError, TypeError):
        return Outcome(False, _crash_reason(returncode), _tail(stderr), seconds)
    if returncode != 0 and passed:
        return Outcome(False, _crash_reason(returncode), _tail(stderr), seconds)
    return Outcome(passed, reason, str(answer.get("output", "")), seconds, answer.get("results"))


def _crash_reason(returncode: int) -> str:
    if returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.Signals._value2member_map_ else returncode
        hint = (
            " (CPU time limit)" if name == "SIGXCPU" else " (memory limit?)" if name in ("SIGKILL", "SIGSEGV") else ""
        )
        return f"the code crashed the sandbox: killed by {name}{hint}"
    return f"the code crashed the sandbox: exit code {returncode} with no answer"


def _tail(data: bytes, chars: int = 2000) -> str:
    return data.decode("utf-8", "replace")[-chars:]
