import os
import signal
import subprocess
import sys
import time

from motif_jax.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "motif_jax.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "collect" in out.stdout


def test_a_stage_started_by_the_engine_stops_when_the_engine_is_killed():
    """SIGKILL the engine: its stage gets SIGTERM from the kernel (PR_SET_PDEATHSIG) and ends."""
    stage = "from motif_jax.cli import stop_with_parent; stop_with_parent(); import time; time.sleep(120)"
    engine = (
        "import os, subprocess, sys, time\n"
        f"env = {{**os.environ, 'MOTIF_STOP_WITH_PARENT': str(os.getpid())}}\n"
        f"child = subprocess.Popen([sys.executable, '-c', {stage!r}], env=env)\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", engine], stdout=subprocess.PIPE, text=True)
    child = int(proc.stdout.readline())
    time.sleep(3)  # the stage has imported motif_jax.cli and called stop_with_parent
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(child, signal.SIGKILL)
    raise AssertionError("the stage outlived the killed engine")
