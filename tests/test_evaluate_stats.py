"""Pure evaluation maths against values computed by hand."""

import math
from collections import Counter

import numpy as np
import pytest

from motif_jax.evaluate import stats
from motif_jax.evaluate.evaluate import Episode, episode_quotas, global_episode_index, summarize


def test_mean_ci95_matches_hand_computed_t_interval():
    # mean 3, sample sd sqrt(2.5), sem sqrt(0.5), t(0.975, 4 dof) = 2.776445
    mean, half = stats.mean_ci95([1, 2, 3, 4, 5])
    assert mean == 3.0
    assert half == pytest.approx(2.776445 * math.sqrt(0.5), rel=1e-6)


def test_mean_ci95_of_constant_values_is_zero_width_and_single_value_is_nan():
    assert stats.mean_ci95([7.0, 7.0, 7.0]) == (7.0, 0.0)
    mean, half = stats.mean_ci95([4.0])
    assert mean == 4.0 and math.isnan(half)
    with pytest.raises(ValueError):
        stats.mean_ci95([])


def test_success_rate_and_end_reasons():
    assert stats.success_rate([True, False, False, True]) == 0.5
    counts = stats.end_reason_counts(["death", "time_limit", "death", "weird"], known=("none", "death", "time_limit"))
    assert counts == {"none": 0, "death": 2, "time_limit": 1, "weird": 1}
    assert list(counts) == ["none", "death", "time_limit", "weird"]


def test_action_shares_most_taken_first_and_untaken_left_out():
    shares = stats.action_shares([1, 0, 3, 1], ["a", "b", "c", "d"])
    assert shares == {"steps": 5, "shares": {"c": 0.6, "a": 0.2, "d": 0.2}}
    assert list(shares["shares"]) == ["c", "a", "d"]  # ties by action id
    assert stats.action_shares([0, 0], ["a", "b"]) == {"steps": 0, "shares": {}}


def test_top_captions_breaks_ties_alphabetically():
    counts = Counter({"b": 3, "a": 3, "c": 5, "d": 1})
    assert stats.top_captions(counts, k=3) == [("c", 5), ("a", 3), ("b", 3)]


def test_describe():
    d = stats.describe([2.0, 4.0])
    assert d["mean"] == 3.0 and d["min"] == 2.0 and d["max"] == 4.0
    # sd sqrt(2), sem 1, t(0.975, 1 dof) = 12.7062
    assert d["ci95"] == pytest.approx(12.706205, rel=1e-6)


def test_episode_quotas_sum_to_the_episode_count():
    assert episode_quotas(20, 8) == [3, 3, 3, 3, 2, 2, 2, 2]
    assert episode_quotas(3, 4) == [1, 1, 1, 0]
    assert sum(episode_quotas(97, 13)) == 97
    with pytest.raises(ValueError):
        episode_quotas(0, 2)


def test_global_episode_index_enumerates_each_episode_once():
    quotas = episode_quotas(10, 4)
    indices = sorted(global_episode_index(env, nth, 4) for env, q in enumerate(quotas) for nth in range(q))
    assert indices == list(range(10))


def test_summarize_reports_headline_numbers():
    episodes = [
        Episode(
            0,
            0,
            {
                "return": 1.0,
                "length": 10,
                "score": 5,
                "max_dlvl": 1,
                "xlvl": 1,
                "gold": 0,
                "success": False,
                "end_reason": "death",
            },
        ),
        Episode(
            1,
            1,
            {
                "return": 3.0,
                "length": 30,
                "score": 15,
                "max_dlvl": 2,
                "xlvl": 2,
                "gold": 7,
                "success": True,
                "end_reason": "success",
            },
        ),
    ]
    report = summarize(episodes, Counter({"It's a wall.": 4, "Hello": 1}), end_reasons=("none", "death", "success"))
    assert report["mean_return"] == 2.0
    assert report["ci95"] == pytest.approx(12.706205, rel=1e-6)
    assert report["success_rate"] == 0.5
    assert (report["score"], report["max_dlvl"], report["gold"], report["episode_length"]) == (10.0, 1.5, 3.5, 20.0)
    assert report["end_reasons"] == {"none": 0, "death": 1, "success": 1}
    assert report["top_captions"][0] == ["It's a wall.", 4]
    assert [e["index"] for e in report["per_episode"]] == [0, 1]
    assert np.isfinite(report["details"]["score"]["ci95"])
