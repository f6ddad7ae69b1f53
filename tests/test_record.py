"""Recordings: NLE's ttyrec files read back as terminal frames and animated into a GIF."""

import gymnasium as gym
import nle  # noqa: F401  (registers the NetHack envs)
import numpy as np
import pytest
from PIL import Image

from motif_jax.errors import MotifError
from motif_jax.evaluate.render import frame_indices, render_frame, write_gif
from motif_jax.evaluate.ttyrec import episode_ttyrecs, read_ttyrec


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Two short NLE episodes recorded by NLE itself, with the tty observations seen while playing."""
    savedir = tmp_path_factory.mktemp("rec") / "ttyrecs"
    env = gym.make(
        "NetHackScore-v0", save_ttyrec_every=1, savedir=str(savedir), observation_keys=("tty_chars", "tty_colors")
    )
    screens = []
    for episode in range(2):
        obs, _ = env.reset(seed=episode)
        seen = [obs["tty_chars"].copy()]
        for action in [1, 2, 3, 4] * 5:
            obs, _, term, trunc, _ = env.step(action)
            seen.append(obs["tty_chars"].copy())
            if term or trunc:
                break
        screens.append(np.stack(seen))
    env.close()
    return savedir, screens


def test_ttyrecs_are_listed_in_episode_order_and_replay_the_screens_seen(recorded):
    savedir, screens = recorded
    files = episode_ttyrecs(savedir)
    assert len(files) == 2 and [f.name.split(".")[2] for f in files] == ["0", "1"]
    for path, seen in zip(files, screens):
        frames = read_ttyrec(path)
        assert frames.chars.shape[1:] == (24, 80) and frames.colors.shape == frames.chars.shape
        # every screen the agent saw is replayed, in order (NLE writes the last one only at the next
        # input; skipped --More-- prompts add frames the agent never saw)
        position = 0
        for screen in seen[:-1]:
            while position < len(frames) and not np.array_equal(frames.chars[position], screen):
                position += 1
            assert position < len(frames), "an observed screen is missing from the recording"


def test_gif_has_one_image_per_kept_frame(recorded, tmp_path):
    frames = read_ttyrec(episode_ttyrecs(recorded[0])[0])
    path = write_gif(frames, tmp_path / "episode.gif", max_frames=8)
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.n_frames == len(frame_indices(len(frames), 8))
        assert gif.size[0] > gif.size[1] > 0


def test_render_frame_draws_text_in_nethack_colours():
    chars = np.full((24, 80), ord(" "), np.uint8)
    colors = np.zeros((24, 80), np.int8)
    chars[0, :5] = np.frombuffer(b"Hello", np.uint8)
    colors[0, :5] = 1  # red
    image = render_frame(chars, colors)
    used = {index for _, index in image.getcolors()}
    assert used == {16, 1}  # background and red only


def test_frame_indices_keep_first_and_last():
    assert frame_indices(5, 10).tolist() == [0, 1, 2, 3, 4]
    kept = frame_indices(1000, 7)
    assert len(kept) == 7 and kept[0] == 0 and kept[-1] == 999


def test_missing_ttyrec_is_a_clear_error(tmp_path):
    with pytest.raises(MotifError, match="not found"):
        read_ttyrec(tmp_path / "nope.ttyrec3.bz2")
