"""envpool's own envs (``envpool:<Name>``) behind our pool's layout, so the trainer validates on them."""

from __future__ import annotations

import gymnasium
import numpy as np

from motif_jax.errors import MotifError


class EnvpoolAdapter:
    """``envpool.make(..., env_type="gymnasium")`` with array observations under ``"obs"`` and the
    ``episode_return``/``episode_length`` info our pool reports."""

    def __init__(self, name: str, num_envs: int, batch_size: int, seed: int):
        import envpool

        try:
            self.env = envpool.make(name, env_type="gymnasium", num_envs=num_envs, batch_size=batch_size, seed=seed)
        except Exception as e:  # envpool raises several types for unknown names / bad kwargs
            raise MotifError(f"--env envpool:{name}: envpool cannot make it ({e})") from e
        self.num_envs, self.batch_size = num_envs, batch_size
        space = self.env.observation_space
        self.observation_space = (
            space if isinstance(space, gymnasium.spaces.Dict) else gymnasium.spaces.Dict({"obs": space})
        )
        self.action_space = self.env.action_space
        self._return = np.zeros(num_envs, np.float64)
        self._length = np.zeros(num_envs, np.int64)

    def async_reset(self) -> None:
        self.env.async_reset()

    def send(self, actions, env_ids) -> None:
        self.env.send(np.asarray(actions), np.asarray(env_ids, np.int32))

    def recv(self):
        obs, rew, term, trunc, info = self.env.recv()
        ids = info["env_id"]
        fresh = info["elapsed_step"] == 0
        self._return[ids] = np.where(fresh, 0.0, self._return[ids] + rew)
        self._length[ids] = info["elapsed_step"]
        info = dict(info)
        info["episode_return"] = self._return[ids].astype(np.float32)
        info["episode_length"] = self._length[ids].astype(np.int32)
        if not isinstance(obs, dict):
            obs = {"obs": obs}
        return obs, rew.astype(np.float32), term, trunc, info

    def close(self) -> None:
        close = getattr(self.env, "close", None)
        if close:
            close()
