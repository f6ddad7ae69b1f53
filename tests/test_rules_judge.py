"""The rules judge: hand-computed utilities, clear errors, every pair labelled, the shipped tables'
preferences, and the agreement report."""

import json

import numpy as np
import pytest

from annotate_data import write_pairs
from motif_jax.annotate.agreement import agreement, judge_comparisons
from motif_jax.annotate.prompts import GOALS
from motif_jax.annotate.rules import caption_utilities, load_table, parse_table
from motif_jax.cli import main
from motif_jax.data import open_dataset
from motif_jax.errors import MotifError
from motif_jax.reward.losses import preference_targets


def write_judge(tmp_path, text):
    path = tmp_path / "judge.yaml"
    path.write_text(text)
    return path


JUDGE = """
goals:
  defaultgoal:
    unmatched: 0.5
    rules:
      - [3, "You kill"]
      - [2, "gold"]
      - [-1, "It's a wall"]
"""


def test_utility_sums_every_matching_rule_once(tmp_path):
    table = load_table(write_judge(tmp_path, JUDGE), "defaultgoal")
    assert table.utility("You kill the newt!") == 3
    assert table.utility("You kill the newt!  You kill the jackal!") == 3  # a rule counts once
    assert table.utility("You kill the newt!  12 gold pieces.") == 5
    assert table.utility("You kill it.  It's a wall.") == 2
    assert table.utility("Hello") == 0.5  # unmatched
    assert table.utility("") == 0.0 and table.utility("  ") == 0.0
    u = caption_utilities(table, [("You kill x", "It's a wall."), ("", "gold")])
    np.testing.assert_array_equal(u, [[3, -1], [0, 2]])


@pytest.mark.parametrize(
    "text, field",
    [
        ("goals: {defaultgoal: {rules: [[1, '(']]}}", "goals.defaultgoal.rules[0]: bad regex"),
        ("goals: {defaultgoal: {rules: [['x', 'a']]}}", "goals.defaultgoal.rules[0]: expected [utility, regex]"),
        ("goals: {defaultgoal: {rules: [], weight: 2}}", "unknown key(s) weight"),
        ("goals: {defaultgoal: {rules: [], unmatched: high}}", "goals.defaultgoal.unmatched"),
        ("rules: []", "expected a mapping 'goals"),
    ],
)
def test_bad_judge_files_name_the_field(tmp_path, text, field):
    path = write_judge(tmp_path, text)
    with pytest.raises(MotifError, match=str(path)) as err:
        load_table(path, "defaultgoal")
    assert field in str(err.value)


def test_missing_goal_lists_the_goals(tmp_path):
    with pytest.raises(MotifError, match="no table for goal 'gold' \\(have: defaultgoal\\)"):
        load_table(write_judge(tmp_path, JUDGE), "gold")
    with pytest.raises(MotifError, match="no such file"):
        load_table(tmp_path / "absent.yaml", "gold")


def test_shipped_judge_prefers_what_each_goal_wants():
    tables = {g: load_table("nethack", g) for g in ("defaultgoal", "combat", "gold", "stairs")}
    assert set(tables) <= set(GOALS)
    kill, gold, down = "You kill the newt!", "$ - 12 gold pieces.", "You descend the stairs."
    wall, never, unknown = "It's a wall.", "Never mind.", "Unknown command '^M'."
    d = tables["defaultgoal"]
    assert d.utility(down) > d.utility(kill) > d.utility("The door opens.") > d.utility("") > d.utility(wall)
    assert d.utility(gold) > 0 > d.utility(never) and d.utility(unknown) < 0
    assert d.utility("You find a hidden passage.") > 0
    assert tables["gold"].utility(gold) > tables["gold"].utility(kill)
    assert tables["gold"].utility(gold) > tables["gold"].utility(down)
    assert tables["combat"].utility(kill) > tables["combat"].utility(gold)
    assert tables["combat"].utility(kill) > tables["combat"].utility(down)
    assert tables["stairs"].utility(down) > tables["stairs"].utility("There is a staircase down here.")
    assert tables["stairs"].utility("There is a staircase down here.") > tables["stairs"].utility(kill)
    assert tables["stairs"].utility(down) > tables["stairs"].utility(gold)
    meal, faint = "You finish eating the food ration.", "You faint from lack of food.  You regain consciousness."
    assert tables["defaultgoal"].utility(meal) > tables["defaultgoal"].utility("")  # the score wants it fed
    cant_down = "You can't go down here."
    for goal in ("combat", "gold", "stairs"):  # a steering goal keeps the score's exploring, not its meals
        assert tables[goal].utility(meal) == tables[goal].utility(""), goal
        assert tables[goal].utility("The door opens.") == 1 and tables[goal].utility("It's a wall.") == -1, goal
    assert tables["stairs"].utility(cant_down) == 0 > tables["gold"].utility(cant_down)  # `>` is its goal's key
    for goal, table in tables.items():  # no goal wants it fainting or choking
        assert table.utility("") > table.utility(faint), goal
        assert table.utility("You're having a hard time getting all of it down.") < 0, goal


