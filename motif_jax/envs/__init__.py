"""NetHack tasks of the Motif and MaestroMotif papers and an envpool-style pool of actor processes."""

from __future__ import annotations

__all__ = ["make_pool", "ActorPool", "make_task_env", "TASKS", "CAPTION_OPTIONS"]

# The env options that caption what NetHack leaves unsaid (tasks.MotifNetHackTask): a staircase down under
# the hero, each 50 more squares of a level seen. Each is a bool, off by default (Motif's own captions).
CAPTION_OPTIONS = ("mention_stairs", "mention_explored")


def __getattr__(name):  # lazy: importing the package must not start NLE or multiprocessing
    if name in ("make_pool", "ActorPool"):
        from motif_jax.envs import pool

        return getattr(pool, name)
    if name in ("make_task_env", "TASKS"):
        from motif_jax.envs import tasks

        return getattr(tasks, name)
    raise AttributeError(name)
