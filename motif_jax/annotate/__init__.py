"""Stage 2 of Motif: label caption pairs with an LLM (vLLM, an OpenAI-compatible server, llama.cpp)
or with the score/return baselines. See `runner.annotate` for the loop and `cli` for `motif annotate`."""

from motif_jax.annotate.asking import Asker
from motif_jax.annotate.naming import reward_annotator, skill_annotator
from motif_jax.annotate.prompts import PromptTemplate, load_template, parse_template
from motif_jax.annotate.runner import RunOptions, RunStats, annotate
from motif_jax.annotate.verdict import parse_verdict

__all__ = [
    "Asker",
    "PromptTemplate",
    "load_template",
    "parse_template",
    "RunOptions",
    "RunStats",
    "annotate",
    "parse_verdict",
    "skill_annotator",
    "reward_annotator",
]
