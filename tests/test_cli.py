import subprocess
import sys

from motif_jax.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "motif_jax.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "collect" in out.stdout
