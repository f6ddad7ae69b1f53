"""The LLM side of the skills: the sandbox, reading replies, the write-code loop against a scripted
OpenAI-compatible server on 127.0.0.1, and `motif skills check` on short random-play replays."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from chat_server import ChatServer
from motif_jax.annotate.backends import Sampling, make_backend
from motif_jax.cli import main
from motif_jax.errors import MotifError
from motif_jax.skills.design.prompts import code_blocks, extract_code, extract_test, load_prompts
from motif_jax.skills.design.sandbox import POLICY_FUNCTIONS, SKILL_FUNCTIONS, Limits, run_unit_test
from motif_jax.skills.design.write_code import Group, write_group
from motif_jax.skills.spec import load_skills

FAST = Limits(seconds=3.0)

INITIATION = """\
def initiation(view):
    return "downstairs" in view.in_sight
"""
TERMINATION = """\
def termination(view, since_start):
    return view.depth > since_start.view.depth
"""
HANGING = """\
def initiation(view):
    while True:
        pass
"""
GOOD_SKILL = INITIATION + "\n\n" + TERMINATION
SKILL_TEST = """\
def test():
    assert initiation(make_view(in_sight={"downstairs"}))
    assert not initiation(make_view())
    start = make_view(depth=1)
    assert termination(make_view(depth=2), Started(5, 3, start))
    assert not termination(make_view(depth=1), Started(5, 3, start))
"""
BAD_SKILL = GOOD_SKILL.replace('"downstairs" in', '"downstairs" not in')
GOOD_POLICY = """\
def policy_over_skills(view, memory):
    if "descender" in view.available and "downstairs" in view.in_sight:
        return "descender"
    return view.available[0]
"""
POLICY_TEST = """\
def test():
    view = make_view(in_sight={"downstairs"}, available=("explorer", "descender"))
    assert policy_over_skills(view, {}) == "descender"
    assert policy_over_skills(make_view(available=("explorer",)), {}) == "explorer"