def test_agreement_counts_only_pairs_both_decided():
    llm = np.array([0, 1, 0, 2, 3, 1], np.int8)
    judge = np.array([0, 0, 2, 1, 0, 1], np.int8)
    r = agreement(llm, judge)
    assert (r["both_decided"], r["agree"], r["rate"]) == (3, 2, pytest.approx(2 / 3))
    assert (r["only_a_decided"], r["only_b_decided"]) == (1, 1)
    assert np.isnan(agreement([2, 3], [0, 1])["rate"])


def test_annotate_rules_labels_every_pair_and_reports_agreement(tmp_path, capsys):
    pairs = [
        ("You kill the newt!", "It's a wall."),
        ("", "$ - 3 gold pieces."),
        ("Never mind.", "Never mind."),
        ("It's a wall.", "You see here a dart."),
    ]
    ds_path = write_pairs(tmp_path / "ds", pairs)
    assert main(["annotate", str(ds_path), "--backend", "rules", "--goal", "gold", "--no-progress"]) == 0
    labels = np.asarray(open_dataset(ds_path).labels("rules-nethack_gold"))
    assert sorted(p.name for p in (ds_path / "preference").iterdir()) == ["rules-nethack_gold.npy"]
    # gold judge: kill 0 beats wall -1; gold wins; identical tie; wall -1 vs dart 0
    np.testing.assert_array_equal(labels, [0, 1, 2, 1])
    # fake LLM labels next to them: agreement is reported against the judge
    assert main(["annotate", str(ds_path), "--backend", "rules", "--goal", "defaultgoal", "--no-progress"]) == 0
    ds = open_dataset(ds_path)
    labels = ds.open_labels("fake_llm")
    labels[:] = [0, 0, 2, 1]
    labels.flush()
    sidecar = ds.sidecar_path("fake_llm", ".json", for_writing=True)
    sidecar.parent.mkdir(parents=True, exist_ok=True)
    sidecar.write_text(json.dumps({"backend": "llamacpp"}))
    found = {(llm, judge): r for llm, judge, r in judge_comparisons(open_dataset(ds_path), "fake_llm")}
    r = found[("fake_llm", "rules-nethack_defaultgoal")]
    assert (r["both_decided"], r["agree"]) == (3, 2)
    assert main(["annotate", str(ds_path), "--backend", "rules", "--goal", "defaultgoal", "--no-progress"]) == 0
    assert "agreement fake_llm vs rules-nethack_defaultgoal: 66.7% of 3 pairs" in capsys.readouterr().out


def test_soft_rules_labels_are_the_bradley_terry_probabilities_of_the_utilities(tmp_path, capsys):
    pairs = [("You kill the newt!", "It's a wall."), ("", "$ - 3 gold pieces."), ("Never mind.", "Never mind.")]
    ds_path = write_pairs(tmp_path / "ds", pairs)
    argv = ["annotate", str(ds_path), "--backend", "rules", "--goal", "gold", "--soft", "2", "--no-progress"]
    assert main(argv) == 0
    ds = open_dataset(ds_path)
    # gold judge utilities: kill 0 vs wall -1, empty 0 vs gold 6, a tie; P(first) = sigmoid(diff / 2)
    expected = [1 / (1 + np.exp(-0.5)), 1 / (1 + np.exp(3.0)), 0.5]
    np.testing.assert_allclose(ds.soft_labels("rules-nethack_gold_soft2"), expected, rtol=1e-6)
    np.testing.assert_array_equal(ds.labels("rules-nethack_gold_soft2"), [0, 1, 2])
    target, weight = preference_targets(
        np.asarray(ds.labels("rules-nethack_gold_soft2")), ds.soft_labels("rules-nethack_gold_soft2")
    )
    np.testing.assert_allclose(target, expected, rtol=1e-6)  # what the reward model is fitted to
    assert ds.soft_labels("rules-nethack_gold") is None  # hard labels, as Motif, unless asked
    assert main(["annotate", str(ds_path), "--backend", "score", "--soft", "1", "--no-progress"]) != 0
    assert "--soft 1: soft rules labels need --backend rules" in capsys.readouterr().err


def test_parse_table_accepts_integer_and_float_utilities():
    t = parse_table({"rules": [[1, "a"], [0.5, "b"]]}, "g", "here")
    assert t.utility("ab") == 1.5
