"""`motif benchmark learner`: the jitted PPO update alone, on a synthetic batch already on the devices.

No environment is stepped, so it runs wherever JAX does (a GPU or TPU host without NLE's
runtime needs nothing but the observation shapes). It reports what the update costs and
how close it gets to the machine: parameters, forward FLOPs per frame (XLA's cost analysis
of one acting step), learner frames/s, and the FLOP rate the update reaches against a
matmul timed in the same run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from motif_jax import parallel
from motif_jax.agent.config import PRESETS, TrainConfig, resolve_config
from motif_jax.agent.learner import Learner
from motif_jax.agent.networks import make_policy
from motif_jax.agent.rollout import Batch
from motif_jax.config import add_set_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--preset", choices=sorted(PRESETS), help="default: the --config file's preset; paper without --config"
    )
    parser.add_argument("--config", help="optional YAML config (as for motif train)")
    add_set_argument(parser)
    parser.add_argument("--seconds", type=float, default=20.0, help="time spent repeating the update")
    parser.add_argument("--json", help="write the result here")


def nethack_obs_spec(with_counts: bool = False) -> dict:
    """{key: (shape, dtype)} of the NLE observations the policy reads, without making an env."""
    from nle import nethack

    spec = {
        "glyphs": (tuple(nethack.DUNGEON_SHAPE), np.dtype(np.int16)),
        "blstats": ((nethack.NLE_BLSTATS_SIZE,), np.dtype(np.int64)),
        "message": ((nethack.NLE_MESSAGE_SIZE,), np.dtype(np.uint8)),
    }
    if with_counts:
        spec["message_count"] = ((), np.dtype(np.int32))
    return spec


def synthetic_obs(spec: dict, lead: tuple[int, ...], rng: np.random.Generator) -> dict:
    """Random observations shaped ``lead + shape``; glyphs, positions and captions in their valid ranges."""
    from nle import nethack

    obs = {}
    for key, (shape, dtype) in spec.items():
        if key == "glyphs":
            obs[key] = rng.integers(0, nethack.MAX_GLYPH, lead + shape).astype(dtype)
        elif key == "blstats":
            x = rng.integers(0, 30, lead + shape).astype(dtype)
            x[..., nethack.NLE_BL_X] = rng.integers(0, nethack.DUNGEON_SHAPE[1], lead)
            x[..., nethack.NLE_BL_Y] = rng.integers(0, nethack.DUNGEON_SHAPE[0], lead)
            obs[key] = x
        elif key == "message":
            m = rng.integers(32, 127, lead + shape).astype(dtype)
            m[rng.integers(0, 80, lead)[..., None] <= np.arange(shape[0])] = 0
            obs[key] = m
        elif key == "message_count":
            obs[key] = rng.integers(1, 4, lead + shape).astype(dtype)
        elif np.issubdtype(dtype, np.integer):
            obs[key] = rng.integers(0, 255, lead + shape).astype(dtype)
        else:
            obs[key] = rng.normal(size=lead + shape).astype(dtype)
    return obs


def synthetic_batch(spec: dict, rows: int, rollout: int, state_size: int, num_actions: int, seed: int = 0) -> Batch:
    """A learner batch in the trainer's layout (see ``learner``), episodes ending at ~1 % of slots."""
    rng = np.random.default_rng(seed)
    slots = (rows, rollout + 1)
    ended = rng.random(slots) < 0.01
    first = np.concatenate([np.ones((rows, 1), bool), ended[:, :-1]], axis=1)
    return Batch(
        obs=synthetic_obs(spec, slots, rng),
        first=first,
        ended=ended,
        terminated=ended,
        rewards=rng.normal(size=slots).astype(np.float32),
        actions=rng.integers(0, num_actions, slots).astype(np.int32),
        logp=np.full(slots, -np.log(num_actions), np.float32),
        state=np.zeros((rows, state_size), np.float32),
    )


def count_params(params) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))


def xla_flops(fn, *args) -> float:
    """FLOPs XLA's cost analysis assigns to one call (loops count their body once: keep them out)."""
    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0]
    return float(cost.get("flops", 0.0))


