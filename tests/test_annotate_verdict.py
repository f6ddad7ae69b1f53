"""Verdict regex on tricky replies, label encoding, soft labels and both-order merging."""

import math

import numpy as np
import pytest

from motif_jax.annotate.asking import Answer, merge_both_orders
from motif_jax.annotate.prompts import load_template
from motif_jax.annotate.verdict import (
    combine_orders,
    compare_values,
    hard_label,
    parse_verdict,
    probs_from_top_logprobs,
    soft_label,
    swap_label,
)
from motif_jax.data import Label

FIRST, SECOND, TIE, UNKNOWN = Label

REGEX = load_template("default", "defaultgoal").verdict_regex
PAPER_STYLE = r'"?best_description"?\s*[:=]\s*"?(1|2|none|null)\b'

CORPUS = [
    ('{"best_message": 1}', FIRST),
    ('{"best_message": 2}', SECOND),
    ('{"best_message": None}', TIE),
    ('{"best_message": null}', TIE),
    ('{"BEST_MESSAGE": "2"}', SECOND),
    ("{'best_message': 1}", UNKNOWN),  # single quotes around the key: not our format...
    ("best_message: 1", FIRST),  # ...but a bare key is accepted
    ("Best_Message = 2", SECOND),
    (
        'Message 1 mentions a kill, which is progress.\n\nSo my answer is:\n{"best_message": 1}\nI hope this helps!',
        FIRST,
    ),
    # the model restates the format first, then answers: the last match wins
    (
        'I must answer with {"best_message": 1}, {"best_message": 2} or {"best_message": None}.\n'
        'Message 2 is better.\n{"best_message": 2}',
        SECOND,
    ),
    ('{"best_message": 1} ... on second thought {"best_message": None}', TIE),
    ('{"best_message": 12}', UNKNOWN),  # not a verdict: \b stops "1" inside "12"
    ("Message 1 is better.", UNKNOWN),  # prose without the format
    ("", UNKNOWN),
    ('{"best_message": ', UNKNOWN),
    ('{"best_message": neither}', TIE),
]


@pytest.mark.parametrize("reply, label", CORPUS)
def test_verdict_corpus(reply, label):
    assert parse_verdict(reply, REGEX) == label


@pytest.mark.parametrize(
    "reply, label",
    [
        ('{"best_description": None}', TIE),
        ('"best_description": None', TIE),
        ('Analysis...\n{"best_description": 2}', SECOND),
        ('{"best_description": "1"}', FIRST),
        ('{"best_message": 1}', UNKNOWN),
    ],
)
def test_paper_style_regex_from_a_user_template(reply, label):
    assert parse_verdict(reply, PAPER_STYLE) == label


def test_label_encoding_matches_motif():
    assert [label.value for label in Label] == [0, 1, 2, 3]
    assert (FIRST, SECOND, TIE, UNKNOWN) == (0, 1, 2, 3)
    assert [swap_label(x) for x in (0, 1, 2, 3)] == [1, 0, 2, 3]


@pytest.mark.parametrize(
    "ab, ba, out",
    [
        (0, 0, 0),
        (1, 1, 1),
        (2, 2, 2),
        (3, 3, 3),
        (0, 1, 2),
        (1, 0, 2),
        (0, 2, 2),
        (2, 1, 2),
        (3, 0, 0),
        (1, 3, 1),
        (3, 2, 2),
    ],
)
def test_combine_orders(ab, ba, out):
    assert combine_orders(ab, ba) == out


def test_soft_and_hard_labels():
    assert soft_label(0.6, 0.2) == pytest.approx(0.75)
    assert math.isnan(soft_label(0.0, 0.0))
    assert hard_label(0.75, 0.1) == FIRST
    assert hard_label(0.25, 0.1) == SECOND
    assert hard_label(0.6, 0.1) == TIE  # band is inclusive
    assert hard_label(0.61, 0.1) == FIRST
    assert hard_label(0.5, 0.0) == TIE
    assert hard_label(float("nan"), 0.1) == UNKNOWN


def test_probs_from_top_logprobs_adds_spelling_variants():
    p1, p2 = probs_from_top_logprobs(
        {"1": math.log(0.5), " 1": math.log(0.1), "2": math.log(0.2), "12": math.log(0.1), "None": math.log(0.1)}
    )
    assert p1 == pytest.approx(0.6) and p2 == pytest.approx(0.2)
    assert probs_from_top_logprobs({"Message": 0.0}) == (0, 0)


def test_merge_both_orders_logprob_averages_and_undoes_the_swap():
    ab, ba = Answer(FIRST, 0.8), Answer(FIRST, 0.65)  # swapped question: 0.65 for the *other* caption
    merged = merge_both_orders(ab, ba, tie_band=0.1, mode="logprob")
    assert merged.p_first == pytest.approx((0.8 + 0.35) / 2) and merged.label == TIE
    merged = merge_both_orders(Answer(FIRST, 0.9), Answer(SECOND, 0.1), 0.1, "logprob")
    assert merged.p_first == pytest.approx(0.9) and merged.label == FIRST
    merged = merge_both_orders(Answer(UNKNOWN, float("nan")), Answer(SECOND, 0.2), 0.1, "logprob")
    assert merged.p_first == pytest.approx(0.8) and merged.label == FIRST


def test_merge_both_orders_generate_flags_position_bias_as_tie():
    assert merge_both_orders(Answer(FIRST, 1.0), Answer(FIRST, 1.0), 0.1, "generate").label == TIE
    assert merge_both_orders(Answer(FIRST, 1.0), Answer(SECOND, 0.0), 0.1, "generate").label == FIRST


def test_compare_values_for_baselines():
    values = np.array([[3, 1], [1, 3], [2, 2], [np.nan, 1]])
    assert compare_values(values).tolist() == [FIRST, SECOND, TIE, UNKNOWN]
    assert compare_values(values).dtype == np.int8
