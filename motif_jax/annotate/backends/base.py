"""What every LLM backend provides, and the sampling settings they share.

Conversations are lists of ``{"role", "content"}`` messages. In logprob mode the last message is an
assistant *prefix* (the start of the answer) that the engine must continue rather than answer.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Protocol

from motif_jax.annotate.prompts import Conversation


@dataclasses.dataclass(frozen=True)
class Sampling:
    """The paper's sampling settings; ``seed`` makes llama.cpp and vLLM runs repeatable."""

    temperature: float = 0.1
    top_p: float = 0.95
    top_k: int = 50
    max_tokens: int = 512
    seed: int = 0


class Backend(Protocol):
    """One interface for every engine; `verdict_probs` is optional (``supports_logprob``)."""

    model_name: str  # short, for annotator names
    model_id: str  # exact (file name with quantisation, or model@server), for cache keys
    supports_logprob: bool
    batch_size: int

    def complete(self, conversations: list[Conversation]) -> list[str]:
        """The assistant's reply to each conversation."""

    def verdict_probs(self, conversations: list[Conversation]) -> list[tuple[float, float]]:
        """(P("1"), P("2")) as the next token after each conversation's assistant prefix."""

    def close(self) -> None:
        """Release the engine (threads, connections, memory)."""


def short_model_name(model: str) -> str:
    """A file or model id as an annotator-name part: ``SmolLM2-135M-Instruct.Q4_1.gguf`` ->
    ``smollm2-135m-instruct``; ``meta-llama/Llama-3.1-8B`` -> ``llama-3.1-8b``."""
    name = model.rstrip("/").rsplit("/", 1)[-1]
    name = re.sub(r"\.gguf$", "", name, flags=re.IGNORECASE)
    name = re.sub(r"[.-](q\d\w*|f16|f32|bf16)$", "", name, flags=re.IGNORECASE)
    name = re.sub(r"[^a-z0-9.-]+", "-", name.lower()).strip("-")
    return name or "model"
