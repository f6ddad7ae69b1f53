"""Keep NLE's ttyrec recordings of chosen evaluation episodes, played inside the actor pool.

Several envs can share one worker process, and NLE names its files ``nle.<pid>.<n>.ttyrec3.bz2``,
so every env records into its own folder and notes which episode seed each file belongs to. The
pool seeds episode ``n`` of env ``i`` with ``episode_seed(pool_seed, i, n)``; after the run the
files of the wanted episodes are found by seed, renamed by report index and the rest deleted.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

import gymnasium

from motif_jax.errors import MotifError
from motif_jax.evaluate.ttyrec import episode_ttyrecs

MANIFEST = "episodes.jsonl"
_STAGING_PREFIX = "env-"


class SeedLoggingRecorder(gymnasium.Wrapper):
    """Appends ``{"seed", "ttyrec"}`` to the env's manifest at each reset, naming the file NLE opened."""

    def __init__(self, env: gymnasium.Env, savedir: Path):
        super().__init__(env)
        self.savedir = savedir

    def reset(self, *, seed=None, options=None):
        out = self.env.reset(seed=seed, options=options)
        files = episode_ttyrecs(self.savedir)
        if files:
            with open(self.savedir / MANIFEST, "a") as f:
                f.write(json.dumps({"seed": seed, "ttyrec": files[-1].name}) + "\n")
        return out


@dataclasses.dataclass(frozen=True)
class RecordingTaskFactory:
    """Picklable zero-argument factory for the pool: a task env that records every episode."""

    task: str
    root: str
    obs_keys: tuple[str, ...] | None = None
    max_episode_steps: int = 5000
    character: str | None = None  # as envs.pool_worker.TaskEnvFactory
    extra_actions: bool = False
    mention_stairs: bool = False
    mention_explored: bool = False

    def __call__(self) -> gymnasium.Env:
        from motif_jax.envs.tasks import make_task_env

        savedir = Path(self.root) / f"{_STAGING_PREFIX}{uuid.uuid4().hex[:12]}"
        options = {"character": self.character} if self.character is not None else {}
        env = make_task_env(
            self.task,
            obs_keys=self.obs_keys,
            max_episode_steps=self.max_episode_steps,
            save_ttyrec_every=1,
            savedir=str(savedir),
            extra_actions=self.extra_actions,
            mention_stairs=self.mention_stairs,
            mention_explored=self.mention_explored,
            **options,
        )
        return SeedLoggingRecorder(env, savedir)


def collect_recordings(root: str | Path, wanted: Sequence[tuple[int, int]]) -> list[Path]:
    """Move the ttyrec of each wanted ``(report_index, episode_seed)`` to ``root/episode-<index>.ttyrec3.bz2``.

    Deletes the per-env staging folders afterwards; returns the kept files in ``wanted`` order.
    """
    root = Path(root)
    by_seed: dict[int, Path] = {}
    staging = sorted(p for p in root.glob(f"{_STAGING_PREFIX}*") if p.is_dir())
    for folder in staging:
        manifest = folder / MANIFEST
        if not manifest.is_file():
            continue
        for line in manifest.read_text().splitlines():
            entry = json.loads(line)
            if entry["seed"] is not None:
                by_seed[int(entry["seed"])] = folder / entry["ttyrec"]
    kept = []
    for index, seed in wanted:
        source = by_seed.get(int(seed))
        if source is None or not source.is_file():
            raise MotifError(f"no recording of episode {index} (seed {seed}) under {root}; was it played?")
        target = root / f"episode-{index}.ttyrec3.bz2"
        shutil.move(str(source), target)
        kept.append(target)
    for folder in staging:
        shutil.rmtree(folder, ignore_errors=True)
    return kept
