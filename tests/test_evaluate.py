"""`motif evaluate` end to end on real NLE through the actor pool (random policy: no checkpoint needed)."""

import json

import pytest
from PIL import Image

from motif_jax.cli import main
from motif_jax.evaluate.ttyrec import read_ttyrec

ARGS = ["--policy", "random", "--task", "score", "--episodes", "3", "--num-envs", "2", "--max-episode-steps", "40"]


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eval")
    out = {}
    for name, extra in [
        ("a", []),
        ("b", []),
        ("recorded", ["--record", str(tmp / "replay"), "--record-episodes", "2"]),
        ("watched", ["--caption-actions", "It's", "--caption-actions", "never shown", "--top-captions", "50"]),
    ]:
        assert main(["evaluate", *ARGS, "--seed", "0", "--json", str(tmp / f"{name}.json"), *extra]) == 0
        out[name] = json.loads((tmp / f"{name}.json").read_text())
    out["tmp"] = tmp
    return out


def test_report_has_the_contract_keys_and_exactly_the_requested_episodes(reports):
    report = reports["a"]
    for key in (
        "mean_return",
        "ci95",
        "success_rate",
        "max_dlvl",
        "score",
        "xlvl",
        "gold",
        "episode_length",
        "end_reasons",
        "top_captions",
    ):
        assert key in report
    assert report["episodes"] == 3 and [e["index"] for e in report["per_episode"]] == [0, 1, 2]
    assert [e["env_id"] for e in report["per_episode"]] == [0, 1, 0]
    assert all(e["length"] == 40 and e["end_reason"] == "time_limit" for e in report["per_episode"])
    assert report["end_reasons"]["time_limit"] == 3
    assert report["episode_length"] == 40.0


def test_same_command_twice_gives_the_same_numbers(reports):
    first, second = dict(reports["a"]), dict(reports["b"])
    assert first == second
    # recording plays the very same episodes
    recorded = {k: v for k, v in reports["recorded"].items() if k not in ("recordings", "gif")}
    assert recorded == first


def test_caption_actions_count_the_actions_taken_where_a_caption_was_shown(reports):
    report = reports["watched"]
    every = report["actions"]["all"]
    assert every["steps"] == 3 * 40  # one action per step; the last observation of an episode gets none
    assert abs(sum(every["shares"].values()) - 1) < 1e-9 and len(every["shares"]) > 10  # random: most actions
    assert report["actions"]["after_caption"]["never shown"] == {"steps": 0, "shares": {}}
    walls = report["actions"]["after_caption"]["It's"]
    shown = sum(n for caption, n in report["top_captions"] if caption.startswith("It's"))
    assert 0 < walls["steps"] <= shown
    assert reports["a"]["actions"]["after_caption"] == {}
    assert {k: v for k, v in report.items() if k not in ("actions", "top_captions")} == {
        k: v for k, v in reports["a"].items() if k not in ("actions", "top_captions")
    }


def test_record_keeps_ttyrecs_and_renders_a_gif(reports):
    replay = reports["tmp"] / "replay"
    assert sorted(p.name for p in replay.iterdir()) == [
        "episode-0.gif",
        "episode-0.ttyrec3.bz2",
        "episode-1.ttyrec3.bz2",
    ]
    assert len(read_ttyrec(replay / "episode-0.ttyrec3.bz2")) >= 40  # a frame per step of the 40-step episode
    with Image.open(replay / "episode-0.gif") as gif:
        assert gif.n_frames > 10  # Pillow merges identical consecutive frames


def test_bad_options_are_clear_errors(capsys):
    assert main(["evaluate", "--task", "score"]) == 2
    assert "give a checkpoint directory" in capsys.readouterr().err
    assert main(["evaluate", *ARGS, "--caption-actions", " "]) == 2
    assert "--caption-actions needs a non-empty caption text" in capsys.readouterr().err
    assert main(["evaluate", *ARGS, "--record", "x", "--record-episodes", "5"]) == 2
    assert "--record-episodes 5 exceeds --episodes 3" in capsys.readouterr().err
