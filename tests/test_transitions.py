"""Transitions (MaestroMotif): the text, what collection stores, and labelling once per skill."""

import json

import numpy as np
import pytest

from annotate_data import encode, write_pairs
from motif_jax.annotate import cli as annotate_cli
from motif_jax.annotate.naming import reward_annotator, skill_annotator
from motif_jax.annotate.prompts import load_template
from motif_jax.annotate.rules import load_table
from motif_jax.annotate.runner import pair_texts
from motif_jax.cli import main
from motif_jax.data import open_dataset
from motif_jax.data.collect import CollectSettings, collect
from motif_jax.data.transitions import DELTA_FIELDS, delta_indices, transition_text
from motif_jax.errors import MotifError
from test_original_loader import load_folder, original_load

SKILLS = ("discoverer", "descender", "ascender", "merchant", "worshipper")


# -- the text ---------------------------------------------------------------------------------------------


def test_transition_text_lists_the_non_zero_changes_in_order():
    text = transition_text("The door opens.", "There is a staircase down here.", [1, 12, -3, 0, 0])
    assert text == 'previous: "The door opens." | now: "There is a staircase down here." | depth +1, gold +12, hp -3'
    assert transition_text("", "", np.zeros(5, np.int32)) == 'previous: "" | now: ""'
    assert transition_text("a", "b", [0, 0, 0, 4, 1]) == 'previous: "a" | now: "b" | exp +4, hunger +1'
    assert transition_text(None, "You kill the newt!", None) == 'now: "You kill the newt!"'
    assert transition_text("two\nlines", "x  y", None) == 'previous: "two lines" | now: "x y"'
    assert DELTA_FIELDS == ("depth", "gold", "hp", "exp", "hunger")
    with pytest.raises(ValueError, match="expected 5"):
        transition_text("", "", [1, 2])


def test_skill_rules_read_the_message_now_and_the_stat_changes():
    descender, ascender = load_table("nethack", "descender"), load_table("nethack", "ascender")
    down, up = transition_text("", "", [1, 0, 0, 0, 0]), transition_text("", "", [-1, 0, 0, 0, 0])
    assert descender.utility(down) > 0 > descender.utility(up) and ascender.utility(up) > 0 > ascender.utility(down)
    stairs = "There is a staircase down here."
    assert descender.utility(transition_text("", stairs, None)) > 0
    assert descender.utility(transition_text(stairs, "", None)) == 0  # the message before does not count
    merchant, worshipper = load_table("nethack", "merchant"), load_table("nethack", "worshipper")
    assert merchant.utility(transition_text("", "You sold a dagger for 2 gold pieces.", [0, 2, 0, 0, 0])) > 0
    assert merchant.utility(transition_text(None, '"Hello, agent!  Welcome to Asidonhopo\'s general store!"', None)) > 0
    assert worshipper.utility(transition_text("", "There is an altar to Anhur (chaotic) here.", None)) > 0
    assert worshipper.utility(transition_text("", "There is an amber flash as a dagger hits the altar.", None)) > 0
    discoverer = load_table("nethack", "discoverer")
    assert discoverer.utility(transition_text("", "You find a hidden passage.", None)) > 0 > discoverer.utility(down)


def test_transition_template_shows_both_transitions_and_keeps_the_verdict():
    t = load_template("default-transitions", "descender", goal_text="go down the stairs")
    assert t.shows == "transitions" and t.goal_text == "go down the stairs"
    one, two = transition_text("", "", [1, 0, 0, 0, 0]), transition_text("a", "b", None)
    user = t.first_turn(one, two)[1]["content"]
    assert f"Transition 1: {one}" in user and user.endswith(f"Transition 2: {two}") and "go down the stairs" in user
    default = load_template("default", "gold")
    assert (t.verdict_format, t.verdict_regex) == (default.verdict_format, default.verdict_regex)
    assert default.hash == "1504267041e6"  # caption templates keep the digest they had before transitions


# -- collection -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    out = tmp_path_factory.mktemp("transitions") / "ds"
    settings = CollectSettings(task="score", pairs=10, seed=2, seq_len=2, num_envs=2, sample_prob=1.0)
    collect(settings, out, show_progress=False)
    return out


