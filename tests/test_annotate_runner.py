"""The annotation loop with a scripted backend: dedup, cache, retries, chunks, resume after a crash."""

import json
import re

import numpy as np
import pytest

from annotate_data import random_pairs, write_pairs
from motif_jax.annotate.asking import Asker
from motif_jax.annotate.baselines import annotate_baseline
from motif_jax.annotate.cache import AnswerCache
from motif_jax.annotate.prompts import load_template
from motif_jax.annotate.runner import RunOptions, annotate
from motif_jax.cli import main
from motif_jax.data import open_dataset
from motif_jax.errors import MotifError

CAPTION = re.compile(r'Message ([12]): "(.*?)"(?:\n|$)', re.S)


class ScriptedJudge:
    """Deterministic stand-in for an LLM: prefers the longer caption; "mute" captions get no verdict
    until retried, "silent" ones never get one. Counts every request."""

    model_name = model_id = "scripted"
    supports_logprob = True
    batch_size = 4

    def __init__(self, crash_after: int | None = None):
        self.requests, self.crash_after = 0, crash_after

    def _captions(self, conversation):
        found = dict(CAPTION.findall(conversation[1]["content"]))
        return found["1"], found["2"]

    def _count(self, n):
        self.requests += n
        if self.crash_after is not None and self.requests > self.crash_after:
            raise KeyboardInterrupt("simulated kill")

    def complete(self, conversations):
        self._count(len(conversations))
        replies = []
        for conv in conversations:
            a, b = self._captions(conv)
            retried = len(conv) > 2
            if "silent" in a + b or ("mute" in a + b and not retried):
                replies.append("Both are interesting messages.")
            else:
                verdict = "1" if len(a) > len(b) else "2" if len(b) > len(a) else "None"
                replies.append(f'Thinking...\n{{"best_message": {verdict}}}')
        return replies

    def verdict_probs(self, conversations):
        self._count(len(conversations))
        out = []
        for conv in conversations:
            a, b = self._captions(conv)
            out.append((len(a) / 100, len(b) / 100))
        return out

    def close(self):
        pass


PAIRS = [
    ["You kill the newt!", "It's a wall."],  # 0: first longer
    ["It's a wall.", "You kill the newt!"],  # 1: same pair swapped -> cache
    ["It's a wall.", "It's a wall."],  # 2: identical -> tie, no call
    ["", ""],  # 3: identical empty
    ["You see here 12 gold pieces.", ""],  # 4
    ["mute caption", "ok"],  # 5: verdict only after the retry
    ["silent x", "y"],  # 6: never a verdict -> 3
    [["a", "a", "", "b"], ["a", "b"]],  # 7: "a (x2)\nb" vs "a\nb"
    ["You kill the newt!", "It's a wall."],
]  # 8: repeat -> cache


def run(ds, backend, mode="generate", name="judge", both=False, tie_band=0.1, **options):
    asker = Asker(backend, load_template("default", "defaultgoal"), mode, both, tie_band)
    settings = {"model": backend.model_name, "mode": mode, "both": both}
    return annotate(ds, asker, name, settings, RunOptions(progress=False, **options))


@pytest.fixture
def ds(tmp_path):
    return open_dataset(write_pairs(tmp_path / "pairs", PAIRS))


def test_generate_dedups_retries_and_labels(ds):
    judge = ScriptedJudge()
    stats = run(ds, judge, batch_size=4)
    labels = ds.labels("judge").tolist()
    assert labels == [0, 1, 2, 2, 0, 0, 3, 0, 0]
    # unique non-identical pairs: 0, 4, 5, 6, 7  -> 5 asked; 5 and 6 retried -> 7 requests
    assert (stats.asked, stats.requests, stats.retried, stats.failed) == (5, 7, 2, 1)
    assert (stats.identical, stats.cache_hits) == (2, 2)
    assert stats.label_counts == {0: 5, 1: 1, 2: 2, 3: 1}
    assert ds.soft_labels("judge") is None


def test_logprob_writes_soft_labels_consistent_under_swap(ds):
    stats = run(ds, ScriptedJudge(), mode="logprob", tie_band=0.05, batch_size=100)
    soft = ds.soft_labels("judge")
    assert soft[0] == pytest.approx(18 / 30) and soft[1] == pytest.approx(12 / 30)
    assert soft[2] == 0.5 and soft[8] == soft[0]
    assert ds.labels("judge")[:3].tolist() == [0, 1, 2]
    assert stats.asked == 5 and stats.requests == 5


def test_both_orders_asks_twice_per_unique_pair(ds):
    judge = ScriptedJudge()
    stats = run(ds, judge, both=True, batch_size=100)
    assert stats.asked == 5 and judge.requests == 2 * 5 + 2 * 2  # mute and silent retried in both orders
    assert ds.labels("judge").tolist() == [0, 1, 2, 2, 0, 0, 3, 0, 0]  # this judge has no position bias


def test_resume_after_crash_loses_only_the_block_in_flight(tmp_path):
    pairs = random_pairs(60, seed=3)
    full = open_dataset(write_pairs(tmp_path / "full", pairs))
    run(full, ScriptedJudge(), batch_size=5)
    crashed = open_dataset(write_pairs(tmp_path / "crash", pairs))
    with pytest.raises(KeyboardInterrupt):
        run(crashed, ScriptedJudge(crash_after=6), batch_size=5)
    partial = crashed.labels("judge").copy()
    done = partial != 3
    assert 0 < done.sum() < 60
    assert (partial[done] == full.labels("judge")[done]).all()
    cache_lines = (tmp_path / "crash" / "annotations" / "judge.cache.jsonl").read_text().splitlines()
    judge = ScriptedJudge()
    stats = run(crashed, judge, batch_size=5)
    assert stats.already_done == done.sum()
    assert (crashed.labels("judge") == full.labels("judge")).all()
    unique = len({frozenset(p) for p in map(tuple, pairs) if p[0] != p[1]})
    assert judge.requests == unique - len(cache_lines)  # nothing asked twice


