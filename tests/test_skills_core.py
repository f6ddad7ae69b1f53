"""The skills core: the skills file loader, the view of an NLE observation, the skill/policy code loader
and the controller in the env loop."""

import dataclasses
import textwrap
from pathlib import Path

import numpy as np
import pytest
from nle import nethack

from motif_jax.envs import make_pool
from motif_jax.envs.loop import EnvLoop, LoopObserver
from motif_jax.envs.tasks import make_task_env
from motif_jax.errors import MotifError
from motif_jax.resources import builtin_configs
from motif_jax.skills.code import load_code, load_policy, load_skill_code
from motif_jax.skills.controller import SkillController
from motif_jax.skills.spec import SkillSpec, load_skills
from motif_jax.skills.view import LABELS, Started, View, make_view

SKILL_CODE = "def initiation(view):\n    return True\n\n\ndef termination(view, since_start):\n    return False\n"
POLICY_CODE = "def policy_over_skills(view, memory):\n    return view.available[0]\n"


def write_skills(folder: Path, text: str, code: dict[str, str] | None = None) -> Path:
    """A skills file with the given YAML and code files (default: one trivial skill file and policy)."""
    files = {"code/a.py": SKILL_CODE, "code/policy.py": POLICY_CODE, **(code or {})}
    for name, body in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(body)
    path = folder / "skills.yaml"
    path.write_text(textwrap.dedent(text))
    return path


GOOD = """
    skills:
      a: {description: "do a", reward: {judge: nethack, goal: a}, quantile: 0.9, code: code/a.py}
    training_policy: code/policy.py
    tasks:
      t-1: {description: "task", policy: code/policy.py}
"""


# ----------------------------------------------------------------------------- the skills file
def test_shipped_skills_file_loads_by_name_with_paths_relative_to_it():
    skills = load_skills("nethack")
    assert skills.names == ("discoverer", "descender", "ascender", "merchant", "worshipper")
    assert [skills.skills[n].quantile for n in skills.names] == [0.95, 0.85, 0.85, 0.85, 0.85]
    assert skills.skills["merchant"].reward == {"judge": "nethack", "goal": "merchant"}
    folder = (builtin_configs() / "skills").resolve()
    assert skills.skills["descender"].code == folder / "code" / "descender.py"
    assert skills.training_policy == folder / "code" / "policy_train.py"
    assert set(skills.tasks) == {"gnomish-mines", "delphi", "minetown", "golden-exit", "down-and-back", "xp2-then-down"}
    assert load_skills("configs/skills/nethack.yaml").names == skills.names
    for task in skills.tasks.values():  # every shipped policy loads
        load_policy(task.policy, skills.names)


def test_skills_file_from_another_folder(tmp_path):
    skills = load_skills(write_skills(tmp_path, GOOD))
    assert skills.names == ("a",) and skills.skills["a"].code == (tmp_path / "code/a.py").resolve()
    assert skills.tasks["t-1"].description == "task"


@pytest.mark.parametrize(
    "text, match",
    [
        (GOOD.replace("code: code/a.py", "code: code/missing.py"), r"skills\.a\.code: file code/missing.py not found"),
        (GOOD.replace("quantile: 0.9, ", ""), r"skills\.a\.quantile is missing"),
        (GOOD.replace("quantile: 0.9", "quantile: 1.0"), r"skills\.a\.quantile must be a number in \(0, 1\)"),
        (GOOD.replace("quantile: 0.9", "quantile: 0"), r"quantile must be a number in \(0, 1\), got 0"),
        (GOOD.replace("quantile: 0.9", "quantile: high"), r"quantile must be a number in \(0, 1\)"),
        (GOOD.replace("code: code/a.py}", "code: code/a.py, speed: 2}"), r"skills\.a: unknown key\(s\) speed"),
        (GOOD + "    extra: 1\n", r"unknown key\(s\) extra"),
        (GOOD.replace("training_policy: code/policy.py", ""), r"training_policy is missing"),
        (GOOD.replace('description: "do a", ', ""), r"skills\.a\.description is missing"),
        (GOOD.replace("{judge: nethack, goal: a}", "{judge: nethack}"), r"skills\.a\.reward must be"),
        (GOOD.replace("  a: {", "  bad name!: {"), r"bad name 'bad name!'"),
        (GOOD.replace("t-1:", "t/1:"), r"tasks\.t/1: bad name"),
        (GOOD.replace("skills:\n", "skills:\n      a: {}\n"), r"line 4: 'a' is given twice"),
        ("skills: {}\ntraining_policy: code/policy.py\n", r"skills must be a non-empty mapping"),
        ("- a\n", r"must hold a mapping at the top level"),
        ("skills: [\n", r"is not valid YAML"),
    ],
)
def test_bad_skills_files_are_one_line_errors(tmp_path, text, match):
    path = write_skills(tmp_path, text)
    with pytest.raises(MotifError, match=match) as info:
        load_skills(path)
    assert "\n" not in str(info.value)


