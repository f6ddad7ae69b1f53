"""`motif collect`: bookkeeping units, then tiny end-to-end collections with the real NLE actor pool."""

import json

import numpy as np
import pytest

from motif_jax.cli import main
from motif_jax.data import decode_message, open_dataset
from motif_jax.data.collect import CollectSettings, SlotBook, SubsequenceRecorder, collect
from motif_jax.errors import MotifError

TINY = dict(pairs=12, num_envs=2, sample_prob=0.2)
TINY_ARGS = ["--pairs", "12", "--num-envs", "2", "--sample-prob", "0.2", "--no-progress"]


# -- pure bookkeeping ----------------------------------------------------------------------------------------


def step(value):
    return {"x": np.array([value])}


def test_recorder_emits_consecutive_windows_within_one_episode():
    recorder = SubsequenceRecorder(num_envs=2, seq_len=3)
    assert recorder.observe(0, step(1), start=False, episode_ends=False) is None  # not started
    assert recorder.observe(0, step(2), start=True, episode_ends=False) is None
    assert recorder.observe(1, step(50), start=True, episode_ends=False) is None  # envs are independent
    assert recorder.observe(0, step(3), start=True, episode_ends=False) is None  # already recording
    window = recorder.observe(0, step(4), start=False, episode_ends=False)
    assert window["x"][:, 0].tolist() == [2, 3, 4]
    assert recorder.observe(0, step(5), start=True, episode_ends=False) is None
    assert recorder.observe(0, step(6), start=False, episode_ends=True) is None  # episode ended: dropped
    assert recorder.observe(0, step(7), start=False, episode_ends=False) is None
    assert recorder.open[0] is None


def test_recorder_with_length_one_keeps_the_terminal_step():
    recorder = SubsequenceRecorder(num_envs=1, seq_len=1)
    assert recorder.observe(0, step(9), start=True, episode_ends=True)["x"].tolist() == [[9]]


def test_slot_book_fills_a_seeded_permutation_and_waits_for_episode_ends():
    book = SlotBook(num_slots=6, seed=0)
    expected_order = np.random.default_rng([0, 0]).permutation(6)
    claimed = [book.claim(env_id=i % 2, episode_id=i) for i in range(6)]
    assert claimed == expected_order.tolist()
    assert not book.accepting and not book.finished and book.num_done == 0
    assert book.episode_ended(0) == claimed[0::2]
    assert book.num_done == 3 and not book.finished
    assert book.episode_ended(1) == claimed[1::2]
    assert book.finished and book.num_done == 6
    assert book.episode_ended(1) == []


