"""Damaged, old-format and unwritable checkpoints and label files: a warning and the previous checkpoint,
or one clear error with everything written before intact."""

import errno
import os
import shutil
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from annotate_data import random_pairs, write_pairs
from motif_jax import parallel
from motif_jax.agent.policy import load_policy
from motif_jax.agent.trainer import Trainer
from motif_jax.annotate import cache as cache_module
from motif_jax.checkpoint import Checkpointer
from motif_jax.cli import main
from motif_jax.data import open_dataset
from motif_jax.errors import MotifError
from motif_jax.reward import load
from motif_jax.reward.train import preset_config, train_reward
from reward_synthetic import write_gold_dataset
from test_agent_train import ONE, cartpole, read_metrics, saved_steps
from test_annotate_runner import ScriptedJudge, run


def truncate_largest_file(folder):
    """Cut the biggest file under ``folder`` in half, as a crash or a bad disk would."""
    biggest = max((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    os.truncate(biggest, biggest.stat().st_size // 2)


def steps_of(directory):
    return Checkpointer(directory, read_only=True).steps()


def train_tiny_reward(ds, out, epochs, resume=False):
    config = preset_config("tiny", epochs=epochs, batch_size=64)
    return train_reward(ds, "score", out, config, resume=resume, devices=ONE, progress=False, log=None)


@pytest.fixture(scope="module")
def agent_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("agent")
    Trainer(cartpole(2048, "run.sync=true"), run_dir, devices=ONE, console=False).train()
    return run_dir


@pytest.fixture(scope="module")
def gold(tmp_path_factory):
    return write_gold_dataset(tmp_path_factory.mktemp("gold") / "ds", num_pairs=160, seed=2)


# -- a damaged newest checkpoint ------------------------------------------------------------------------


def test_a_damaged_newest_policy_checkpoint_is_skipped_by_evaluate_and_resume(agent_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(agent_run, run_dir)
    truncate_largest_file(run_dir / "checkpoints" / "2048" / "params")
    with pytest.warns(RuntimeWarning, match=r"checkpoint \S+/2048 is unreadable .* using step 1024"):
        assert load_policy(run_dir).env_steps == 1024
    with pytest.warns(RuntimeWarning, match=r"2048 is unreadable .* moved to 2048.unreadable"):
        trainer = Trainer(cartpole(2048, "run.sync=true"), run_dir, resume=True, devices=ONE, console=False)
    assert trainer.progress.env_steps == 1024
    assert trainer.train().env_steps == 2048
    assert saved_steps(run_dir) == [1024, 2048] and (run_dir / "checkpoints" / "2048.unreadable").is_dir()
    assert [r["env_steps"] for r in read_metrics(run_dir)] == [512, 1024, 1536, 2048]
    assert load_policy(run_dir).env_steps == 2048


def test_a_damaged_newest_reward_checkpoint_is_skipped_by_load_and_resume(gold, tmp_path):
    out = tmp_path / "reward"
    train_tiny_reward(gold, out, epochs=2)
    first, last = steps_of(out / "checkpoints")
    truncate_largest_file(out / "checkpoints" / str(last) / "state")
    with pytest.warns(RuntimeWarning, match=rf"/{last} is unreadable .* using step {first}"):
        assert load(out, devices=ONE).meta["epoch"] == 1
    with pytest.warns(RuntimeWarning, match=rf"moved to {last}.unreadable"):
        history = train_tiny_reward(gold, out, epochs=3, resume=True)
    assert [r["epoch"] for r in history] == [2, 3]
    assert [r["epoch"] for r in read_metrics(out)] == [1, 2, 3]
    assert load(out, devices=ONE).meta["epoch"] == 3


def test_no_readable_checkpoint_is_one_line_error(tmp_path, capsys):
    (tmp_path / "5" / "state").mkdir(parents=True)
    (tmp_path / "5" / "state" / "x").write_text("not orbax")
    assert main(["evaluate", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "5 cannot be restored: not a checkpoint written by motif" in err


# -- checkpoints written before the policy parameters were an item of their own ---------------------------


def test_a_policy_checkpoint_written_the_old_way_loads_and_resumes(tmp_path):
    trainer = Trainer(cartpole(2048, "run.sync=true"), tmp_path, devices=ONE, console=False)
    rng = parallel.replicate(jax.random.key_data(trainer.key), trainer.mesh)
    meta = {**trainer.meta_static, "env_steps": 1024, "updates": 2}
    trainer.checkpointer.save(1024, {"state": {"train": trainer.train_state, "rng": rng}}, meta)
    trainer.checkpointer.close()
    trainer.close_pools()
    trainer.logger.close()
    assert not (tmp_path / "checkpoints" / "1024" / "params").exists()

    policy = load_policy(tmp_path)
    saved = jax.tree.leaves(trainer.train_state["params"])
    assert policy.env_steps == 1024
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(policy.params), saved))
    progress = Trainer(cartpole(2048, "run.sync=true"), tmp_path, resume=True, devices=ONE, console=False).train()
    assert progress.env_steps == 2048 and progress.updates == 4
    assert (tmp_path / "checkpoints" / "2048" / "params").is_dir()


# -- a full disk ------------------------------------------------------------------------------------------


def test_disk_full_while_saving_a_checkpoint_is_one_line_and_keeps_the_previous(gold, tmp_path, monkeypatch):
    out = tmp_path / "reward"
    train_tiny_reward(gold, out, epochs=1)
    from etils import epath

    path_class = type(epath.Path(tmp_path))
    write_text = path_class.write_text

    def full_disk(self, *args, **kwargs):  # Orbax writes the JSON item and its metadata through epath
        if str(out) in str(self):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(path_class, "write_text", full_disk)
    with pytest.raises(
        MotifError,
        match=r"no space left on device while writing checkpoint step \d+ in "
        r"\S+; the previous checkpoint \(step \d+\) is intact",
    ) as error:
        train_tiny_reward(gold, out, epochs=2, resume=True)
    assert "\n" not in str(error.value)
    monkeypatch.undo()
    assert load(out, devices=ONE).meta["epoch"] == 1
    assert [r["epoch"] for r in train_tiny_reward(gold, out, epochs=2, resume=True)] == [2]


def test_disk_full_while_writing_labels_keeps_every_flushed_label(tmp_path, monkeypatch):
    pairs = random_pairs(60, seed=5)
    full = open_dataset(write_pairs(tmp_path / "full", pairs))
    run(full, ScriptedJudge(), batch_size=5)
    ds = open_dataset(write_pairs(tmp_path / "ds", pairs))
    real_write, writes = os.write, []

    def write(fd, data):  # the cache's third append finds the disk full, after half its bytes
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".cache.jsonl"):
            writes.append(len(data))
            if len(writes) == 3:
                real_write(fd, bytes(data[: len(data) // 2]))
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(cache_module.os, "write", write)
    with pytest.raises(
        MotifError,
        match="judge.cache.jsonl: no space left on device while saving answers; "
        "the labels flushed before this block are kept",
    ) as error:
        run(ds, ScriptedJudge(), batch_size=5)
    assert "\n" not in str(error.value)
    monkeypatch.undo()
    labels = ds.labels("judge").copy()
    done = labels != 3
    assert 0 < done.sum() < 60 and (labels[done] == full.labels("judge")[done]).all()
    judge = ScriptedJudge()
    run(ds, judge, batch_size=5)
    assert (ds.labels("judge") == full.labels("judge")).all()


def _tmpfs_works(path) -> bool:
    path.mkdir()
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs {path}"], capture_output=True
    )
    return probe.returncode == 0


def test_a_really_full_disk_stops_train_reward_with_one_line_and_the_last_checkpoint_loads(gold, tmp_path):
    """On a small tmpfs (a private mount namespace, no privileges needed where user namespaces are allowed)."""
    mount = tmp_path / "disk"
    if not _tmpfs_works(mount):
        pytest.skip("no unprivileged tmpfs (unshare -rm + mount) here")
    script = textwrap.dedent(f"""
        import jax, os, sys
        from motif_jax.errors import MotifError
        from motif_jax.reward import load
        from motif_jax.reward.train import preset_config, train_reward
        out, one = {str(mount / "reward")!r}, jax.devices()[:1]
        def train(epochs, resume):
            config = preset_config("tiny", epochs=epochs, batch_size=64)
            return train_reward({str(gold)!r}, "score", out, config, resume=resume, devices=one, progress=False,
                                log=None)
        train(1, False)
        filler = {str(mount / "filler")!r}
        def fill(room):
            with open(filler, "ab", buffering=0) as f:
                try:
                    while True:
                        f.write(bytes(1 << 12))
                except OSError:
                    pass
            os.truncate(filler, max(os.path.getsize(filler) - room, 0))
        fill(0)  # no room at all: the command's first write fails
        from motif_jax.cli import main
        print("RC", main(["train-reward", {str(gold)!r}, "--annotator", "score", "--preset", "tiny", "--epochs", "2",
                          "--batch-size", "64", "--out", out, "--resume"]))
        print("END OF CLI", file=sys.stderr, flush=True)
        fill(64 << 10)  # room for the metrics, not for a checkpoint
        try:
            train(2, True)
            print("NO ERROR")
        except MotifError as e:
            print("ERROR", e)
        os.unlink(filler)
        print("EPOCH", load(out, devices=one).meta["epoch"])
    """)
    result = subprocess.run(
        [
            "unshare",
            "-rm",
            "sh",
            "-c",
            f'mount -t tmpfs -o size=6m tmpfs {mount} && exec "$0" -c "$1"',
            sys.executable,
            script,
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    lines = result.stdout.splitlines()
    errors = [line for line in lines if line.startswith("ERROR")]
    assert errors and "no space left on device while writing checkpoint" in errors[0], result.stdout + result.stderr
    assert "the previous checkpoint (step" in errors[0]
    assert "EPOCH 1" in lines, result.stdout + result.stderr
    cli = result.stderr.split("END OF CLI")[0]
    assert "RC 2" in lines and "Traceback" not in cli, cli
    assert "motif train-reward: error: " in cli and "no space left on device" in cli
