"""Dependencies follow the pipeline: a stage's logic imports nothing of the stages after it, and reward
inference imports no trainer code (checked on every import statement, function-level ones included)."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "motif_jax"


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


FORBIDDEN = {
    "data/dataset.py": ("motif_jax.agent", "motif_jax.annotate", "motif_jax.reward", "motif_jax.evaluate"),
    "data/collect.py": ("motif_jax.agent", "motif_jax.annotate", "motif_jax.reward", "motif_jax.evaluate"),
    "reward/checkpoints.py": ("motif_jax.reward.train",),
    "reward/intrinsic.py": ("motif_jax.reward.train", "motif_jax.reward.checkpoints"),
    "reward/state.py": ("motif_jax.reward.train",),
    "reward/__init__.py": ("motif_jax.reward.train",),
}


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_module_imports_nothing_downstream(module):
    wrong = sorted(
        name
        for name in imported_modules(PACKAGE / module)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[module])
    )
    assert not wrong, f"{module} imports {wrong}"