def test_collection_stores_previous_messages_and_stat_changes(collected):
    ds = open_dataset(collected)
    assert ds.has_transitions and ds.meta["transitions"]["delta_fields"] == list(DELTA_FIELDS)
    message, prev = np.asarray(ds.data("message")), np.asarray(ds.data("prev_message"))
    blstats, delta = np.asarray(ds.data("blstats")).astype(np.int64), np.asarray(ds.data("delta"))
    assert prev.shape == message.shape and prev.dtype == np.uint8
    assert delta.shape == (*message.shape[:3], 5) and delta.dtype == np.int32
    # the second step of each member: its previous step is the first one
    assert (prev[:, :, 1] == message[:, :, 0]).all()
    index = list(delta_indices())
    assert (delta[:, :, 1] == blstats[:, :, 1][..., index] - blstats[:, :, 0][..., index]).all()
    # members that begin an episode (their last step is the episode's step 1): nothing before them
    starts = np.asarray(ds.info("step")) == 1
    assert starts.any()
    assert (prev[starts][:, 0] == 0).all() and (delta[starts][:, 0] == 0).all()


def test_collected_transitions_open_in_the_original_loader(collected):
    main(["annotate", str(collected), "--skills", "nethack", "--backend", "rules", "--no-progress"])
    loaded = load_folder(collected, "data")
    assert loaded["prev_message"].shape == loaded["message"].shape and loaded["delta"].shape[-1] == 5
    labels = original_load(collected, "rules-nethack_descender")["preference"]["rules-nethack_descender"]
    assert labels.shape == (len(open_dataset(collected)),) and set(np.asarray(labels).tolist()) <= {0, 1, 2}


# -- annotate --skills -------------------------------------------------------------------------------------


def write_transitions(path, members):
    """``members``: per pair two (previous message, message, delta) triples; L = 1."""
    write_pairs(path, [[m[1] for m in pair] for pair in members])
    prev = np.array([[[encode(m[0])] for m in pair] for pair in members], np.uint8)
    delta = np.array([[[m[2]] for m in pair] for pair in members], np.int32)
    np.save(path / "data" / "prev_message.npy", prev)
    np.save(path / "data" / "delta.npy", delta)
    return path


DOWN, UP, STILL = [1, 0, 0, 0, 0], [-1, 0, 0, 0, 0], [0, 0, 0, 0, 0]
PAIRS = [
    [("", "", DOWN), ("", "", STILL)],  # descender: first
    [("", "It's a wall.", STILL), ("", "", DOWN)],  # descender: second
    [("", "You find a hidden passage.", STILL), ("", "", UP)],
    [("", "", STILL), ("", "", STILL)],
]


