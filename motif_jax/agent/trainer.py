"""The training loop: actors feed batches, the learner updates, metrics and checkpoints at the edges.

Stops cleanly on SIGINT/SIGTERM (finish the update, save, close the pool), on
reaching ``steps``, or with a MotifError on a non-finite loss/parameters (the
bad state is never saved, so the latest checkpoint stays good).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np
import yaml

from motif_jax import parallel
from motif_jax.agent.actor import ActorThread, ParamStore, RolloutWorker
from motif_jax.agent.config import TrainConfig, env_options, to_dict
from motif_jax.agent.learner import Learner
from motif_jax.agent.metrics import METRICS_FILE, MetricsLogger, drop_metrics_after
from motif_jax.agent.networks import make_policy, obs_spec_from_space
from motif_jax.agent.policy import restore_agent
from motif_jax.agent.rollout import Batch, concat_rows
from motif_jax.agent.skills import SKILL_OBS_SPEC, make_controllers, skill_metrics
from motif_jax.checkpoint import Checkpointer, abstract_like
from motif_jax.envs.pool import make_pool
from motif_jax.errors import MotifError, make_dir
from motif_jax.files import write_atomic
from motif_jax.reward import load as load_reward
from motif_jax.reward.skills import load_skills as load_skill_rewards
from motif_jax.skills.spec import load_skills


@dataclass
class Progress:
    env_steps: int = 0
    updates: int = 0


def load_intrinsic(config: TrainConfig, mesh):
    """(reward params replicated on the mesh, pure intrinsic fn) — or (None, None) when α_llm = 0."""
    rc = config.reward
    if rc.llm_coef == 0:
        return None, None
    if not rc.path or not Path(rc.path).exists():
        raise MotifError(f"reward.path {rc.path!r}: no reward-model checkpoint there (needed for llm_coef > 0)")
    if (Path(rc.path) / "skills.json").is_file():  # one reward model per skill (`train-reward --skills`)
        rewards = load_skill_rewards(rc.path)

        def skill_intrinsic(params, x):
            if "skill" not in x:
                raise MotifError(f"reward.path {rc.path} holds per-skill reward models: train with --skills")
            features = x["depth_change"][:, None] if rewards.features else None
            return rewards.intrinsic(params, x["message"], x["count"], x["skill"], features, beta=rc.beta)

        return parallel.replicate(rewards.params, mesh), skill_intrinsic
    model = load_reward(rc.path)

    def intrinsic(params, x):
        return model.intrinsic(params, x["message"], x["count"], eps_quantile=rc.eps_quantile, beta=rc.beta)

    return parallel.replicate(model.params, mesh), intrinsic


def pool_batch_size(config: TrainConfig) -> int:
    """envs per recv of one actor thread's pool. One thread: half its envs step while it acts on the
    other half. Several threads (or --sync): all of a pool's envs at once, as large inference batches
    as one thread gets, since the other threads' envs step while this one acts."""
    n = config.env.num_envs // config.actor.threads
    if config.env.batch_size:
        return config.env.batch_size
    return n if config.run.sync or n < 2 or config.actor.threads > 1 else n // 2


