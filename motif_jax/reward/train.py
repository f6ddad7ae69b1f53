"""Train the reward model on annotated pairs over a device mesh, with Orbax checkpoints every epoch.

Data flow: the dataset stays memory-mapped; every step, each process reads only its rows of
the global batch and ``shard_batch`` assembles them into one ``jax.Array`` sharded along
``data``; weights and optimizer state are replicated; the step is one ``jit`` over the mesh.

Determinism: the split depends on ``seed``, epoch e's shuffle on ``(seed, e)``, the init on
``seed``. Checkpoints are taken at epoch ends, so a resumed run replays exactly the epochs an
uninterrupted one would, and ends with the same weights.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from motif_jax import parallel
from motif_jax.checkpoint import Checkpointer, abstract_like
from motif_jax.config import from_dict
from motif_jax.errors import MotifError, make_dir
from motif_jax.metrics import METRICS_FILE, MetricsWriter, keep_metrics
from motif_jax.numerics import all_finite
from motif_jax.progress import ProgressBar
from motif_jax.reward import losses
from motif_jax.reward.captions import MeshScorer, unique_captions
from motif_jax.reward.model import PRESETS, ModelConfig, NetParams, init_weights
from motif_jax.reward.normalise import NormStats, compute_stats, stats_to_json
from motif_jax.reward.pairs import (
    BatchReader,
    dataset_fingerprint,
    epoch_batches,
    load_preferences,
    prefetched,
    split_pairs,
)
from motif_jax.reward.state import CHECKPOINT_DIR, META_FORMAT, make_optimizer, train_state


@dataclasses.dataclass
class TrainConfig:
    preset: str = "default"  # default | tiny: model size, and lr/batch_size/epochs under the file's values
    model: dict[str, Any] = dataclasses.field(default_factory=dict)  # overrides of the preset's model fields
    lr: float = 1e-5  # Adam learning rate
    batch_size: int = 1024  # pairs per global batch (over all devices and processes)
    epochs: int = 10  # passes over the training pairs
    seed: int = 0  # split, shuffling and init seed
    val_fraction: float = 0.2  # held-out share of the labelled pairs
    keep: int = 3  # checkpoints kept
    tensorboard: bool = False  # also write TensorBoard scalars to OUT/tensorboard

    def model_config(self) -> ModelConfig:
        """The preset's network with ``model`` on top, type-checked like every other key."""
        if self.preset not in PRESETS:
            raise MotifError(f"unknown preset {self.preset!r}; choose from {', '.join(PRESETS)}")
        return from_dict(
            ModelConfig,
            {**dataclasses.asdict(PRESETS[self.preset]), **(self.model or {})},
            where="train-reward config",
            prefix="model.",
        )

    def validate(self) -> None:
        if self.lr <= 0 or not math.isfinite(self.lr):
            raise MotifError(f"lr must be a positive number, got {self.lr}")
        if self.batch_size < 1 or self.epochs < 1 or self.keep < 1:
            raise MotifError("batch_size, epochs and keep must be >= 1")
        if not 0 <= self.val_fraction < 1:
            raise MotifError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        self.model_config()


# Paper settings for `default` (lr 1e-5, 1024 pairs, 10 epochs: thousands of steps on Motif's ~500k pairs).
# `tiny` must learn in 3 epochs on ~2000 pairs, i.e. ~40 steps: a 1e-5 step size barely moves Adam's
# weights in that budget, so it uses lr 1e-3 and batches of 128.
PRESET_TRAINING: dict[str, dict[str, Any]] = {
    "default": {"lr": 1e-5, "batch_size": 1024, "epochs": 10},
    "tiny": {"lr": 1e-3, "batch_size": 128, "epochs": 3},
}


def preset_config(preset: str, **overrides) -> TrainConfig:
    if preset not in PRESET_TRAINING:
        raise MotifError(f"unknown preset {preset!r}; choose from {', '.join(PRESET_TRAINING)}")
    config = TrainConfig(preset=preset, **{**PRESET_TRAINING[preset], **overrides})
    config.validate()
    return config


# ---------------------------------------------------------------------------------------------------------
# The jitted steps.


