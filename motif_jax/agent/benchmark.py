"""`motif benchmark train`: end-to-end trainer steps/s, and where the time goes, in one run.

Measured back to back on the same envs and network: the pool alone with random
actions (before and after, averaged: the ceiling drifts with machine load), the
actors alone (inference + pool, no learning), the trainer end to end, and the
learner alone (the update repeated on one collected batch already on the devices).
``train_over_pool`` is the fraction of the environment ceiling training reaches.
Compilation is excluded everywhere: training throughput counts from the end of the
second update on. Parameter count and forward FLOPs per frame come with it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from motif_jax.agent.benchmark_learner import learner_report, time_updates
from motif_jax.agent.config import PRESETS, resolve_config, to_dict
from motif_jax.agent.trainer import Trainer, pool_batch_size
from motif_jax.config import add_set_argument
from motif_jax.envs.pool import make_pool
from motif_jax.errors import MotifError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(PRESETS), help="default: the --config file's preset, else tiny")
    parser.add_argument("--env", default="score", help="task name or envpool:<EnvName>")
    parser.add_argument("--config", help="optional YAML config (as for motif train)")
    add_set_argument(parser)
    parser.add_argument(
        "--seconds",
        type=float,
        default=60.0,
        help="length of the training phase; the pool is measured for half of it before and after",
    )
    parser.add_argument("--reward", help="reward-model run dir: train with the intrinsic reward (default: none)")
    parser.add_argument("--json", help="write the result here")


def pool_steps_per_second(config, seconds: float) -> float:
    """Random-action env steps/s of the pool configured exactly as the trainer's."""
    c = config
    pool = make_pool(c.task, c.env.num_envs, pool_batch_size(c), c.env.num_workers, c.seed, c.env.obs_keys)
    rng = np.random.default_rng(0)
    try:
        pool.async_reset()
        for _ in range(2 * max(config.env.num_envs // pool.batch_size, 1)):  # let every env start
            _, _, _, _, info = pool.recv()
            pool.send(rng.integers(0, pool.action_space.n, len(info["env_id"])), info["env_id"])
        steps, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            _, _, _, _, info = pool.recv()
            ids = info["env_id"]
            pool.send(rng.integers(0, pool.action_space.n, len(ids)), ids)
            steps += len(ids)
        return steps / elapsed
    finally:
        pool.close()


def actor_steps_per_second(trainer: Trainer, seconds: float) -> tuple[float, dict]:
    """Env steps/s of the trainer's actors (inference + pool, no learning) and the last batch they built."""
    trainer.publish()
    batch, _ = trainer.collect([])  # compiles the act step and starts every env
    for worker in trainer.workers:
        worker.drain_stats()
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        batch, _ = trainer.collect([])
    steps = sum(worker.drain_stats().env_steps for worker in trainer.workers)
    return steps / (time.perf_counter() - start), batch


def train_steps_per_second(timeline: list[tuple[float, int]]) -> float:
    if len(timeline) < 4:
        raise MotifError(f"benchmark: only {len(timeline)} updates finished; raise --seconds")
    (t0, s0), (t1, s1) = timeline[1], timeline[-1]
    return (s1 - s0) / (t1 - t0)


def run(args: argparse.Namespace) -> int:
    overrides = ["run.tensorboard=false", "run.checkpoint_every=10000000000", *args.overrides]
    reward = {"reward.path": args.reward} if args.reward else {"reward.llm_coef": 0}
    config = resolve_config(args.config, args.preset, overrides, {"task": args.env, "steps": 10**9, **reward})
    # The pool ceiling drifts with machine load: measure it on both sides of training and average.
    pool_before = pool_steps_per_second(config, args.seconds / 2)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(config, run_dir, console=False)
        actor_sps, batch = actor_steps_per_second(trainer, args.seconds / 4)
        trainer.train(max_seconds=args.seconds)
        train_sps = train_steps_per_second(trainer.timeline)
        learner = trainer.learner
        params = jax.tree.map(lambda x: jax.numpy.array(x, copy=True), trainer.train_state["params"])
        update_s, _ = time_updates(learner, trainer.train_state, batch, trainer.reward_params, args.seconds / 4)
        spec = {k: trainer.obs_spec[k] for k in trainer.policy_keys}
        costs = learner_report(config, learner, params, spec, trainer.state_size, update_s)
    pool_after = pool_steps_per_second(config, args.seconds / 2)
    pool_sps = (pool_before + pool_after) / 2
    result = {
        "train_sps": train_sps,
        "pool_sps": pool_sps,
        "actor_sps": actor_sps,
        **costs,
        "train_over_pool": train_sps / pool_sps,
        "train_over_learner": train_sps / costs["learner_fps"],
        "pool_sps_before": pool_before,
        "pool_sps_after": pool_after,
        "llm_coef": config.reward.llm_coef,
        "preset": config.preset,
        "task": config.task,
        "num_envs": config.env.num_envs,
        "batch_size": pool_batch_size(config),
        "rollout": config.ppo.rollout,
        "seconds": args.seconds,
        "updates": len(trainer.timeline),
        "sync": config.run.sync,
        "config": to_dict(config),
    }
    text = json.dumps(result, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(
        json.dumps(
            {
                k: result[k]
                for k in (
                    "train_sps",
                    "learner_fps",
                    "actor_sps",
                    "pool_sps",
                    "train_over_pool",
                    "params",
                    "flops_per_frame",
                )
            }
        )
    )
    return 0