def test_slot_book_never_pairs_an_episode_with_itself():
    book = SlotBook(num_slots=8, seed=1)
    claimed = [book.claim(env_id=0, episode_id=7) for _ in range(5)]
    assert claimed[-1] is None  # only the 4 partners of episode 7's slots are left
    assert sorted(s // 2 for s in claimed[:4]) == [0, 1, 2, 3]
    rest = [book.claim(env_id=1, episode_id=8) for _ in range(4)]
    assert sorted(claimed[:4] + rest) == list(range(8)) and not book.accepting


def test_slot_book_resume_redoes_pending_and_empty_slots_only():
    states = np.array([2, 1, 0, 2, 1, 0], np.uint8)
    book = SlotBook(num_slots=6, seed=3, states=states)
    order = np.random.default_rng([3, 0]).permutation(6)
    assert book.queue.tolist() == [s for s in order if s in (1, 2, 4, 5)]
    assert book.num_done == 2


def test_settings_validation():
    assert CollectSettings(keys=("blstats",)).keys == ("message", "blstats")  # captions always kept
    with pytest.raises(MotifError, match="pairs"):
        CollectSettings(pairs=0)
    with pytest.raises(MotifError, match="sample-prob"):
        CollectSettings(sample_prob=1.5)
    with pytest.raises(MotifError, match="reward"):
        CollectSettings(keys=("message", "reward"))


# -- end to end with the real pool ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    out = tmp_path_factory.mktemp("collect") / "ds"
    code = main(["collect", "--task", "score", "--seed", "0", "--out", str(out), *TINY_ARGS])
    assert code == 0
    return out


def test_collect_writes_a_complete_dataset(collected):
    ds = open_dataset(collected)
    assert len(ds) == 12 and ds.seq_len == 1
    assert ds.keys == ["blstats", "delta", "message", "prev_message", "rewards", "tty_chars", "tty_colors"]
    assert ds.data("message").shape == (12, 2, 1, 256) and ds.data("rewards").dtype == np.float32
    assert ds.data("tty_chars").shape == (12, 2, 1, 24, 80)
    assert set(ds.info_keys) >= {"score", "episode_score", "turns", "dlvl", "episode_id"}
    assert not (collected / ".collect").exists()
    meta = ds.meta
    assert meta["complete"] and meta["task"] == "score" and meta["policy"] == "random" and meta["seed"] == 0
    assert meta["counts"]["pairs"] == 12 and meta["counts"]["env_steps"] > 0 and meta["counts"]["episodes"] >= 1
    assert meta["data"]["blstats"] == {"shape": [27], "dtype": "int64"}
    assert meta["motif_jax_version"] and meta["created"]


def test_info_matches_observations_and_episodes(collected):
    from nle import nethack

    ds = open_dataset(collected)
    blstats = np.asarray(ds.data("blstats"))[:, :, -1]
    np.testing.assert_array_equal(ds.info("score")[:], blstats[..., nethack.NLE_BL_SCORE])
    np.testing.assert_array_equal(ds.info("turns")[:], blstats[..., nethack.NLE_BL_TIME])
    np.testing.assert_array_equal(ds.info("dlvl")[:], blstats[..., nethack.NLE_BL_DEPTH])
    episode_score, episode_id = np.asarray(ds.info("episode_score")), np.asarray(ds.info("episode_id"))
    assert (episode_score >= 0).all()  # every slot's episode ended and was filled in
    for episode in np.unique(episode_id):  # one final score per episode
        assert len(set(episode_score[episode_id == episode].tolist())) == 1
    assert (episode_id[:, 0] != episode_id[:, 1]).all()  # members from different episodes


def test_caption_distribution_counts_every_step(collected):
    captions = json.loads((collected / "captions.json").read_text())
    texts = decode_message(np.asarray(open_dataset(collected).data("message"))).ravel().tolist()
    assert captions["steps"] == len(texts) == 24
    assert captions["fraction_empty"] == pytest.approx(texts.count("") / 24)
    assert {c["caption"]: c["count"] for c in captions["top"]} == {t: texts.count(t) for t in set(texts)}


def test_rerun_into_complete_dir_is_a_noop(collected, capsys):
    before = {p: p.stat().st_mtime_ns for p in collected.rglob("*")}
    assert main(["collect", "--task", "score", "--seed", "0", "--out", str(collected), *TINY_ARGS]) == 0
    assert "already complete" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in collected.rglob("*")} == before
    assert main(["collect", "--seed", "1", "--out", str(collected), *TINY_ARGS]) == 2
    assert "other settings (seed: 0 there, 1 now)" in capsys.readouterr().err


def test_same_seed_gives_identical_data(collected, tmp_path):
    again = collect(CollectSettings(seed=0, **TINY), tmp_path / "again", show_progress=False)
    first, second = open_dataset(collected), open_dataset(again.path)
    for key in first.keys:
        np.testing.assert_array_equal(first.data(key)[:], second.data(key)[:], err_msg=key)
    for key in first.info_keys:
        np.testing.assert_array_equal(first.info(key)[:], second.info(key)[:], err_msg=key)
    assert first.meta["counts"] == second.meta["counts"]


def test_interrupted_collection_resumes_and_keeps_finished_slots(collected, tmp_path):
    settings = CollectSettings(seed=0, **TINY)
    full = open_dataset(collected)
    out = tmp_path / "ds"
    last_batch = full.meta["counts"]["env_steps"] - TINY["num_envs"]  # the final episode is still running
    with pytest.raises(KeyboardInterrupt):  # same seed: identical to `collected` up to the interruption
        collect(settings, out, show_progress=False, max_env_steps=last_batch)
    with pytest.raises(MotifError, match="did not finish"):
        open_dataset(out)
    done = np.load(out / ".collect" / "slots.npy") == 2
    assert 0 < done.sum() < done.size
    kept = np.load(out / "data" / "message.npy").reshape(-1, 256)[done]
    np.testing.assert_array_equal(kept, np.asarray(full.data("message")).reshape(-1, 256)[done])
    with pytest.raises(MotifError, match="other settings"):
        collect(CollectSettings(seed=6, **TINY), out, show_progress=False)
    result = collect(settings, out, show_progress=False)
    assert result.meta["counts"]["resumed"] == 1
    ds = open_dataset(out)
    np.testing.assert_array_equal(np.asarray(ds.data("message")).reshape(-1, 256)[done], kept)
    assert (np.asarray(ds.info("episode_score")) >= 0).all()
    episode_id = np.asarray(ds.info("episode_id"))
    assert (episode_id[:, 0] != episode_id[:, 1]).all()