@functools.lru_cache(maxsize=8)
def make_train_step(model: ModelConfig, lr: float, mesh) -> Callable:
    """state, batch -> state, sums. One jit over the mesh: replicated state, batch sharded on ``data``.
    Cached, so a resumed or repeated run in the same process reuses the compiled step."""
    tx = make_optimizer(lr)

    def step(state, batch):
        def loss_fn(weights):
            rewards = losses.sequence_reward(NetParams(weights, model)(batch["messages"]))
            return losses.mean_loss(rewards, batch["target"], batch["weight"]), rewards

        (_, rewards), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["weights"])
        updates, opt_state = tx.update(grads, state["opt_state"], state["weights"])
        new_state = {
            "weights": optax.apply_updates(state["weights"], updates),
            "opt_state": opt_state,
            "step": state["step"] + 1,
        }
        return new_state, losses.preference_sums(rewards, batch["target"], batch["weight"])

    replicated = parallel.replicated(mesh)
    return jax.jit(step, out_shardings=(replicated, replicated), donate_argnums=0)


@functools.lru_cache(maxsize=8)
def make_eval_step(model: ModelConfig, mesh) -> Callable:
    def step(weights, batch):
        rewards = losses.sequence_reward(NetParams(weights, model)(batch["messages"]))
        sums = losses.preference_sums(rewards, batch["target"], batch["weight"])
        correct, _ = losses.pair_correct(rewards, batch["agree_target"])
        sums["agree_correct"] = jnp.sum(batch["agree_weight"] * correct)
        sums["agree_count"] = jnp.sum(batch["agree_weight"])
        return sums

    return jax.jit(step, out_shardings=parallel.replicated(mesh))


def _sum_metrics(totals: dict[str, Any], sums: dict[str, jax.Array]) -> dict[str, Any]:
    return {k: totals.get(k, 0.0) + v for k, v in sums.items()}  # stays on device: no sync per step


# ---------------------------------------------------------------------------------------------------------
# Checkpoint metadata and metrics output.


def open_metrics(out_dir: Path, epoch: int, tensorboard: bool, last: dict[str, Any] | None) -> MetricsWriter | None:
    """Process 0's metrics writer (None on the others), after dropping the epochs a resume from ``epoch``
    replays and putting back the restored checkpoint's own record ``last`` if a kill came between its save
    and its line."""
    if jax.process_index() != 0:
        return None

    def put_back(kept: list[dict[str, Any]]) -> list[dict[str, Any]]:
        missing = last is not None and last.get("epoch") == epoch and all(r["epoch"] != epoch for r in kept)
        return [last] if missing else []

    keep_metrics(out_dir / METRICS_FILE, lambda r: isinstance(r.get("epoch"), int) and r["epoch"] <= epoch, put_back)
    return MetricsWriter(out_dir, "epoch", tensorboard)


def checkpoint_meta(
    config: TrainConfig,
    model: ModelConfig,
    stats: NormStats,
    *,
    ds,
    annotator: str,
    fingerprint: str,
    epoch: int,
    metrics: dict[str, Any],
) -> dict[str, Any]:
    return {
        "format": META_FORMAT,
        "config": dataclasses.asdict(config),
        "model": dataclasses.asdict(model),
        "normalisation": stats_to_json(stats),
        "annotator": annotator,
        "dataset": str(Path(ds.path).absolute()),
        "dataset_fingerprint": fingerprint,
        "seq_len": ds.seq_len,
        "epoch": epoch,
        "metrics": metrics,
    }


def _comparable(config_dict: dict[str, Any]) -> dict[str, Any]:
    """Settings that must match to resume (more epochs, other keep/tensorboard are fine)."""
    return {k: v for k, v in config_dict.items() if k not in ("epochs", "keep", "tensorboard")}


# ---------------------------------------------------------------------------------------------------------
# The training loop.


