"""Prompt templates (built-in and user files), caption collapsing, pair keys and chunks."""

import numpy as np
import pytest
import yaml

from annotate_data import encode
from motif_jax.annotate.cli import default_name
from motif_jax.annotate.pairs import canonical_order, chunk_range, collapse_captions, pair_key, subsequence_caption
from motif_jax.annotate.prompts import GOALS, WORDINGS, builtin_prompt_dir, load_template
from motif_jax.annotate.verdict import parse_verdict
from motif_jax.data import Label
from motif_jax.errors import MotifError


@pytest.mark.parametrize("wording", WORDINGS)
@pytest.mark.parametrize("goal", GOALS)
def test_builtin_templates_render_both_captions_and_goal(wording, goal):
    t = load_template(wording, goal)
    conv = t.first_turn("You kill the newt!", "It's a wall.")
    assert [m["role"] for m in conv] == ["system", "user"]
    user = conv[1]["content"]
    assert '"You kill the newt!"' in user and '"It\'s a wall."' in user
    assert user.index("You kill the newt!") < user.index("It's a wall.")
    assert "{{" not in user and "{%" not in user
    assert t.verdict_format in user
    if goal == "zeroknowledge":
        assert t.goal_text == "" and "goal" not in user.lower()
    else:
        assert t.goal_text and t.goal_text in user


@pytest.mark.parametrize("wording", WORDINGS)
def test_builtin_verdict_examples_parse_with_builtin_regex(wording):
    t = load_template(wording, "defaultgoal")
    assert parse_verdict('{"best_message": 1}', t.verdict_regex) == Label.FIRST
    assert parse_verdict('{"best_message": 2}', t.verdict_regex) == Label.SECOND
    assert parse_verdict('{"best_message": None}', t.verdict_regex) == Label.TIE
    # the prefilled answer prefix followed by a digit is itself a parseable verdict
    assert parse_verdict(t.answer_prefix + "2}", t.verdict_regex) == Label.SECOND


def test_logprob_turn_ends_with_answer_prefix_and_retry_continues_conversation():
    t = load_template("default", "gold")
    conv = t.first_turn("a", "b", mode="logprob")
    assert conv[-1] == {"role": "assistant", "content": t.answer_prefix}
    first = t.first_turn("a", "b")
    retry = t.retry_turn(first, "I like both.")
    assert retry[:2] == first and retry[2] == {"role": "assistant", "content": "I like both."}
    assert retry[3]["role"] == "user" and t.verdict_format in retry[3]["content"]


def test_template_hash_depends_on_goal_and_wording():
    hashes = {load_template(w, g).hash for w in WORDINGS for g in GOALS}
    assert len(hashes) == len(WORDINGS) * len(GOALS)
    assert load_template("default", "gold").hash == load_template("default", "gold").hash


def _user_template(tmp_path, **changes):
    data = yaml.safe_load((builtin_prompt_dir() / "default.yaml").read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_user_template_file_loads(tmp_path):
    path = _user_template(tmp_path, name=None, user="Goal: {{ goal }}\nA: {{ caption1 }}\nB: {{ caption2 }}")
    t = load_template(path, "stairs")
    assert t.name == "mine"
    assert t.first_turn("x", "y")[1]["content"].endswith("A: x\nB: y")


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"retry": None}, "missing field 'retry'"),
        ({"user": "only {{ caption1 }}"}, "'user' must use {{ caption2 }}"),
        ({"user": "{{ caption1 }} {{ caption2 }} {{ capton3 }}"}, "unknown variable(s) capton3"),
        ({"system": "{% if goal %}unclosed"}, "'system' is not a valid Jinja2 template"),
        ({"verdict_regex": "best_message: [12]"}, "needs a capture group"),
        ({"verdict_regex": "(unbalanced"}, "'verdict_regex' is not a valid regex"),
        ({"goals": ["defaultgoal"]}, "'goals' must map goal names"),
        ({"extra_field": "x"}, "unknown field(s) extra_field"),
        ({"answer_prefix": 3}, "'answer_prefix' must be a string"),
    ],
)
def test_bad_user_template_names_the_field(tmp_path, changes, message):
    with pytest.raises(MotifError) as e:
        load_template(_user_template(tmp_path, **changes), "defaultgoal")
    assert message in str(e.value)


def test_unknown_goal_and_missing_file_are_clear_errors(tmp_path):
    with pytest.raises(MotifError, match="no goal 'fishing'"):
        load_template("default", "fishing")
    with pytest.raises(MotifError, match="not found"):
        load_template(tmp_path / "nope.yaml", "gold")


def test_collapse_drops_empty_and_counts_consecutive_repeats():
    assert collapse_captions([]) == ""
    assert collapse_captions(["", "  ", ""]) == ""
    assert (
        collapse_captions(["It's a wall.", "It's a wall.", "", "It's a wall.", "You kill it!", "It's a wall."])
        == "It's a wall. (x3)\nYou kill it!\nIt's a wall."
    )
    assert collapse_captions(["a", "b", "b"]) == "a\nb (x2)"


def test_subsequence_caption_decodes_nle_bytes():
    messages = np.stack([encode("Hello."), encode(""), encode("Hello."), encode("Bye.")])
    assert subsequence_caption(messages) == "Hello. (x2)\nBye."


def test_pair_key_is_unordered_and_whitespace_insensitive_but_setting_sensitive():
    key = pair_key("You kill the newt!", "It's a wall.", "h1", "m", "generate")
    assert key == pair_key("It's a wall.", "You kill  the newt! ", "h1", "m", "generate")
    assert key != pair_key("You kill the newt!", "It's a wall.", "h2", "m", "generate")
    assert key != pair_key("You kill the newt!", "It's a wall.", "h1", "m2", "generate")
    assert key != pair_key("You kill the newt!", "It's a wall.", "h1", "m", "logprob")
    assert key != pair_key("You kill the newt!", "It's a wall!", "h1", "m", "generate")
    assert canonical_order("b", "a") == ("a", "b", True)
    assert canonical_order("a", "b") == ("a", "b", False)


@pytest.mark.parametrize("n, k", [(10, 3), (7, 7), (3, 5), (2000, 8), (0, 2)])
def test_chunks_cover_every_row_once(n, k):
    chunks = [chunk_range(n, k, i) for i in range(k)]
    rows = [r for c in chunks for r in c]
    assert rows == list(range(n))
    assert max(len(c) for c in chunks) - min(len(c) for c in chunks) <= 1


def test_chunk_range_values_and_errors():
    assert chunk_range(10, 3, 0) == range(0, 3)
    assert chunk_range(10, 3, 2) == range(6, 10)
    with pytest.raises(MotifError, match="--chunk 3"):
        chunk_range(10, 3, 3)


def test_default_name_follows_paper_naming():
    assert default_name("llama70b", "defaultgoal", "default", "generate", False) == "llama70b_defaultgoal_default"
    assert default_name("m", "gold", "reworded", "logprob", True) == "m_gold_reworded_logprob_both"
