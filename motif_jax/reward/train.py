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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from motif_jax import parallel
from motif_jax.checkpoint import Checkpointer, abstract_like
from motif_jax.config import Layer, layer_value, merge
from motif_jax.data import open_dataset
from motif_jax.errors import MotifError, make_dir
from motif_jax.metrics import METRICS_FILE, MetricsWriter, keep_metrics
from motif_jax.numerics import all_finite
from motif_jax.progress import ProgressBar
from motif_jax.reward import losses
from motif_jax.reward.captions import MeshScorer, unique_inputs
from motif_jax.reward.checkpoints import saved_model
from motif_jax.reward.model import ModelConfig, NetParams, init_weights
from motif_jax.reward.normalise import NormStats, compute_stats, stats_to_json
from motif_jax.reward.pairs import (
    BatchReader,
    StatFeatures,
    dataset_fingerprint,
    epoch_batches,
    load_preferences,
    prefetched,
    split_pairs,
)
from motif_jax.reward.state import CHECKPOINT_DIR, META_FORMAT, make_optimizer, train_state
from motif_jax.tracking import WandbConfig, open_tracker


@dataclasses.dataclass
class TrainConfig:
    preset: str = "default"  # default | tiny: network sizes and lr/batch_size/epochs, under the file's values
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)  # the caption encoder's sizes
    lr: float = 1e-5  # Adam learning rate
    batch_size: int = 1024  # pairs per global batch (over all devices and processes)
    epochs: int = 10  # passes over the training pairs
    seed: int = 0  # split, shuffling and init seed
    val_fraction: float = 0.2  # held-out share of the labelled pairs
    keep: int = 3  # checkpoints kept
    tensorboard: bool = False  # also write TensorBoard scalars to OUT/tensorboard
    wandb: WandbConfig = dataclasses.field(default_factory=WandbConfig)  # optional Weights & Biases tracking

    def validate(self) -> None:
        if self.lr <= 0 or not math.isfinite(self.lr):
            raise MotifError(f"lr must be a positive number, got {self.lr}")
        if self.batch_size < 1 or self.epochs < 1 or self.keep < 1:
            raise MotifError("batch_size, epochs and keep must be >= 1")
        if not 0 <= self.val_fraction < 1:
            raise MotifError(f"val_fraction must be in [0, 1), got {self.val_fraction}")


# Layers over the TrainConfig defaults.
# `default` mirrors the original Motif: embedding 32, 64 channels, kernels 7-7-3-3-3-3, max-pool 3 after
# conv 1, 2 and 6 (320 features), then 320→128→256→512→1 with biases (≈307k parameters), trained with the
# paper's lr 1e-5, 1024 pairs, 10 epochs (thousands of steps on Motif's ~500k pairs). This project's
# earlier head was 320→128→128→1 without an output bias (`--set model.mlp=[128,128] --set
# model.head_bias=false`); checkpoints store their sizes, so ones trained with it keep loading.
# `tiny` reads the first 128 bytes (NetHack's top line is 80 columns), for tests and CPUs; it must learn in
# 3 epochs on ~2000 pairs, i.e. ~40 steps, where a 1e-5 step barely moves Adam's weights: lr 1e-3, 128 pairs.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {"model": {"head_bias": True}, "lr": 1e-5, "batch_size": 1024, "epochs": 10},
    "tiny": {
        "model": {
            "max_len": 128,
            "embed_dim": 16,
            "channels": 32,
            "kernels": [7, 7, 3],
            "pool_after": [True, True, True],
            "mlp": [32],
        },
        "lr": 1e-3,
        "batch_size": 128,
        "epochs": 3,
    },
}


def resolve_config(layers: Sequence[Layer]) -> TrainConfig:
    """Defaults < the preset the highest of ``layers`` names < ``layers``, type-checked and validated."""
    name = layer_value(layers, "preset", TrainConfig.preset)
    if not isinstance(name, str) or name not in PRESETS:
        raise MotifError(f"preset {name!r} unknown; choose from {', '.join(PRESETS)}")
    config = merge(TrainConfig, [(f"preset {name}", PRESETS[name]), *layers])
    config.validate()
    return config


def preset_config(preset: str, **overrides) -> TrainConfig:
    return resolve_config([("arguments", {"preset": preset, **overrides})])


# ---------------------------------------------------------------------------------------------------------
# The jitted steps.


@functools.lru_cache(maxsize=8)
def make_train_step(model: ModelConfig, lr: float, mesh) -> Callable:
    """state, batch -> state, sums. One jit over the mesh: replicated state, batch sharded on ``data``.
    Cached, so a resumed or repeated run in the same process reuses the compiled step."""
    tx = make_optimizer(lr)

    def step(state, batch):
        def loss_fn(weights):
            rewards = losses.sequence_reward(NetParams(weights, model)(batch["messages"], batch.get("features")))
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
        rewards = losses.sequence_reward(NetParams(weights, model)(batch["messages"], batch.get("features")))
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


