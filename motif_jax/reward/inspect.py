"""`motif inspect-reward RDIR`: did the reward model capture the annotator's taste?

Shows the best and worst captions by normalised reward with how often each occurs in the
dataset, writes a histogram of rewards over unique captions (PNG), and the model's accuracy
on every label set of the dataset (non-tie pairs). A model that reads stat changes beside the
caption (MaestroMotif's skill rewards) is ranked over distinct (caption, stat changes) inputs,
each shown as the transition text the skills' rules judges read. With ``--judge`` it also shows,
for the thresholds an agent may train with (``reward.eps_quantile``), how many of the captions the rules
judge rates good, neutral and bad would pay: a goal drowns when its few good captions pay next to
hundreds of neutral ones.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.markup import escape  # captions like "[ynq]" are not markup
from rich.table import Table

from motif_jax.annotate.rules import load_table
from motif_jax.data import decode_message, open_dataset, transition_text
from motif_jax.data.transitions import DELTA_FIELDS
from motif_jax.errors import MotifError
from motif_jax.reward import load, losses
from motif_jax.reward.captions import pair_rewards_from_unique, unique_inputs
from motif_jax.reward.pairs import StatFeatures

HISTOGRAM_FILE = "reward_histogram.png"
PAY_LEVELS = (0.5, 0.8, 0.9, 0.95)  # eps_quantile values the judge report shows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="reward run directory (from `motif train-reward --out`)")
    parser.add_argument("--dataset", help="dataset to inspect (default: the training dataset, if it still exists)")
    parser.add_argument("--top", type=int, default=20, help="how many best and worst captions to list")
    parser.add_argument("--json", help="write the report as JSON here; the histogram goes beside it (.png)")
    parser.add_argument("--png", help="histogram path (default: beside --json, else RUN/reward_histogram.png)")
    parser.add_argument("--judge", help="rules judge (file or name in configs/judges/): which of its captions pay")
    parser.add_argument("--goal", default="defaultgoal", help="the judge's goal (default: defaultgoal)")


def resolve_dataset(explicit: str | None, meta: dict[str, Any]) -> Path:
    if explicit:
        return Path(explicit)
    recorded = meta.get("dataset")
    if recorded and Path(recorded).is_dir():
        return Path(recorded)
    raise MotifError(f"the training dataset {recorded!r} no longer exists; pass --dataset DIR")


def input_texts(captions: np.ndarray, features: np.ndarray | None) -> list[str]:
    """Unique inputs as text: the caption alone for a caption-only model; else the transition text a
    skill's rules judge labels (``now: "..." | depth +1``), so ``--judge`` rates what it rated. The text
    holds only what the model reads: no previous message, only the stat changes among its features."""
    texts = [str(t) for t in decode_message(captions)] if len(captions) else []
    if features is None:
        return texts
    delta = np.zeros((len(texts), len(DELTA_FIELDS)), np.int64)
    delta[:, : features.shape[1]] = np.rint(features)
    return [transition_text(None, text, d) for text, d in zip(texts, delta)]


def ranked(captions: list[str], rewards: np.ndarray, counts: np.ndarray, k: int) -> tuple[list, list]:
    """Top and bottom ``k`` [caption, reward, count] rows (ties broken by caption text, for stable output)."""
    order = sorted(range(len(captions)), key=lambda i: (-float(rewards[i]), captions[i]))
    rows = [[captions[i], float(rewards[i]), int(counts[i])] for i in order]
    return rows[:k], rows[::-1][:k]


def label_accuracy(pair_rewards: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Share of decisive (non-tie, known) pairs where the preferred member gets the larger reward."""
    target, weight = losses.preference_targets(labels)
    correct, decisive = (np.asarray(x) for x in losses.pair_correct(pair_rewards, target))
    n = float(np.sum(weight * decisive))
    return {"acc": losses.ratio(np.sum(weight * correct), n), "pairs": int(n)}


def paid_by_utility(normalised: np.ndarray, utilities: np.ndarray, thresholds: dict[float, float]) -> dict:
    """Per eps_quantile level: the threshold, and [paid, total] unique captions the judge rates good
    (utility > 0), neutral (= 0) and bad (< 0). A caption pays when its reward exceeds the threshold,
    as in the intrinsic reward."""
    normalised, utilities = np.asarray(normalised), np.asarray(utilities)
    kinds = {"good": utilities > 0, "neutral": utilities == 0, "bad": utilities < 0}
    out = {}
    for level, threshold in thresholds.items():
        paid = normalised > threshold
        out[f"{level:.2f}"] = {"threshold": float(threshold)} | {
            kind: [int(np.sum(paid & mask)), int(np.sum(mask))] for kind, mask in kinds.items()
        }
    return out


