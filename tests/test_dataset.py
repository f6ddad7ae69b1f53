"""Reader, label files and writer of pairs datasets (our layout, the original Motif layout, sharded keys)."""

import json

import numpy as np
import pytest

from motif_jax.data import ShardedArray, decode_message, open_dataset
from motif_jax.data.dataset import DatasetWriter, caption_distribution, output_dir_state, remove_dataset
from motif_jax.errors import MotifError

N, L = 6, 2


def encode(text: str) -> np.ndarray:
    raw = text.encode("latin-1")
    out = np.zeros(256, np.uint8)
    out[: len(raw)] = np.frombuffer(raw, np.uint8)
    return out


def messages(n=N, seq_len=L) -> np.ndarray:
    out = np.zeros((n, 2, seq_len, 256), np.uint8)
    for i in range(n):
        for j in range(2):
            for t in range(seq_len):
                out[i, j, t] = encode(f"msg {i} {j} {t}" if (i + j + t) % 3 else "")
    return out


def write_original(path, n=N, seq_len=L, **overrides):
    """An original-Motif-layout directory made with plain numpy (no meta.json)."""
    arrays = {
        "data/message.npy": messages(n, seq_len),
        "data/blstats.npy": np.arange(n * 2 * seq_len * 27, dtype=np.int64).reshape(n, 2, seq_len, 27),
        "info/score.npy": np.arange(n * 2, dtype=np.int64).reshape(n, 2),
        "preference/llama70b_msg_defaultgoal_default.npy": (np.arange(n) % 4).astype(np.int8),
    }
    arrays.update(overrides)
    for rel, array in arrays.items():
        if array is None:
            continue
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        np.save(path / rel, array)
    return path


def write_ours(path, n=N, seq_len=L):
    msgs = messages(n, seq_len)
    writer = DatasetWriter(
        path,
        n,
        seq_len,
        {"message": ((256,), np.uint8), "reward": ((), np.float32)},
        {"score": np.int32, "episode_score": np.int32},
    )
    for slot in range(2 * n):
        pair, member = divmod(slot, 2)
        writer.write(
            slot,
            {"message": msgs[pair, member], "reward": np.full(seq_len, slot, np.float32)},
            {"score": slot, "episode_score": -1},
        )
    writer.set_info(list(range(2 * n)), "episode_score", 7)
    writer.finalize({"task": "score", "seed": 3}, caption_distribution(writer.data["message"]))
    return path


# -- decode_message -------------------------------------------------------------------------------------------


def test_decode_message_stops_at_nul_strips_and_uses_latin1():
    msg = encode("  Hello \xe9  ")
    msg[20:25] = np.frombuffer(b"junk!", np.uint8)  # after the NUL: ignored
    assert decode_message(msg) == "Hello \xe9"
    assert decode_message(np.zeros(256, np.uint8)) == ""
    batch = np.stack([[encode("a"), encode("b")], [encode(""), encode("c ")]])
    assert decode_message(batch).tolist() == [["a", "b"], ["", "c"]]
    with pytest.raises(MotifError, match="256"):
        decode_message(np.zeros(10, np.uint8))


# -- our layout ----------------------------------------------------------------------------------------------


def test_our_layout_round_trip(tmp_path):
    ds = open_dataset(write_ours(tmp_path / "ds"))
    assert len(ds) == N and ds.seq_len == L
    assert ds.keys == ["message", "rewards"] and ds.info_keys == ["episode_score", "score"]  # old name read too
    assert ds.meta["task"] == "score" and ds.meta["complete"] is True and ds.meta["schema_version"] == 1
    assert ds.meta["data"]["message"] == {"shape": [256], "dtype": "uint8"}
    assert isinstance(ds.data("message"), np.memmap) and not ds.data("message").flags.writeable
    np.testing.assert_array_equal(ds.data("message")[:], messages())
    assert ds.data("reward")[4, 1].tolist() == [9.0, 9.0]
    np.testing.assert_array_equal(ds.info("score")[:], np.arange(2 * N).reshape(N, 2))
    assert set(np.asarray(ds.info("episode_score")).ravel()) == {7}
    captions = json.loads((tmp_path / "ds" / "captions.json").read_text())
    assert captions["steps"] == N * 2 * L
    # (i + j + t) % 3 == 0 is empty: count it by hand
    empty = sum((i + j + t) % 3 == 0 for i in range(N) for j in range(2) for t in range(L))
    assert captions["fraction_empty"] == pytest.approx(empty / (N * 2 * L))
    assert captions["top"][0] == {"caption": "", "count": empty}
    assert output_dir_state(tmp_path / "ds") == "complete"


def test_missing_key_names_what_exists(tmp_path):
    ds = open_dataset(write_ours(tmp_path / "ds"))
    with pytest.raises(MotifError, match="no key 'glyphs'.*message, reward"):
        ds.data("glyphs")
    with pytest.raises(MotifError, match="no key 'turns'"):
        ds.info("turns")


