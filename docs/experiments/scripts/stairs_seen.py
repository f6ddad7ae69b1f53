"""Random play on `staircase`: how often the staircase down is seen, stood on and taken, and how episodes end.

    python docs/experiments/scripts/stairs_seen.py --episodes 100 --seed 100

Episode k plays game seed `seed + k` with uniformly random actions of the 23 task actions (action seed 0),
with the stairs captioned (`env.mention_stairs`), capped at 5000 steps as the experiments' evaluations.
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np

from motif_jax.envs import nle_rules
from motif_jax.envs.tasks import make_task_env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=100)
    args = parser.parse_args()
    env = make_task_env(
        "staircase", obs_keys=("glyphs", "blstats", "message"), max_episode_steps=5000, mention_stairs=True
    )
    stairs = nle_rules.find_map_glyph("staircase down")
    rng = np.random.default_rng(0)
    seen = stood = 0
    ends: Counter[str] = Counter()
    for k in range(args.episodes):
        observation, _ = env.reset(seed=args.seed + k)
        saw = on = False
        while True:
            observation, _, terminated, truncated, info = env.step(int(rng.integers(env.action_space.n)))
            saw = saw or bool((observation["glyphs"] == stairs).any())
            on = on or nle_rules.STAIRS_DOWN_MESSAGE in observation["message"].tobytes()
            if terminated or truncated:
                break
        seen, stood = seen + saw, stood + on
        ends[info["episode"]["end_reason"]] += 1
    n = args.episodes
    print(f"episodes {n}: staircase down seen in {seen}, stood on in {stood}, taken in {ends['success']}")
    print("ended by: " + ", ".join(f"{reason} {count}" for reason, count in ends.most_common()))
    env.close()


if __name__ == "__main__":
    main()
