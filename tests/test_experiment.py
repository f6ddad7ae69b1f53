"""`motif experiment`: the file's checks, the pooled table by hand, and resumption cell by cell
(the `motif` subprocesses replaced by a fake that writes what they would)."""

import json
import math

import numpy as np
import pytest

from motif_jax import files, pipeline
from motif_jax.errors import MotifError
from motif_jax.experiment import results, run
from motif_jax.experiment.spec import load_experiment

EXPERIMENT = """
name: tiny
task: score
seeds: [0, 1]
train: {config: cfg.yaml, steps: 100, set: [ppo.epochs=2]}
evaluate: {episodes: 3, num_envs: 1, seed: 10, max_episode_steps: 50}
datasets:
  play: {pairs: 20}
rewards:
  judge: {dataset: play, goal: gold}
conditions:
  random: {policy: random}
  intrinsic: {reward: judge, extrinsic_coef: 0, llm_coef: 0.1, label: intrinsic only}
"""


def write_experiment(tmp_path, text=EXPERIMENT):
    (tmp_path / "cfg.yaml").write_text("preset: tiny\n")
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            ("llm_coef: 0.1, label", "llm_coef: 0.1, bogus: 1, label"),
            "unknown key conditions.intrinsic.bogus; expected one of policy, reward",
        ),
        (("reward: judge,", "reward: nope,"), "conditions.intrinsic.reward 'nope' is not in rewards"),
        (("dataset: play,", "dataset: other,"), "rewards.judge.dataset 'other' is not in datasets"),
        (("seeds: [0, 1]", "seeds: [0, 0]"), "repeat a seed"),
        (("episodes: 3", "episodes: 0"), "evaluate.episodes must be >= 1"),
        (("config: cfg.yaml", "config: missing.yaml"), "train.config 'missing.yaml' not found"),
        (("{policy: random}", "{policy: greedy}"), "policy must be agent or random"),
        (("name: tiny", "name: tiny\norder: random"), "order must be condition or seed"),
    ],
)
def test_bad_experiment_files_name_the_field(tmp_path, edit, message):
    path = write_experiment(tmp_path, EXPERIMENT.replace(*edit))
    with pytest.raises(MotifError, match=str(path)) as err:
        load_experiment(path)
    assert message in str(err.value)


def test_cells_train_with_the_declared_settings_and_share_evaluation_seeds(tmp_path):
    exp = load_experiment(write_experiment(tmp_path))
    cells = run.plan_cells(exp, tmp_path / "out")
    assert [c.name for c in cells] == ["random_s0", "random_s1", "intrinsic_s0", "intrinsic_s1"]
    random_eval = cells[1].steps[0].argv
    assert (
        random_eval[:3] == ["evaluate", "--policy", "random"] and random_eval[random_eval.index("--seed") + 1] == "11"
    )
    train, evaluate = cells[2].steps
    argv = train.argv
    assert argv[argv.index("--reward") + 1].endswith("shared/rewards/judge")
    assert argv[argv.index("--llm-coef") + 1] == "0.1" and argv[argv.index("--extrinsic-coef") + 1] == "0.0"
    assert argv[argv.index("--set") + 1] == "ppo.epochs=2" and argv[argv.index("--seed") + 1] == "0"
    assert evaluate.argv[evaluate.argv.index("--seed") + 1] == "10"  # same episodes as random_s0
    exp.order = "seed"
    assert [c.name for c in run.plan_cells(exp, tmp_path / "out")] == [
        "random_s0",
        "intrinsic_s0",
        "random_s1",
        "intrinsic_s1",
    ]
    shared = run.shared_steps(exp, tmp_path / "out")
    assert [s.name for s in shared] == ["dataset play", "annotate judge", "reward judge"]
    assert shared[1].argv[shared[1].argv.index("--name") + 1] == "rules-nethack_gold" and "--soft" not in shared[1].argv
    exp.rewards["judge"].soft = 0.5  # the judge's soft labels: their own name, so both can share a dataset
    annotate, reward = run.shared_steps(exp, tmp_path / "out")[1:]
    assert annotate.argv[annotate.argv.index("--soft") + 1] == "0.5"
    assert annotate.argv[annotate.argv.index("--name") + 1] == "rules-nethack_gold_soft0.5"
    assert reward.argv[reward.argv.index("--annotator") + 1] == "rules-nethack_gold_soft0.5"


