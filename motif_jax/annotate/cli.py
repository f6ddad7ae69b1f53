"""`motif annotate DIR`: label a pairs dataset with an LLM or a score/return baseline.

Every option also has a config-file form: ``--config FILE`` (YAML mapping of option names, dashes or
underscores) and ``--set option=value``; explicit flags win over both.
"""

from __future__ import annotations

import argparse

from rich.console import Console

from motif_jax.config import apply_overrides, load_yaml
from motif_jax.errors import MotifError

BACKENDS = ("score", "return", "rules", "llamacpp", "openai", "vllm")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="pairs dataset directory (ours or the original Motif layout)")
    parser.add_argument("--backend", choices=BACKENDS, default="llamacpp")
    parser.add_argument("--goal", default="defaultgoal",
                        help="goal in the template: defaultgoal, zeroknowledge, combat, gold, stairs")
    parser.add_argument("--prompt", default="default",
                        help="built-in wording (default, reworded) or a YAML template file")
    parser.add_argument("--mode", choices=("generate", "logprob"), default="generate",
                        help="generate: reasoning + regex verdict; logprob: P('1') vs P('2'), soft labels")
    parser.add_argument("--both-orders", action="store_true", help="also ask with captions swapped")
    parser.add_argument("--tie-band", type=float, default=0.1,
                        help="logprob mode: |P(first) - 0.5| <= band is a tie")
    parser.add_argument("--model", help="GGUF file (llamacpp), served model name (openai), HF id or folder (vllm; see export-model)")
    parser.add_argument("--name", help="annotator name (default <model>_<goal>_<template>[_logprob][_both])")
    parser.add_argument("--judge", help="rules backend: judge YAML file or a name in configs/judges/ (default nethack)")
    work = parser.add_argument_group("work split and resumption")
    work.add_argument("--num-chunks", type=int, default=1)
    work.add_argument("--chunk", type=int, default=0)
    work.add_argument("--overwrite", action="store_true", help="start this chunk over")
    work.add_argument("--batch-size", type=int, help="pairs per block (one flush per block)")
    work.add_argument("--log-dir", help="keep every conversation as text under LOG_DIR/<name>/")
    work.add_argument("--no-progress", action="store_true")
    work.add_argument("--score-key", default="score", help="score baseline: info key to compare")
    sampling = parser.add_argument_group("sampling")
    sampling.add_argument("--temperature", type=float, default=0.1)
    sampling.add_argument("--top-p", type=float, default=0.95)
    sampling.add_argument("--top-k", type=int, default=50)
    sampling.add_argument("--max-tokens", type=int, default=512)
    sampling.add_argument("--seed", type=int, default=0)
    llama = parser.add_argument_group("llamacpp")
    llama.add_argument("--n-ctx", type=int, default=4096)
    llama.add_argument("--threads", type=int, help="CPU threads (default: all, at most 8)")
    openai = parser.add_argument_group("openai")
    openai.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    openai.add_argument("--api-key-env", default="OPENAI_API_KEY",
                        help="name of the environment variable holding the API key")
    openai.add_argument("--concurrency", type=int, default=8)
    openai.add_argument("--timeout", type=float, default=120.0)
    openai.add_argument("--max-retries", type=int, default=5)
    openai.add_argument("--prefill", action="store_true",
                        help="logprob mode: continue the answer prefix (vLLM's continue_final_message)")
    openai.add_argument("--no-top-k", action="store_true", help="do not send top_k (strict OpenAI APIs)")
    openai.add_argument("--structured-outputs", action="store_true",
                        help="generate mode: constrain replies with the template's guided_regex (vllm serve)")
    vllm = parser.add_argument_group("vllm")
    vllm.add_argument("--tensor-parallel-size", type=int, default=1)
    vllm.add_argument("--max-model-len", type=int, default=8192)
    vllm.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    vllm.add_argument("--no-structured-outputs", action="store_true")
    vllm.add_argument("--dtype", default="auto", help="model weights dtype (auto: the model's; float32 on CPU)")
    parser.add_argument("--config", help="YAML file with option values")
    parser.add_argument("--set", action="append", dest="overrides", metavar="OPTION=VALUE", default=[])


def _defaults() -> dict:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return vars(parser.parse_args(["_"]))


def apply_config(args: argparse.Namespace) -> argparse.Namespace:
    """Fill options still at their default from ``--config`` and ``--set`` (flags win)."""
    config = load_yaml(args.config) if args.config else {}
    overrides = [o.split("=", 1)[0].replace("-", "_") + o[o.find("="):] if "=" in o else o
                 for o in args.overrides]
    config = apply_overrides({k.replace("-", "_"): v for k, v in config.items()}, overrides)
    defaults = _defaults()
    for key, value in config.items():
        key = key.replace("-", "_")
        if key not in defaults or key in ("dataset", "config", "overrides"):
            raise MotifError(f"{args.config or '--set'}: unknown option {key!r}")
        if getattr(args, key) == defaults[key]:
            setattr(args, key, value)
    return args


