"""`motif benchmark actor`: what one actor thread costs the host, apart from the envs and the device.

One ``RolloutWorker`` (the trainer's actor: pool I/O, segment building, inference
dispatch) runs twice on the same pool: with a constant policy (no device call at
all: the ceiling of the thread) and with the real jitted policy. Each step's time
is split into the wait in ``pool.recv``, the device call, and everything else on
the host — ``host_us_per_step`` is that remainder per env step (``pool.send``, the pipe writes that
wake the workers, is reported apart as ``send_us_per_step``): the part that grows
with the number of envs one Python thread must serve.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from motif_jax.agent.actor import ParamStore, RolloutWorker
from motif_jax.agent.config import PRESETS, resolve_config
from motif_jax.agent.networks import make_policy, obs_spec_from_space
from motif_jax.agent.trainer import policy_obs_keys, pool_batch_size
from motif_jax.config import add_set_argument
from motif_jax.envs.pool import make_pool


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(PRESETS), help="default: the --config file's preset, else tiny")
    parser.add_argument("--env", default="score", help="task name or envpool:<EnvName>")
    parser.add_argument("--config", help="optional YAML config (as for motif train)")
    add_set_argument(parser)
    parser.add_argument("--seconds", type=float, default=10.0, help="per measurement")
    parser.add_argument("--json", help="write the result here")


def constant_act(params, obs, first, state, key, env_ids, env_steps, greedy):
    """Action 0 for every env, computed on the host: the actor loop without inference."""
    n = len(first)
    return np.zeros(n, np.int32), np.zeros(n, np.float32), state


def measure(worker: RolloutWorker, seconds: float) -> dict:
    """Run ``worker.collect()`` for ``seconds`` (after one warm-up batch) and split its time per env step."""
    worker.collect()
    worker.drain_stats()
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        worker.collect()
    elapsed = time.perf_counter() - start
    s = worker.drain_stats()
    per_step = 1e6 / max(s.env_steps, 1)
    return {
        "sps": s.env_steps / elapsed,
        "host_us_per_step": s.host_s * per_step,
        "env_wait_us_per_step": s.env_wait_s * per_step,
        "inference_us_per_step": s.inference_s * per_step,
        "send_us_per_step": s.send_s * per_step,
    }


def run(args: argparse.Namespace) -> int:
    c = resolve_config(args.config, args.preset, args.overrides, {"task": args.env, "reward.llm_coef": 0})
    n = c.env.num_envs // c.actor.threads
    pool = make_pool(c.task, n, pool_batch_size(c), c.env.num_workers, c.seed, c.env.obs_keys)
    try:
        keys = policy_obs_keys(c, pool.observation_space)
        spec = obs_spec_from_space(pool.observation_space, keys)
        model = make_policy(c.model, spec, int(pool.action_space.n), c.seed)
        _, params = nnx.split(model, nnx.Param)
        graphdef = nnx.graphdef(model)
        store = ParamStore(jax.local_devices()[0])
        store.publish(params, 0)
        worker = RolloutWorker(
            pool, graphdef, jax.tree.structure(params), store, c.ppo.rollout, spec, keys, model.state_size, c.seed
        )
        policy = measure(worker, args.seconds)
        worker.act = constant_act
        constant = measure(worker, args.seconds)
    finally:
        pool.close()
    result = {
        "actor_sps_constant_policy": constant["sps"],
        "actor_sps_policy": policy["sps"],
        "host_us_per_step": policy["host_us_per_step"],
        "host_us_per_step_constant_policy": constant["host_us_per_step"],
        "host_capacity_sps": 1e6 / max(policy["host_us_per_step"], 1e-9),
        "env_wait_us_per_step": policy["env_wait_us_per_step"],
        "inference_us_per_step": policy["inference_us_per_step"],
        "send_us_per_step": policy["send_us_per_step"],
        "preset": c.preset,
        "task": c.task,
        "num_envs": n,
        "batch_size": pool.batch_size,
        "rollout": c.ppo.rollout,
        "seconds": args.seconds,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("host_us_per_step", "actor_sps_constant_policy", "actor_sps_policy")}))
    return 0