def test_aggregate_pools_seeds_and_episodes():
    def report(scores):
        return {
            "per_episode": [
                {"score": s, "return": s - 1, "max_dlvl": 1, "xlvl": 1, "gold": 0, "length": 10} for s in scores
            ]
        }

    row = results.aggregate({0: report([1, 3]), 1: report([5, 7])})
    # pooled 1, 3, 5, 7: mean 4, sd sqrt(20/3), t(0.975, 3) = 3.182446
    assert row["n_episodes"] == 4 and row["n_seeds"] == 2 and row["score_mean"] == 4
    assert row["score_ci95"] == pytest.approx(3.182446 * math.sqrt(20 / 3) / 2, rel=1e-5)
    assert row["return_mean"] == 3 and row["per_seed"]["1"]["score_mean"] == 6
    table = results.markdown_table({"a": row}, {"a": "label A"})
    assert "| label A | 4.00 ± 4.11 |" in table and "| 4 (2) |" in table
    other = {**row, "score_mean": 20.0, "score_ci95": 1.0}
    assert results.separated(row, other) and not results.separated(row, row)


def test_aggregate_counts_what_ended_the_episodes():
    ends = ["death", "success", "death", "choked"]
    row = results.aggregate({0: {"per_episode": [{"score": 1, "end_reason": e} for e in ends]}})
    assert row["end_reasons"] == {"death": 2, "choked": 1, "success": 1}  # most first, ties by name
    table = results.markdown_table({"a": row})
    assert "| episodes ended by |" in table.splitlines()[0] and "| death 50%, choked 25%, success 25% |" in table
    assert "ended by" not in results.markdown_table({"a": results.aggregate({0: {"per_episode": [{"score": 1}]}})})


class FakeMotif:
    """Stands in for the `motif` subprocesses: writes their outputs; can 'die' at one call."""

    def __init__(self, die_at=None):
        self.calls, self.die_at = [], die_at

    def __call__(self, argv, log, on_poll=None, poll_s=2.0, echo=False):
        self.calls.append(argv)
        if self.die_at is not None and len(self.calls) == self.die_at:
            raise KeyboardInterrupt("killed")
        out = lambda flag: argv[argv.index(flag) + 1]  # noqa: E731
        if argv[0] in ("collect", "train-reward"):
            run.Path(out("--out")).mkdir(parents=True)
        elif argv[0] == "annotate":
            (run.Path(argv[1]) / "preference").mkdir()
            (run.Path(argv[1]) / "preference" / f"{out('--name')}.npy").touch()
        elif argv[0] == "train":
            folder = run.Path(out("--out"))
            (folder / "checkpoints" / "100").mkdir(parents=True, exist_ok=True)
            (folder / "metrics.jsonl").write_text(json.dumps({"env_steps": 100, "episode_return": 1.0}) + "\n")
            (folder / "config.yaml").write_text(f"seed: {out('--seed')}\nreward: {{llm_coef: 0.1}}\n")
        elif argv[0] == "evaluate":
            seed = int(out("--seed"))
            episodes = [
                {"score": seed + i, "return": 0.5, "max_dlvl": 1, "xlvl": 1, "gold": 2, "length": 9} for i in range(3)
            ]
            run.Path(out("--json")).write_text(json.dumps({"per_episode": episodes}))


def test_rerun_skips_finished_cells_and_resumes_the_killed_one(tmp_path, monkeypatch):
    exp = load_experiment(write_experiment(tmp_path))
    out = tmp_path / "out"
    fake = FakeMotif(die_at=6)  # 3 shared steps, random_s0, random_s1, then dies in intrinsic_s0's training
    monkeypatch.setattr(pipeline, "run_motif", fake)
    with pytest.raises(KeyboardInterrupt):
        run.run_experiment(exp, out, progress=False)
    assert (out / "cells" / "random_s1" / "result.json").is_file()
    run.write_outputs(exp, out, run.plan_cells(exp, out))
    assert "(2 of 4 cells finished so far)" in (out / "table.md").read_text()
    assert not (out / "cells" / "intrinsic_s0" / "result.json").exists()
    (out / "cells" / "intrinsic_s0" / "checkpoints" / "64").mkdir(parents=True)  # the killed run had saved one
    fake = FakeMotif()
    monkeypatch.setattr(pipeline, "run_motif", fake)
    summary = run.run_experiment(exp, out, progress=False)
    commands = [c[0] for c in fake.calls]
    assert commands == ["train", "evaluate", "train", "evaluate"]  # shared steps and random cells skipped
    assert fake.calls[0][-1] == "--resume"
    shared = run.shared_steps(exp, out)[2]  # the same done-marker as the quick start's steps
    marker = json.loads((out / "shared" / "done" / "reward-judge.json").read_text())
    assert marker["fingerprint"] == pipeline.fingerprint(shared.argv, out) and marker["argv"] == shared.argv
    rows = summary["conditions"]
    assert rows["random"]["n_episodes"] == 6 and rows["intrinsic"]["score_mean"] == pytest.approx(11.5)
    saved = json.loads((out / "results.json").read_text())
    for key in ("score_mean", "score_ci95", "return_mean", "gold_mean", "max_dlvl_mean", "xlvl_mean", "n_episodes"):
        assert key in saved["conditions"]["intrinsic"]
    assert "intrinsic only" in (out / "table.md").read_text()
    fake = FakeMotif()
    monkeypatch.setattr(pipeline, "run_motif", fake)
    run.run_experiment(exp, out, progress=False)
    assert fake.calls == []