def default_name(model: str, goal: str, template: str, mode: str, both_orders: bool) -> str:
    """Paper-style ``<model>_<goal>_<template>``; logprob and both-order labels get a suffix so they
    never land in (and resume) a file of another kind."""
    name = f"{model}_{goal}_{template}"
    return name + ("_logprob" if mode == "logprob" else "") + ("_both" if both_orders else "")


def _validate(args: argparse.Namespace) -> None:
    if args.num_chunks < 1 or not 0 <= args.chunk < args.num_chunks:
        raise MotifError(f"--chunk {args.chunk} must be in [0, --num-chunks={args.num_chunks})")
    if args.batch_size is not None and args.batch_size < 1:
        raise MotifError("--batch-size must be at least 1")
    if not 0 <= args.tie_band < 0.5:
        raise MotifError("--tie-band must be in [0, 0.5)")


def build_backend(args: argparse.Namespace, template):
    from motif_jax.annotate.backends import Sampling, make_backend

    sampling = Sampling(args.temperature, args.top_p, args.top_k, args.max_tokens, args.seed)
    if args.backend == "llamacpp":
        options = {"n_ctx": args.n_ctx, "n_threads": args.threads}
    elif args.backend == "openai":
        options = {"base_url": args.base_url, "api_key_env": args.api_key_env,
                   "concurrency": args.concurrency, "timeout": args.timeout,
                   "max_retries": args.max_retries, "prefill": args.prefill, "send_top_k": not args.no_top_k,
                   "guided_regex": template.guided_regex if args.structured_outputs else None}
    else:
        options = {"tensor_parallel_size": args.tensor_parallel_size, "max_model_len": args.max_model_len,
                   "gpu_memory_utilization": args.gpu_memory_utilization, "dtype": args.dtype,
                   "guided_regex": None if args.no_structured_outputs else template.guided_regex}
    return make_backend(args.backend, sampling, model=args.model, batch_size=args.batch_size, **options)


def run(args: argparse.Namespace) -> int:
    from motif_jax.annotate.progress import summary_table
    from motif_jax.annotate.runner import RunOptions
    from motif_jax.data import open_dataset

    args = apply_config(args)
    _validate(args)
    ds = open_dataset(args.dataset)
    console = Console()
    options = RunOptions(num_chunks=args.num_chunks, chunk=args.chunk, overwrite=args.overwrite,
                         batch_size=args.batch_size or 64, log_dir=args.log_dir,
                         progress=not args.no_progress)
    if args.backend in ("score", "return"):
        from motif_jax.annotate.baselines import annotate_baseline

        name = args.name or args.backend
        print(f"annotator: {name}", flush=True)
        stats = annotate_baseline(ds, args.backend, name, options, score_key=args.score_key)
    elif args.backend == "rules":
        stats = _run_rules(args, ds, options)
    else:
        stats = _run_llm(args, ds, options)
    console.print(summary_table(stats, llm=args.backend not in ("score", "return", "rules")))
    print(f"wrote {ds.path / 'preference' / (stats.name + '.npy')}")
    from motif_jax.annotate.agreement import describe, judge_comparisons

    for llm, judge, result in judge_comparisons(ds, stats.name):
        print(describe(llm, judge, result))
    return 0


def _run_rules(args, ds, options):
    from motif_jax.annotate.rules import annotate_rules, default_name, load_table, resolve_judge_path
    from motif_jax.annotate.runner import check_settings

    table = load_table(args.judge, args.goal)
    path = resolve_judge_path(args.judge)
    name = args.name or default_name(args.judge, args.goal)
    print(f"annotator: {name}", flush=True)
    check_settings(ds.sidecar_path(name, ".json", for_writing=True),
                   {"backend": "rules", "judge": path.name, "goal": args.goal}, overwrite=True)
    return annotate_rules(ds, table, name, options)


def _run_llm(args, ds, options):
    from motif_jax.annotate.asking import Asker
    from motif_jax.annotate.prompts import load_template
    from motif_jax.annotate.runner import annotate

    template = load_template(args.prompt, args.goal)
    backend = build_backend(args, template)
    try:
        name = args.name or default_name(backend.model_name, args.goal, template.name, args.mode,
                                         args.both_orders)
        print(f"annotator: {name}", flush=True)
        if args.batch_size is None:
            options.batch_size = backend.batch_size
        asker = Asker(backend, template, args.mode, args.both_orders, args.tie_band)
        settings = {"backend": args.backend, "model": backend.model_id, "mode": args.mode,
                    "both_orders": args.both_orders, "goal": args.goal, "template": template.name,
                    "template_hash": template.hash,
                    "tie_band": args.tie_band if args.mode == "logprob" else None}
        return annotate(ds, asker, name, settings, options)
    finally:
        backend.close()
