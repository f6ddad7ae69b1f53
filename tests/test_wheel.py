"""The package as users install it: a built wheel, in a virtualenv outside the checkout, run from another
folder, finds its shipped prompts, judges and configs and runs collect → annotate → train-reward → train."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from motif_jax.errors import MotifError
from motif_jax.resources import builtin_configs, config_file

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_configs_are_found_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    score = builtin_configs() / "score.yaml"
    for name in ("score", "score.yaml", "configs/score.yaml"):
        assert config_file(name) == score
    assert config_file("experiments/motif-cpu.yaml") == builtin_configs() / "experiments" / "motif-cpu.yaml"
    (tmp_path / "score.yaml").write_text("task: score\n")
    assert config_file("score.yaml") == Path("score.yaml")  # a file of the user's wins
    with pytest.raises(MotifError, match="config file nope.yaml not found .*score"):
        config_file("nope.yaml")


def test_configs_is_one_folder_stored_once():
    """The package's configs/ is the checkout's configs/, kept in git as a link, not as a copy."""
    assert (ROOT / "motif_jax" / "configs").resolve() == (ROOT / "configs").resolve()
    if (ROOT / ".git").exists() and shutil.which("git"):
        entry = subprocess.run(
            ["git", "ls-files", "-s", "motif_jax/configs"], cwd=ROOT, capture_output=True, text=True
        ).stdout
        assert entry.startswith("120000 "), entry  # a symbolic link


def _build_wheel(tmp_path: Path) -> Path:
    """``pip wheel`` from a copy of the sources, so the build leaves nothing in the checkout."""
    src = tmp_path / "src"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "motif_jax", src / "motif_jax", symlinks=True, ignore=skip)
    shutil.copytree(ROOT / "configs", src / "configs", ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(src)], check=True
    )
    (wheel,) = (tmp_path / "dist").glob("motif_jax-*.whl")
    return wheel


def _venv_with_wheel(tmp_path: Path, wheel: Path) -> Path:
    """A new virtualenv holding only the wheel; its dependencies come from this environment's site-packages,
    listed in a .pth file after its own. Paths in a .pth are not scanned for .pth files, so the editable
    install of the checkout (a .pth-started finder there) stays out."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    ours = dict.fromkeys(sysconfig.get_path(key) for key in ("purelib", "platlib"))
    (site / "dependencies.pth").write_text("".join(f"{path}\n" for path in ours))
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)], check=True
    )
    return venv


PROBE = """
import importlib.metadata, json, sys
import motif_jax
from motif_jax.annotate.prompts import load_template
from motif_jax.annotate.rules import load_table
from motif_jax.resources import builtin_configs
load_template("reworded", "gold"); load_table(None, "stairs")
print(json.dumps({"module": motif_jax.__file__, "configs": str(builtin_configs()), "path": sys.path,
                  "dist": str(importlib.metadata.distribution("motif-jax").locate_file("")),
                  "finders": [repr(f) for f in sys.meta_path], "modules": sorted(sys.modules)}))
"""


def test_installed_wheel_runs_the_pipeline_from_another_folder(tmp_path):
    venv = _venv_with_wheel(tmp_path, _build_wheel(tmp_path))
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "XLA_FLAGS", "VIRTUAL_ENV")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", JAX_PLATFORMS="cpu")

    def run(*argv: str) -> str:
        done = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{' '.join(argv)}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
        return done.stdout

    probe = json.loads(run(str(venv / "bin" / "python"), "-c", PROBE).splitlines()[-1])
    site = venv.resolve()
    for key in ("module", "configs", "dist"):
        assert Path(probe[key]).resolve().is_relative_to(site), (key, probe[key])  # the wheel, not the checkout
    editable = [name for name in probe["finders"] + probe["modules"] if "editable" in name]
    assert not editable, editable  # the checkout's editable-install finder is not loaded
    assert not {str(ROOT), str(ROOT / "motif_jax")} & set(probe["path"]), probe["path"]

    motif = str(venv / "bin" / "motif")
    run(
        motif,
        "collect",
        "--task",
        "score",
        "--seed",
        "0",
        "--out",
        "data",
        "--pairs",
        "64",
        "--num-envs",
        "2",
        "--sample-prob",
        "0.2",
        "--no-progress",
    )
    run(motif, "annotate", "data", "--backend", "score")
    run(motif, "annotate", "data", "--backend", "rules", "--goal", "defaultgoal")  # the shipped judge
    run(motif, "train-reward", "data", "--annotator", "score", "--preset", "tiny", "--epochs", "2", "--out", "reward")
    run(
        motif,
        "train",
        "--config",
        "score.yaml",
        "--preset",
        "tiny",
        "--steps",
        "2048",
        "--reward",
        "reward",
        "--out",
        "agent",
        "--set",
        "env.num_envs=4",
        "--set",
        "ppo.rollout=16",
        "--set",
        "run.tensorboard=false",
        "--set",
        "run.log_every_s=0",
    )
    assert (work / "data" / "meta.json").is_file()
    assert {p.name for p in (work / "data" / "preference").iterdir()} == {"score.npy", "rules-nethack_defaultgoal.npy"}
    assert any(p.name.isdigit() for p in (work / "reward" / "checkpoints").iterdir())
    run(motif, "collect", "--policy", "agent", "--out", "data2", "--pairs", "4", "--num-envs", "2", "--no-progress")
    assert (work / "data2" / "meta.json").is_file()  # collected by the trained agent
    records = [json.loads(line) for line in (work / "agent" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["env_steps"] == 2048
    assert any(p.name.isdigit() for p in (work / "agent" / "checkpoints").iterdir())
