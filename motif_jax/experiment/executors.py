"""Where the cells of a grid run: here one after another, as SLURM jobs (submitit) or as Ray tasks.

Every executor runs the same `run_cell` on the worker; the output folder is the only shared state.
A cell writes ``running.json`` (host, pid, heartbeat) while it runs and ``failed.json`` (the error,
the last line of its log) when it fails, so `motif experiment --status DIR` needs no scheduler.
Ray retries a task whose worker died, SLURM requeues a preempted or timed-out job; either way the
cell continues from its last training checkpoint.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import socket
import threading
import time
from pathlib import Path

from motif_jax.errors import MotifError
from motif_jax.files import write_json_atomic

HEARTBEAT_S = 15.0
STALE_S = 4 * HEARTBEAT_S  # a heartbeat from another host older than this: the cell is no longer running


@contextlib.contextmanager
def claimed(folder: Path):
    """Hold the cell's lock while it runs: a second job of one cell (a SLURM job still queued when a rerun
    resubmitted its cell) stops at once instead of training into the same folder."""
    with open(folder / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise MotifError(f"cell {folder.name}: another job is running it (it holds {folder / '.lock'})") from None
        yield


@contextlib.contextmanager
def heartbeat(folder: Path):
    """``running.json`` refreshed every HEARTBEAT_S while the block runs, removed after it."""
    path, stop = folder / "running.json", threading.Event()
    info = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}

    def beat() -> None:
        write_json_atomic(path, {**info, "beat": time.time()})

    def beats() -> None:
        while not stop.wait(HEARTBEAT_S):
            beat()

    beat()
    thread = threading.Thread(target=beats, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        path.unlink(missing_ok=True)


def running(folder: Path) -> dict | None:
    """The heartbeat of a cell running now (here: its process lives; elsewhere: a fresh beat), else None."""
    try:
        info = json.loads((folder / "running.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if info["host"] != socket.gethostname():
        return info if time.time() - info["beat"] < STALE_S else None
    try:
        os.kill(info["pid"], 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return info


def write_failure(folder: Path, err: Exception, log: Path) -> None:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()] if log.is_file() else []
    write_json_atomic(folder / "failed.json", {"error": str(err), "log": str(log), "last_line": (lines or [""])[-1]})


def cell_states(out: Path) -> list[tuple[str, str, str]]:
    """(cell, state, detail) for every cell of the grid in ``out``: done, running, failed or pending."""
    plan = out / "cells.json"
    if not plan.is_file():
        raise MotifError(f"{out}: no cells.json; is it the --out of a `motif experiment` run?")
    rows = []
    for name in json.loads(plan.read_text()):
        folder = out / "cells" / name
        if (folder / "result.json").is_file():
            rows.append((name, "done", f"{json.loads((folder / 'result.json').read_text())['seconds']:.0f} s"))
        elif (info := running(folder)) is not None:
            since = time.strftime("%H:%M:%S", time.localtime(info["started"]))
            rows.append((name, "running", f"{info['host']} pid {info['pid']} since {since}"))
        elif (folder / "failed.json").is_file():
            rows.append((name, "failed", json.loads((folder / "failed.json").read_text())["last_line"]))
        else:
            rows.append((name, "pending", ""))
    return rows


# ----------------------------------------------------------------------------- executors


def run_local(cells, report, progress: bool, title: str, console) -> list:
    """One cell after another in this process, under one progress bar; returns the failed cells."""
    from motif_jax.experiment.run import run_cell
    from motif_jax.progress import ProgressBar

    total = max(sum(c.units for c in cells), 1)
    with ProgressBar(title, total, "steps", enabled=progress, transient=True, console=console) as bar:

        def finished():
            for cell in cells:
                bar.update(description=f"{title}: {cell.name}")
                yield cell, functools.partial(run_cell, cell, bar.advance)

        return _gather(finished(), report)


def _gather(finished, report) -> list:
    """Report each cell as its ``wait()`` returns or raises, in the order ``finished`` yields them; returns
    the failed cells."""
    failed = []
    for cell, wait in finished:
        try:
            wait()
        except Exception as err:
            failed.append(cell)
            report(cell, err)
            continue
        report(cell, None)
    return failed


def run_ray(cells, settings, report) -> list:
    """The cells as Ray tasks; a task whose worker died is retried by Ray (max_retries)."""
    import ray

    from motif_jax.experiment.run import run_cell

    if not ray.is_initialized():
        ray.init(address=settings.ray_address, include_dashboard=False)
    task = ray.remote(num_cpus=settings.cpus_per_cell, num_gpus=settings.gpus_per_cell)(run_cell)
    pending = {task.remote(cell): cell for cell in cells}

    def finished():
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            yield pending.pop(ref), functools.partial(ray.get, ref)

    return _gather(finished(), report)


class CellJob:
    """A SLURM job running one cell; submitit calls `checkpoint` when the job is preempted or times
    out, and the requeued job reruns the cell, which resumes from its checkpoints."""

    def __call__(self, cell):
        from motif_jax.experiment.run import run_cell

        return run_cell(cell)

    def checkpoint(self, cell):
        import submitit

        return submitit.helpers.DelayedSubmission(self, cell)


def run_slurm(cells, settings, folder: Path, name: str, report, poll_s: float = 10.0) -> list:
    """The cells as one submitit job array (logs and pickles in ``folder``)."""
    import submitit

    try:
        executor = submitit.AutoExecutor(folder=folder, cluster=settings.cluster)
    except RuntimeError as err:
        raise MotifError(f"executor slurm: {err}; set executor.cluster: local to run the jobs here") from err
    extra = {"slurm_partition": settings.partition} if settings.partition else {}
    executor.update_parameters(
        name=f"motif-{name}",
        timeout_min=settings.time_limit_min,
        cpus_per_task=settings.cpus_per_cell,
        gpus_per_node=settings.gpus_per_cell,
        slurm_array_parallelism=settings.array_parallelism,
        **extra,
    )
    jobs = executor.map_array(CellJob(), cells)
    by_id = {job.job_id: cell for job, cell in zip(jobs, cells)}
    finished = ((by_id[job.job_id], job.result) for job in submitit.helpers.as_completed(jobs, poll_frequency=poll_s))
    return _gather(finished, report)
