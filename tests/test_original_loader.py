"""Datasets written by `motif collect` + `motif annotate` open in the original Motif tools.

`original_load` re-implements, with numpy only, the loading rules of the original code as they are
described in our design notes: every file in data/, info/ and preference/ is opened with
``np.load(mmap_mode="r")`` under the part of its name before the first dot, and any requested key
that is missing is an error. The reward trainer asks for the keys in ``REWARD_TRAINER_KEYS``.
"""

import json
import os
import shutil

import numpy as np
import pytest

from annotate_data import write_pairs
from motif_jax.cli import main
from motif_jax.data import open_dataset

REWARD_TRAINER_KEYS = {
    "data": {"blstats", "message", "tty_chars", "tty_colors", "rewards"},
    "info": {"score", "turns", "experience_level", "character"},
}


def load_folder(path, folder: str) -> dict[str, np.ndarray]:
    """Every file of one folder, memory-mapped, keyed by the name before the first dot."""
    return {
        name.split(".")[0]: np.load(os.path.join(path, folder, name), mmap_mode="r")
        for name in sorted(os.listdir(os.path.join(path, folder)))
    }


def original_load(path, annotator: str) -> dict[str, dict[str, np.ndarray]]:
    """Open a dataset as the original reward trainer does; raises on anything it would choke on."""
    wanted = {**REWARD_TRAINER_KEYS, "preference": {annotator}}
    loaded = {}
    for folder, keys in wanted.items():
        arrays = load_folder(path, folder)
        missing = keys - set(arrays)
        if missing:
            raise KeyError(f"Keys {missing} not found in {folder}/")
        loaded[folder] = {key: arrays[key] for key in keys}
    return loaded


def test_the_rules_reject_a_sidecar_in_preference(tmp_path):
    path = write_pairs(tmp_path / "old", [["a", "b"]])
    (path / "preference").mkdir()
    np.save(path / "preference" / "x.npy", np.zeros(1, np.int8))
    (path / "preference" / "x.json").write_text("{}")
    with pytest.raises(ValueError):  # not an .npy file: what the original loader fails with
        load_folder(path, "preference")


@pytest.fixture(scope="module")
def annotated(tmp_path_factory):
    out = tmp_path_factory.mktemp("orig") / "ds"
    assert (
        main(
            [
                "collect",
                "--task",
                "score",
                "--seed",
                "1",
                "--out",
                str(out),
                "--pairs",
                "12",
                "--num-envs",
                "2",
                "--sample-prob",
                "0.2",
                "--no-progress",
            ]
        )
        == 0
    )
    assert main(["annotate", str(out), "--backend", "score", "--no-progress"]) == 0
    return out


def test_collected_and_annotated_dataset_opens_in_the_original_loader(annotated):
    loaded = original_load(annotated, "score")
    n = len(open_dataset(annotated))
    assert loaded["data"]["rewards"].shape == (n, 2, 1) and loaded["data"]["message"].shape == (n, 2, 1, 256)
    assert loaded["info"]["experience_level"].shape == (n, 2)
    assert (np.asarray(loaded["info"]["experience_level"]) >= 1).all()
    assert set(np.asarray(loaded["info"]["character"]).ravel().tolist()) == {"mon-hum-neu-mal"}
    assert loaded["preference"]["score"].dtype == np.int8 and loaded["preference"]["score"].shape == (n,)
    data = load_folder(annotated, "data")  # the transitions (MaestroMotif) are two more arrays there
    assert data["prev_message"].shape == (n, 2, 1, 256) and data["delta"].shape == (n, 2, 1, 5)


def test_llm_sidecars_stay_out_of_preference(annotated, tmp_path):
    pytest.importorskip("llama_cpp")
    path = tmp_path / "ds"
    shutil.copytree(annotated, path)
    assert (
        main(
            [
                "annotate",
                str(path),
                "--backend",
                "llamacpp",
                "--mode",
                "logprob",
                "--name",
                "smol",
                "--threads",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    assert sorted(os.listdir(path / "preference")) == ["score.npy", "smol.npy"]
    assert {"smol.json", "smol.cache.jsonl", "smol.soft.npy"} <= set(os.listdir(path / "annotations"))
    loaded = original_load(path, "smol")
    labels = np.asarray(loaded["preference"]["smol"])
    assert set(labels.tolist()) <= {0, 1, 2}
    ds = open_dataset(path)
    assert ds.annotators == ["score", "smol"] and ds.soft_labels("smol") is not None


def test_old_locations_are_read_and_moved_out_on_the_next_annotation(tmp_path):
    """A dataset from before the move: data/reward.npy and sidecars in preference/."""
    path = write_pairs(
        tmp_path / "old", [["You kill the newt!", "It's a wall."], ["a", "a"]], rewards=[[[1.0], [0.0]], [[0.0], [2.0]]]
    )
    (path / "preference").mkdir()
    np.save(path / "preference" / "judge.npy", np.array([0, 2], np.int8))
    np.save(path / "preference" / "judge.soft.npy", np.array([0.9, 0.5], np.float32))
    (path / "preference" / "judge.json").write_text(json.dumps({"backend": "llamacpp"}))
    ds = open_dataset(path)
    assert "rewards" in ds.keys and ds.data("rewards")[1, 1, 0] == 2.0
    assert ds.annotators == ["judge"] and ds.soft_labels("judge")[0] == pytest.approx(0.9)
    assert ds.sidecar_path("judge", ".json").parent.name == "preference"
    assert main(["annotate", str(path), "--backend", "return", "--no-progress"]) == 0
    assert open_dataset(path).labels("return").tolist() == [0, 1]
    ds.open_soft_labels("judge")  # opening for writing moves the file out of preference/
    ds.sidecar_path("judge", ".json", for_writing=True)
    assert sorted(os.listdir(path / "preference")) == ["judge.npy", "return.npy"]
    assert sorted(os.listdir(path / "annotations")) == ["judge.json", "judge.soft.npy"]
    assert ds.soft_labels("judge")[0] == pytest.approx(0.9)
