"""`motif quickstart`: stage wiring, skipping finished stages, clear errors; the full chain is `slow`."""

import json
from pathlib import Path

import pytest
from rich.console import Console

from motif_jax import pipeline, quickstart
from motif_jax.cli import main
from motif_jax.errors import MotifError
from motif_jax.pipeline import Step, fingerprint, run_steps
from motif_jax.quickstart import load_config, plan_steps

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_config_wires_each_stage_to_the_previous_output(tmp_path):
    config = load_config(str(ROOT / "configs" / "quickstart.yaml"), [f"out={tmp_path}", "train.steps=123"])
    stages = {s.name: s for s in plan_steps(config)}
    assert list(stages) == [
        "collect",
        "annotate",
        "judge",
        "train-reward",
        "train",
        "evaluate",
        "evaluate random",
        "plot",
    ]
    dataset = str(tmp_path / "dataset")
    assert stages["collect"].argv[-1] == dataset and stages["annotate"].argv[1] == dataset
    reward_argv = stages["train-reward"].argv
    assert reward_argv[1] == dataset and reward_argv[reward_argv.index("--annotator") + 1] == config.judge.name
    llm_chunk = stages["annotate"].argv
    assert llm_chunk[llm_chunk.index("--num-chunks") + 1] == str(config.annotate.num_chunks) != "1"
    judge_argv = stages["judge"].argv
    assert "--num-chunks" not in judge_argv  # the judge labels every pair
    assert judge_argv[:4] == ["annotate", dataset, "--backend", "rules"]
    llm = load_config(str(ROOT / "configs" / "quickstart.yaml"), ["reward.annotator=llm"])
    llm_argv = {s.name: s for s in plan_steps(llm)}["train-reward"].argv
    assert llm_argv[llm_argv.index("--annotator") + 1] == config.annotate.name
    train_argv = stages["train"].argv
    assert train_argv[train_argv.index("--reward") + 1] == str(tmp_path / "reward")
    assert train_argv[train_argv.index("--steps") + 1] == "123"
    assert stages["evaluate"].argv[1] == str(tmp_path / "agent" / "checkpoints")
    assert stages["evaluate random"].argv[1:3] == ["--policy", "random"]


def test_train_config_is_found_next_to_the_quickstart_config(tmp_path):
    config = load_config(str(ROOT / "configs" / "quickstart.yaml"), [])
    assert Path(config.train.config) == ROOT / "configs" / "cpu.yaml"
    with pytest.raises(MotifError, match="train.config 'nope.yaml' not found"):
        load_config(str(ROOT / "configs" / "quickstart.yaml"), ["train.config=nope.yaml"])


def test_unknown_config_key_is_named(tmp_path):
    bad = tmp_path / "q.yaml"
    bad.write_text("train:\n  stepz: 5\n")
    with pytest.raises(MotifError, match="stepz"):
        load_config(str(bad), [])


def _plot_step(tmp_path, smooth="1"):
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / "metrics.jsonl").write_text(json.dumps({"env_steps": 1, "episode_return": 1.0}) + "\n")
    argv = ["plot", str(run), "--out", str(tmp_path / "plots"), "--smooth", smooth]
    return Step("plot", argv, tmp_path / "plot.log", tmp_path / "plots")


def test_finished_stage_is_skipped_and_changed_settings_are_refused(tmp_path):
    console = Console(file=open(tmp_path / "log.txt", "w"))
    step = _plot_step(tmp_path)
    run_steps([step], tmp_path, tmp_path / ".stages", console, hint="")
    png = tmp_path / "plots" / "learning_curves.png"
    first = png.stat().st_mtime_ns
    run_steps([step], tmp_path, tmp_path / ".stages", console, hint="")
    assert png.stat().st_mtime_ns == first  # not redone
    with pytest.raises(MotifError, match="settings changed"):
        run_steps([_plot_step(tmp_path, smooth="3")], tmp_path, tmp_path / ".stages", console, hint="")


def test_failing_stage_stops_with_the_command_named(tmp_path, capfd):
    step = Step("plot", ["plot", str(tmp_path / "missing")], tmp_path / "plot.log", tmp_path / "plots")
    with pytest.raises(MotifError, match="`motif plot .*missing` failed"):
        console = Console(file=open(tmp_path / "log.txt", "w"))
        run_steps([step], tmp_path, tmp_path / ".stages", console, echo=True, hint="")
    assert not (tmp_path / ".stages" / "plot.json").exists()
    error = "metrics.jsonl not found"
    assert error in capfd.readouterr().err and error in step.log.read_text()  # on the terminal and in the log