def write_histogram(path: Path, rewards: np.ndarray, quantiles: dict[float, float], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist(rewards, bins=min(60, max(10, len(rewards) // 5)), color="tab:blue", alpha=0.8)
    median = quantiles.get(0.5)
    if median is not None:
        ax.axvline(median, color="tab:red", linestyle="--", label=f"training median q0.5 = {median:.2f}")
        ax.legend()
    ax.set_xlabel("normalised reward")
    ax.set_ylabel("unique captions")
    ax.set_title(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def inspect_run(
    run_dir: str | Path, dataset: str | None = None, top: int = 20, judge: str | None = None, goal: str = "defaultgoal"
) -> tuple[dict[str, Any], np.ndarray]:
    """The report dict and the normalised reward of every unique input (for the histogram): a caption,
    or a caption with its stat changes for a model that reads them."""
    if top < 1:
        raise MotifError(f"--top must be >= 1, got {top}")
    rm = load(run_dir)
    ds = open_dataset(resolve_dataset(dataset, rm.meta))
    messages = ds.data("message")
    features = StatFeatures(ds, rm.features) if rm.features else None
    uniq, stats, counts = unique_inputs(messages, features)
    raw, normalised = rm.score(uniq, stats)
    texts = input_texts(uniq, stats)
    best, worst = ranked(texts, normalised, counts, top)
    pair_rewards = pair_rewards_from_unique(messages, uniq, normalised, features=features, unique_features=stats)
    report = {
        "run": str(Path(run_dir)),
        "step": rm.step,
        "epoch": rm.meta.get("epoch"),
        "annotator": rm.annotator,
        "dataset": str(ds.path),
        "captions": int(counts.sum()),
        "unique_captions": int(len(uniq)),  # unique (caption, stat changes) inputs when features > 0
        "features": rm.features,
        "top": best,
        "bottom": worst,
        "accuracy": {name: label_accuracy(pair_rewards, np.asarray(ds.labels(name))) for name in ds.annotators},
        "mean": float(rm.params.stats.mean),
        "std": float(rm.params.stats.std),
        "quantiles": {f"{level:.2f}": q for level, q in rm.quantiles.items()},
    }
    if judge is not None:
        table = load_table(judge, goal)
        utilities = np.array([table.utility(t) for t in texts])
        levels = {level: rm.quantiles[level] for level in PAY_LEVELS if level in rm.quantiles}
        report["judge"] = {"judge": str(judge), "goal": goal, "paid": paid_by_utility(normalised, utilities, levels)}
    return report, normalised


def print_report(report: dict[str, Any]) -> None:
    console = Console()
    for key, title in (("top", "highest reward"), ("bottom", "lowest reward")):
        inputs = "inputs (caption, stat changes)" if report.get("features") else "captions"
        table = Table(title=f"{title} ({report['unique_captions']} unique {inputs} in {report['dataset']})")
        table.add_column("reward", justify="right")
        table.add_column("count", justify="right")
        table.add_column("caption")
        for caption, reward, count in report[key]:
            table.add_row(f"{reward:+.3f}", str(count), escape(caption) if caption else "<empty>")
        console.print(table)
    for name, acc in report["accuracy"].items():
        value = "-" if acc["acc"] is None else f"{acc['acc']:.3f}"
        console.print(f"accuracy vs {name}: {value} on {acc['pairs']} non-tie pairs")
    if "judge" in report:
        j = report["judge"]
        table = Table(title=f"unique captions that pay, by the {j['judge']} judge's {j['goal']} rating (paid/all)")
        for column in ("eps_quantile", "threshold", "good", "neutral", "bad"):
            table.add_column(column, justify="right")
        for level, row in j["paid"].items():
            kinds = [f"{row[k][0]}/{row[k][1]}" for k in ("good", "neutral", "bad")]
            table.add_row(level, f"{row['threshold']:+.3f}", *kinds)
        console.print(table)


def run(args: argparse.Namespace) -> int:
    report, normalised = inspect_run(args.run, args.dataset, args.top, args.judge, args.goal)
    if args.png:
        png = Path(args.png)
    elif args.json:
        png = Path(args.json).with_suffix(".png")
    else:
        png = Path(args.run) / HISTOGRAM_FILE
    quantiles = {float(k): v for k, v in report["quantiles"].items()}
    write_histogram(png, normalised, quantiles, f"reward over unique captions ({report['annotator']})")
    report["histogram"] = str(png)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print_report(report)
    return 0