"""


def fenced(code: str, words: str = "Here it is:") -> str:
    return f"{words}\n```python\n{code}```\nDone."


# ------------------------------------------------------------------------------------------- sandbox
def test_sandbox_passes_good_code_and_returns_its_prints():
    outcome = run_unit_test(GOOD_SKILL, SKILL_TEST + "    print('checked')\n", SKILL_FUNCTIONS, FAST)
    assert outcome.passed, outcome.report()
    assert outcome.reason == "the test passed" and "checked" in outcome.output
    assert run_unit_test(GOOD_POLICY, POLICY_TEST, POLICY_FUNCTIONS, FAST).passed


def test_sandbox_reports_a_failing_test_with_the_line():
    outcome = run_unit_test(BAD_SKILL, SKILL_TEST, SKILL_FUNCTIONS, FAST)
    assert not outcome.passed
    assert outcome.reason.startswith("the test failed: AssertionError") and "<unit test> line 2" in outcome.reason
    assert "assert initiation" in outcome.output  # the model sees the failing line


def test_sandbox_kills_hanging_code_at_the_limit():
    start = time.monotonic()
    outcome = run_unit_test(HANGING + TERMINATION, SKILL_TEST, (), Limits(1.5))
    assert not outcome.passed and "timed out after 1.5 s" in outcome.reason
    assert time.monotonic() - start < 5


def test_sandbox_reports_crashes():
    crash = run_unit_test(GOOD_SKILL.replace('"downstairs" in view.in_sight', "1 / 0"), SKILL_TEST, SKILL_FUNCTIONS)
    assert not crash.passed and "ZeroDivisionError" in crash.reason and "<skill code> line 2" in crash.reason
    exits = run_unit_test("import typing\ntyping.sys.modules['os']._exit(3)\n", SKILL_TEST, (), FAST)
    assert not exits.passed and "crashed the sandbox" in exits.reason
    memory = run_unit_test("x = bytearray(3 << 30)\n" + GOOD_SKILL, SKILL_TEST, SKILL_FUNCTIONS, FAST)
    assert not memory.passed and "MemoryError" in memory.reason


@pytest.mark.parametrize(
    "attack, refused",
    [
        ("import os\nos.system('touch {target}')", "import of 'os'"),
        ("open('{target}', 'w').write('x')", "open()"),
        ("print(open('/etc/passwd').read())", "open()"),
        ("import socket\nsocket.socket().connect(('127.0.0.1', 9))", "import of 'socket'"),
        ("import subprocess\nsubprocess.run(['touch', '{target}'])", "import of 'subprocess'"),
        ("import typing\ntyping.sys.modules['os'].system('touch {target}')", "os.system"),
        ("import typing\ntyping.sys.modules['socket'].socket()", "socket.socket"),
        ("import re\nvars(re)['__builtins__']['open']('{target}', 'w')", "open()"),
        ("try:\n    import os\nexcept ImportError:\n    pass", "import of 'os'"),  # caught: still refused
    ],
)
def test_sandbox_refuses_files_processes_and_network(tmp_path, attack, refused):
    target = tmp_path / "pwned"
    code = attack.format(target=target) + "\n" + GOOD_SKILL
    outcome = run_unit_test(code, SKILL_TEST, SKILL_FUNCTIONS, FAST)
    assert not outcome.passed and outcome.reason.startswith("refused: ") and refused in outcome.reason
    assert not target.exists()
    assert "root:" not in outcome.output


def test_sandbox_blocks_new_files_even_through_low_level_escapes(tmp_path):
    target = tmp_path / "pwned"
    code = f"import typing\ntyping.sys.modules['_io'].FileIO('{target}', 'w')\n" + GOOD_SKILL
    outcome = run_unit_test(code, SKILL_TEST, SKILL_FUNCTIONS, FAST)
    assert not outcome.passed and "Too many open files" in outcome.reason  # no new file descriptor at all
    assert not target.exists()


def test_sandbox_allows_the_allow_list_and_the_view_types():
    code = "import math, re, collections, itertools, functools, dataclasses, typing\n"
    code += "from motif_jax.skills.view import View\n" + GOOD_SKILL
    assert run_unit_test(code, SKILL_TEST, SKILL_FUNCTIONS, FAST).passed


def test_sandbox_names_missing_functions_and_tests():
    missing = run_unit_test(GOOD_SKILL, SKILL_TEST, SKILL_FUNCTIONS + ("policy_over_skills",), FAST)
    assert not missing.passed and missing.reason == "the code defines no function policy_over_skills"
    no_test = run_unit_test(GOOD_SKILL, "x = 1\n", SKILL_FUNCTIONS, FAST)
    assert not no_test.passed and "no function test()" in no_test.reason
    helper = run_unit_test(
        "def initiation(view):\n    return make_view() == view\n" + TERMINATION, SKILL_TEST, (), FAST
    )
    assert not helper.passed and "NameError" in helper.reason  # test helpers are not there in training either
    syntax = run_unit_test("def initiation(view)\n", SKILL_TEST, SKILL_FUNCTIONS, FAST)
    assert not syntax.passed and syntax.reason.startswith("the code did not load: SyntaxError")


def test_a_test_that_redefines_the_functions_still_checks_the_code():
    """Small models send their test with its own copy of the functions; the test must call the code's."""
    shadowing = GOOD_SKILL + "\n\n" + SKILL_TEST
    assert not run_unit_test(BAD_SKILL, shadowing, SKILL_FUNCTIONS, FAST).passed
    assert run_unit_test(GOOD_SKILL, BAD_SKILL + "\n\n" + SKILL_TEST, SKILL_FUNCTIONS, FAST).passed


# ------------------------------------------------------------------------------------------ replies
def test_code_is_read_from_fences_robustly():
    assert code_blocks("```python\na = 1\n```\ntext\n```py\nb = 2\n```") == ["a = 1\n", "b = 2\n"]
    assert code_blocks("```python\na = 1\n") == ["a = 1\n"]  # a reply cut off inside its fence
    assert code_blocks("def f():\n    return 1\n") == ["def f():\n    return 1\n"]  # no fence: the whole reply
    assert code_blocks("```text\nFAILED\n```") == []
    reply = fenced(SKILL_TEST, "The test:") + "\n" + fenced(GOOD_SKILL, "The code:")
    assert extract_test(reply) == SKILL_TEST and extract_code(reply, SKILL_FUNCTIONS) == GOOD_SKILL
    assert extract_code(fenced(INITIATION) + fenced(TERMINATION), SKILL_FUNCTIONS) == INITIATION + "\n\n" + TERMINATION
    assert extract_test("no code here") is None


