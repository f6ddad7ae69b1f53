"""`motif annotate DIR`: label a pairs dataset with an LLM or a score/return baseline; with ``--skills FILE``
once per skill of a MaestroMotif skills file (see `motif_jax.annotate.skills`).

Every option also has a config-file form: ``--config FILE`` (YAML mapping of option names, dashes or
underscores) and ``--set option=value``: the AnnotateConfig defaults < file < ``--set`` < flags.
"""

from __future__ import annotations

import argparse
import dataclasses

from rich.console import Console

from motif_jax.annotate import skills
from motif_jax.annotate.agreement import describe, judge_comparisons, skill_comparisons
from motif_jax.annotate.asking import Asker
from motif_jax.annotate.backends import LLM_BACKENDS, make_backend
from motif_jax.annotate.backends.config import BackendConfig, add_backend_arguments
from motif_jax.annotate.baselines import annotate_baseline
from motif_jax.annotate.engines import EnginePool
from motif_jax.annotate.naming import llm_annotator
from motif_jax.annotate.progress import skills_table, summary_table
from motif_jax.annotate.prompts import load_template
from motif_jax.annotate.rules import annotate_rules, load_table, resolve_judge_path
from motif_jax.annotate.rules import default_name as rules_name
from motif_jax.annotate.runner import RunOptions, annotate, check_settings
from motif_jax.config import add_keys_help, add_set_argument, merge, no_preset, stage_layers
from motif_jax.data import open_dataset
from motif_jax.errors import MotifError

BACKENDS = ("score", "return", "rules", "llamacpp", "openai", "vllm")


@dataclasses.dataclass
class AnnotateConfig(BackendConfig):
    backend: str = "llamacpp"  # score | return | rules | llamacpp | openai | vllm
    goal: str = "defaultgoal"  # goal in the template: defaultgoal, zeroknowledge, combat, gold, stairs
    prompt: str = "default"  # built-in wording (default, reworded) or a YAML template file
    mode: str = "generate"  # generate: reasoning + regex verdict; logprob: P('1') vs P('2'), soft labels
    both_orders: bool = False  # also ask with captions swapped
    tie_band: float = 0.1  # logprob mode: |P(first) - 0.5| <= band is a tie
    name: str | None = None  # annotator name (default <model>_<goal>_<template>[_logprob][_both])
    judge: str | None = None  # rules backend: judge YAML file or a name in configs/judges/ (default nethack)
    soft: float = 0.0  # rules backend, > 0: also soft labels sigmoid(utility difference / soft); 0: hard only
    skills: str | None = None  # skills file: label once per skill, its description the goal (--goal, --name unused)
    num_chunks: int = 1  # split the pairs into this many chunks
    chunk: int = 0  # the chunk this run labels
    overwrite: bool = False  # start this chunk over
    engines: int = 1  # LLM engines labelling at once, as Ray actors (see docs/annotate.md)
    ray_address: str | None = None  # Ray cluster of the engines (default: $RAY_ADDRESS, else a local one)
    gpus_per_engine: float | None = None  # default: --tensor-parallel-size for vllm on GPUs, else 0
    engine_restarts: int = 1  # times Ray restarts a dead engine before its work goes to the others
    batch_size: int | None = None  # pairs per block, one flush each (per engine with --engines); default: the backend's
    log_dir: str | None = None  # keep every conversation as text under LOG_DIR/<name>/
    no_progress: bool = False  # no progress bar
    score_key: str = "score"  # score baseline: info key to compare
    concurrency: int = 8  # openai: requests in flight
    prefill: bool = False  # openai, logprob mode: continue the answer prefix (vLLM's continue_final_message)
    structured_outputs: bool = False  # openai, generate mode: constrain replies with the template's guided_regex
    no_structured_outputs: bool = False  # vllm: do not constrain replies with the template's guided_regex


