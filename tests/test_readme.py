"""Every `motif ...` command and launcher shown in the README parses with the real CLI.

The commands themselves run in the stage tests (tiny sizes); this keeps the README honest about
command names and options as the code changes.
"""

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from motif_jax.cli import COMMANDS, parse_command

ROOT = Path(__file__).resolve().parents[1]


def readme_commands(prefix: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    lines = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    inline = re.findall(r"`((?:motif|launch/|sbatch)[^`]*)`", text)
    commands = [re.sub(r"\s+#.*$", "", line).strip() for line in lines + inline]
    # skip placeholders (`motif COMMAND --help`) and bare command names in prose (`motif collect`)
    return sorted(
        {c for c in commands if c.startswith(prefix) and not re.match(r"motif [A-Z]", c) and len(c.split()) > 2}
    )


@pytest.mark.parametrize("command", readme_commands("motif "))
def test_readme_motif_command_parses(command):
    argv = shlex.split(command)[1:]
    assert argv[0] in COMMANDS, f"README shows unknown command {argv[0]!r}"
    argv = [a for a in argv if a != "..."]
    parse_command(argv)  # SystemExit (argparse error) fails the test


@pytest.mark.parametrize("script", sorted({shlex.split(c)[0] for c in readme_commands("launch/")}))
def test_readme_launcher_has_help(script):
    out = subprocess.run(["bash", str(ROOT / script), "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "usage" in out.stdout.lower() or script.split("/")[-1] in out.stdout


def test_readme_has_the_two_quick_start_commands():
    text = (ROOT / "README.md").read_text()
    assert "make quickstart" in text and "make test" in text