def test_only_runs_the_named_conditions_and_the_agents_they_evaluate(tmp_path, monkeypatch):
    text = EXPERIMENT + "  alone: {agents_of: intrinsic, label: evaluated again}\n"
    exp = load_experiment(write_experiment(tmp_path, text))
    out = tmp_path / "out"
    fake = FakeMotif()
    monkeypatch.setattr(pipeline, "run_motif", fake)
    run.run_experiment(exp, out, progress=False, only=["random"])
    assert [c[0] for c in fake.calls] == ["evaluate", "evaluate"]  # no dataset, label or reward needed
    assert "(2 of 6 cells finished so far)" in (out / "table.md").read_text()
    fake.calls.clear()
    run.run_experiment(exp, out, progress=False, only=["alone"])  # trains the agents it evaluates
    assert [c[0] for c in fake.calls] == ["collect", "annotate", "train-reward"] + ["train", "evaluate"] * 2 + [
        "evaluate"
    ] * 2
    assert "evaluated again" in (out / "table.md").read_text() and "random" in (out / "table.md").read_text()
    with pytest.raises(MotifError, match="--only nope: no such condition .*random, intrinsic, alone"):
        run.run_experiment(exp, out, progress=False, only=["nope"])


def test_changed_settings_of_a_finished_cell_are_refused(tmp_path, monkeypatch):
    path = write_experiment(tmp_path)
    monkeypatch.setattr(pipeline, "run_motif", FakeMotif())
    run.run_experiment(load_experiment(path), tmp_path / "out", progress=False)
    changed = load_experiment(path, ["train.steps=200"])
    with pytest.raises(MotifError, match="reward judge|cell intrinsic_s0"):
        run.run_experiment(changed, tmp_path / "out", progress=False)


def test_write_json_atomic_leaves_no_partial_file(tmp_path):
    target = tmp_path / "a" / "r.json"
    files.write_json_atomic(target, {"x": 1})
    assert json.loads(target.read_text()) == {"x": 1} and not list(target.parent.glob("*.tmp"))


@pytest.mark.slow
def test_shipped_experiment_runs_end_to_end_at_toy_size(tmp_path):
    """The real `motif` stages as subprocesses: collect, rules labels, reward model, train, evaluate."""
    from pathlib import Path

    from motif_jax.cli import main

    shipped = Path(__file__).resolve().parents[1] / "configs" / "experiments" / "motif-cpu.yaml"
    out = tmp_path / "grid"
    args = [
        "experiment",
        str(shipped),
        "--out",
        str(out),
        "--no-progress",
        "--set",
        "seeds=[0]",
        "--set",
        "train.steps=4096",
        "--set",
        "evaluate.episodes=2",
        "--set",
        "evaluate.num_envs=2",
        "--set",
        "evaluate.max_episode_steps=100",
        "--set",
        "datasets.play.pairs=300",
    ]
    assert main(args) == 0
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["conditions"]) == {"random", "extrinsic", "intrinsic", "ext+int"}
    assert saved["conditions"]["intrinsic"]["n_episodes"] == 2
    assert (out / "plots" / "learning_curves.png").is_file()
    labels = np.load(out / "shared" / "datasets" / "play" / "preference" / "rules-nethack_defaultgoal.npy")
    assert len(labels) == 300 and not (labels == 3).any()


def test_cells_and_shared_steps_are_known_by_contents_not_by_where_they_live(tmp_path):
    """Moving the checkout or the output folder keeps finished work; editing a config or judge redoes it."""
    for place in ("a", "b"):
        (tmp_path / place).mkdir()
        write_experiment(tmp_path / place)
        (tmp_path / place / "judge.yaml").write_text("goals: {gold: {rules: [[1, gold]]}}\n")

    def fingerprints(place, out):
        exp = load_experiment(
            tmp_path / place / "exp.yaml", ["rewards.judge.judge=" + str(tmp_path / place / "judge.yaml")]
        )
        cells = [run.digest(c.settings()) for c in run.plan_cells(exp, tmp_path / out)]
        return cells, [pipeline.fingerprint(s.argv, tmp_path / out) for s in run.shared_steps(exp, tmp_path / out)]

    assert fingerprints("a", "out1") == fingerprints("b", "out2")
    cells, shared = fingerprints("a", "out1")
    (tmp_path / "a" / "cfg.yaml").write_text("preset: tiny\nppo: {lr: 1.0e-3}\n")
    (tmp_path / "a" / "judge.yaml").write_text("goals: {gold: {rules: [[2, gold]]}}\n")
    edited_cells, edited_shared = fingerprints("a", "out1")
    assert edited_cells[0] == cells[0]  # random: no training config
    assert edited_cells[2:] != cells[2:] and edited_shared != shared
    # another goal of the same judge file changes nothing of the labels made with this one
    (tmp_path / "a" / "judge.yaml").write_text("goals: {gold: {rules: [[2, gold]]}, combat: {rules: [[1, kill]]}}\n")
    assert fingerprints("a", "out1")[1] == edited_shared