def first_env(config: TrainConfig, thread: int) -> int:
    """Global id of the first env of actor thread ``thread`` of this process (process, thread, env order)."""
    return jax.process_index() * config.env.num_envs + thread * (config.env.num_envs // config.actor.threads)


def make_actor_pools(config: TrainConfig, keys) -> list:
    """One pool per actor thread, seeded ``seed`` + its first global env id. Several threads share the
    CPUs: each pool gets its share of them as worker processes (unless env.num_workers says otherwise)."""
    c = config
    n = c.env.num_envs // c.actor.threads
    workers = c.env.num_workers
    if not workers and c.actor.threads > 1:
        workers = min(n, max(1, len(os.sched_getaffinity(0)) // c.actor.threads))
    pools = []
    try:
        for i in range(c.actor.threads):
            seed = c.seed + first_env(c, i)
            pools.append(
                make_pool(
                    c.task,
                    n,
                    pool_batch_size(c),
                    workers,
                    seed,
                    keys,
                    cpu_offset=i * max(workers, 1),
                    env_options=env_options(c.env, c.task),
                )
            )
    except BaseException:
        for pool in pools:
            pool.close()
        raise
    return pools


def policy_obs_keys(config: TrainConfig, space) -> list[str]:
    keys = [k for k in config.env.obs_keys if k in space.spaces]
    if not keys:
        raise MotifError(f"env.obs_keys {config.env.obs_keys} match none of the env's keys {list(space.spaces)}")
    return keys


class Trainer:
    def __init__(
        self, config: TrainConfig, run_dir: str | Path, resume: bool = False, devices=None, console: bool = True
    ):
        parallel.maybe_initialize_distributed()
        self.config, self.run_dir = config, Path(run_dir)
        self.mesh = parallel.role_mesh(config.learner.devices) if devices is None else parallel.make_mesh(devices)
        self.actor_devices = parallel.local_devices_at(config.actor.devices or [0], "actor")
        global_rows = config.env.num_envs * jax.process_count()
        if global_rows % self.mesh.devices.size:
            raise MotifError(
                f"env.num_envs × processes = {global_rows} segments per batch cannot be split over "
                f"{self.mesh.devices.size} learner devices; use a multiple of the device count"
            )
        self.is_main = jax.process_index() == 0
        if self.is_main:
            make_dir(self.run_dir, "run directory")
        c = config
        self.pools = make_actor_pools(c, c.env.obs_keys + (["message_count"] if c.reward.llm_coef else []))
        try:
            self._build(resume, console)
        except BaseException:
            self.close_pools()
            raise

    def close_pools(self) -> None:
        for pool in self.pools:
            pool.close()

    def _build(self, resume: bool, console: bool) -> None:
        c = self.config
        space = self.pools[0].observation_space
        self.policy_keys = policy_obs_keys(c, space)
        stored = list(self.policy_keys)
        if c.reward.llm_coef:
            stored += [k for k in ("message", "message_count") if k not in stored]
        self.obs_spec = obs_spec_from_space(space, stored)
        self.skills = load_skills(c.skills) if c.skills else None
        if self.skills is not None:
            c.model.num_skills = len(self.skills.names)
            self.obs_spec.update(SKILL_OBS_SPEC)
            self.policy_keys.append("skill")
        policy_spec = {k: self.obs_spec[k] for k in self.policy_keys}
        num_actions = int(self.pools[0].action_space.n)
        model = make_policy(c.model, policy_spec, num_actions, c.seed)
        self.state_size = model.state_size
        self.segment_steps = c.env.num_envs * c.ppo.rollout * jax.process_count()
        total_updates = max(c.steps // self.segment_steps, 1)
        self.reward_params, intrinsic_fn = load_intrinsic(c, self.mesh)
        self.learner = Learner(model, c.ppo, c.reward, self.mesh, total_updates, intrinsic_fn, c.model.num_skills)
        self.train_state = self.learner.init_state()
        self.key = jax.random.key(c.seed)
        self.progress = Progress()
        self.timeline: list[tuple[float, int]] = []  # (time, env_steps) after each update, for benchmarks
        self._max_seconds: float | None = None
        self.meta_static = {
            "config": to_dict(c),
            "obs_keys": self.policy_keys,
            "num_actions": num_actions,
            "obs_spec": {k: [list(s), np.dtype(d).name] for k, (s, d) in policy_spec.items()},
            "reward_path": str(Path(c.reward.path).absolute()) if c.reward.path else None,
            "task": c.task,
        }
        self.checkpointer = Checkpointer(self.run_dir / "checkpoints", max_to_keep=c.run.keep)
        if resume:
            self._restore()
        elif self.checkpointer.latest_step() is not None:
            raise MotifError(f"{self.run_dir} already holds checkpoints; pass --resume or choose another --out")
        if self.is_main:  # whole or not at all: `motif train --resume` reads it back
            write_atomic(self.run_dir / "config.yaml", yaml.safe_dump(to_dict(c), sort_keys=False))
        self.logger = MetricsLogger(
            self.run_dir, c.run.tensorboard, console, enabled=self.is_main, wandb=c.wandb, run_config=to_dict(c)
        )
        # One parameter copy per actor device; thread i acts on actor device i mod len(devices).
        self.stores = [ParamStore(d) for d in self.actor_devices]
        treedef = jax.tree.structure(self.train_state["params"])
        self.controllers = make_controllers(self.skills, self.pools) if self.skills is not None else []
        self.workers = [
            RolloutWorker(
                pool,
                self.learner.graphdef,
                treedef,
                self.stores[i % len(self.stores)],
                c.ppo.rollout,
                self.obs_spec,
                self.policy_keys,
                model.state_size,
                c.seed + 7919,
                first_env(c, i),
                observers=self.controllers[i : i + 1],
            )
            for i, pool in enumerate(self.pools)
        ]

    # -- checkpoints -------------------------------------------------------------------------------
    def _ckpt_items(self) -> dict:
        """The policy parameters as an item of their own (evaluation restores only them) and the rest of
        the training state. Replicated on the learner mesh: Orbax saves only global arrays when several
        processes train."""
        rng = parallel.replicate(jax.random.key_data(self.key), self.mesh)
        return {"params": self.train_state["params"], "state": {"opt_state": self.train_state["opt_state"], "rng": rng}}

    def save(self) -> None:
        if self.checkpointer.latest_step() == self.progress.env_steps:
            return
        meta = {**self.meta_static, "env_steps": self.progress.env_steps, "updates": self.progress.updates}
        self.checkpointer.save(self.progress.env_steps, self._ckpt_items(), meta, force=True)

    def _restore(self) -> None:
        ckpt = self.checkpointer
        if ckpt.latest_step() is None:
            raise MotifError(f"--resume: no checkpoint in {self.run_dir / 'checkpoints'}")
        target = abstract_like(self._ckpt_items())

        def load(step):
            if "obs_spec" not in ckpt.restore_meta(step):
                raise MotifError(f"{ckpt.directory / str(step)} is not an agent checkpoint")
            return restore_agent(ckpt, step, target)

        try:
            out, step = ckpt.restore_newest(load, set_aside=True)
        except MotifError as e:  # a library error underneath: most likely a config that changed the model
            hint = " (does it fit this config?)" if e.__cause__ is not None else ""
            raise MotifError(f"--resume: {e}{hint}") from e.__cause__
        self.train_state = {"params": out["params"], "opt_state": out["state"]["opt_state"]}
        # Via the host: a restored array is committed to one device, which the mesh-wide update rejects.
        self.key = jax.random.wrap_key_data(np.asarray(out["state"]["rng"].addressable_data(0)))
        meta = out["meta"]
        self.progress = Progress(int(meta["env_steps"]), int(meta["updates"]))
        if self.is_main:
            drop_metrics_after(self.run_dir / METRICS_FILE, self.progress.env_steps)

    # -- loop --------------------------------------------------------------------------------------
    def train(self, max_seconds: float | None = None) -> Progress:
        """Run to ``config.steps`` (or ``max_seconds`` after the first, compiling, update; or a stop
        signal), then save and close."""
        stop = threading.Event()
        restore_handlers = install_stop_handlers(stop)
        self._max_seconds = max_seconds
        actors = []
        try:
            self.publish()
            if not self.config.run.sync:
                actors = [ActorThread(w) for w in self.workers]
                for actor in actors:
                    actor.start()
            self._loop(actors, stop)
            self.save()
        finally:
            for actor in actors:
                actor.stop()
            restore_handlers()
            self.close_pools()
            self.checkpointer.close()
            self.logger.close()
        return self.progress

    def publish(self) -> None:
        for store in self.stores:
            store.publish(self.train_state["params"], self.progress.updates)

    def collect(self, actors) -> tuple[Batch, list[int]]:
        """One learner batch: every actor thread's segments, in global env order, and each one's param version."""
        parts = [actor.get() for actor in actors] if actors else [w.collect() for w in self.workers]
        return concat_rows([b for b, _ in parts]), [version for _, version in parts]

    def _loop(self, actors, stop: threading.Event) -> None:
        c, p = self.config, self.progress
        window = self._new_window()
        next_ckpt = (p.env_steps // c.run.checkpoint_every + 1) * c.run.checkpoint_every
        while p.env_steps < c.steps and not stop.is_set():
            t0 = time.perf_counter()
            batch, versions = self.collect(actors)
            t1 = time.perf_counter()
            self.key, sub = jax.random.split(self.key)
            new_state, metrics = self.learner.update(self.train_state, batch, self.reward_params, sub)
            metrics = jax.device_get(metrics)
            if not metrics.pop("finite"):
                last = self.checkpointer.latest_step()
                raise MotifError(
                    f"non-finite loss or parameters at update {p.updates + 1} (env step "
                    f"{p.env_steps}); stopped without saving; last good checkpoint: "
                    f"{'none' if last is None else f'step {last}'} in {self.run_dir / 'checkpoints'}"
                )
            self.train_state = new_state
            window["lag"].append([p.updates - v for v in versions])
            p.updates += 1
            p.env_steps += self.segment_steps
            self.timeline.append((time.perf_counter(), p.env_steps))
            if self._max_seconds is not None and self.timeline[-1][0] - self.timeline[0][0] >= self._max_seconds:
                stop.set()
            self.publish()
            window["learn_s"] += time.perf_counter() - t1
            window["wait_s"] += t1 - t0
            window["metrics"].append(metrics)
            if p.env_steps >= next_ckpt:
                self.save()
                next_ckpt = (p.env_steps // c.run.checkpoint_every + 1) * c.run.checkpoint_every
            if time.perf_counter() - window["t"] >= c.run.log_every_s or p.env_steps >= c.steps:
                self._log(window)
                window = self._new_window()

    def _new_window(self) -> dict:
        return {
            "t": time.perf_counter(),
            "steps": self.progress.env_steps,
            "learn_s": 0.0,
            "wait_s": 0.0,
            "lag": [],
            "metrics": [],
        }

    def _log(self, window: dict) -> None:
        p = self.progress
        elapsed = max(time.perf_counter() - window["t"], 1e-9)
        actor = sum((w.drain_stats() for w in self.workers[1:]), self.workers[0].drain_stats())
        updates = len(window["metrics"])
        record = {
            "env_steps": p.env_steps,
            "updates": p.updates,
            "sps": (p.env_steps - window["steps"]) / elapsed,
            "sps_learner": updates * self.segment_steps / max(window["learn_s"], 1e-9),
            "sps_actor": actor.env_steps / max(actor.inference_s + actor.env_wait_s, 1e-9),
            "learner_wait_s": window["wait_s"],
            "actor_queue_wait_s": actor.queue_wait_s,
            "actor_env_wait_s": actor.env_wait_s,
            "actor_inference_s": actor.inference_s,
            "actor_host_us_per_step": 1e6 * actor.host_s / max(actor.env_steps, 1),
            "policy_lag": float(np.mean(window["lag"])) if window["lag"] else 0.0,
        }
        if len(self.workers) > 1 and window["lag"]:
            for i, lag in enumerate(np.mean(window["lag"], axis=0)):
                record[f"policy_lag_thread{i}"] = float(lag)
        for k in window["metrics"][0] if updates else ():
            record[k] = float(np.mean([m[k] for m in window["metrics"]]))
        if self.skills is not None:
            record.update(skill_metrics(self.skills, self.controllers, record))
        episodes = actor.episodes
        if episodes["return"]:
            record["episodes"] = len(episodes["return"])
            for k, values in episodes.items():
                if values:
                    name = "success_rate" if k == "success" else f"episode_{k}"
                    record[name] = float(np.mean(values))
        self.logger.log(record)


def install_stop_handlers(stop: threading.Event):
    """SIGINT/SIGTERM set ``stop`` (the loop finishes its update and saves); returns a restorer."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {}

    def handler(signum, frame):
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)

    def restore():
        for sig, h in previous.items():
            signal.signal(sig, h)

    return restore
