"""SIGKILL at random (seeded) moments of every stage, then rerun: the result is what an uninterrupted run
promises, nothing is asked twice that was saved, and no actor process outlives its owner.

Each test kills its stage three times at random moments of its work, then lets the rerun finish.
"""

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from annotate_data import write_pairs
from chat_server import ChatServer
from motif_jax.annotate.pairs import normalise, pair_key
from motif_jax.annotate.prompts import load_template
from motif_jax.data import open_dataset
from reward_synthetic import write_gold_dataset

pytestmark = pytest.mark.slow

KILLS = 3
ENV = {**{k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}, "JAX_PLATFORMS": "cpu"}  # one device


# -- processes ----------------------------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task") if os.path.isdir(f"/proc/{pid}/task") else ():
        try:
            children = open(f"/proc/{pid}/task/{task}/children").read().split()
        except OSError:
            continue
        for child in map(int, children):
            found += [child, *descendants(child)]
    return found


def running(pid: int) -> bool:
    """Exists and is not a zombie (a zombie has exited; only its exit status waits to be collected)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def start(args: list[str], log) -> subprocess.Popen:
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=ENV)


def motif(*args: str) -> list[str]:
    return [sys.executable, "-m", "motif_jax.cli", *args]


def kill_when(proc: subprocess.Popen, ready, delay: float, timeout: float = 300) -> bool:
    """SIGKILL ``proc`` ``delay`` s after ``ready()`` first holds; False if it finished first. Afterwards
    none of its descendants (actor workers, forkserver) may survive it by more than a few seconds."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, "the stage never got going"
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    time.sleep(delay)
    family = descendants(proc.pid)
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert_gone(family)
    return True


