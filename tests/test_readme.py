"""Every `motif ...` command and launcher shown in the README and the docs parses with the real CLI.

The commands themselves run in the stage tests (tiny sizes); this keeps the README and the
reproduction commands of `docs/experiments/*.md` honest about command names and options as the code
changes. The README is the guide, so it also has to stay short, and its links have to lead somewhere.
"""

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from motif_jax.cli import COMMANDS, parse_command

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
README_MAX_LINES = 350
# The README, then the docs: every page under docs/, the experiments' reproduction commands included.
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]


def page_commands(path: Path, prefix: str) -> list[str]:
    text = path.read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    lines = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    inline = re.findall(r"`((?:motif|launch/|sbatch)[^`]*)`", text.replace("\n", " "))
    commands = [re.sub(r"\s+#.*$", "", line).strip() for line in lines + inline]
    # skip placeholders (`motif COMMAND --help`) and bare command names in prose (`motif collect`)
    return sorted(
        {c for c in commands if c.startswith(prefix) and not re.match(r"motif [A-Z]", c) and len(c.split()) > 2}
    )


def commands(prefix: str) -> list:
    return [
        pytest.param(command, id=f"{page.relative_to(ROOT)}: {command}")
        for page in PAGES
        for command in page_commands(page, prefix)
    ]


@pytest.mark.parametrize("command", commands("motif "))
def test_motif_command_parses(command):
    argv = shlex.split(command)[1:]
    assert argv[0] in COMMANDS, f"unknown command {argv[0]!r}"
    argv = [a for a in argv if a != "..."]
    parse_command(argv)  # SystemExit (argparse error) fails the test


@pytest.mark.parametrize("script", sorted({shlex.split(c.values[0])[0] for c in commands("launch/")}))
def test_launcher_has_help(script):
    out = subprocess.run(["bash", str(ROOT / script), "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "usage" in out.stdout.lower() or script.split("/")[-1] in out.stdout


def test_docs_show_commands():
    """The parser above finds the commands it should (a changed code-block style would hide them)."""
    assert len(page_commands(README, "motif ")) >= 20
    assert page_commands(README, "launch/")
    for page in sorted((ROOT / "docs" / "experiments").glob("*.md")):
        if not page.name.endswith("-table.md") and page.name != "README.md":
            assert page_commands(page, "motif ") or "make quickstart" in page.read_text(), page.name


def test_readme_is_a_short_guide():
    lines = README.read_text().count("\n")
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines (at most {README_MAX_LINES}): "
        "move experiment narratives and details to docs/ and link them"
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.exists(), f"{page.relative_to(ROOT)} links to missing {target}"


def test_readme_has_the_two_quick_start_commands():
    text = README.read_text()
    assert "make quickstart" in text and "make test" in text