def test_missing_skills_file_names_the_shipped_ones(tmp_path):
    with pytest.raises(MotifError, match=r"skills file .*nope.yaml not found \(shipped skills files: nethack\)"):
        load_skills(tmp_path / "nope.yaml")


# ----------------------------------------------------------------------------- the view
def cmap_glyph(explanation: str) -> int:
    index = next(i for i in range(nethack.MAXPCHARS) if nethack.symdef.from_idx(i).explanation == explanation)
    return nethack.GLYPH_CMAP_OFF + index


def monster_glyph(name: str) -> int:
    return next(
        g
        for g in range(nethack.GLYPH_MON_OFF, nethack.GLYPH_PET_OFF)
        if nethack.permonst(nethack.glyph_to_mon(g)).mname == name
    )


def test_view_of_a_real_observation():
    env = make_task_env("score", seed=0, obs_keys=("glyphs", "blstats", "message", "inv_strs"))
    try:
        obs, _ = env.reset()
        view = make_view(obs)
        bl = obs["blstats"]
        assert view.message.startswith("Hello Agent, welcome to NetHack!")
        assert (view.depth, view.dlvl, view.dungeon) == (1, 1, 0)
        assert (view.hp, view.max_hp) == (bl[nethack.NLE_BL_HP], bl[nethack.NLE_BL_HPMAX]) and view.hp > 0
        assert (view.xp_level, view.xp_points, view.turn) == (1, 0, 1)
        assert view.score == bl[nethack.NLE_BL_SCORE] and view.gold == bl[nethack.NLE_BL_GOLD]
        assert view.inventory and all(isinstance(item, str) and item for item in view.inventory)
        assert view.in_sight <= set(LABELS) and "pet" in view.in_sight  # every role starts with a pet
        assert view.available == ()
        for _ in range(20):
            obs, *_ = env.step(env.action_space.sample())
        later = make_view(obs)
        assert later.turn > view.turn and isinstance(later.message, str)
        no_map = make_view({"blstats": obs["blstats"], "message": obs["message"]})
        assert no_map.in_sight == frozenset() and no_map.inventory == () and no_map.turn == later.turn

        glyphs = obs["glyphs"].copy()
        x, y = int(obs["blstats"][nethack.NLE_BL_X]), int(obs["blstats"][nethack.NLE_BL_Y])
        glyphs[:] = cmap_glyph("dark part of a room")
        glyphs[0, 0], glyphs[0, 1] = cmap_glyph("staircase down"), monster_glyph("shopkeeper")
        glyphs[0, 2], glyphs[y, x] = cmap_glyph("altar"), monster_glyph("Oracle")  # the hero's own cell: unseen
        seen = make_view({**obs, "glyphs": glyphs}).in_sight
        assert seen == {"downstairs", "shopkeeper", "monster", "altar"}
        lazy = make_view({**obs, "glyphs": glyphs}, lazy_sight=True).in_sight  # worked out on first use
        assert lazy == seen and "altar" in lazy and frozenset(lazy) == seen and "oracle" not in lazy
        assert hash(lazy) == hash(seen) and len(lazy) == 4
    finally:
        env.close()


