"""`motif plot` on synthetic runs: parsing, seed grouping, the band maths and the PNGs written."""

import json

import numpy as np
import pytest
import yaml

from motif_jax.cli import main
from motif_jax.errors import MotifError
from motif_jax.evaluate import plot


def _write_run(path, seed, lr=1e-4, steps=(100, 200, 300), torn_tail=False):
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(
        yaml.safe_dump({"task": "score", "seed": seed, "out": str(path), "ppo": {"lr": lr}})
    )
    with open(path / "metrics.jsonl", "w") as f:
        for s in steps:
            f.write(
                json.dumps(
                    {
                        "env_steps": s,
                        "episode_return": s / 100 + seed,
                        "success_rate": 0.1,
                        "intrinsic_share": 0.25,
                        "sps": 1000.0,
                    }
                )
                + "\n"
            )
        if torn_tail:
            f.write('{"env_steps": 4')


def test_load_metrics_skips_a_torn_last_line_but_not_a_broken_middle(tmp_path):
    _write_run(tmp_path / "r", 0, torn_tail=True)
    rows = plot.load_metrics(tmp_path / "r" / "metrics.jsonl")
    assert [r["env_steps"] for r in rows] == [100, 200, 300]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"env_steps": 1}\nnot json\n{"env_steps": 2}\n')
    with pytest.raises(MotifError, match="bad.jsonl:2"):
        plot.load_metrics(bad)


def test_series_sorts_and_drops_rows_without_the_metric():
    rows = [
        {"env_steps": 30, "r": 3.0},
        {"env_steps": 10, "r": 1.0},
        {"env_steps": 20},
        {"env_steps": 40, "r": float("nan")},
    ]
    x, y = plot.series(rows, "env_steps", "r")
    assert x.tolist() == [10, 30] and y.tolist() == [1.0, 3.0]


def test_extrinsic_share_is_the_complement_when_not_logged():
    rows = plot.with_extrinsic_share([{"intrinsic_share": 0.25}, {"intrinsic_share": 0.5, "extrinsic_share": 0.1}])
    assert rows[0]["extrinsic_share"] == 0.75 and rows[1]["extrinsic_share"] == 0.1


def test_runs_differing_only_by_seed_and_output_are_grouped():
    configs = [
        {"seed": 0, "out": "a", "ppo": {"lr": 1, "seed": 3}},
        {"seed": 1, "out": "b", "ppo": {"lr": 1, "seed": 4}},
        {"seed": 0, "out": "c", "ppo": {"lr": 2}},
    ]
    assert plot.group_by_experiment(configs) == [[0, 1], [2]]


def test_moving_average_is_trailing():
    assert plot.moving_average(np.array([1.0, 3.0, 5.0, 7.0]), 2).tolist() == [1.0, 2.0, 4.0, 6.0]
    assert plot.moving_average(np.array([1.0, 3.0]), 1).tolist() == [1.0, 3.0]


def test_seed_band_interpolates_on_the_shared_x_range():
    a = (np.array([0.0, 10.0]), np.array([0.0, 10.0]))
    b = (np.array([5.0, 15.0]), np.array([15.0, 25.0]))  # y = x + 10
    x, mean, low, high = plot.seed_band([a, b], points=3)
    assert x.tolist() == [5.0, 7.5, 10.0]
    assert low.tolist() == [5.0, 7.5, 10.0] and high.tolist() == [15.0, 17.5, 20.0]
    assert mean.tolist() == [10.0, 12.5, 15.0]
    assert plot.seed_band([(np.array([0.0, 1.0]), np.zeros(2)), (np.array([2.0, 3.0]), np.zeros(2))])[0].size == 0


def test_plot_command_writes_pngs(tmp_path):
    for seed in (0, 1):
        _write_run(tmp_path / f"s{seed}", seed)
    _write_run(tmp_path / "other", 0, lr=1e-3)
    out = tmp_path / "plots"
    assert main(["plot", str(tmp_path / "s0"), str(tmp_path / "s1"), str(tmp_path / "other"), "--out", str(out)]) == 0
    for name in ("episode_return", "success_rate", "reward_share", "sps", "learning_curves"):
        png = out / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_metrics_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["plot", str(tmp_path / "empty")]) == 2
    assert "metrics.jsonl not found" in capsys.readouterr().err