def train_reward(
    dataset: str | Path,
    annotator: str,
    out_dir: str | Path,
    config: TrainConfig,
    *,
    resume: bool = False,
    devices=None,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
) -> list[dict[str, Any]]:
    """Train (or resume) and return this call's per-epoch metrics. Every epoch ends in a checkpoint
    under ``out_dir/checkpoints`` holding weights, optimizer state and normalisation stats.

    With several processes every one must call this (each feeds its rows and joins every save);
    only process 0 logs, shows progress and writes metrics, so a job prints each line once."""
    from motif_jax.data import open_dataset

    if jax.process_index() != 0:
        progress, log = False, None
    config.validate()
    model = config.model_config()
    ds = open_dataset(dataset)
    prefs = load_preferences(ds, annotator)
    train_rows, val_rows = split_pairs(prefs.weight, config.val_fraction, config.seed)
    if len(train_rows) == 0:
        raise MotifError(
            f"{ds.path}: only {int(prefs.weight.sum())} usable pair(s); none left for training after the split"
        )
    mesh = parallel.make_mesh(devices)
    if config.batch_size % mesh.devices.size:
        raise MotifError(
            f"batch_size {config.batch_size} must be divisible by the {mesh.devices.size} devices of the mesh"
        )
    fingerprint = dataset_fingerprint(ds, annotator)

    out_dir = Path(out_dir)
    make_dir(out_dir)
    state = parallel.replicate(train_state(init_weights(model, config.seed), config.lr), mesh)
    start_epoch = 0
    ckpt = Checkpointer(out_dir / CHECKPOINT_DIR, max_to_keep=config.keep)
    try:
        resumed = None
        if ckpt.latest_step() is not None:
            if not resume:
                raise MotifError(
                    f"{out_dir} already holds reward checkpoints; pass --resume to continue, or choose another --out"
                )
            target = abstract_like(state, parallel.replicated(mesh))

            def load(step: int) -> dict[str, Any]:
                meta = ckpt.restore_meta(step)
                if meta.get("dataset_fingerprint") != fingerprint or meta.get("annotator") != annotator:
                    raise MotifError(
                        f"{out_dir}: the checkpoint was trained on other data or labels; cannot resume "
                        f"on {ds.path} / {annotator!r}"
                    )
                if _comparable(meta["config"]) != _comparable(dataclasses.asdict(config)):
                    raise MotifError(
                        f"{out_dir}: the checkpoint used other settings "
                        f"({_comparable(meta['config'])}); resume with the same ones"
                    )
                return ckpt.restore_items(step, {"state": target})

            resumed, _ = ckpt.restore_newest(load, set_aside=True)
            state, meta = resumed["state"], resumed["meta"]
            start_epoch = int(meta["epoch"])
            if log:
                log(f"resuming from epoch {start_epoch} (step {int(state['step'])})")
        metrics_log = open_metrics(
            out_dir, start_epoch, config.tensorboard, resumed["meta"].get("metrics") if resumed else None
        )
        try:
            return _run_epochs(
                ds,
                prefs,
                model,
                config,
                mesh,
                state,
                ckpt,
                metrics_log,
                train_rows,
                val_rows,
                start_epoch,
                annotator=annotator,
                fingerprint=fingerprint,
                progress=progress,
                log=log,
            )
        finally:
            if metrics_log is not None:
                metrics_log.close()
    finally:
        ckpt.close()


@dataclasses.dataclass
class _EpochData:
    """What every epoch reuses: the batch readers, the validation batches and the unique training captions."""

    read_train: BatchReader
    read_val: BatchReader
    train_rows: np.ndarray
    val_batches: np.ndarray
    captions: np.ndarray
    counts: np.ndarray


def _train_epoch(state, train_step, data: _EpochData, config: TrainConfig, epoch: int, bar):
    batches = epoch_batches(data.train_rows, config.batch_size, config.seed, epoch)
    bar.restart(f"epoch {epoch}/{config.epochs}", len(batches))
    totals: dict[str, Any] = {}
    for i, batch in enumerate(prefetched(data.read_train, batches)):
        state, sums = train_step(state, batch)
        totals = _sum_metrics(totals, sums)
        if i % 20 == 0:  # an occasional host sync for the bar, not one per step
            bar.update(info=f"loss {float(sums['loss_sum']) / max(float(sums['weight']), 1.0):.4f}")
        bar.advance()
    return state, {k: float(v) for k, v in totals.items()}


