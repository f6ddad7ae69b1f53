"""`motif benchmark annotate DIR`: how much deduplication saves, and annotation pairs/s per mode.

Deduplication is measured over the whole dataset (no LLM needed). Throughput runs the real loop
(dedup, in-memory cache, batched backend calls) on the first ``--pairs`` pairs without writing any
label file, so benchmarking never touches the dataset's annotations.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from motif_jax.annotate.asking import MODES, Asker
from motif_jax.annotate.cache import AnswerCache
from motif_jax.annotate.pairs import canonical_order, normalise
from motif_jax.annotate.runner import BlockAnnotator, RunStats, pair_captions
from motif_jax.errors import MotifError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="pairs dataset directory")
    parser.add_argument("--backend", choices=("llamacpp", "openai", "vllm", "none"), default="llamacpp",
                        help="'none' measures deduplication only")
    parser.add_argument("--modes", default="logprob,generate", help="comma-separated verdict modes")
    parser.add_argument("--pairs", type=int, default=100, help="pairs annotated per mode for pairs/s")
    parser.add_argument("--goal", default="defaultgoal")
    parser.add_argument("--prompt", default="default")
    parser.add_argument("--model")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--batch-size", type=int, help="pairs per block")
    parser.add_argument("--threads", type=int, help="llamacpp CPU threads")
    parser.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--tensor-parallel-size", type=int, default=1)
    parser.add_argument("--json", help="write the results to this JSON file")


def dedup_counts(captions: list[tuple[str, str]]) -> dict:
    """How many pairs need an LLM call at all, with identical captions and unordered repeats removed."""
    identical = sum(normalise(a) == normalise(b) for a, b in captions)
    unique = {canonical_order(a, b)[:2] for a, b in captions if normalise(a) != normalise(b)}
    total = len(captions)
    return {"pairs": total, "identical_pairs": identical, "unique_pairs": len(unique),
            "unique_pair_ratio": len(unique) / total if total else 0.0,
            "llm_calls_saved": total - len(unique),
            "unique_captions": len({normalise(c) for pair in captions for c in pair})}


def all_captions(ds, block: int = 4096) -> list[tuple[str, str]]:
    captions: list[tuple[str, str]] = []
    for begin in range(0, len(ds), block):
        captions += pair_captions(ds, np.arange(begin, min(len(ds), begin + block)))
    return captions


def measure_mode(backend, template, mode: str, captions: list[tuple[str, str]], batch_size: int) -> dict:
    """Annotate ``captions`` as the real loop would (without files) and time it."""
    stats = RunStats(name=f"benchmark-{mode}")
    block = BlockAnnotator(Asker(backend, template, mode), AnswerCache(None), backend.model_id, stats)
    start, cpu_start = time.perf_counter(), time.process_time()
    counts = np.zeros(4, dtype=np.int64)
    for begin in range(0, len(captions), batch_size):
        part = captions[begin:begin + batch_size]
        labels, _ = block.label(np.arange(begin, begin + len(part)), part)
        counts += np.bincount(labels, minlength=4)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return {"mode": mode, "pairs": len(captions), "seconds": seconds, "cpu_seconds": cpu_seconds,
            "pairs_per_second": len(captions) / seconds if seconds > 0 else 0.0,
            "llm_requests": stats.requests, "unique_pairs_asked": stats.asked,
            "seconds_per_request": seconds / stats.requests if stats.requests else 0.0,
            "parse_failures": stats.failed, "label_counts": counts.tolist()}


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from motif_jax.annotate.backends import Sampling, make_backend
    from motif_jax.annotate.prompts import load_template
    from motif_jax.data import open_dataset

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if bad := [m for m in modes if m not in MODES]:
        raise MotifError(f"--modes: unknown mode {bad[0]!r}; expected some of {', '.join(MODES)}")
    ds = open_dataset(args.dataset)
    captions = all_captions(ds)
    result = {"dataset": str(ds.path), "dedup": dedup_counts(captions), "backend": args.backend, "modes": []}
    if args.backend != "none":
        template = load_template(args.prompt, args.goal)
        options = {"llamacpp": {"n_threads": args.threads},
                   "openai": {"base_url": args.base_url, "api_key_env": args.api_key_env,
                              "concurrency": args.concurrency},
                   "vllm": {"tensor_parallel_size": args.tensor_parallel_size,
                            "guided_regex": template.guided_regex}}[args.backend]
        backend = make_backend(args.backend, Sampling(max_tokens=args.max_tokens), model=args.model,
                               batch_size=args.batch_size, **options)
        try:
            result["model"] = backend.model_name
            for mode in modes:
                result["modes"].append(measure_mode(backend, template, mode, captions[:args.pairs],
                                                    args.batch_size or backend.batch_size))
        finally:
            backend.close()
    table = Table(title="annotate benchmark")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in result["dedup"].items():
        table.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
    for m in result["modes"]:
        table.add_row(f"{m['mode']}: pairs/s", f"{m['pairs_per_second']:.2f}")
        table.add_row(f"{m['mode']}: s per LLM request", f"{m['seconds_per_request']:.2f}")
        table.add_row(f"{m['mode']}: CPU s (this process)", f"{m['cpu_seconds']:.1f}")
    Console().print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
