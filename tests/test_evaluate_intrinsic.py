"""The captions that paid most per evaluation episode: summed per caption, per skill, first observations unpaid."""

import numpy as np

from motif_jax.envs.loop import EnvStep
from motif_jax.evaluate.intrinsic import IntrinsicCaptions


def step(captions, first, ended, skills=None, depth=None):
    n = len(captions)
    messages = np.zeros((n, 256), np.uint8)
    for i, c in enumerate(captions):
        messages[i, : len(c)] = np.frombuffer(c.encode(), np.uint8)
    obs = {"message": messages, "message_count": np.ones(n, np.int32)}
    if skills is not None:
        obs["skill"], obs["skill_depth_change"] = np.asarray(skills, np.int32), np.asarray(depth, np.float32)
    z = np.zeros(n, bool)
    return EnvStep(obs, np.zeros(n), z, z, {}, np.arange(n), np.asarray(ended), np.asarray(first), np.zeros(n))


def decode(messages):
    return [bytes(m).split(b"\0")[0].decode() for m in messages]


def test_captions_are_summed_per_episode_and_the_first_observation_is_not_paid():
    reward = {"a": 1.0, "b": 0.25, "": 0.0}
    seen = []

    def scorer(x):
        seen.append(dict(x))
        return np.array([reward[c] for c in decode(x["message"])], np.float32)

    paid = IntrinsicCaptions(scorer, 1, decode)
    paid.observe(step(["a"], [True], [False]))  # an episode's first observation: no action led to it
    paid.observe(step(["b"], [False], [False]))
    paid.observe(step(["a"], [False], [False]))
    paid.observe(step(["a"], [False], [True]))
    paid.observe(step(["b"], [True], [False]))  # the next episode starts from nothing
    paid.observe(step(["b"], [False], [True]))
    assert paid.episodes[(0, 0)] == [["a", 2.0], ["b", 0.25]]
    assert paid.episodes[(0, 1)] == [["b", 0.25]]


def test_with_skills_each_caption_counts_for_the_skill_that_acted():
    def scorer(x):
        return np.where(x["skill"] == 1, 1.0, 0.5) + x["depth_change"]

    paid = IntrinsicCaptions(scorer, 1, decode, skill_names=("discoverer", "descender"))
    paid.observe(step(["a"], [True], [False], skills=[1], depth=[0]))
    paid.observe(step(["b"], [False], [False], skills=[0], depth=[1]))  # the descender acted: its step, +1
    paid.observe(step(["c"], [False], [True], skills=[0], depth=[0]))  # then the discoverer
    assert paid.episodes[(0, 0)] == {"descender": [["b", 2.0]], "discoverer": [["c", 0.5]]}