def test_verdicts_are_read_from_the_last_answer_line():
    prompts = load_prompts()
    assert prompts.verdict_of("It says `Answer: yes` or `Answer: no`... Answer: **Yes**") == "yes"
    assert prompts.verdict_of("Answer: yes\nOn reflection, Answer: no") == "no"
    assert prompts.verdict_of("No.") == "no"
    assert prompts.verdict_of("It looks fine to me.") is None


def test_a_broken_prompts_file_is_one_line(tmp_path):
    text = Path(load_prompts().path).read_text()
    (tmp_path / "p.yaml").write_text(text.replace("{skill}", "{skil}"))
    with pytest.raises(MotifError, match="not a valid format string"):
        load_prompts(tmp_path / "p.yaml")
    (tmp_path / "q.yaml").write_text("system: hi\n")
    with pytest.raises(MotifError, match="field interface is missing"):
        load_prompts(tmp_path / "q.yaml")


# ------------------------------------------------------------------------------------------ the loop
class ScriptedLLM(ChatServer):
    """An OpenAI-compatible server on 127.0.0.1 answering /v1/chat/completions with queued replies, in order;
    it records every request body."""

    def __init__(self, replies: list[str]):
        self.replies, self.requests = list(replies), []
        super().__init__(self._answer)

    def _answer(self, body: dict) -> tuple[int, str]:
        self.requests.append(body)
        content = self.replies.pop(0) if self.replies else "(script exhausted)"
        if isinstance(content, int):  # an HTTP error, e.g. 400 for a prompt past the context window
            return content, "prompt too long for the context window"
        return 200, content


@pytest.fixture
def scripted():
    servers = []

    def start(replies):
        servers.append(ScriptedLLM(replies))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _skill_group() -> Group:
    prompts = load_prompts()
    return Group("skill", "descender", prompts.skill_test("descender", "go down"), prompts.say("skill_code", skill="d"))


def _run_loop(llm: ScriptedLLM, rounds: int = 2, limits: Limits = FAST):
    backend = make_backend("openai", Sampling(temperature=0.2), model="scripted", base_url=llm.url, api_key_env=None)
    lines = []
    try:
        return write_group(_skill_group(), backend, load_prompts(), rounds, limits, say=lines.append), lines
    finally:
        backend.close()


def test_good_code_is_accepted_in_round_one(scripted):
    llm = scripted([fenced(SKILL_TEST), fenced(GOOD_SKILL), "The test passed and the logic is right.\nAnswer: yes"])
    result, lines = _run_loop(llm)
    assert result.accepted_round == 1 and result.code == GOOD_SKILL
    assert lines == ["skill descender: round 1/2: test passed, model says yes: accepted"]
    assert len(llm.requests) == 3 and all(r["temperature"] == 0.2 for r in llm.requests)
    last = llm.requests[-1]["messages"][-1]["content"]
    assert "PASSED: the test passed" in last and "Answer: yes" in last


def test_a_bad_first_answer_is_fixed_in_round_two(scripted):
    llm = scripted([fenced(SKILL_TEST), fenced(BAD_SKILL), fenced(GOOD_SKILL, "Fixed:"), "Answer: yes"])
    result, lines = _run_loop(llm)
    assert result.accepted_round == 2 and result.code == GOOD_SKILL
    assert [r.verdict for r in result.rounds] == [None, "yes"]  # a failing test needs no question
    assert "FAILED: the test failed: AssertionError" in lines[0]
    rewrite = llm.requests[2]["messages"][-1]["content"]
    assert "FAILED: the test failed" in rewrite and "assert initiation" in rewrite


