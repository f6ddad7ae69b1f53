"""`motif benchmark env`: the ratio arithmetic and argument checks (the measurements themselves are slow)."""

import argparse

import pytest

from motif_jax.envs import benchmark
from motif_jax.errors import MotifError


def test_ratios_divide_the_pool_by_each_baseline():
    r = benchmark.ratios({"pool_sps": 30.0, "raw_sps": 40.0, "raw_round_robin_sps": 20.0, "gymnasium_sps": None})
    assert r == {
        "pool_over_raw": 0.75,
        "pool_over_raw_round_robin": 1.5,
        "pool_over_gymnasium": None,
        "raw_round_robin_over_raw": 0.5,
    }


def parse(*argv):
    parser = argparse.ArgumentParser()
    benchmark.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_defaults_match_the_issue_setting():
    args = parse()
    assert (args.task, args.num_envs, args.batch_size, args.seconds) == ("score", 16, 8, 10.0)


@pytest.mark.parametrize(
    "argv, match",
    [(("--task", "nope"), "unknown task"), (("--batch-size", "32"), "batch_size"), (("--seconds", "0"), "seconds")],
)
def test_bad_arguments_fail_before_measuring(argv, match):
    with pytest.raises(MotifError, match=match):
        benchmark.run(parse(*argv))