def test_view_is_read_only_and_cheap():
    view = View(depth=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.depth = 4
    obs = {
        "blstats": np.zeros(nethack.NLE_BLSTATS_SIZE, np.int64),
        "message": np.zeros(256, np.uint8),
        "glyphs": np.full((21, 79), nethack.NO_GLYPH, np.int16),
    }
    assert make_view(obs, available=("a",)).available == ("a",)


# ----------------------------------------------------------------------------- the hand-written code
SHIPPED = load_skills("nethack")


def skill(name: str):
    return load_skill_code(SHIPPED.skills[name])


def started(view: View, turns: int = 0, steps: int = 0) -> Started:
    return Started(turns=turns, steps=steps, view=view)


def test_hand_written_skill_decisions():
    level1, level2 = View(depth=1, turn=10), View(depth=2, turn=30)
    descender, discoverer, ascender = skill("descender"), skill("discoverer"), skill("ascender")
    assert descender.initiation(level1)
    assert not descender.termination(level1, started(level1, 20, 20))
    assert descender.termination(level2, started(level1, 20, 20))
    assert discoverer.initiation(level1)
    assert not discoverer.termination(level1, started(level1, turns=499))
    assert discoverer.termination(level1, started(level1, turns=500))
    assert not ascender.initiation(level1) and ascender.initiation(level2)
    assert ascender.termination(level1, started(level2))
    merchant, worshipper = skill("merchant"), skill("worshipper")
    assert not merchant.initiation(level1)
    assert merchant.initiation(View(in_sight=frozenset({"shopkeeper", "monster"})))
    assert worshipper.initiation(View(in_sight=frozenset({"altar"}))) and not worshipper.initiation(level1)
    assert merchant.termination(level1, started(level1, turns=10_000))


def test_training_policy_gives_every_skill_a_turn():
    policy = load_policy(SHIPPED.training_policy, SHIPPED.names)
    memory = {}
    basic = View(depth=2, available=("discoverer", "descender", "ascender"))
    assert [policy.choose(basic, memory) for _ in range(4)] == ["discoverer", "descender", "ascender", "discoverer"]
    assert policy.choose(dataclasses.replace(basic, available=("discoverer", "descender")), memory) == "descender"
    shop = dataclasses.replace(basic, available=(*basic.available, "merchant"))
    assert policy.choose(shop, memory) == "merchant"


def test_task_policies_follow_their_rules():
    def choose(task, memory=None, **fields):
        view = View(available=tuple(n for n in SHIPPED.names if skill(n).initiation(View(**fields))), **fields)
        return load_policy(SHIPPED.tasks[task].policy, SHIPPED.names).choose(view, {} if memory is None else memory)

    stairs = frozenset({"downstairs"})
    assert choose("gnomish-mines", depth=2, in_sight=stairs) == "descender"
    assert choose("gnomish-mines", depth=2) == "discoverer"
    assert choose("gnomish-mines", depth=6) == "ascender"
    assert choose("delphi", depth=5, in_sight=frozenset({"oracle", "downstairs"})) == "discoverer"
    assert choose("delphi", depth=3, dungeon=2) == "ascender"
    assert choose("minetown", depth=5, dungeon=2, in_sight=stairs) == "descender"
    memory = {}
    assert choose("down-and-back", memory, depth=1, in_sight=stairs) == "descender"
    assert choose("down-and-back", memory, depth=2, in_sight=frozenset({"upstairs"})) == "ascender"
    assert choose("down-and-back", memory, depth=1, in_sight=stairs) == "discoverer"  # back: done
    memory = {}
    assert choose("xp2-then-down", memory, xp_level=1, in_sight=stairs) == "discoverer"
    assert choose("xp2-then-down", memory, xp_level=2, in_sight=stairs) == "descender"
    memory = {}
    assert choose("golden-exit", memory, depth=1, gold=50, in_sight=stairs) == "discoverer"  # no kills yet
    assert choose("golden-exit", memory, depth=1, gold=50, in_sight=stairs) == "descender"  # level 1 explored
    memory = {"kills": 24}
    assert choose("golden-exit", memory, depth=2, gold=20, message="You kill the newt!") == "ascender"


# ----------------------------------------------------------------------------- bad code
def spec_for(tmp_path: Path, body: str) -> SkillSpec:
    path = tmp_path / "bad_skill.py"
    path.write_text(textwrap.dedent(body))
    return SkillSpec("bad", "a bad skill", {"judge": "nethack", "goal": "bad"}, 0.9, path)


@pytest.mark.parametrize(
    "body, match",
    [
        ("def initiation(view):\n    return True\ndef termination(view, s)\n", r"syntax error at line 3"),
        ("def initiation(view):\n    return True\n", r"defines no function termination; expected termination\("),
        ("initiation = 3\ndef termination(view, s):\n    return True\n", r"initiation is a int, not a function"),
        ("def initiation():\n    return True\ndef termination(v, s):\n    return 1\n", r"initiation must take 1 arg"),
        ("import not_a_module_anywhere\n", r"running the file raised ModuleNotFoundError"),
    ],
)
def test_bad_skill_files_fail_at_load_naming_file_and_skill(tmp_path, body, match):
    with pytest.raises(MotifError, match=r"skill code .*bad_skill.py \(bad\): " + match) as info:
        load_skill_code(spec_for(tmp_path, body))
    assert "\n" not in str(info.value)


def test_skill_code_failing_at_a_call_names_file_skill_and_line(tmp_path):
    code = load_skill_code(
        spec_for(
            tmp_path,
            """\
            def initiation(view):
                return view.depth
            def termination(view, since_start):
                return 1 / 0
            """,
        )
    )
    view = View()
    with pytest.raises(MotifError, match=r"\(bad\): initiation returned int 1, expected True or False"):
        code.initiation(view)
    with pytest.raises(MotifError, match=r"\(bad\): termination raised ZeroDivisionError: division by zero \(line 4\)"):
        code.termination(view, started(view))


def test_numpy_booleans_are_accepted(tmp_path):
    body = "import numpy\ndef initiation(view):\n    return numpy.bool_(True)\n"
    body += "def termination(view, s):\n    return False\n"
    assert load_skill_code(spec_for(tmp_path, body)).initiation(View()) is True


def test_bad_policies(tmp_path):
    path = tmp_path / "policy.py"
    path.write_text("def policy_over_skills(view, memory):\n    return memory['answer']\n")
    policy = load_policy(path, ("a", "b"))
    view = View(available=("a",))
    for answer, match in [("b", "an unavailable skill 'b'; available now: a"), ("z", "an unknown skill 'z'")]:
        with pytest.raises(MotifError, match=r"policy code .*policy.py: policy_over_skills returned " + match):
            policy.choose(view, {"answer": answer})
    with pytest.raises(MotifError, match=r"returned int 3, expected a skill name"):
        policy.choose(view, {"answer": 3})
    with pytest.raises(MotifError, match=r"policy_over_skills raised KeyError: 'answer' \(line 2\)"):
        policy.choose(view, {})
    path.write_text("def choose(view, memory):\n    return 'a'\n")
    with pytest.raises(MotifError, match=r"defines no function policy_over_skills"):
        load_policy(path, ("a",))


def test_load_code_loads_every_skill_in_order():
    skills, policy = load_code(SHIPPED, SHIPPED.tasks["delphi"].policy)
    assert tuple(skills) == SHIPPED.names and policy.path == SHIPPED.tasks["delphi"].policy


# ----------------------------------------------------------------------------- the controller
class Recorder(LoopObserver):
    """Copies what the controller just wrote, per env."""

    def __init__(self):
        self.rows = []  # (env, first, ended, skill, depth change)

    def observe(self, batch):
        for i, env in enumerate(batch.env_ids.tolist()):
            self.rows.append(
                (
                    env,
                    bool(batch.first[i]),
                    bool(batch.ended[i]),
                    int(batch.obs["skill"][i]),
                    batch.obs["skill_depth_change"][i],
                )
            )


ALTERNATING = """
    skills:
      short: {description: "s", reward: {annotator: x}, quantile: 0.9, code: code/short.py}
      long: {description: "l", reward: {annotator: x}, quantile: 0.9, code: code/long.py}
      never: {description: "n", reward: {annotator: x}, quantile: 0.9, code: code/never.py}
    training_policy: code/policy.py
"""
ALTERNATING_CODE = {
    "code/short.py": "def initiation(view):\n    return True\ndef termination(view, s):\n    return s.steps >= 5\n",
    "code/long.py": "def initiation(view):\n    return True\ndef termination(view, s):\n    return s.steps >= 11\n",
    "code/never.py": "def initiation(view):\n    return False\ndef termination(view, s):\n    return True\n",
    "code/policy.py": textwrap.dedent(
        """\
        def policy_over_skills(view, memory):
            memory["n"] = memory.get("n", -1) + 1
            return ("short", "long")[memory["n"] % 2]
        """
    ),
}


def test_controller_over_a_real_pool(tmp_path):
    steps, num_envs, episode_steps = 150, 2, 60
    shipped = SkillController(SHIPPED, SHIPPED.training_policy, num_envs)
    alternating_skills = load_skills(write_skills(tmp_path, ALTERNATING, ALTERNATING_CODE))
    alternating = SkillController(alternating_skills, alternating_skills.training_policy, num_envs)
    seen_shipped, seen_alternating = Recorder(), Recorder()
    rng = np.random.default_rng(0)
    with make_pool("score", num_envs, num_workers=1, seed=0, max_episode_steps=episode_steps) as pool:
        loop = EnvLoop(pool, [shipped, seen_shipped, alternating, seen_alternating], in_env_order=True)
        loop.run(
            lambda b: (rng.integers(0, pool.action_space.n, len(b.env_ids)), None),
            until=lambda: len(seen_alternating.rows) >= steps * num_envs,
        )

    assert shipped.num_skills == 5 and alternating.skill_names == ("short", "long", "never")
    assert all(0 <= row[3] < 5 for row in seen_shipped.rows)
    assert all(row[3] in (0, 1) for row in seen_alternating.rows)

    for env in range(num_envs):  # within an episode: runs of 5 "short" and 11 "long" steps, short first
        rows = [row for row in seen_alternating.rows if row[0] == env]
        runs, episode = [], []
        for _, first, _, skill, change in rows:
            assert change == 0.0 or abs(change) >= 1
            if first and episode:
                runs.append(episode)
                episode = []
            episode.append(skill)
        for ep in runs:  # finished episodes only
            assert ep[:5] == [0] * 5 and ep[5:16] == [1] * 11 and ep[16:21] == [0] * 5
    metrics = alternating.drain_metrics()
    total = sum(metrics[f"skill/{name}/steps"] for name in alternating.skill_names)
    assert total == len(seen_alternating.rows)
    assert sum(metrics[f"skill/{name}/share"] for name in alternating.skill_names) == pytest.approx(1.0)
    assert metrics["skill/never/activations"] == 0 and np.isnan(metrics["skill/never/mean_duration"])
    assert metrics["skill/short/activations"] > 2 * num_envs and metrics["skill/long/activations"] > num_envs
    assert 0 < metrics["skill/short/mean_duration"] <= 5 and 5 < metrics["skill/long/mean_duration"] <= 11
    # a 60-step episode: short 5, long 11, short 5, long 11, short 5, long 11, short 5, long 7 -> 7 switches
    assert metrics["skill/switches_per_episode"] == pytest.approx(7.0)
    assert np.isnan(alternating.drain_metrics()["skill/switches_per_episode"])  # drained

    shipped_metrics = shipped.drain_metrics()
    assert sum(shipped_metrics[f"skill/{n}/steps"] for n in SHIPPED.names) == len(seen_shipped.rows)
    assert shipped_metrics["skill/discoverer/activations"] >= num_envs  # every episode starts exploring
    # a view kept past its step holds what was in sight then, not a window on the next step's glyphs
    assert all(type(view.in_sight) is frozenset for view in shipped.start_view if view is not None)


def test_controller_without_a_possible_skill_names_the_policy(tmp_path):
    code = {"code/a.py": "def initiation(view):\n    return False\ndef termination(view, s):\n    return True\n"}
    skills = load_skills(write_skills(tmp_path, GOOD, code))
    controller = SkillController(skills, skills.training_policy, 1)
    obs = {"blstats": np.ones((1, nethack.NLE_BLSTATS_SIZE), np.int64), "message": np.zeros((1, 256), np.uint8)}
    ones = np.ones(1, bool)
    batch = _batch(obs, first=ones)
    with pytest.raises(MotifError, match=r"policy code .*policy.py: no skill's initiation holds"):
        controller.observe(batch)


def _batch(obs, first):
    from motif_jax.envs.loop import EnvStep

    n = len(first)
    zeros = np.zeros(n, bool)
    return EnvStep(obs, np.zeros(n), zeros, zeros, {}, np.arange(n), zeros, first, np.zeros(n, np.int32))