def test_foreign_dir_overwrite_and_bad_options(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a dataset")
    assert main(["collect", "--out", str(tmp_path), *TINY_ARGS]) == 2
    assert "not a motif dataset" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").exists()
    assert main(["collect", "--policy", str(tmp_path / "missing"), "--out", str(tmp_path / "p"), *TINY_ARGS]) == 2
    assert "no such checkpoint directory" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()
    with pytest.raises(MotifError, match="pass the loaded agent"):
        collect(CollectSettings(policy=str(tmp_path / "run"), **TINY), tmp_path / "p", show_progress=False)


def test_overwrite_recollects_with_longer_subsequences_and_glyphs(tmp_path):
    out = tmp_path / "ds"
    collect(CollectSettings(seed=2, **TINY), out, show_progress=False)
    open_dataset(out).open_labels("old")
    settings = CollectSettings(seed=2, seq_len=3, keys=("message", "blstats", "glyphs"), **TINY)
    collect(settings, out, overwrite=True, show_progress=False)
    ds = open_dataset(out)
    assert ds.seq_len == 3 and ds.keys == ["blstats", "delta", "glyphs", "message", "prev_message", "rewards"]
    assert ds.annotators == []  # labels of the old data are gone
    from nle import nethack

    turns = np.asarray(ds.data("blstats"))[..., nethack.NLE_BL_TIME]
    assert (np.diff(turns, axis=2) >= 0).all()  # consecutive steps of one episode
    steps = np.asarray(ds.info("step"))
    assert (steps >= 2).all()  # a 3-step window ends at least 2 steps into its episode


def test_cli_settings_layer_defaults_config_set_and_flags(tmp_path):
    import argparse

    from motif_jax.data.collect_cli import add_arguments, settings_from_args

    config = tmp_path / "collect.yaml"
    config.write_text("pairs: 30\nseed: 4\nkeys: [blstats]\nnum_envs: 3\n")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--out", "x", "--config", str(config), "--set", "seed=9", "--num-envs", "5", "--glyphs"])
    settings = settings_from_args(args)
    assert (settings.pairs, settings.seed, settings.num_envs) == (30, 9, 5)
    assert settings.keys == ("message", "blstats", "glyphs") and settings.task == "score"
    args = parser.parse_args(["--out", "x", "--keys", "message,tty_chars"])
    assert settings_from_args(args).keys == ("message", "tty_chars")
    config.write_text("pair: 3\n")
    with pytest.raises(MotifError, match="unknown key"):
        settings_from_args(parser.parse_args(["--out", "x", "--config", str(config)]))


def test_mention_stairs_setting_reaches_the_command_line_and_older_settings_still_match():
    import argparse

    from motif_jax.data.collect_cli import add_arguments, collect_argv, settings_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert not settings_from_args(parser.parse_args(["--out", "x"])).mention_stairs
    settings = settings_from_args(parser.parse_args(["--out", "x", "--mention-stairs"]))
    assert settings.mention_stairs and settings.as_dict()["mention_stairs"] is True
    assert "mention_stairs" not in CollectSettings().as_dict()  # datasets collected before the option still match
    argv = collect_argv("d", task="score", pairs=2, seed=0, num_envs=1, mention_stairs=True)
    assert settings_from_args(parser.parse_args(argv[1:])).mention_stairs
    assert "mention_explored" not in CollectSettings().as_dict()
    argv = collect_argv("d", task="score", pairs=2, seed=0, num_envs=1, mention_explored=True)
    settings = settings_from_args(parser.parse_args(argv[1:]))
    assert settings.mention_explored and not settings.mention_stairs
