"""Dependencies follow the pipeline: every module belongs to a layer and imports nothing from a higher one,
nor from a sibling stage of its own rank (checked on every import statement, function-level ones included).
Reward inference (model, scoring, checkpoints, ``load``) is the leaf the agent imports; reward training is
a stage beside the agent."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "motif_jax"

# Lowest first; the stages within one rank are siblings that must not import each other.
RANKS = [
    ("utilities",),
    ("envs",),
    ("skills",),
    ("data",),
    ("annotate",),
    ("reward inference", "skill design"),
    ("agent", "reward training"),
    ("evaluate",),
    ("applications",),
]
# The longest matching module prefix names the layer.
LAYERS = {
    "motif_jax": "utilities",  # errors, files, config, progress, metrics, numerics, parallel, checkpoint, resources
    "motif_jax.envs": "envs",
    "motif_jax.skills": "skills",  # the controller side: spec, view, code, controller
    "motif_jax.skills.design": "skill design",  # the LLM side: captions, labels, code writing
    "motif_jax.skills.cli": "applications",
    "motif_jax.data": "data",
    "motif_jax.annotate": "annotate",
    "motif_jax.reward": "reward inference",
    **{
        f"motif_jax.reward.{name}": "reward training"
        for name in ("train", "skill_training", "pairs", "losses", "cli", "inspect", "benchmark")
    },
    "motif_jax.agent": "agent",
    "motif_jax.evaluate": "evaluate",
    **{
        f"motif_jax.{name}": "applications"
        for name in ("experiment", "quickstart", "pipeline", "cli", "config_cli", "benchmark", "data.collect_cli")
    },
}
RANK = {layer: i for i, stages in enumerate(RANKS) for layer in stages}


def layer(module: str) -> str:
    parts = module.split(".")
    return next(LAYERS[".".join(parts[:n])] for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in LAYERS)


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.startswith("motif_jax.")}


MODULES = sorted(PACKAGE.rglob("*.py"))


def module_name(path: Path) -> str:
    return ".".join(("motif_jax", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")


def test_every_layer_is_ranked():
    assert set(LAYERS.values()) == set(RANK)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_nothing_above_its_layer(path):
    own = layer(module_name(path))
    wrong = sorted(
        name
        for name in imported_modules(path)
        if RANK[layer(name)] > RANK[own] or (RANK[layer(name)] == RANK[own] and layer(name) != own)
    )
    assert not wrong, f"{module_name(path)} ({own}) imports {wrong}"