class FakeMotif:
    """Stands in for the `motif` subprocesses: makes each step's output; can 'die' in one command."""

    def __init__(self, die_in=None):
        self.calls, self.die_in = [], die_in

    def __call__(self, argv, log, on_poll=None, poll_s=2.0, echo=False):
        self.calls.append(argv)
        value = lambda flag: Path(argv[argv.index(flag) + 1])  # noqa: E731
        target = value("--json") if "--json" in argv else value("--out") if "--out" in argv else None
        if argv[0] == "annotate":
            target = Path(argv[1]) / "preference" / f"{value('--name')}.npy"
        if argv[0] == "train":
            (target / "checkpoints" / "1").mkdir(parents=True, exist_ok=True)
        if argv[0] == self.die_in:
            raise KeyboardInterrupt("killed")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch() if target.suffix else target.mkdir(exist_ok=True)


def test_quickstart_rerun_skips_finished_steps_and_resumes_a_killed_one(tmp_path, monkeypatch):
    out = tmp_path / "qs"
    args = ["quickstart", "--config", str(ROOT / "configs" / "quickstart.yaml"), "--out", str(out)]
    monkeypatch.setattr(quickstart, "write_summary", lambda c, steps, seconds: out / "summary.md")
    monkeypatch.setattr(pipeline, "run_motif", FakeMotif(die_in="train"))
    assert main(args) == 130  # interrupted
    (out / "reward" / "stale").touch()  # an interrupted reward fit would leave a partial folder
    (out / ".stages" / "train-reward.json").unlink()
    fake = FakeMotif()
    monkeypatch.setattr(pipeline, "run_motif", fake)
    assert main(args) == 0
    assert [c[0] for c in fake.calls] == ["train-reward", "train", "evaluate", "evaluate", "plot"]
    assert not (out / "reward" / "stale").exists()  # redone from scratch
    assert fake.calls[1][-1] == "--resume"  # training continues from its checkpoints
    steps = plan_steps(load_config(str(ROOT / "configs" / "quickstart.yaml"), [f"out={out}"]))
    marker = json.loads((out / ".stages" / "train.json").read_text())
    assert marker["fingerprint"] == fingerprint(steps[4].argv, out) and marker["argv"] == steps[4].argv
    fake = FakeMotif()
    monkeypatch.setattr(pipeline, "run_motif", fake)
    assert main(args) == 0
    assert fake.calls == []  # every step skipped


@pytest.mark.slow
def test_full_quickstart_chain_at_toy_size(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the default --config is configs/quickstart.yaml
    out = tmp_path / "qs"
    args = [
        "quickstart",
        "--out",
        str(out),
        "--set",
        "collect.pairs=200",
        "--set",
        "train.steps=2048",
        "--set",
        "evaluate.episodes=2",
        "--set",
        "evaluate.max_episode_steps=50",
    ]
    assert main(args) == 0
    summary = (out / "summary.md").read_text()
    assert "| agent |" in summary and "| random |" in summary
    assert "SmolLM2 agrees with the rules judge on" in summary and "beat" in summary
    assert (out / "plots" / "learning_curves.png").is_file()
    assert (out / "evaluation" / "replay" / "episode-0.gif").is_file()
    assert main(args) == 0  # every stage skipped the second time
    # evaluating the trained agent again gives the same numbers
    again = tmp_path / "again.json"
    assert (
        main(
            [
                "evaluate",
                str(out / "agent" / "checkpoints"),
                "--task",
                "score",
                "--episodes",
                "2",
                "--seed",
                "0",
                "--num-envs",
                "4",
                "--max-episode-steps",
                "50",
                "--json",
                str(again),
            ]
        )
        == 0
    )
    first = json.loads((out / "evaluation" / "agent.json").read_text())
    for key in ("recordings", "gif"):
        first.pop(key)
    assert json.loads(again.read_text()) == first


def test_verdict_needs_separated_intervals():
    from motif_jax.quickstart import _verdict

    def report(scores):
        return {"per_episode": [{"score": s} for s in scores]}

    assert "beats random" in _verdict(report([10, 11, 12]), report([1, 2, 3]))
    assert "worse than random" in _verdict(report([1, 2, 3]), report([10, 11, 12]))
    assert "does not beat random" in _verdict(report([1, 5, 9]), report([2, 6, 10]))
