"""`motif benchmark env`: the actor pool's steps/s against bare NLE and gymnasium's AsyncVectorEnv.

All measurements run in the same invocation, one after the other, so their ratios are comparable on a
shared machine even when absolute numbers are noisy:
- pool: `make_pool(task)` driven with random actions through send/recv, like a real caller;
- raw: one bare NLE env (NLE's own NetHackScore-v0, same observation keys) stepped in a plain loop in
  each of `num_workers` processes, summed: the ceiling of a process doing nothing but NLE steps. The
  processes are pinned to the same CPUs as the pool's workers (see `pool.worker_cpus`), so the pool
  gains nothing from pinning that the ceiling lacks;
- raw round-robin: the same, but each process steps num_envs/num_workers task envs in turn, as a pool
  worker must. Eight NetHack states do not fit a core's L2 cache, so interleaving instances costs cache
  misses that no pool design avoids; this number is that ceiling (`raw_round_robin_over_raw`);
- gymnasium: `AsyncVectorEnv(shared_memory=True)` over the same task and env count.
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing as mp
import os
import platform
import time

import numpy as np

from motif_jax.errors import MotifError

_WARMUP_S = 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default="score", help="task name (see motif_jax.envs.TASKS)")
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--num-workers", type=int, default=None, help="default: number of usable CPU cores")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each measurement")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON here")
    parser.add_argument("--skip-gymnasium", action="store_true", help="do not measure gymnasium AsyncVectorEnv")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from motif_jax.envs import tasks
    from motif_jax.envs.pool import check_sizes, worker_cpus

    if args.task not in tasks.TASKS:
        raise MotifError(f"--task: unknown task {args.task!r}; choose from {', '.join(tasks.TASKS)}")
    if args.seconds <= 0:
        raise MotifError(f"--seconds must be positive, got {args.seconds}")
    num_envs, batch_size, num_workers = check_sizes(args.num_envs, args.batch_size, args.num_workers)
    console = Console()
    config = dict(
        task=args.task,
        num_envs=num_envs,
        batch_size=batch_size,
        num_workers=num_workers,
        seconds=args.seconds,
        seed=args.seed,
        obs_keys=list(tasks.DEFAULT_OBS_KEYS),
        worker_cpus=worker_cpus(num_workers),
    )
    result: dict = {}
    cpu: dict = {}
    with console.status("raw: bare NLE, one env per process") as status:
        result["raw_sps"], cpu["raw"] = measure_raw(num_workers, args.seconds, 1, None)
        status.update("raw round-robin: task envs interleaved in each process")
        per_worker = -(-num_envs // num_workers)
        result["raw_round_robin_sps"], cpu["raw_round_robin"] = measure_raw(
            num_workers, args.seconds, per_worker, args.task
        )
        status.update("pool")
        result["pool_sps"], cpu["pool"] = measure_pool(
            args.task, num_envs, batch_size, num_workers, args.seconds, args.seed
        )
        result["gymnasium_sps"] = None
        if args.skip_gymnasium:
            result["gymnasium_note"] = "skipped (--skip-gymnasium)"
        else:
            status.update("gymnasium AsyncVectorEnv")
            try:
                result["gymnasium_sps"] = measure_gymnasium(args.task, num_envs, args.seconds, args.seed)
            except Exception as e:  # an optional comparison: report why it is missing, keep the rest
                result["gymnasium_note"] = f"failed: {type(e).__name__}: {e}"
    result.update(ratios(result))
    result["cpu_us_per_step"] = {k: round(v, 2) for k, v in cpu.items()}
    result["config"] = config
    result["machine"] = machine_info()
    console.print(results_table(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
        console.print(f"wrote {args.json}")
    return 0


def ratios(result: dict) -> dict:
    """The pool over each baseline, and the round-robin ceiling over raw: the most any pool that steps
    num_envs/num_workers envs per process in turn can reach (None where a side is missing)."""

    def over(top, bottom):
        a, b = result.get(top), result.get(bottom)
        return round(a / b, 3) if a and b else None

    return {
        "pool_over_raw": over("pool_sps", "raw_sps"),
        "pool_over_raw_round_robin": over("pool_sps", "raw_round_robin_sps"),
        "pool_over_gymnasium": over("pool_sps", "gymnasium_sps"),
        "raw_round_robin_over_raw": over("raw_round_robin_sps", "raw_sps"),
    }


def machine_info() -> dict:
    return {
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpus_total": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "load_average": list(os.getloadavg()),
    }


def results_table(result: dict):
    from rich.table import Table

    table = Table(
        title=f"motif benchmark env ({result['config']['task']}, {result['config']['num_envs']} envs, "
        f"batch {result['config']['batch_size']}, {result['config']['num_workers']} workers)"
    )
    table.add_column("measurement")
    table.add_column("steps/s", justify="right")
    table.add_column("pool / this", justify="right")
    rows = [
        ("actor pool", "pool_sps", None),
        ("raw: bare NLE, 1 env/process", "raw_sps", "pool_over_raw"),
        ("raw: task envs round-robin", "raw_round_robin_sps", "pool_over_raw_round_robin"),
        ("gymnasium AsyncVectorEnv", "gymnasium_sps", "pool_over_gymnasium"),
    ]
    for label, key, ratio in rows:
        value = result.get(key)
        table.add_row(
            label,
            f"{value:,.0f}" if value else result.get("gymnasium_note", "-"),
            f"{result[ratio]:.2f}" if ratio and result.get(ratio) else "",
        )
    if result.get("raw_round_robin_over_raw"):
        table.caption = (
            f"round-robin / raw = {result['raw_round_robin_over_raw']:.2f}: the most a pool stepping "
            "its envs in turn can reach on these cores"
        )
    return table


# -- measurements ----------------------------------------------------------------------------------


def _bare_nle_env():
    import gymnasium
    import nle  # noqa: F401  (registers NetHackScore-v0)

    from motif_jax.envs.tasks import DEFAULT_OBS_KEYS

    return gymnasium.make("NetHackScore-v0", observation_keys=DEFAULT_OBS_KEYS)


def _raw_loop(task: str | None, envs_per_process: int, seconds: float, seed: int, cpu: int | None, out) -> None:
    """Step envs in turn with random actions for `seconds` (after a warm-up), on `cpu` if given;
    report steps/s."""
    from motif_jax.envs.tasks import make_task_env

    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    envs = [_bare_nle_env() if task is None else make_task_env(task) for _ in range(envs_per_process)]
    for i, env in enumerate(envs):
        env.reset(seed=seed + i)
    actions = np.random.default_rng(seed).integers(0, envs[0].action_space.n, 1 << 16).tolist()
    steps, start, cpu_start, measuring = 0, time.perf_counter(), 0.0, False
    while True:
        for env in envs:
            _, _, terminated, truncated, _ = env.step(actions[steps & 0xFFFF])
            steps += 1
            if terminated or truncated:
                env.reset()
        if steps % 64 < len(envs):
            now = time.perf_counter()
            if not measuring and now - start > _WARMUP_S:
                steps, start, cpu_start, measuring = 0, now, time.process_time(), True
            elif measuring and now - start > seconds:
                out.put((steps, now - start, time.process_time() - cpu_start))
                return


def measure_raw(num_processes, seconds, envs_per_process, task, seed=0, pin=True) -> tuple[float, float]:
    """Summed steps/s of `num_processes` processes each running `_raw_loop`, and CPU µs per step."""
    from motif_jax.envs.pool import worker_cpus

    ctx = mp.get_context("forkserver")
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_raw_loop, args=(task, envs_per_process, seconds, seed + i, cpu, out), daemon=True)
        for i, cpu in enumerate(worker_cpus(num_processes) if pin else [None] * num_processes)
    ]
    for p in procs:
        p.start()
    reports = [out.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    steps = sum(r[0] for r in reports)
    return float(sum(r[0] / r[1] for r in reports)), 1e6 * sum(r[2] for r in reports) / steps


def _process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc), for the CPU-cost-per-step figures."""
    fields = open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_pool(task, num_envs, batch_size, num_workers, seconds, seed) -> tuple[float, float]:
    """Steps/s of the actor pool driven by random actions through send/recv, and CPU µs per step
    (caller + workers): unlike steps/s, the CPU cost barely moves when other jobs load the machine."""
    from motif_jax.envs.pool import make_pool

    with make_pool(task, num_envs, batch_size, num_workers, seed=seed) as pool:
        actions = np.random.default_rng(seed).integers(0, pool.action_space.n, (1024, batch_size))
        pool.async_reset()
        i, steps, start, measuring = 0, 0, time.perf_counter(), False
        while True:
            *_, info = pool.recv()
            pool.send(actions[i & 1023], info["env_id"])
            i += 1
            steps += batch_size
            if i % 32 == 0:
                now = time.perf_counter()
                if not measuring and now - start > _WARMUP_S:
                    steps, start, measuring = 0, now, True
                    cpu_start = time.process_time() + sum(map(_process_cpu_s, pool.worker_pids))
                elif measuring and now - start > seconds:
                    cpu = time.process_time() + sum(map(_process_cpu_s, pool.worker_pids)) - cpu_start
                    return steps / (now - start), 1e6 * cpu / steps


def measure_gymnasium(task: str, num_envs: int, seconds: float, seed: int) -> float:
    """Steps/s of gymnasium's AsyncVectorEnv(shared_memory=True) over the same task env."""
    from gymnasium.vector import AsyncVectorEnv

    from motif_jax.envs.tasks import make_task_env

    envs = AsyncVectorEnv([functools.partial(make_task_env, task)] * num_envs, shared_memory=True, context="forkserver")
    try:
        envs.reset(seed=seed)
        actions = np.random.default_rng(seed).integers(0, envs.single_action_space.n, (1024, num_envs))
        i, steps, start, measuring = 0, 0, time.perf_counter(), False
        while True:
            envs.step(actions[i & 1023])
            i += 1
            steps += num_envs
            now = time.perf_counter()
            if not measuring and now - start > _WARMUP_S:
                steps, start, measuring = 0, now, True
            elif measuring and now - start > seconds:
                return steps / (now - start)
    finally:
        envs.close()