def assert_gone(pids: list[int], within_s: float = 5.0) -> None:
    deadline = time.monotonic() + within_s
    while any(map(running, pids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [p for p in pids if running(p)]
    for pid in survivors:  # do not leave them behind for the rest of the suite
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"processes outlived their killed owner: {survivors}"


def newest_step(folder) -> int:
    """The newest finished checkpoint step in ``folder`` (Orbax renames a step's folder when it is done)."""
    return max((int(p.name) for p in folder.iterdir() if p.name.isdigit()), default=0) if folder.is_dir() else 0


def targets(rng: random.Random, low: int, high: int) -> list[int]:
    """KILLS increasing progress marks in [low, high]: each kill comes after the stage got that far (so a
    slow or fast machine kills at the same points of the work), plus a small random delay."""
    return sorted(rng.sample(range(low, high + 1), KILLS))


def finish(args: list[str], log, timeout: float = 600) -> None:
    proc = start(args, log)
    assert proc.wait(timeout=timeout) == 0, open(log.name).read()[-3000:]


# -- collect ------------------------------------------------------------------------------------------------

COLLECT = """
import sys
from motif_jax.data.collect import CollectSettings, collect
settings = CollectSettings(task="score", pairs=300, seed=0, num_envs=4, sample_prob=0.05)
collect(settings, sys.argv[1], show_progress=False, checkpoint_seconds=0.3)
"""


def test_kill_collect_then_rerun_completes_a_valid_dataset(tmp_path):
    rng = random.Random(1)
    out, log = tmp_path / "ds", open(tmp_path / "log", "w")

    def done_slots():
        try:
            return int((np.load(out / ".collect" / "slots.npy") == 2).sum())
        except (OSError, ValueError):
            return 0

    killed = 0
    for mark in targets(rng, 60, 540):  # of 600 slots
        proc = start([sys.executable, "-c", COLLECT, str(out)], log)
        killed += kill_when(proc, lambda mark=mark: done_slots() >= mark, rng.uniform(0, 0.3))
    assert killed >= 2
    finish([sys.executable, "-c", COLLECT, str(out)], log)

    ds = open_dataset(out)
    assert len(ds) == 300 and ds.meta["counts"]["resumed"] >= 1
    episode_id = np.asarray(ds.info("episode_id")[:])
    assert (np.asarray(ds.info("episode_score")[:]) >= 0).all()  # every slot was filled and its episode ended
    assert (np.asarray(ds.info("turns")[:]) >= 1).all()
    assert (episode_id[:, 0] != episode_id[:, 1]).all()  # the two members of a pair never share an episode


# -- annotate -----------------------------------------------------------------------------------------------

CAPTION = re.compile(r'Message ([12]): "(.*?)"(?:\n|$)', re.S)


class StubJudge(ChatServer):
    """An OpenAI-compatible server on 127.0.0.1 that prefers the longer caption (equal lengths: none) and
    records every question it gets, in order."""

    def __init__(self, delay_s: float = 0.05):
        self.asked: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.delay_s = delay_s
        super().__init__(self._answer)

    def _answer(self, body: dict) -> tuple[int, str]:
        captions = dict(CAPTION.findall(body["messages"][1]["content"]))
        a, b = captions["1"], captions["2"]
        with self.lock:
            self.asked.append((a, b))
        time.sleep(self.delay_s)
        verdict = "1" if len(a) > len(b) else "2" if len(b) > len(a) else "None"
        return 200, f'Thinking.\n{{"best_message": {verdict}}}'

    def count(self) -> int:
        with self.lock:
            return len(self.asked)


def expected_label(a: str, b: str) -> int:
    if normalise(a) == normalise(b) or len(a) == len(b):
        return 2
    return 0 if len(a) > len(b) else 1


def cached_keys(path) -> set[str]:
    keys = set()
    for line in path.read_text().splitlines() if path.exists() else ():
        try:
            keys.add(json.loads(line)["key"])
        except (ValueError, KeyError):
            pass  # a line torn by the kill
    return keys


def test_kill_annotate_then_rerun_has_no_unknown_labels_and_asks_no_saved_pair_again(tmp_path):
    rng = random.Random(2)
    names = [f"You see here {n} gold pieces." for n in (1, 5, 12, 40, 100, 350)] + [
        "You kill the newt!",
        "It's a wall.",
        "The jackal bites!",
        "You climb down the stairs.",
        "",
        "Welcome to experience level 2.",
        "You hear some noises in the distance.",
    ]
    pick = np.random.default_rng(0).integers(0, len(names), size=(160, 2))
    pairs = [[names[i], names[j]] for i, j in pick]
    ds_dir = write_pairs(tmp_path / "ds", pairs)
    template_hash = load_template("default", "defaultgoal").hash

    def key(a, b):
        return pair_key(a, b, template_hash, "stub", "generate")

    name = "stub_defaultgoal_default"
    cache_path = ds_dir / "annotations" / f"{name}.cache.jsonl"
    labels_path = ds_dir / "preference" / f"{name}.npy"
    unique = {key(a, b) for a, b in pairs if normalise(a) != normalise(b)}
    judge = StubJudge()
    log = open(tmp_path / "log", "w")
    args = motif(
        "annotate",
        str(ds_dir),
        "--backend",
        "openai",
        "--base-url",
        judge.url,
        "--model",
        "stub",
        "--batch-size",
        "4",
        "--concurrency",
        "2",
        "--no-progress",
    )
    try:
        kills = []  # (questions asked before the kill, cache keys after it)
        for _ in range(KILLS):
            proc = start(args, log)
            first, target = judge.count(), rng.randint(3, len(unique) // KILLS)
            if kill_when(proc, lambda n=first + target: judge.count() >= n, rng.uniform(0, 0.2)):
                kills.append((judge.count(), cached_keys(cache_path)))
                labels = np.load(labels_path)
                for (a, b), label in zip(pairs, labels):  # the cache is written before the labels it explains
                    if label != 3 and normalise(a) != normalise(b):
                        assert key(a, b) in kills[-1][1]
        assert len(kills) >= 2
        finish(args, log)
    finally:
        judge.close()

    labels = np.load(labels_path)
    assert (labels != 3).all()
    assert labels.tolist() == [expected_label(a, b) for a, b in pairs]
    asked = [key(a, b) for a, b in judge.asked]
    assert set(asked) == unique == cached_keys(cache_path)
    for before, saved in kills:  # an answer on disk is never asked for again
        assert not saved & set(asked[before:])
    assert len(asked) - len(unique) <= 4 * len(kills)  # at most the block in flight is asked again


# -- train-reward --resume ---------------------------------------------------------------------------------


def test_kill_train_reward_then_resume_finishes_with_the_same_step_count(tmp_path):
    rng = random.Random(3)
    ds = write_gold_dataset(tmp_path / "ds", num_pairs=1200, seed=0)
    out, log = tmp_path / "reward", open(tmp_path / "log", "w")
    args = motif(
        "train-reward",
        str(ds),
        "--annotator",
        "score",
        "--preset",
        "tiny",
        "--epochs",
        "6",
        "--batch-size",
        "32",
        "--out",
        str(out),
        "--no-progress",
        "--resume",
    )

    def past(epoch):  # the epoch's line is logged right after its checkpoint save starts (async)
        def ready():
            lines = (out / "metrics.jsonl").read_text().splitlines() if (out / "metrics.jsonl").exists() else []
            return len(lines) >= epoch

        return ready

    killed = sum(kill_when(start(args, log), past(epoch), rng.uniform(0, 0.5)) for epoch in targets(rng, 1, 5))
    assert killed >= 2
    finish(args, log)

    from motif_jax.reward import load

    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4, 5, 6]
    steps_per_epoch = records[0]["step"]
    assert [r["step"] for r in records] == [steps_per_epoch * e for e in range(1, 7)]
    model = load(out)
    assert model.meta["epoch"] == 6 and model.step == 6 * steps_per_epoch


# -- train --resume -------------------------------------------------------------------------------------------


def test_kill_train_then_resume_finishes_with_the_same_step_count(tmp_path):
    rng = random.Random(4)
    run, log = tmp_path / "run", open(tmp_path / "log", "w")
    common = [
        "--steps",
        "16384",
        "--out",
        str(run),
        "--set",
        "run.checkpoint_every=1024",
        "--set",
        "run.log_every_s=0",
        "--set",
        "run.tensorboard=false",
    ]
    first = motif("train", "--env", "envpool:CartPole-v1", "--preset", "mlp", "--num-envs", "8", *common)
    resume = motif("train", "--resume", *common)

    killed = 0
    for i, update in enumerate(targets(rng, 1, 15)):  # of 16 updates of 1024 steps, each checkpointed
        ready = lambda step=1024 * update: newest_step(run / "checkpoints") >= step
        killed += kill_when(start(first if i == 0 else resume, log), ready, rng.uniform(0, 0.5))
    assert killed >= 2
    finish(resume, log)

    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["env_steps"] for r in records]
    assert steps == sorted(set(steps)) and steps[-1] == 16384  # no repeats after a resume, and all of it
    from motif_jax.checkpoint import Checkpointer

    assert Checkpointer(run / "checkpoints", read_only=True).latest_step() == 16384
    assert "motif train: 16384 env steps, 16 updates" in open(log.name).read()


# -- no orphaned actor workers -------------------------------------------------------------------------------


def test_kill_nle_trainer_leaves_no_actor_workers(tmp_path):
    rng = random.Random(5)
    log = open(tmp_path / "log", "w")
    for i in range(2):
        proc = start(
            motif(
                "train",
                "--env",
                "score",
                "--preset",
                "tiny",
                "--num-envs",
                "4",
                "--steps",
                "10000000",
                "--out",
                str(tmp_path / f"run{i}"),
                "--set",
                "run.tensorboard=false",
            ),
            log,
        )

        def workers_up(proc=proc):  # the forkserver's children are the actor workers
            return any(descendants(child) for child in descendants(proc.pid))

        assert kill_when(proc, workers_up, rng.uniform(0, 2)), open(log.name).read()[-3000:]


OWNED = """
import sys, time
from motif_jax.envs.pool_worker import exit_with_owner
exit_with_owner(int(sys.argv[1]), interval_s=0.1)
print("ready", flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("through", ["parent", "owner"])
def test_kill_owner_ends_a_worker_stuck_in_a_step(tmp_path, through):
    """A worker that never reads its pipe again (an env stuck in a step) still dies with its owner: by the
    kernel when its parent dies (PR_SET_PDEATHSIG), by its watch thread when only the owner further up dies."""
    middle = "import subprocess, sys, time; subprocess.Popen(sys.argv[1:]); time.sleep(120)"
    owner_script = (
        "import os, subprocess, sys; subprocess.Popen([sys.executable, '-c', sys.argv[1], str(os.getpid())]).wait()"
    )
    worker = [sys.executable, "-c", OWNED]
    if through == "owner":  # owner -> middle process (stays alive) -> worker
        owner_script = (
            "import os, subprocess, sys; "
            f"subprocess.Popen([sys.executable, '-c', {middle!r}, *{worker!r}, str(os.getpid())]).wait()"
        )
    owner = subprocess.Popen([sys.executable, "-c", owner_script, OWNED], env=ENV)

    def workers():
        found = []
        for pid in descendants(owner.pid):
            try:
                argv = open(f"/proc/{pid}/cmdline").read().split("\0")
            except OSError:
                continue
            if argv[1:3] == ["-c", OWNED]:
                found.append(pid)
        return found

    family = []
    try:
        deadline = time.monotonic() + 60
        while not workers():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(1.0)  # past the prctl and the first check
        family, (worker_pid,) = descendants(owner.pid), workers()
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        assert_gone([worker_pid], within_s=3)
    finally:
        if owner.poll() is None:
            family += descendants(owner.pid)
            owner.kill()
            owner.wait()
        for pid in family:  # the middle process, which nothing else ends
            if running(pid):
                os.kill(pid, signal.SIGKILL)