def test_skills_cells_train_once_and_evaluate_the_same_agents_on_other_tasks(tmp_path):
    text = EXPERIMENT.replace(
        "  judge: {dataset: play, goal: gold}\n",
        "  judge: {dataset: play, goal: gold}\n  skills: {dataset: play, skills: nethack}\n",
    ) + (
        "  skilled: {reward: skills, skills: nethack, extrinsic_coef: 0, llm_coef: 0.1}\n"
        "  zero-shot: {agents_of: skilled, task: down-and-back}\n"
        "  descender: {agents_of: skilled, skill: descender}\n"
    )
    exp = load_experiment(write_experiment(tmp_path, text))
    out = tmp_path / "out"
    cells = {c.name: c for c in run.plan_cells(exp, out)}
    train = cells["skilled_s1"].steps[0].argv
    assert train[train.index("--skills") + 1] == "nethack" and train[train.index("--reward") + 1].endswith("skills")
    zero_shot = cells["zero-shot_s1"].steps
    assert [s.name for s in zero_shot] == ["evaluate"]  # no training of its own
    assert zero_shot[0].argv[1] == str(out / "cells" / "skilled_s1" / "checkpoints")
    assert zero_shot[0].argv[zero_shot[0].argv.index("--task") + 1] == "down-and-back"
    alone = cells["descender_s0"].steps[0].argv
    assert alone[alone.index("--skill") + 1] == "descender"
    shared = {s.name: s.argv for s in run.shared_steps(exp, out)}
    assert shared["annotate skills"][-3:-1] == ["--skills", "nethack"]
    assert "--skills" in shared["reward skills"] and "--annotator" not in shared["reward skills"]
    soft = load_experiment(
        write_experiment(tmp_path, text.replace("skills: nethack}\n", "skills: nethack, soft: 1}\n", 1))
    )
    shared = {s.name: s.argv for s in run.shared_steps(soft, out)}
    assert shared["annotate skills"][-4:-1] == ["nethack", "--soft", "1"]
    assert shared["reward skills"][shared["reward skills"].index("--labels") + 1] == "rules-nethack_{skill}_soft1"
    bad = text.replace("agents_of: skilled, task", "agents_of: zero-shot, task")
    with pytest.raises(MotifError, match="agents_of 'zero-shot' must name a trained condition declared before it"):
        load_experiment(write_experiment(tmp_path, bad))
    with pytest.raises(MotifError, match="skill runs one skill of trained agents: add agents_of"):
        load_experiment(write_experiment(tmp_path, text.replace("{agents_of: skilled, skill", "{skill")))


@pytest.mark.slow
def test_shipped_maestro_experiment_runs_end_to_end_at_toy_size(tmp_path):
    """Skills labels and reward models, skill training, zero-shot tasks, one skill alone, baselines: real stages."""
    from pathlib import Path

    from motif_jax.cli import main

    shipped = Path(__file__).resolve().parents[1] / "configs" / "experiments" / "maestro-cpu.yaml"
    out = tmp_path / "grid"
    sets = ["seeds=[0]", "train.steps=8192", "evaluate.episodes=2", "evaluate.num_envs=2"]
    sets += ["evaluate.max_episode_steps=100", "datasets.play.pairs=300"]
    assert (
        main(["experiment", str(shipped), "--out", str(out), "--no-progress", *[a for s in sets for a in ("--set", s)]])
        == 0
    )
    saved = json.loads((out / "results.json").read_text())
    assert saved["conditions"]["maestro-down-and-back"]["n_episodes"] == 2
    assert (out / "shared" / "rewards" / "skills" / "skills.json").is_file()
    report = json.loads((out / "cells" / "descender-alone_s0" / "result.json").read_text())["report"]
    assert report["skills"]["chosen_by"] == "skill descender"


def test_a_dataset_collected_with_captioned_stairs_says_so_on_its_command_line(tmp_path):
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[1] / "configs" / "experiments" / "sparse-cpu.yaml"
    steps = {s.name: s.argv for s in run.shared_steps(load_experiment(shipped), tmp_path)}
    assert "--mention-stairs" in steps["dataset play-captioned"]
    assert "--mention-stairs" not in steps["dataset play"]  # the argv, and so the cache key, of before
