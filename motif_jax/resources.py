"""Files the package ships: prompt templates, rules judges, training and experiment configs.

They live in ``motif_jax/configs/`` (in a checkout a link to the top-level ``configs/``, which users read
and copy), so an installed wheel finds them without a source tree. The consumers need real file paths
(``extends:`` chains, paths relative to a config, errors naming the file): the package is never zipped.
"""

from __future__ import annotations

from pathlib import Path

from motif_jax.errors import MotifError


def builtin_configs() -> Path:
    """The package's ``configs/`` folder: ``prompts/``, ``judges/``, ``experiments/`` and training configs."""
    return (Path(__file__).parent / "configs").resolve()


def config_file(path: str | Path) -> Path:
    """``path`` if it is a file, else the shipped config it names (``score``, ``score.yaml`` or
    ``configs/score.yaml``), so the shipped configs run from any folder once the package is installed."""
    given = Path(path)
    if given.is_file():
        return given
    name = given.as_posix().removeprefix("configs/")
    for candidate in (builtin_configs() / name, builtin_configs() / f"{name}.yaml"):
        if not given.is_absolute() and candidate.is_file():
            return candidate
    shipped = sorted(p.stem for p in builtin_configs().glob("*.yaml"))
    raise MotifError(f"config file {path} not found (shipped configs: {', '.join(shipped)})")