def test_a_test_without_asserts_is_not_accepted(scripted):
    llm = scripted([fenced("def test():\n    return True\n"), fenced(GOOD_SKILL)])
    result, _ = _run_loop(llm, rounds=1)
    assert result.accepted_round is None and "checks nothing" in result.rounds[0].reason


def test_a_no_verdict_asks_for_a_rewrite_and_an_unreadable_one_accepts(scripted):
    llm = scripted([fenced(SKILL_TEST), fenced(GOOD_SKILL), "Answer: no", fenced(GOOD_SKILL), "Looks right."])
    result, _ = _run_loop(llm)
    assert [(r.passed, r.verdict, r.accepted) for r in result.rounds] == [
        (True, "no", False),
        (True, "unreadable", True),
    ]


def test_a_conversation_the_backend_refuses_fails_its_group_only(scripted):
    """A long conversation can outgrow the context window mid-group: that group fails, the run goes on."""
    llm = scripted([fenced(SKILL_TEST), fenced(BAD_SKILL), 400])
    result, lines = _run_loop(llm, rounds=3)
    assert result.accepted_round is None and [r.number for r in result.rounds] == [1, 2]
    assert result.rounds[1].reason.startswith("the model could not answer: ") and "HTTP 400" in result.rounds[1].reason
    assert lines[-1].startswith("skill descender: round 2/3: FAILED: the model could not answer")
    assert result.conversation[-1]["role"] == "user"  # the unanswered request is in the provenance
    with pytest.raises(MotifError, match="HTTP 400"):  # the group's first request failing is the backend's failure
        _run_loop(scripted([400]))


@pytest.mark.parametrize(
    "code, reason",
    [
        (HANGING + TERMINATION, "timed out after 1.5 s"),
        (GOOD_SKILL.replace('"downstairs" in view.in_sight', "[][1]"), "the test raised IndexError"),
        ("import os\nos.system('touch {target}')\n" + GOOD_SKILL, "refused: import of 'os'"),
        ("open('{target}', 'w')\n" + GOOD_SKILL, "refused: open()"),
    ],
    ids=["hangs", "crashes", "os", "open"],
)
def test_bad_code_fails_every_round_and_touches_nothing(scripted, tmp_path, code, reason):
    target = tmp_path / "pwned"
    bad = fenced(code.format(target=target))
    llm = scripted([fenced(SKILL_TEST), bad, bad])
    start = time.monotonic()
    result, lines = _run_loop(llm, rounds=2, limits=Limits(1.5))
    assert result.accepted_round is None and result.code is None
    assert all(reason in r.reason for r in result.rounds), [r.reason for r in result.rounds]
    assert len(lines) == 2 and not target.exists()
    assert time.monotonic() - start < 15


# ------------------------------------------------------------------------------------------ the CLI
def _skills_file(folder: Path) -> Path:
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "descender.py").write_text(GOOD_SKILL)
    (folder / "code" / "explorer.py").write_text("def initiation(view):\n    return True\n\n\n" + TERMINATION)
    (folder / "code" / "policy.py").write_text(GOOD_POLICY)
    (folder / "skills.yaml").write_text(
        "skills:\n"
        "  explorer: {description: explore, reward: {judge: nethack, goal: discoverer}, quantile: 0.95, "
        "code: code/explorer.py}\n"
        "  descender: {description: go down, reward: {judge: nethack, goal: descender}, quantile: 0.85, "
        "code: code/descender.py}\n"
        "training_policy: code/policy.py\n"
        "tasks:\n  deep: {description: go deep, policy: code/policy.py}\n"
    )
    return folder / "skills.yaml"


