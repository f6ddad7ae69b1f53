"""`motif skills`: the LLM side of the skills (MaestroMotif).

- ``motif skills write-code --skills FILE --out DIR``: the model writes each skill's initiation and
  termination and each task's policy over skills, against its own unit test, refined over rounds.
- ``motif skills check --skills FILE --reference FILE``: replay fresh random-play episodes and report how
  often the candidate code decides as the reference code does.

Every option also has a config-file form: ``--config FILE`` (YAML mapping of option names, dashes or
underscores) and ``--set option=value``; defaults < file < ``--set`` < flags.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from rich.console import Console
from rich.table import Table

from motif_jax.annotate.backends.config import BackendConfig, add_backend_arguments
from motif_jax.config import add_set_argument, describe_keys, merge, stage_layers
from motif_jax.errors import MotifError, make_dir

CODE_BACKENDS = ("llamacpp", "openai", "vllm")


@dataclasses.dataclass
class WriteCodeConfig(BackendConfig):
    skills: str | None = None  # the skills file (or a shipped one by name, e.g. nethack)
    out: str | None = None  # output folder: the code, its provenance and skills.yaml
    skill: list[str] = dataclasses.field(default_factory=list)  # only these skills (default: all)
    task: list[str] = dataclasses.field(default_factory=list)  # only these tasks' policies (default: all)
    rounds: int = 4  # at most this many test-and-refine rounds per file
    prompts: str | None = None  # prompts YAML (default: the shipped configs/prompts/skills/write-code.yaml)
    time_limit: float = 10.0  # sandbox: seconds per run of a test
    memory_mb: int = 1024  # sandbox: address space per run, MiB
    temperature: float = 0.2  # sampling temperature (the paper's, for code)
    max_tokens: int = 1024  # reply length cap
    n_ctx: int = 8192  # llamacpp: context length
    timeout: float = 300.0  # openai: seconds per request


@dataclasses.dataclass
class CheckConfig:
    skills: str | None = None  # the candidate skills file (e.g. the skills.yaml of write-code)
    reference: str = "nethack"  # the reference skills file (default: the shipped hand-written one)
    episodes: int = 4  # random-play episodes to replay
    max_steps: int = 500  # steps per episode at most
    seed: int = 0  # seed of the games and of the random actions
    task: str = "score"  # NLE task the episodes are played in
    time_limit: float = 120.0  # sandbox: seconds per candidate file for the whole replay
    memory_mb: int = 1024  # sandbox: address space, MiB
    json: str | None = None  # also write the report here


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    write = actions.add_parser("write-code", help="the LLM writes skill and policy code against its own unit tests")
    _write_code_arguments(write)
    check = actions.add_parser("check", help="agreement of candidate skill code with reference code on replays")
    _check_arguments(check)


def _epilog(parser: argparse.ArgumentParser, schema: type) -> None:
    parser.epilog = "config keys (YAML file, --set KEY=VALUE):\n" + "\n".join(describe_keys(schema))
    parser.formatter_class = argparse.RawDescriptionHelpFormatter


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file with option values (the keys listed below)")
    add_set_argument(parser, "override an option, dashes or underscores (repeatable)")


def _write_code_arguments(parser: argparse.ArgumentParser) -> None:
    _epilog(parser, WriteCodeConfig)
    parser.add_argument("--skills", help="skills file (or a shipped one by name, e.g. nethack)")
    parser.add_argument("--out", help="output folder: <skill>.py, policy_<task>.py, provenance, skills.yaml")
    parser.add_argument("--skill", action="append", help="write only this skill's code (repeatable)")
    parser.add_argument("--task", action="append", help="write only this task's policy (repeatable)")
    parser.add_argument("--rounds", type=int, help="test-and-refine rounds per file at most (4)")
    parser.add_argument("--prompts", help="prompts YAML (default: configs/prompts/skills/write-code.yaml)")
    parser.add_argument("--time-limit", type=float, help="sandbox seconds per test run (10)")
    parser.add_argument("--memory-mb", type=int, help="sandbox address space per test run, MiB (1024)")
    parser.add_argument("--backend", choices=CODE_BACKENDS, help="default llamacpp")
    parser.add_argument("--model", help="GGUF file (llamacpp), served model name (openai), HF id or folder (vllm)")
    add_backend_arguments(parser)
    _common(parser)


def _check_arguments(parser: argparse.ArgumentParser) -> None:
    _epilog(parser, CheckConfig)
    parser.add_argument("--skills", help="candidate skills file (e.g. the skills.yaml written by write-code)")
    parser.add_argument("--reference", help="reference skills file (default: the shipped nethack)")
    parser.add_argument("--episodes", type=int, help="random-play episodes to replay (4)")
    parser.add_argument("--max-steps", type=int, help="steps per episode at most (500)")
    parser.add_argument("--seed", type=int, help="seed of the games and the random actions (0)")
    parser.add_argument("--task", help="NLE task the episodes are played in (score)")
    parser.add_argument("--time-limit", type=float, help="sandbox seconds per candidate file (120)")
    parser.add_argument("--memory-mb", type=int, help="sandbox address space, MiB (1024)")
    parser.add_argument("--json", metavar="FILE", help="also write the report here")
    _common(parser)


def resolve(schema: type, args: argparse.Namespace):
    flags = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(schema)}
    overrides = [o.partition("=")[0].replace("-", "_") + "".join(o.partition("=")[1:]) for o in args.overrides]
    layers = [
        (where, {key.replace("-", "_"): value for key, value in data.items()})
        for where, data in stage_layers(args.config, overrides, flags)
    ]
    return merge(schema, layers, {"backend": CODE_BACKENDS} if schema is WriteCodeConfig else None)


def run(args: argparse.Namespace) -> int:
    if args.action == "write-code":
        return run_write_code(resolve(WriteCodeConfig, args), named_key=args.api_key_env is not None)
    return run_check(resolve(CheckConfig, args))


# ----------------------------------------------------------------------------------------- write-code
def run_write_code(c: WriteCodeConfig, named_key: bool = False, console: Console | None = None) -> int:
    from motif_jax.annotate.backends import make_backend
    from motif_jax.files import write_atomic
    from motif_jax.skills.design.prompts import load_prompts
    from motif_jax.skills.design.sandbox import Limits
    from motif_jax.skills.design.write_code import (
        groups_of,
        rewritten_skills_file,
        settings_of,
        write_group,
        write_outputs,
    )
    from motif_jax.skills.spec import load_skills

    console = console or Console(highlight=False)
    if not c.skills or not c.out:
        raise MotifError("write-code needs --skills FILE and --out DIR")
    if c.rounds < 1 or c.time_limit <= 0 or c.memory_mb < 64:
        raise MotifError("--rounds must be at least 1, --time-limit positive and --memory-mb at least 64")
    skillset = load_skills(c.skills)
    skills, tasks = _selection(c, skillset)
    prompts = load_prompts(c.prompts)
    c.check_api_key(named_key)
    out = make_dir(c.out)
    if out.resolve() == skillset.path.parent:
        raise MotifError(f"--out {c.out} is the skills file's own folder; write the code to another folder")
    sampling = c.sampling()
    limits = Limits(c.time_limit, c.memory_mb << 20)
    backend = make_backend(c.backend, sampling, model=c.model, **c.backend_options())
    written, failed = {}, []
    try:
        settings = settings_of(c.backend, backend, sampling, prompts, c.rounds, limits)
        console.print(f"writing code with {backend.model_id} ({c.backend}), at most {c.rounds} round(s) per file")
        for group in groups_of(skillset, prompts, skills, tasks):
            console.print(f"[bold]{group.label}[/]")
            result = write_group(group, backend, prompts, c.rounds, limits, say=lambda line: console.print("  " + line))
            written[(group.kind, group.name)] = path = write_outputs(result, out, settings)
            if path is None:
                failed.append(group.label)
    finally:
        backend.close()
    write_atomic(out / "skills.yaml", rewritten_skills_file(skillset, out, written))
    accepted = len(written) - len(failed)
    summary = f"accepted {accepted} of {len(written)} file(s); wrote {out / 'skills.yaml'}"
    if failed:
        console.print(f"{summary}; failed all rounds (original code kept): {', '.join(failed)}")
        return 1
    console.print(summary)
    return 0


def _selection(c: WriteCodeConfig, skillset) -> tuple[list[str], list[str]]:
    """The skills and tasks to write: all of both, or only those named (naming only tasks writes only tasks)."""
    for name in c.skill:
        if name not in skillset.skills:
            raise MotifError(f"--skill {name}: not in {skillset.path} (skills: {', '.join(skillset.names)})")
    for name in c.task:
        if name not in skillset.tasks:
            raise MotifError(f"--task {name}: not in {skillset.path} (tasks: {', '.join(skillset.tasks) or 'none'})")
    if not c.skill and not c.task:
        return list(skillset.names), list(skillset.tasks)
    return [n for n in skillset.names if n in c.skill], [n for n in skillset.tasks if n in c.task]


# ----------------------------------------------------------------------------------------------- check
def run_check(c: CheckConfig, console: Console | None = None) -> int:
    from motif_jax.files import write_json_atomic
    from motif_jax.skills.design.check import check, record_episodes
    from motif_jax.skills.design.sandbox import Limits
    from motif_jax.skills.spec import load_skills

    console = console or Console(highlight=False)
    if not c.skills:
        raise MotifError("check needs --skills FILE (the candidate skills file)")
    if c.episodes < 1 or c.max_steps < 2:
        raise MotifError("--episodes must be at least 1 and --max-steps at least 2")
    candidate, reference = load_skills(c.skills), load_skills(c.reference)
    console.print(f"playing {c.episodes} random episode(s) of {c.task} (seed {c.seed}, at most {c.max_steps} steps)")
    recorded = record_episodes(c.task, c.episodes, c.seed, c.max_steps)
    report = check(candidate, reference, recorded, Limits(c.time_limit, c.memory_mb << 20))
    console.print(report_table(report))
    for key, words in (("only_in_reference", "not in the candidate"), ("only_in_candidate", "not in the reference")):
        if report[key]:
            console.print(f"{words}: {', '.join(report[key])}")
    if c.json:
        write_json_atomic(c.json, report)
        console.print(f"wrote {c.json}")
    return 0


def report_table(report: dict) -> Table:
    steps = report["episodes"]
    table = Table(title=f"agreement with {Path(report['reference']).name} on {steps['steps']} replayed steps")
    for column in ("function", "decisions", "agreement", "reference → candidate", "errors"):
        numeric = column in ("decisions", "agreement", "errors")
        table.add_column(column, justify="right" if numeric else "left", no_wrap=column == "function")
    for row in report["functions"]:
        if row["failed"]:
            table.add_row(row["function"], str(row["decisions"]), "—", f"[red]failed: {row['failed']}[/]", "")
            continue
        counts = ", ".join(f"{_short(c['reference'])}→{_short(c['candidate'])}: {c['n']}" for c in row["counts"])
        rate = f"{100 * row['rate']:.1f}%" if row["rate"] is not None else "—"
        table.add_row(row["function"], str(row["decisions"]), rate, counts, str(row["errors"]))
    return table


def _short(value) -> str:
    return "T" if value is True else "F" if value is False else str(value)