def open_metrics(out_dir: Path, epoch: int, config: TrainConfig, last: dict[str, Any] | None) -> MetricsWriter | None:
    """Process 0's metrics writer (None on the others), after dropping the epochs a resume from ``epoch``
    replays and putting back the restored checkpoint's own record ``last`` if a kill came between its save
    and its line."""
    if jax.process_index() != 0:
        return None

    def put_back(kept: list[dict[str, Any]]) -> list[dict[str, Any]]:
        missing = last is not None and last.get("epoch") == epoch and all(r["epoch"] != epoch for r in kept)
        return [last] if missing else []

    keep_metrics(out_dir / METRICS_FILE, lambda r: isinstance(r.get("epoch"), int) and r["epoch"] <= epoch, put_back)
    tracker = open_tracker(config.wandb, out_dir, "train-reward", dataclasses.asdict(config))
    return MetricsWriter(out_dir, "epoch", config.tensorboard, tracker)


def checkpoint_meta(
    config: TrainConfig, stats: NormStats, *, ds, annotator: str, fingerprint: str, epoch: int, metrics: dict
) -> dict[str, Any]:
    return {
        "format": META_FORMAT,
        "config": dataclasses.asdict(config),
        "model": dataclasses.asdict(config.model),
        "normalisation": stats_to_json(stats),
        "annotator": annotator,
        "dataset": str(Path(ds.path).absolute()),
        "dataset_fingerprint": fingerprint,
        "seq_len": ds.seq_len,
        "epoch": epoch,
        "metrics": metrics,
    }


def _comparable(config_dict: dict[str, Any]) -> dict[str, Any]:
    """Settings that must match to resume (more epochs, other keep/tensorboard/wandb are fine; the network is
    compared through the checkpoint's ``model``, which runs saved before it was part of the config have)."""
    return {k: v for k, v in config_dict.items() if k not in ("epochs", "keep", "tensorboard", "wandb", "model")}


# ---------------------------------------------------------------------------------------------------------
# The training run.


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
    title: str = "reward model",
) -> list[dict[str, Any]]:
    """Train (or resume) and return this call's per-epoch metrics. Every epoch ends in a checkpoint
    under ``out_dir/checkpoints`` holding weights, optimizer state and normalisation stats.

    With several processes every one must call this (each feeds its rows and joins every save);
    only process 0 logs, shows progress and writes metrics, so a job prints each line once."""
    if jax.process_index() != 0:
        progress, log = False, None
    config.validate()
    return RewardTraining(open_dataset(dataset), annotator, config, parallel.make_mesh(devices), log).run(
        Path(out_dir), resume, progress, title
    )