CHOICES = {"backend": BACKENDS, "mode": ("generate", "logprob")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags default to None (not given): their defaults live in AnnotateConfig, under file and --set."""
    add_keys_help(parser, AnnotateConfig, "annotate")
    parser.add_argument("dataset", help="pairs dataset directory (ours or the original Motif layout)")
    parser.add_argument("--backend", choices=BACKENDS, help="default llamacpp")
    parser.add_argument("--goal", help="goal in the template: defaultgoal, zeroknowledge, combat, gold, stairs")
    parser.add_argument("--prompt", help="built-in wording (default, reworded) or a YAML template file")
    parser.add_argument(
        "--mode",
        choices=("generate", "logprob"),
        help="generate (default): reasoning + regex verdict; logprob: P('1') vs P('2'), soft labels",
    )
    parser.add_argument("--both-orders", action="store_true", default=None, help="also ask with captions swapped")
    parser.add_argument("--tie-band", type=float, help="logprob mode: |P(first) - 0.5| <= band is a tie (0.1)")
    parser.add_argument(
        "--model", help="GGUF file (llamacpp), served model name (openai), HF id or folder (vllm; see export-model)"
    )
    parser.add_argument("--name", help="annotator name (default <model>_<goal>_<template>[_logprob][_both])")
    parser.add_argument("--judge", help="rules backend: judge YAML file or a name in configs/judges/ (default nethack)")
    parser.add_argument(
        "--soft",
        type=float,
        metavar="T",
        help="rules backend: also write soft labels P(first) = sigmoid((u_first - u_second) / T), so reward "
        "models learn how much better a caption is, not only which (default 0: hard labels only, as Motif)",
    )
    parser.add_argument(
        "--skills",
        help="skills file (or a shipped name, e.g. nethack): label once per skill, the skill's description "
        "being the goal; one label file per skill (--goal and --name are not used)",
    )
    work = parser.add_argument_group("work split and resumption")
    work.add_argument("--num-chunks", type=int)
    work.add_argument("--chunk", type=int)
    work.add_argument("--overwrite", action="store_true", default=None, help="start this chunk over")
    work.add_argument("--engines", type=int, help="LLM engines labelling at once, as Ray actors (1)")
    work.add_argument("--ray-address", help="Ray cluster of the engines (default: $RAY_ADDRESS, else a local one)")
    work.add_argument("--gpus-per-engine", type=float, help="default: --tensor-parallel-size for vllm on GPUs, else 0")
    work.add_argument("--engine-restarts", type=int, help="Ray restarts of a dead engine before its work moves (1)")
    work.add_argument("--batch-size", type=int, help="pairs per block (one flush per block; per engine with --engines)")
    work.add_argument("--log-dir", help="keep every conversation as text under LOG_DIR/<name>/")
    work.add_argument("--no-progress", action="store_true", default=None)
    work.add_argument("--score-key", help="score baseline: info key to compare")
    groups = add_backend_arguments(parser)
    groups["openai"].add_argument("--concurrency", type=int)
    groups["openai"].add_argument(
        "--prefill",
        action="store_true",
        default=None,
        help="logprob mode: continue the answer prefix (vLLM's continue_final_message)",
    )
    groups["openai"].add_argument(
        "--structured-outputs",
        action="store_true",
        default=None,
        help="generate mode: constrain replies with the template's guided_regex (vllm serve)",
    )
    groups["vllm"].add_argument("--no-structured-outputs", action="store_true", default=None)
    parser.add_argument("--config", help="YAML file with option values (the keys listed below)")
    add_set_argument(parser, "override an option, dashes or underscores (repeatable)")


def resolve_config(
    file: str | None = None, overrides: list[str] | None = None, flags: dict | None = None
) -> AnnotateConfig:
    """AnnotateConfig defaults < file < ``--set`` < flags; option names may use dashes or underscores."""
    layers = [
        (where, {key.replace("-", "_"): value for key, value in data.items()})
        for where, data in stage_layers(file, [_underscored(o) for o in overrides or []], flags)
    ]
    return merge(AnnotateConfig, layers, CHOICES)


def _underscored(override: str) -> str:
    key, sep, value = override.partition("=")
    return key.replace("-", "_") + sep + value


def config_from_args(args: argparse.Namespace) -> AnnotateConfig:
    names = [f.name for f in dataclasses.fields(AnnotateConfig)]
    return resolve_config(args.config, args.overrides, {name: getattr(args, name) for name in names})


def show_config(file: str | None, preset: str | None, overrides: list[str]) -> AnnotateConfig:
    no_preset("annotate", preset)
    return resolve_config(file, overrides)


def default_name(model: str, goal: str, template: str, mode: str, both_orders: bool) -> str:
    """Paper-style ``<model>_<goal>_<template>[_logprob][_both]`` (see `naming.llm_annotator`)."""
    return llm_annotator(model, goal, template, mode, both_orders)


def _validate(c: AnnotateConfig) -> None:
    if c.num_chunks < 1 or not 0 <= c.chunk < c.num_chunks:
        raise MotifError(f"--chunk {c.chunk} must be in [0, --num-chunks={c.num_chunks})")
    if c.batch_size is not None and c.batch_size < 1:
        raise MotifError("--batch-size must be at least 1")
    if not 0 <= c.tie_band < 0.5:
        raise MotifError("--tie-band must be in [0, 0.5)")
    if c.engines < 1 or c.engine_restarts < 0 or (c.gpus_per_engine or 0) < 0:
        raise MotifError("--engines must be at least 1, --engine-restarts and --gpus-per-engine at least 0")
    if c.skills and c.backend in ("score", "return"):
        raise MotifError(f"--skills labels each skill with a judge or an LLM; the {c.backend} baseline has no goal")
    if c.skills and c.name:
        raise MotifError("--skills names each skill's labels itself (<annotator>_<skill>...); leave out --name")
    if c.soft < 0 or (c.soft > 0 and c.backend != "rules"):
        raise MotifError(f"--soft {c.soft:g}: soft rules labels need --backend rules and T > 0 (0: hard labels)")
    if _pooled(c) and c.backend not in LLM_BACKENDS:
        raise MotifError(f"--engines and --ray-address run LLM engines ({', '.join(LLM_BACKENDS)}), not {c.backend}")


def _pooled(c: AnnotateConfig) -> bool:
    return c.engines > 1 or c.ray_address is not None


def build_backend(c: AnnotateConfig, template):
    sampling = c.sampling()
    options = c.backend_options(concurrency=c.concurrency)
    if c.backend == "openai":
        options["prefill"] = c.prefill
        options["guided_regex"] = template.guided_regex if c.structured_outputs else None
    elif c.backend == "vllm":
        options["guided_regex"] = None if c.no_structured_outputs else template.guided_regex
    if _pooled(c):
        return EnginePool(
            c.engines,
            c.backend,
            sampling,
            model=c.model,
            batch_size=c.batch_size,
            options=options,
            address=c.ray_address,
            gpus_per_engine=c.gpus_per_engine,
            restarts=c.engine_restarts,
        )
    return make_backend(c.backend, sampling, model=c.model, batch_size=c.batch_size, **options)


def run(args: argparse.Namespace) -> int:
    c = config_from_args(args)
    _validate(c)
    c.check_api_key(named=args.api_key_env is not None)
    ds = open_dataset(args.dataset)
    console = Console()
    options = RunOptions(
        num_chunks=c.num_chunks,
        chunk=c.chunk,
        overwrite=c.overwrite,
        batch_size=c.batch_size or 64,
        log_dir=c.log_dir,
        progress=not c.no_progress,
    )
    if c.skills:
        return _run_skills(c, ds, options, console)
    if c.backend in ("score", "return"):
        name = c.name or c.backend
        print(f"annotator: {name}", flush=True)
        stats = annotate_baseline(ds, c.backend, name, options, score_key=c.score_key)
    elif c.backend == "rules":
        stats = _run_rules(c, ds, options)
    else:
        stats = _run_llm(c, ds, options)
    console.print(summary_table(stats, llm=c.backend not in ("score", "return", "rules")))
    print(f"wrote {ds.path / 'preference' / (stats.name + '.npy')}")
    for llm, judge, result in judge_comparisons(ds, stats.name):
        print(describe(llm, judge, result))
    return 0


def _run_rules(c: AnnotateConfig, ds, options):
    table = load_table(c.judge, c.goal)
    path = resolve_judge_path(c.judge)
    name = c.name or rules_name(c.judge, c.goal, c.soft)
    print(f"annotator: {name}", flush=True)
    settings = {"backend": "rules", "judge": path.name, "goal": c.goal} | ({"soft": c.soft} if c.soft else {})
    check_settings(ds.sidecar_path(name, ".json", for_writing=True), settings, overwrite=True)
    return annotate_rules(ds, table, name, options, soft=c.soft)


def _run_llm(c: AnnotateConfig, ds, options):
    template = load_template(c.prompt, c.goal)
    backend = build_backend(c, template)
    try:
        name = c.name or default_name(backend.model_name, c.goal, template.name, c.mode, c.both_orders)
        print(f"annotator: {name}", flush=True)
        if c.batch_size is None or _pooled(c):  # a pool's block: --batch-size pairs per engine
            options.batch_size = backend.batch_size
        asker = Asker(backend, template, c.mode, c.both_orders, c.tie_band)
        settings = {
            "backend": c.backend,
            "model": backend.model_id,
            "mode": c.mode,
            "both_orders": c.both_orders,
            "goal": c.goal,
            "template": template.name,
            "template_hash": template.hash,
            "tie_band": c.tie_band if c.mode == "logprob" else None,
        }
        return annotate(ds, asker, name, settings, options)
    finally:
        backend.close()


def _run_skills(c: AnnotateConfig, ds, options: RunOptions, console: Console) -> int:
    """Every skill of the skills file, one label file each, then the agreement per skill."""
    skill_set = skills.load_skill_set(c.skills)
    text = "transitions" if ds.has_transitions else "captions (no transitions in this dataset)"
    print(f"skills: {', '.join(skill_set.names)} from {skill_set.path}; the annotator reads {text}", flush=True)
    if c.backend == "rules":
        done = skills.annotate_skills_rules(ds, skill_set, c.judge, options, soft=c.soft)
    else:
        templates = skills.skill_templates(skill_set, ds, c.prompt)
        backend = build_backend(c, next(iter(templates.values())))  # once, for every skill
        try:
            if c.batch_size is None or _pooled(c):
                options.batch_size = backend.batch_size
            base = {
                "backend": c.backend,
                "model": backend.model_id,
                "mode": c.mode,
                "both_orders": c.both_orders,
                "tie_band": c.tie_band if c.mode == "logprob" else None,
            }
            done = skills.annotate_skills_llm(ds, templates, backend, base, c.mode, c.both_orders, c.tie_band, options)
        finally:
            backend.close()
    console.print(skills_table(done, llm=c.backend != "rules"))
    print(f"wrote {len(done)} label files in {ds.path / 'preference'}")
    for skill in skill_set.names:
        for llm, judge, result in skill_comparisons(ds, skill):
            print(f"skill {skill}: {describe(llm, judge, result)}")
    return 0


def annotate_argv(
    dataset,
    name: str | None,
    *,
    goal: str | None,
    backend: str = "rules",
    judge: str | None = None,
    mode: str | None = None,
    num_chunks: int = 1,
    extra=(),
    progress: bool = True,
) -> list[str]:
    """The `motif annotate` command line of a pipeline step; with ``num_chunks`` > 1 it labels the first chunk."""
    argv = ["annotate", str(dataset), "--backend", backend] + (["--judge", judge] if judge else [])
    argv += (["--goal", goal] if goal else []) + (["--mode", mode] if mode else []) + (["--name", name] if name else [])
    argv += ["--num-chunks", str(num_chunks), "--chunk", "0"] if num_chunks > 1 else []
    return argv + list(extra) + ([] if progress else ["--no-progress"])