def _evaluate(weights, eval_step, data: _EpochData) -> dict[str, float]:
    totals: dict[str, Any] = {}
    for batch in prefetched(data.read_val, data.val_batches):
        totals = _sum_metrics(totals, eval_step(weights, batch))
    return {k: float(v) for k, v in totals.items()}


def _epoch_record(
    epoch: int,
    step: int,
    train: dict,
    val: dict,
    stats: NormStats,
    data: _EpochData,
    train_seconds: float,
    epoch_seconds: float,
) -> dict[str, Any]:
    return {
        "epoch": epoch,
        "step": step,
        "train_loss": losses.ratio(train["loss_sum"], train["weight"]),
        "train_acc": losses.ratio(train["correct"], train["decisive"]),
        "val_loss": losses.ratio(val.get("loss_sum", 0.0), val.get("weight", 0.0)),
        "val_acc": losses.ratio(val.get("correct", 0.0), val.get("decisive", 0.0)),
        "score_agreement": losses.ratio(val.get("agree_correct", 0.0), val.get("agree_count", 0.0)),
        "train_pairs": int(len(data.train_rows)),
        "val_pairs": int(np.sum(data.val_batches >= 0)),
        "pairs_per_s": len(data.train_rows) / train_seconds,
        "epoch_seconds": epoch_seconds,
        "reward_mean": float(stats.mean),
        "reward_std": float(stats.std),
        "unique_train_captions": int(len(data.captions)),
    }


def _run_epochs(
    ds,
    prefs,
    model,
    config,
    mesh,
    state,
    ckpt,
    metrics_log,
    train_rows,
    val_rows,
    start_epoch,
    *,
    annotator,
    fingerprint,
    progress,
    log,
) -> list[dict[str, Any]]:
    messages = ds.data("message")
    train_step = make_train_step(model, config.lr, mesh)
    eval_step = make_eval_step(model, mesh)
    val_batches = epoch_batches(val_rows, config.batch_size, None, 0)[: -(-len(val_rows) // config.batch_size)]
    data = _EpochData(
        BatchReader(messages, prefs, mesh, with_agreement=False),
        BatchReader(messages, prefs, mesh, with_agreement=True),
        train_rows,
        val_batches,
        *unique_captions(messages, train_rows),
    )
    scorer = MeshScorer(mesh)
    history = []
    with ProgressBar("reward model", 0, "batches", enabled=progress, transient=True) as bar:
        for epoch in range(start_epoch + 1, config.epochs + 1):
            started = time.perf_counter()
            state, train = _train_epoch(state, train_step, data, config, epoch, bar)
            train_seconds = time.perf_counter() - started
            if not math.isfinite(train["loss_sum"]) or not bool(all_finite(state["weights"])):
                raise MotifError(
                    f"training diverged: loss is NaN/inf in epoch {epoch}; nothing saved for it "
                    f"(latest checkpoint: step {ckpt.latest_step()}); lower --lr"
                )
            val = _evaluate(state["weights"], eval_step, data)
            stats = compute_stats(scorer(NetParams(state["weights"], model), data.captions), data.counts)
            record = _epoch_record(
                epoch, int(state["step"]), train, val, stats, data, train_seconds, time.perf_counter() - started
            )
            meta = checkpoint_meta(
                config, model, stats, ds=ds, annotator=annotator, fingerprint=fingerprint, epoch=epoch, metrics=record
            )
            ckpt.save(record["step"], {"state": state}, meta)
            if metrics_log is not None:
                metrics_log.write(record)
            history.append(record)
            if log:
                log(_summary_line(record, config.epochs))
    return history


def _summary_line(record: dict[str, Any], epochs: int) -> str:
    def fmt(key):
        value = record.get(key)
        return "-" if value is None else f"{value:.4f}"

    return (
        f"epoch {record['epoch']}/{epochs}  train_loss {fmt('train_loss')}  train_acc {fmt('train_acc')}  "
        f"val_loss {fmt('val_loss')}  val_acc {fmt('val_acc')}  score_agreement {fmt('score_agreement')}  "
        f"{record['pairs_per_s']:.0f} pairs/s"
    )