# -- original layout -----------------------------------------------------------------------------------------


def test_original_layout_without_meta(tmp_path):
    ds = open_dataset(write_original(tmp_path))
    assert ds.meta == {} and len(ds) == N and ds.seq_len == L
    assert ds.keys == ["blstats", "message"] and ds.info_keys == ["score"]
    assert ds.annotators == ["llama70b_msg_defaultgoal_default"]
    labels = ds.labels("llama70b_msg_defaultgoal_default")
    assert labels.dtype == np.int8 and labels.tolist() == [0, 1, 2, 3, 0, 1]
    assert ds.soft_labels("llama70b_msg_defaultgoal_default") is None
    assert decode_message(ds.data("message")[1, 0, 0]) == "msg 1 0 0"


# -- shards --------------------------------------------------------------------------------------------------


def test_sharded_keys_read_as_one_array(tmp_path):
    msgs = messages()
    score = np.arange(2 * N, dtype=np.int32).reshape(N, 2)
    (tmp_path / "data").mkdir()
    (tmp_path / "info").mkdir()
    for index, rows in enumerate([slice(0, 1), slice(1, 4), slice(4, N)]):
        np.save(tmp_path / "data" / f"message.{index:05d}.npy", msgs[rows])
        np.save(tmp_path / "info" / f"score.{index:05d}.npy", score[rows])
    ds = open_dataset(tmp_path)
    message = ds.data("message")
    assert isinstance(message, ShardedArray) and message.shape == msgs.shape and len(message) == N
    assert message.dtype == np.uint8
    np.testing.assert_array_equal(message[2], msgs[2])
    np.testing.assert_array_equal(message[-1], msgs[-1])
    np.testing.assert_array_equal(message[1:5], msgs[1:5])
    np.testing.assert_array_equal(message[::-2], msgs[::-2])
    np.testing.assert_array_equal(message[np.array([5, 0, 3, 3])], msgs[[5, 0, 3, 3]])
    np.testing.assert_array_equal(message[np.arange(N) % 2 == 0], msgs[::2])
    np.testing.assert_array_equal(message[np.array([[0, 5], [1, 2]])], msgs[[[0, 5], [1, 2]]])
    np.testing.assert_array_equal(message[[4, 0], 1, :, :3], msgs[[4, 0], 1, :, :3])
    np.testing.assert_array_equal(ds.info("score")[:], score)
    with pytest.raises(IndexError):
        message[N]


def test_shards_must_be_numbered_contiguously_and_not_mixed(tmp_path):
    (tmp_path / "data").mkdir()
    np.save(tmp_path / "data" / "message.00000.npy", messages()[:3])
    np.save(tmp_path / "data" / "message.00002.npy", messages()[3:])
    with pytest.raises(MotifError, match=r"missing \[1\]"):
        open_dataset(tmp_path)
    (tmp_path / "data" / "message.00002.npy").rename(tmp_path / "data" / "message.00001.npy")
    np.save(tmp_path / "data" / "message.npy", messages())
    with pytest.raises(MotifError, match="both message.npy and shard"):
        open_dataset(tmp_path)


def test_shards_with_different_trailing_shapes_are_rejected(tmp_path):
    (tmp_path / "data").mkdir()
    np.save(tmp_path / "data" / "message.00000.npy", messages())
    np.save(tmp_path / "data" / "message.00001.npy", messages(seq_len=1))
    with pytest.raises(MotifError, match="all but the first axis must match"):
        open_dataset(tmp_path)


# -- bad input -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"data/message.npy": None}, "missing message.npy"),
        ({"data/message.npy": messages().astype(np.int16)}, r"expected uint8 \(N, 2, L, 256\)"),
        ({"data/message.npy": np.zeros((N, 3, L, 256), np.uint8)}, r"expected uint8 \(N, 2, L, 256\)"),
        ({"data/message.npy": np.zeros((N, 2, L, 200), np.uint8)}, r"expected uint8 \(N, 2, L, 256\)"),
        ({"data/blstats.npy": np.zeros((N + 1, 2, L, 27), np.int64)}, r"blstats.npy: expected leading shape"),
        ({"data/blstats.npy": np.zeros((N, 2, L + 1, 27), np.int64)}, r"blstats.npy: expected leading shape"),
        ({"info/score.npy": np.zeros((N - 1, 2), np.int64)}, r"score.npy: expected shape \(N, 2\)"),
    ],
)
def test_bad_arrays_are_named(tmp_path, overrides, match):
    write_original(tmp_path, **overrides)
    with pytest.raises(MotifError, match=match):
        open_dataset(tmp_path)


