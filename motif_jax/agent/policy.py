"""Load a trained agent for acting (`motif collect --policy`, `motif evaluate`).

    policy = load_policy("runs/score-…")          # run dir, its checkpoints/ dir, or one step dir
    state = policy.initial_state(batch_size)
    actions, state = policy.act(obs, state, done, greedy=False, key=jax.random.key(0))

``done[i]`` is True where ``obs[i]`` starts a new episode (first call, or the
previous step ended it): the recurrent state is zeroed there.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
from flax import nnx

from motif_jax.agent.actor import make_act_fn
from motif_jax.agent.config import TrainConfig
from motif_jax.agent.learner import make_optimizer
from motif_jax.agent.networks import make_policy
from motif_jax.checkpoint import Checkpointer, abstract_like
from motif_jax.config import from_dict
from motif_jax.errors import MotifError
from motif_jax.skills.controller import SkillController
from motif_jax.skills.spec import load_skills


def resolve_checkpoint(path: str | Path) -> tuple[Path, int | None]:
    """(checkpoints directory, step or None for latest) from a run dir, a checkpoints dir or a step dir."""
    path = Path(path)
    if not path.exists():
        raise MotifError(f"policy {path}: no such directory")
    if (path / "checkpoints").is_dir():
        return path / "checkpoints", None
    if path.name.isdigit() and path.parent.is_dir():
        return path.parent, int(path.name)
    return path, None


class Policy:
    def __init__(self, config: TrainConfig, meta: dict, params, graphdef, state_size: int):
        self.config, self.meta = config, meta
        self.task = meta["task"]
        self.obs_keys = list(meta["obs_keys"])
        self.num_actions = int(meta["num_actions"])
        self.env_steps = int(meta["env_steps"])
        self.params = params
        self._leaves = jax.tree.leaves(params)
        self._state_size = state_size
        self._act = make_act_fn(graphdef, jax.tree.structure(params))

    def initial_state(self, batch_size: int) -> np.ndarray:
        return np.zeros((batch_size, self._state_size), np.float32)

    def act(self, obs: dict, state, done, greedy: bool = False, key=None):
        key = jax.random.key(0) if key is None else key
        policy_obs = {k: np.asarray(obs[k]) for k in self.obs_keys}
        rows = len(done)
        actions, _, state = self._act(
            self._leaves,
            policy_obs,
            np.asarray(done, bool),
            state,
            key,
            np.arange(rows, dtype=np.int32),
            np.zeros(rows, np.int32),
            greedy,
        )
        return np.asarray(actions), state


def restore_agent(ckpt: Checkpointer, step: int, target: dict, params_only: bool = False) -> dict:
    """An agent checkpoint's ``{"params", "state": {"opt_state", "rng"}, "meta"}`` onto ``target``'s shapes
    (only ``params`` and ``meta`` if ``params_only``), also from checkpoints written before the parameters
    were an item of their own: ``{"state": {"train": {params, opt_state}, "rng"}}``."""
    if ckpt.has_item(step, "params"):
        return ckpt.restore_items(step, {"params": target["params"]} if params_only else target)
    state = target["state"]
    old = {"train": {"params": target["params"], "opt_state": state["opt_state"]}, "rng": state["rng"]}
    out = ckpt.restore_items(step, {"state": old})
    train = out["state"]["train"]
    return {
        "params": train["params"],
        "state": {"opt_state": train["opt_state"], "rng": out["state"]["rng"]},
        "meta": out["meta"],
    }


def load_policy(run_or_ckpt_dir: str | Path) -> Policy:
    """The newest readable checkpoint's policy (a damaged newer one is skipped with a warning)."""
    directory, step = resolve_checkpoint(run_or_ckpt_dir)
    checkpointer = Checkpointer(directory, async_save=False, read_only=True)
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

    def load(step: int):
        meta = checkpointer.restore_meta(step)
        if "obs_spec" not in meta:
            raise MotifError(f"policy {run_or_ckpt_dir}: not an agent checkpoint (no obs_spec in its metadata)")
        config = from_dict(TrainConfig, meta["config"])
        spec = {k: (tuple(shape), np.dtype(dtype)) for k, (shape, dtype) in meta["obs_spec"].items()}
        model = nnx.eval_shape(lambda: make_policy(config.model, spec, int(meta["num_actions"]), config.seed))
        graphdef, params = nnx.split(model, nnx.Param)
        rest = {  # the shapes a checkpoint of the old layout needs
            "opt_state": jax.eval_shape(make_optimizer(config.ppo, 1).init, params),
            "rng": jax.random.key_data(jax.random.key(0)),
        }
        target = abstract_like({"params": params, "state": rest}, device)
        params = restore_agent(checkpointer, step, target, params_only=True)["params"]
        return Policy(config, meta, params, graphdef, model.state_size)

    try:
        policy, _ = checkpointer.restore_newest(load, step)
    finally:
        checkpointer.close()
    return policy


class StatefulPolicy:
    """A loaded agent as a callable ``(obs, starts_episode) -> actions`` that keeps its recurrent state and
    random key, for loops that step every env of a pool together (``motif collect --policy``)."""

    def __init__(self, directory: str | Path, num_envs: int, seed: int):
        if not Path(directory).is_dir():
            raise MotifError(f"--policy {directory}: not 'random' and no such checkpoint directory")
        self.policy = load_policy(directory)
        self.obs_keys = tuple(self.policy.obs_keys)
        self.state = self.policy.initial_state(num_envs)
        self.key = jax.random.key(seed)
        self.observers = []  # an agent trained with skills plays them with its training policy over skills
        if self.policy.config.skills:
            skills = load_skills(self.policy.config.skills)
            self.observers.append(SkillController(skills, skills.training_policy, num_envs))

    def __call__(self, obs: dict[str, np.ndarray], starts_episode: np.ndarray) -> np.ndarray:
        self.key, key = jax.random.split(self.key)
        actions, self.state = self.policy.act(obs, self.state, starts_episode, False, key)
        return np.asarray(actions)