class RewardTraining:
    """One run's fixed parts: settings, the split and its batch readers, the unique training captions
    (for the normalisation stats), the compiled steps; ``run`` trains the epochs a checkpoint leaves.
    A model that reads stat changes (``model.features``) gets them from data/delta.npy beside each caption."""

    def __init__(self, ds, annotator: str, config: TrainConfig, mesh, log: Callable[[str], None] | None):
        self.ds, self.annotator, self.config, self.mesh, self.log = ds, annotator, config, mesh, log
        prefs = load_preferences(ds, annotator)
        self.train_rows, val_rows = split_pairs(prefs.weight, config.val_fraction, config.seed)
        if len(self.train_rows) == 0:
            raise MotifError(
                f"{ds.path}: only {int(prefs.weight.sum())} usable pair(s); none left for training after the split"
            )
        if config.batch_size % mesh.devices.size:
            raise MotifError(
                f"batch_size {config.batch_size} must be divisible by the {mesh.devices.size} devices of the mesh"
            )
        features = StatFeatures(ds, config.model.features) if config.model.features else None
        self.fingerprint = dataset_fingerprint(ds, annotator, features=features)
        messages = ds.data("message")
        self.read_train = BatchReader(messages, prefs, mesh, with_agreement=False, features=features)
        self.read_val = BatchReader(messages, prefs, mesh, with_agreement=True, features=features)
        self.val_batches = epoch_batches(val_rows, config.batch_size, None, 0)[: -(-len(val_rows) // config.batch_size)]
        self.captions, self.features, self.counts = unique_inputs(messages, features, self.train_rows)
        self.train_step = make_train_step(config.model, config.lr, mesh)
        self.eval_step = make_eval_step(config.model, mesh)
        self.scorer = MeshScorer(mesh)

    def run(self, out_dir: Path, resume: bool, progress: bool, title: str = "reward model") -> list[dict[str, Any]]:
        make_dir(out_dir)
        history = []
        with Checkpointer(out_dir / CHECKPOINT_DIR, max_to_keep=self.config.keep) as ckpt:
            state, start_epoch, last = self.restore(ckpt, resume)
            metrics_log = open_metrics(out_dir, start_epoch, self.config, last)
            try:
                with ProgressBar(title, 0, "batches", enabled=progress, transient=True) as bar:
                    for epoch in range(start_epoch + 1, self.config.epochs + 1):
                        state, record, stats = self.epoch(state, epoch, bar, ckpt)
                        meta = checkpoint_meta(
                            self.config,
                            stats,
                            ds=self.ds,
                            annotator=self.annotator,
                            fingerprint=self.fingerprint,
                            epoch=epoch,
                            metrics=record,
                        )
                        ckpt.save(record["step"], {"state": state}, meta)
                        if metrics_log is not None:
                            metrics_log.write(record)
                        history.append(record)
                        if self.log:
                            self.log(_summary_line(record, self.config.epochs))
            finally:
                if metrics_log is not None:
                    metrics_log.close()
        return history

    def restore(self, ckpt: Checkpointer, resume: bool) -> tuple[dict[str, Any], int, dict[str, Any] | None]:
        """(state, epochs done, the restored checkpoint's metrics record): fresh, or the newest readable
        checkpoint of the same data, labels and settings."""
        config = self.config
        state = parallel.replicate(train_state(init_weights(config.model, config.seed), config.lr), self.mesh)
        if ckpt.latest_step() is None:
            return state, 0, None
        if not resume:
            raise MotifError(
                f"{ckpt.directory.parent} already holds reward checkpoints; pass --resume to continue, "
                "or choose another --out"
            )
        target = abstract_like(state, parallel.replicated(self.mesh))

        def load(step: int) -> dict[str, Any]:
            meta = ckpt.restore_meta(step)
            where = ckpt.directory.parent
            if meta.get("dataset_fingerprint") != self.fingerprint or meta.get("annotator") != self.annotator:
                raise MotifError(
                    f"{where}: the checkpoint was trained on other data or labels; cannot resume "
                    f"on {self.ds.path} / {self.annotator!r}"
                )
            saved = _comparable(meta["config"])
            if saved != _comparable(dataclasses.asdict(config)) or saved_model(meta) != config.model:
                raise MotifError(f"{where}: the checkpoint used other settings ({saved}); resume with the same ones")
            return ckpt.restore_items(step, {"state": target})

        resumed, _ = ckpt.restore_newest(load, set_aside=True)
        state, meta = resumed["state"], resumed["meta"]
        if self.log:
            self.log(f"resuming from epoch {int(meta['epoch'])} (step {int(state['step'])})")
        return state, int(meta["epoch"]), meta.get("metrics")

    def epoch(self, state, epoch: int, bar, ckpt: Checkpointer):
        """Train one epoch, evaluate, and compute the normalisation stats: (state, metrics record, stats)."""
        started = time.perf_counter()
        batches = epoch_batches(self.train_rows, self.config.batch_size, self.config.seed, epoch)
        bar.restart(f"epoch {epoch}/{self.config.epochs}", len(batches))
        totals: dict[str, Any] = {}
        for i, batch in enumerate(prefetched(self.read_train, batches)):
            state, sums = self.train_step(state, batch)
            totals = _sum_metrics(totals, sums)
            if i % 20 == 0:  # an occasional host sync for the bar, not one per step
                bar.update(info=f"loss {float(sums['loss_sum']) / max(float(sums['weight']), 1.0):.4f}")
            bar.advance()
        train = {k: float(v) for k, v in totals.items()}
        train_seconds = time.perf_counter() - started
        if not math.isfinite(train["loss_sum"]) or not bool(all_finite(state["weights"])):
            raise MotifError(
                f"training diverged: loss is NaN/inf in epoch {epoch}; nothing saved for it "
                f"(latest checkpoint: step {ckpt.latest_step()}); lower --lr"
            )
        totals = {}
        for batch in prefetched(self.read_val, self.val_batches):
            totals = _sum_metrics(totals, self.eval_step(state["weights"], batch))
        val = {k: float(v) for k, v in totals.items()}
        raw = self.scorer(NetParams(state["weights"], self.config.model), self.captions, self.features)
        stats = compute_stats(raw, self.counts)
        record = {
            "epoch": epoch,
            "step": int(state["step"]),
            "train_loss": losses.ratio(train["loss_sum"], train["weight"]),
            "train_acc": losses.ratio(train["correct"], train["decisive"]),
            "val_loss": losses.ratio(val.get("loss_sum", 0.0), val.get("weight", 0.0)),
            "val_acc": losses.ratio(val.get("correct", 0.0), val.get("decisive", 0.0)),
            "score_agreement": losses.ratio(val.get("agree_correct", 0.0), val.get("agree_count", 0.0)),
            "train_pairs": int(len(self.train_rows)),
            "val_pairs": int(np.sum(self.val_batches >= 0)),
            "pairs_per_s": len(self.train_rows) / train_seconds,
            "epoch_seconds": time.perf_counter() - started,
            "reward_mean": float(stats.mean),
            "reward_std": float(stats.std),
            "unique_train_captions": int(len(self.captions)),
        }
        return state, record, stats


def _summary_line(record: dict[str, Any], epochs: int) -> str:
    def fmt(key):
        value = record.get(key)
        return "-" if value is None else f"{value:.4f}"

    return (
        f"epoch {record['epoch']}/{epochs}  train_loss {fmt('train_loss')}  train_acc {fmt('train_acc')}  "
        f"val_loss {fmt('val_loss')}  val_acc {fmt('val_acc')}  score_agreement {fmt('score_agreement')}  "
        f"{record['pairs_per_s']:.0f} pairs/s"
    )