@pytest.mark.parametrize(
    "labels, match",
    [
        (np.zeros(N - 1, np.int8), r"expected int8 \(6,\)"),
        (np.zeros(N, np.int64), r"expected int8 \(6,\)"),
        (np.array([0, 1, 2, 3, 5, 0], np.int8), "label 5 at row 4 is outside 0..3"),
        (np.array([0, -1, 2, 3, 1, 0], np.int8), "label -1 at row 1 is outside 0..3"),
    ],
)
def test_bad_label_files_are_named(tmp_path, labels, match):
    ds = open_dataset(write_original(tmp_path, **{"preference/bad.npy": labels}))
    with pytest.raises(MotifError, match=match):
        ds.labels("bad")


def test_missing_things_are_clear_errors(tmp_path):
    with pytest.raises(MotifError, match="no such dataset directory"):
        open_dataset(tmp_path / "nowhere")
    with pytest.raises(MotifError, match="missing data/ folder"):
        open_dataset(tmp_path)
    ds = open_dataset(write_original(tmp_path))
    with pytest.raises(MotifError, match="no labels for annotator 'gpt'.*llama70b"):
        ds.labels("gpt")
    with pytest.raises(MotifError, match="annotator name"):
        ds.labels("../escape")


def test_unfinished_or_unmarked_datasets_are_refused(tmp_path):
    write_original(tmp_path)
    (tmp_path / ".collect").mkdir()
    with pytest.raises(MotifError, match="collection did not finish"):
        open_dataset(tmp_path)
    (tmp_path / "meta.json").write_text('{"schema_version": 1, "complete": false}')
    with pytest.raises(MotifError, match="not marked complete"):
        open_dataset(tmp_path)
    (tmp_path / "meta.json").write_text("{broken")
    with pytest.raises(MotifError, match="not valid JSON"):
        open_dataset(tmp_path)
    (tmp_path / "meta.json").write_text('{"schema_version": 99, "complete": true}')
    with pytest.raises(MotifError, match="schema_version 99"):
        open_dataset(tmp_path)


def test_meta_shapes_must_match_files(tmp_path):
    path = write_ours(tmp_path / "ds")
    np.save(path / "data" / "reward.npy", np.zeros((N, 2, L), np.float64))
    with pytest.raises(MotifError, match="meta.json says float32"):
        open_dataset(path)


# -- label memmaps -------------------------------------------------------------------------------------------


def test_label_memmaps_create_resume_and_overwrite(tmp_path):
    ds = open_dataset(write_ours(tmp_path / "ds"))
    assert ds.annotators == []
    labels = ds.open_labels("smol")
    assert labels.dtype == np.int8 and labels.shape == (N,) and set(labels.tolist()) == {3}
    labels[:3] = [0, 1, 2]
    labels.flush()
    del labels
    soft = ds.open_soft_labels("smol")
    assert soft.dtype == np.float32 and np.isnan(soft).all()
    soft[0] = 0.75
    soft.flush()
    del soft
    assert ds.annotators == ["smol"]  # the .soft file is not an annotator of its own
    assert ds.labels("smol").tolist() == [0, 1, 2, 3, 3, 3]
    assert ds.soft_labels("smol")[0] == pytest.approx(0.75)
    assert ds.open_labels("smol").tolist() == [0, 1, 2, 3, 3, 3]  # reopening continues
    assert set(ds.open_labels("smol", overwrite=True).tolist()) == {3}
    assert np.isnan(ds.open_soft_labels("smol", overwrite=True)).all()
    assert not list((tmp_path / "ds" / "preference").glob("*.tmp"))


def test_open_labels_refuses_a_file_of_the_wrong_length(tmp_path):
    ds = open_dataset(write_original(tmp_path, **{"preference/short.npy": np.zeros(2, np.int8)}))
    with pytest.raises(MotifError, match=r"short.npy: expected int8 \(6,\)"):
        ds.open_labels("short")
    assert ds.open_labels("short", overwrite=True).shape == (N,)


# -- output directories --------------------------------------------------------------------------------------


def test_output_dir_states_and_removal(tmp_path):
    assert output_dir_state(tmp_path / "absent") == "empty"
    assert output_dir_state(tmp_path) == "empty"
    (tmp_path / "notes.txt").write_text("mine")
    assert output_dir_state(tmp_path) == "foreign"
    with pytest.raises(MotifError, match="refusing to delete"):
        remove_dataset(tmp_path)
    assert (tmp_path / "notes.txt").exists()
    ours = write_ours(tmp_path / "ds")
    open_dataset(ours).open_labels("x")
    remove_dataset(ours)
    assert output_dir_state(ours) == "empty"


def test_label_creation_never_clobbers_a_file_another_process_created(tmp_path):
    ds = open_dataset(write_ours(tmp_path / "ds"))
    first = ds.open_labels("shared")
    first[0] = 1
    first.flush()
    ds._create_filled(tmp_path / "ds" / "preference" / "shared.npy", np.int8, 3, replace=False)  # lost the race
    assert ds.open_labels("shared")[0] == 1
    assert sorted(p.name for p in (tmp_path / "ds" / "preference").iterdir()) == ["shared.npy"]