def test_annotate_skills_with_rules_writes_one_label_file_per_skill(tmp_path, capsys):
    path = write_transitions(tmp_path / "ds", PAIRS)
    assert main(["annotate", str(path), "--skills", "nethack", "--backend", "rules", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "skill 5/5 worshipper: annotator rules-nethack_worshipper" in out and "reads transitions" in out
    ds = open_dataset(path)
    assert ds.annotators == sorted(f"rules-nethack_{s}" for s in SKILLS)
    assert ds.labels("rules-nethack_descender").tolist() == [0, 1, 0, 2]
    assert ds.labels("rules-nethack_ascender").tolist() == [1, 0, 1, 2]
    assert ds.labels("rules-nethack_discoverer").tolist()[2] == 0
    settings = json.loads(ds.sidecar_path("rules-nethack_descender", ".json").read_text())
    assert settings == {"backend": "rules", "judge": "nethack.yaml", "goal": "descender", "skill": "descender",
                        "text": "transitions"}  # fmt: skip
    assert skill_annotator("descender", judge="nethack") == "rules-nethack_descender"
    assert reward_annotator("descender", {"judge": "nethack", "goal": "descender"}) == "rules-nethack_descender"
    assert reward_annotator("descender", {"annotator": "llm_x"}) == "llm_x"


def test_a_dataset_without_transitions_annotates_as_before(tmp_path, capsys):
    path = write_pairs(tmp_path / "old", [["There is a staircase down here.", "It's a wall."], ["a", "a"]])
    assert main(["annotate", str(path), "--backend", "rules", "--goal", "stairs", "--no-progress"]) == 0
    ds = open_dataset(path)
    assert not ds.has_transitions and ds.labels("rules-nethack_stairs").tolist() == [0, 2]
    assert pair_texts(ds, np.arange(1))[0] == ("There is a staircase down here.", "It's a wall.")
    assert main(["annotate", str(path), "--skills", "nethack", "--backend", "rules", "--no-progress"]) == 0
    assert "reads captions" in capsys.readouterr().out
    assert open_dataset(path).labels("rules-nethack_descender").tolist() == [0, 2]
    with pytest.raises(MotifError, match="has no transitions"):
        pair_texts(ds, np.arange(1), "transitions")


class FakeBackend:
    """Prefers the transition that goes one level down; counts how often it is built and asked."""

    model_name, model_id, supports_logprob, batch_size = "fake", "fake@test", False, 8
    built, asked = 0, 0

    def __init__(self, *args, **kwargs):
        FakeBackend.built += 1

    def complete(self, conversations):
        FakeBackend.asked += len(conversations)
        replies = []
        for conversation in conversations:
            user = conversation[1]["content"]
            assert "Transition 1: previous:" in user
            first, second = (user.split(f"Transition {i}: ")[1].split("\n")[0] for i in (1, 2))
            best = 1 if "depth +1" in first else 2 if "depth +1" in second else "None"
            replies.append(f'{{"best_message": {best}}}')
        return replies

    def close(self):
        pass


def test_annotate_skills_with_an_llm_builds_one_backend_and_reports_agreement(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(annotate_cli, "make_backend", FakeBackend)
    path = write_transitions(tmp_path / "ds", PAIRS)
    assert main(["annotate", str(path), "--skills", "nethack", "--backend", "rules", "--no-progress"]) == 0
    argv = ["annotate", str(path), "--skills", "nethack", "--backend", "openai", "--model", "fake", "--no-progress"]
    assert main(argv) == 0
    assert FakeBackend.built == 1 and FakeBackend.asked > 0
    out = capsys.readouterr().out
    ds = open_dataset(path)
    name = skill_annotator("descender", "openai", model="fake")
    assert name == "fake_descender_default-transitions" and ds.labels(name).tolist() == [0, 1, 2, 2]
    assert len([a for a in ds.annotators if a.startswith("fake_")]) == len(SKILLS)
    assert f"skill descender: agreement {name} vs rules-nethack_descender: 100.0% of 2 pairs" in out
    settings = json.loads(ds.sidecar_path(name, ".json").read_text())
    assert settings["skill"] == "descender" and settings["text"] == "transitions"
    asked = FakeBackend.asked
    assert main(argv) == 0  # resumes: every label is done, nothing is asked again
    assert FakeBackend.asked == asked and FakeBackend.built == 2


def test_skills_option_errors(tmp_path, capsys):
    path = write_transitions(tmp_path / "ds", PAIRS)
    assert main(["annotate", str(path), "--skills", "nethack", "--backend", "rules", "--name", "x"]) != 0
    assert "leave out --name" in capsys.readouterr().err
    assert main(["annotate", str(path), "--skills", "nethack", "--backend", "score"]) != 0
    assert "has no goal" in capsys.readouterr().err


def test_a_collection_begun_without_transitions_resumes_without_them(tmp_path):
    out = tmp_path / "ds"
    settings = CollectSettings(task="score", pairs=6, seed=4, num_envs=2, sample_prob=0.5)
    with pytest.raises(KeyboardInterrupt):
        collect(settings, out, show_progress=False, max_env_steps=20)
    for key in ("prev_message", "delta"):  # as a version before transitions left it
        (out / "data" / f"{key}.npy").unlink()
    collect(settings, out, show_progress=False)
    ds = open_dataset(out)
    assert not ds.has_transitions and "transitions" not in ds.meta and len(ds) == 6