def test_write_code_writes_files_provenance_and_a_loadable_skills_file(scripted, tmp_path, capsys):
    skills = _skills_file(tmp_path / "in")
    llm = scripted(
        [fenced(SKILL_TEST), fenced(GOOD_SKILL), "Answer: yes"]  # descender, round 1
        + [fenced(POLICY_TEST), fenced("import os\n" + GOOD_POLICY), fenced("import os\n" + GOOD_POLICY)]  # deep
    )
    out = tmp_path / "out"
    argv = ["skills", "write-code", "--skills", str(skills), "--skill", "descender", "--task", "deep"]
    argv += ["--out", str(out), "--rounds", "2", "--backend", "openai", "--base-url", llm.url, "--model", "m"]
    assert main(argv + ["--time-limit", "5"]) == 1  # the task failed all rounds
    printed = capsys.readouterr().out
    assert "skill descender: round 1/2: test passed, model says yes: accepted" in printed
    assert "failed all rounds (original code kept): task deep (policy)" in printed
    assert (out / "descender.py").read_text().endswith(GOOD_SKILL)
    assert not (out / "policy_deep.py").exists()
    provenance = json.loads((out / "descender.provenance.json").read_text())
    assert provenance["accepted_round"] == 1 and provenance["model"] == "m" and provenance["temperature"] == 0.2
    assert provenance["rounds"][0]["test"] == SKILL_TEST and provenance["rounds"][0]["verdict"] == "yes"
    assert [m["role"] for m in provenance["conversation"]] == ["system"] + ["user", "assistant"] * 3
    failed = json.loads((out / "policy_deep.provenance.json").read_text())
    assert failed["accepted_round"] is None and len(failed["rounds"]) == 2
    assert failed["rounds"][1]["verdict"] == "not asked (the test failed)"
    rewritten = load_skills(out / "skills.yaml")
    assert rewritten.skills["descender"].code == (out / "descender.py").resolve()
    assert rewritten.skills["explorer"].code == (skills.parent / "code" / "explorer.py").resolve()
    assert rewritten.tasks["deep"].policy == (skills.parent / "code" / "policy.py").resolve()
    assert "no accepted round): task deep" in (out / "skills.yaml").read_text()


def test_write_code_rejects_unknown_names_in_one_line(tmp_path, capsys):
    skills = _skills_file(tmp_path / "in")
    argv = ["skills", "write-code", "--skills", str(skills), "--skill", "nope", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert "--skill nope: not in" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ check
@pytest.mark.slow  # plays a real episode through the sandbox (~8 s)
def test_check_reports_full_agreement_of_identical_code_and_finds_a_difference(tmp_path, capsys):
    reference = _skills_file(tmp_path / "ref")
    candidate_dir = tmp_path / "cand"
    shutil.copytree(reference.parent, candidate_dir)
    argv = ["skills", "check", "--reference", str(reference), "--episodes", "1", "--max-steps", "60"]
    argv += ["--time-limit", "5"]
    assert main(argv + ["--skills", str(candidate_dir / "skills.yaml"), "--json", str(tmp_path / "same.json")]) == 0
    same = json.loads((tmp_path / "same.json").read_text())
    assert {row["function"]: row["rate"] for row in same["functions"]} == {
        "explorer.initiation": 1.0,
        "explorer.termination": 1.0,
        "descender.initiation": 1.0,
        "descender.termination": 1.0,
        "training_policy.policy_over_skills": 1.0,
        "deep.policy_over_skills": 1.0,
    }
    assert same["episodes"]["steps"] == 61 and same["functions"][0]["decisions"] == 60
    (candidate_dir / "code" / "descender.py").write_text(GOOD_SKILL.replace('"downstairs" in', '"downstairs" not in'))
    (candidate_dir / "code" / "explorer.py").write_text("while True:\n    pass\n")
    assert main(argv + ["--skills", str(candidate_dir / "skills.yaml"), "--json", str(tmp_path / "d.json")]) == 0
    rows = {row["function"]: row for row in json.loads((tmp_path / "d.json").read_text())["functions"]}
    initiation = rows["descender.initiation"]
    assert (
        initiation["rate"] < 1.0
        and initiation["agree"] + sum(c["n"] for c in initiation["counts"] if c["reference"] != c["candidate"])
        == initiation["decisions"]
    )
    assert rows["descender.termination"]["rate"] == 1.0
    assert rows["explorer.initiation"]["failed"].startswith("timed out")
    assert "agreement with skills.yaml" in capsys.readouterr().out