def test_torn_cache_line_is_skipped_and_not_glued(tmp_path):
    path = tmp_path / "c.jsonl"
    cache = AnswerCache(path)
    cache.put("k1", 0, 1.0)
    cache.flush()
    with open(path, "a") as f:
        f.write('{"key": "k2", "lab')  # killed mid-write
    cache = AnswerCache(path)
    assert len(cache) == 1 and cache.get("k1") == (0, 1.0)
    cache.put("k3", 1, float("nan"))
    cache.flush()
    reread = AnswerCache(path)
    assert reread.get("k3")[0] == 1 and np.isnan(reread.get("k3")[1]) and "k2" not in reread


def test_chunks_split_work_and_share_the_cache(tmp_path):
    pairs = random_pairs(40, seed=5)
    ds = open_dataset(write_pairs(tmp_path / "d", pairs))
    first = run(ds, ScriptedJudge(), num_chunks=2, chunk=0)
    labels = ds.labels("judge")
    assert (labels[:20] != 3).all() and (labels[20:] == 3).all()
    second = run(ds, ScriptedJudge(), num_chunks=2, chunk=1)
    assert (ds.labels("judge") != 3).all()
    assert second.cache_hits > 0 and first.chunk_pairs == second.chunk_pairs == 20
    whole = open_dataset(write_pairs(tmp_path / "w", pairs))
    run(whole, ScriptedJudge())
    assert (whole.labels("judge") == ds.labels("judge")).all()


def test_settings_change_needs_overwrite(ds):
    run(ds, ScriptedJudge())
    with pytest.raises(MotifError, match="mode differ"):
        run(ds, ScriptedJudge(), mode="logprob")
    judge = ScriptedJudge()
    stats = run(ds, judge, mode="logprob", overwrite=True)
    assert stats.already_done == 0 and judge.requests == 5


def test_rerun_of_finished_file_asks_nothing_new(ds):
    run(ds, ScriptedJudge())
    judge = ScriptedJudge()
    stats = run(ds, judge)
    assert stats.already_done == 8 and stats.annotated == 1 and judge.requests == 0  # the label-3 pair


def test_log_dir_keeps_conversations(ds, tmp_path):
    run(ds, ScriptedJudge(), log_dir=tmp_path / "logs")
    files = sorted((tmp_path / "logs" / "judge").iterdir())
    assert [f.name for f in files] == [f"pair{i:09d}.txt" for i in (0, 4, 5, 6, 7)]
    text = files[2].read_text()
    assert "### assistant" in text and "I could not find your verdict" in text and "label = 0" in text


def test_score_and_return_baselines(tmp_path):
    scores = [[5, 1], [1, 5], [3, 3]]
    rewards = [[[1.0, 2.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.5]], [[1.0, 0.0], [0.5, 0.5]]]
    path = write_pairs(tmp_path / "b", [[["a", "b"], ["c", "d"]]] * 3, scores=scores, rewards=rewards)
    assert main(["annotate", str(path), "--backend", "score", "--no-progress"]) == 0
    ds = open_dataset(path)
    assert ds.labels("score").tolist() == [0, 1, 2]
    stats = annotate_baseline(ds, "return")
    assert ds.labels("return").tolist() == [0, 1, 2] and stats.label_counts == {0: 1, 1: 1, 2: 1}


def test_cli_rejects_bad_chunk_and_config_keys(tmp_path, capsys):
    path = write_pairs(tmp_path / "b", [["a", "b"]])
    assert main(["annotate", str(path), "--backend", "score", "--num-chunks", "2", "--chunk", "2"]) == 2
    assert "--chunk 2" in capsys.readouterr().err
    assert main(["annotate", str(path), "--backend", "score", "--set", "tie-bandd=0.2"]) == 2
    assert "unknown key tie_bandd" in capsys.readouterr().err
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"backend": "return", "name": "from-config"}))
    assert main(["annotate", str(path), "--config", str(config)]) == 0
    assert open_dataset(path).labels("from-config").tolist() == [2]


def test_benchmark_dedup_counts_and_json(tmp_path):
    from motif_jax.annotate.benchmark import dedup_counts, measure_mode

    captions = [("a", "b"), ("b", "a"), ("a", "a"), ("", ""), ("a", "c"), ("a ", "b")]
    counts = dedup_counts(captions)
    assert counts == {
        "pairs": 6,
        "identical_pairs": 2,
        "unique_pairs": 2,
        "unique_pair_ratio": 2 / 6,
        "llm_calls_saved": 4,
        "unique_captions": 4,
    }
    path = write_pairs(tmp_path / "d", PAIRS)
    out = tmp_path / "bench.json"
    assert main(["benchmark", "annotate", str(path), "--backend", "none", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["dedup"]["unique_pairs"] == 5 and result["modes"] == []
    measured = measure_mode(
        ScriptedJudge(),
        load_template("default", "defaultgoal"),
        "generate",
        [tuple(p) for p in PAIRS[:2]],
        batch_size=8,
    )
    assert measured["llm_requests"] == 1 and measured["label_counts"] == [1, 1, 0, 0]


def test_progress_lines_when_not_a_terminal(capsys):
    from motif_jax.progress import ProgressBar

    with ProgressBar("annotate x", 4, "pairs", line_every_s=0.0) as bar:
        bar.advance(1)
        bar.advance(3)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and lines[-1].startswith("annotate x: 4/4 pairs,") and "ETA 0 s" in lines[-1]
