"""`motif benchmark reward`: training pairs/s of the jitted train step and captions/s of jitted scoring.

Uses random captions (compute does not depend on their content) already on the device mesh,
so the numbers measure the model and the step, not disk reads.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np

from motif_jax import parallel
from motif_jax.reward.model import NetParams, init_weights
from motif_jax.reward.state import train_state
from motif_jax.reward.train import PRESETS, make_train_step, preset_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default")
    parser.add_argument("--batch-size", type=int, default=1024, help="pairs per training step")
    parser.add_argument("--seq-len", type=int, default=1, help="steps per pair member")
    parser.add_argument("--score-batch", type=int, default=8192, help="captions per scoring call")
    parser.add_argument("--seconds", type=float, default=5.0, help="time budget per measurement")
    parser.add_argument("--json", help="write the results here")


def _random_captions(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Printable captions of random lengths 0..80, NUL-padded like NLE messages."""
    out = np.zeros((*shape, 256), np.uint8)
    flat = out.reshape(-1, 256)
    lengths = rng.integers(0, 81, len(flat))
    for row, n in zip(flat, lengths):
        row[:n] = rng.integers(32, 127, n)
    return out


def _time_calls(call, seconds: float) -> tuple[int, float]:
    jax.block_until_ready(call())  # compile and warm up
    calls, started = 0, time.perf_counter()
    while True:
        jax.block_until_ready(call())
        calls += 1
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return calls, elapsed


def measure(preset: str, batch_size: int, seq_len: int, score_batch: int, seconds: float) -> dict:
    mesh = parallel.make_mesh()
    config = preset_config(preset, batch_size=batch_size)
    model = config.model
    rng = np.random.default_rng(0)
    holder = {"state": parallel.replicate(train_state(init_weights(model, 0), config.lr), mesh)}
    batch = parallel.shard_batch(
        {
            "messages": _random_captions(rng, (batch_size, 2, seq_len))[parallel.local_rows(batch_size)],
            "target": rng.random(batch_size).astype(np.float32)[parallel.local_rows(batch_size)],
            "weight": np.ones(batch_size, np.float32)[parallel.local_rows(batch_size)],
        },
        mesh,
    )
    train_step = make_train_step(model, config.lr, mesh)

    def train_call():
        holder["state"], sums = train_step(holder["state"], batch)
        return sums

    steps, train_time = _time_calls(train_call, seconds)
    params = jax.device_put(NetParams(holder["state"]["weights"], model), parallel.replicated(mesh))
    captions = parallel.shard_batch(_random_captions(rng, (score_batch,))[parallel.local_rows(score_batch)], mesh)
    score = jax.jit(lambda p, m: p(m))
    calls, score_time = _time_calls(lambda: score(params, captions), seconds)
    return {
        "preset": preset,
        "devices": mesh.devices.size,
        "device_kind": jax.devices()[0].device_kind,
        "platform": jax.devices()[0].platform,
        "batch_size": batch_size,
        "seq_len": seq_len,
        "train_steps": steps,
        "train_pairs_per_s": steps * batch_size / train_time,
        "score_batch": score_batch,
        "score_captions_per_s": calls * score_batch / score_time,
    }


def run(args: argparse.Namespace) -> int:
    result = measure(args.preset, args.batch_size, args.seq_len, args.score_batch, args.seconds)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    return 0