def forward_flops_per_frame(graphdef, params, spec: dict, state_size: int, frames: int = 64) -> float:
    """Forward FLOPs per observation of one acting step (a scan of length 1, counted exactly)."""
    obs = jax.tree.map(
        jnp.asarray,
        synthetic_obs({k: v for k, v in spec.items() if k != "message_count"}, (frames,), np.random.default_rng(0)),
    )
    first, state = jnp.zeros(frames, bool), jnp.zeros((frames, state_size), jnp.float32)
    step = lambda p, o, f, s: nnx.merge(graphdef, p).step(o, f, s)[:2]  # noqa: E731
    return xla_flops(step, params, obs, first, state) / frames


def time_calls(call, seconds: float, min_calls: int = 3) -> float:
    """Seconds per call after a warm-up call (compilation excluded)."""
    jax.block_until_ready(call())
    calls, start = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - start < seconds:
        jax.block_until_ready(call())
        calls += 1
    return (time.perf_counter() - start) / calls


def matmul_flops_per_s(rows: int, width: int = 1024, seconds: float = 2.0) -> float:
    """f32 FLOP rate of a jitted ``[rows, width] @ [width, width]`` matmul on the first device."""
    a = jnp.ones((rows, width), jnp.float32)
    b = jnp.ones((width, width), jnp.float32) / width
    mm = jax.jit(lambda a, b: a @ b)
    return 2.0 * rows * width * width / time_calls(lambda: mm(a, b), seconds)


def time_updates(learner: Learner, train_state, batch, reward_params, seconds: float) -> tuple[float, object]:
    """(seconds per update, final train state) repeating the update on one batch already sharded."""
    if not isinstance(batch.first, jax.Array):
        batch = parallel.shard_batch(batch, learner.mesh)
    holder = {"state": train_state, "i": 0}

    def call():
        holder["i"] += 1
        holder["state"], metrics = learner._update(holder["state"], batch, reward_params, jax.random.key(holder["i"]))
        return metrics["loss"]

    start = time.perf_counter()
    jax.block_until_ready(call())
    compile_s = time.perf_counter() - start
    per_update = time_calls(call, seconds)
    holder["compile_s"] = compile_s
    return per_update, holder


def learner_report(config: TrainConfig, learner: Learner, params, spec: dict, state_size: int, update_s: float) -> dict:
    """The JSON fields every trainer benchmark shares: size, cost per frame and the update's FLOP rate."""
    frames = config.env.num_envs * config.ppo.rollout * jax.process_count()
    fwd = forward_flops_per_frame(learner.graphdef, params, spec, state_size)
    learner_fps = frames / update_s
    update_flops = fwd * (1 + 3 * config.ppo.epochs)  # value pass + forward/backward per epoch
    matmul = matmul_flops_per_s(max(frames // config.ppo.minibatches, 1))
    return {
        "params": count_params(params),
        "flops_per_frame": fwd,
        "update_flops_per_frame": update_flops,
        "learner_fps": learner_fps,
        "update_s": update_s,
        "frames_per_update": frames,
        "matmul_flops_per_s": matmul,
        "flop_utilisation": update_flops * learner_fps / matmul,
    }


def run(args: argparse.Namespace) -> int:
    preset = args.preset or (None if args.config else "paper")
    config = resolve_config(args.config, preset, args.overrides, {"reward.llm_coef": 0})
    if config.model.kind == "nethack":
        from nle.env.tasks import TASK_ACTIONS

        spec, num_actions = nethack_obs_spec(), len(TASK_ACTIONS)
    else:  # envpool envs are cheap to make: read their spaces
        from motif_jax.agent.networks import obs_spec_from_space
        from motif_jax.envs.pool import make_pool

        pool = make_pool(config.task, config.env.num_envs, seed=config.seed)
        spec, num_actions = obs_spec_from_space(pool.observation_space, config.env.obs_keys), int(pool.action_space.n)
        pool.close()
    model = make_policy(config.model, spec, num_actions, config.seed)
    mesh = parallel.role_mesh(config.learner.devices)
    learner = Learner(model, config.ppo, config.reward, mesh, 10**6)
    batch = synthetic_batch(spec, config.env.num_envs, config.ppo.rollout, model.state_size, num_actions)
    params = learner.initial["params"]
    per_update, holder = time_updates(learner, learner.init_state(), batch, None, args.seconds)
    result = {
        **learner_report(config, learner, params, spec, model.state_size, per_update),
        "compile_s": holder["compile_s"],
        "devices": [str(d) for d in mesh.devices.flat],
        "preset": config.preset,
        "num_envs": config.env.num_envs,
        "rollout": config.ppo.rollout,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("params", "flops_per_frame", "learner_fps", "flop_utilisation")}))
    return 0
