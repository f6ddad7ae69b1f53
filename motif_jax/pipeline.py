"""The stage engine behind `motif quickstart` and `motif experiment`: steps are `motif` subprocesses.

Each step's command comes from its stage's own ``*_argv`` builder; the engine runs it with its output in
a log (and on the terminal when asked), follows its metrics for the progress bar, and applies the one
resume rule: a killed training run continues from its checkpoints, a killed reward fit is redone. A
finished step leaves a done-marker holding its `fingerprint`; a rerun skips it, and refuses one whose
settings changed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from motif_jax.annotate.rules import resolve_judge_path
from motif_jax.cli import STOP_WITH_PARENT
from motif_jax.config import file_layers, load_yaml
from motif_jax.errors import MotifError
from motif_jax.files import write_json_atomic
from motif_jax.metrics import last_value
from motif_jax.skills.spec import skills_contents


@dataclasses.dataclass
class Step:
    """One `motif` invocation."""

    name: str
    argv: list[str]
    log: Path
    output: Path | None = None  # what it makes; a marker without it means redo
    units: int = 0  # share of the progress bar
    metrics: Path | None = None  # metrics.jsonl whose env_steps count progress (training)


def fingerprint(argv: list[str], out: Path) -> list:
    """A `motif` invocation as what decides its result, wherever the checkout and the output live:
    paths under ``out`` are relative to it; config, judge and skills files count by their contents (a
    config with its `extends:` chain, a judge by the goal's table, skills with their code and judges).
    Editing cpu.yaml or a judge's goal redoes what depends on it; moving the checkout or the output
    folder redoes nothing."""
    prefix = str(out) + os.sep
    parts: list = []
    for flag, arg in zip([None, *argv], argv):
        if flag == "--config":
            parts.append([data for _, data in file_layers(arg)])
        elif flag == "--judge":
            parts.append(judge_table(arg, argv[argv.index("--goal") + 1] if "--goal" in argv else None))
        elif flag == "--skills":
            skills = skills_contents(arg)  # with each skill's rules table, which its labels come from
            tables = {k: judge_table(r["judge"], r["goal"]) for k, r in skills["rewards"].items() if "judge" in r}
            parts.append({**skills, "judges": tables})
        elif arg.startswith(prefix):
            parts.append("OUT/" + arg[len(prefix) :])
        else:
            parts.append(arg)
    return parts


def judge_table(judge: str, goal: str | None):
    """What a rules judge decides for one goal: that goal's table (YAML anchors resolved), so editing
    another goal of the same file redoes nothing; the whole file when no goal is named."""
    data = load_yaml(resolve_judge_path(judge))
    goals = data.get("goals") if isinstance(data, dict) else None
    return goals[goal] if goal and isinstance(goals, dict) and goal in goals else data


def run_steps(steps: list[Step], out: Path, markers: Path, console, *, echo: bool = False, hint: str) -> dict:
    """Run the steps not done yet, in order; returns each step's seconds (a skipped one: as it took)."""
    seconds = {}
    for number, step in enumerate(steps, start=1):
        console.rule(f"[bold]{number}/{len(steps)} {step.name}[/bold]  →  {step.output or step.log}")
        marker = markers / f"{step.name.replace(' ', '-')}.json"
        saved = json.loads(marker.read_text()) if marker.is_file() else None
        if saved is not None and (step.output is None or step.output.exists()):
            if saved.get("fingerprint") != fingerprint(step.argv, out):
                raise MotifError(f"step {step.name!r}: the settings changed since {out} was made; {hint}")
            console.print(f"already done ({saved['seconds']:.0f} s), skipping")
            seconds[step.name] = saved["seconds"]
            continue
        seconds[step.name] = run_step(step, echo=echo)
        write_json_atomic(
            marker, {"argv": step.argv, "fingerprint": fingerprint(step.argv, out), "seconds": seconds[step.name]}
        )
    return seconds


def run_step(step: Step, advance: Callable[[int], None] | None = None, echo: bool = False) -> float:
    """Run one step under the resume rule, advancing the progress bar by its units; returns seconds."""
    argv = list(step.argv)
    target = Path(argv[argv.index("--out") + 1]) if "--out" in argv else None
    if argv[0] == "train" and target is not None and any(p.name.isdigit() for p in target.glob("checkpoints/*")):
        argv.append("--resume")  # a killed training run continues from its last finished checkpoint
    if argv[0] == "train-reward" and target is not None and target.exists():
        shutil.rmtree(target)  # a killed fit: seconds to redo from scratch
    counted = 0

    def poll() -> None:
        nonlocal counted
        if step.metrics is not None and advance is not None:
            now = min(int(last_value(step.metrics, "env_steps", 0)), step.units)
            advance(now - counted)
            counted = now

    started = time.perf_counter()
    run_motif(argv, step.log, on_poll=poll, echo=echo)
    if advance is not None:
        advance(step.units - counted)
    return time.perf_counter() - started


def run_motif(argv: list[str], log: Path, on_poll=None, poll_s: float = 2.0, echo: bool = False) -> None:
    """Run ``motif ARGV`` as a subprocess with its output in ``log`` (and on stderr with ``echo``, where a
    terminal keeps the child's live progress bars); raise on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", STOP_WITH_PARENT: str(os.getpid())}
    if echo and sys.stderr.isatty():
        env.update(FORCE_COLOR="1", TTY_COMPATIBLE="1", COLUMNS=str(shutil.get_terminal_size().columns))
    with open(log, "ab") as f:
        f.write(f"$ motif {' '.join(argv)}\n".encode())
        f.flush()
        child = subprocess.Popen(
            [sys.executable, "-m", "motif_jax.cli", *argv],
            stdout=subprocess.PIPE if echo else f,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        tee = threading.Thread(target=_tee, args=(child.stdout, f), daemon=True) if echo else None
        if tee is not None:
            tee.start()
        try:
            while True:
                try:
                    code = child.wait(timeout=poll_s)
                    break
                except subprocess.TimeoutExpired:
                    if on_poll is not None:
                        on_poll()
        except BaseException:
            child.terminate()
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
            raise
        if tee is not None:
            tee.join()
            child.stdout.close()
    if code != 0:
        raise MotifError(f"`motif {' '.join(argv)}` failed (exit {code}); see {log}")


def _tee(stream, log) -> None:
    while chunk := os.read(stream.fileno(), 65536):
        log.write(chunk)
        log.flush()
        sys.stderr.buffer.write(chunk)
        sys.stderr.flush()
