"""LLM engines behind one interface (see `base.Backend`); each is imported only when chosen."""

from __future__ import annotations

from motif_jax.annotate.backends.base import Backend, Sampling, short_model_name

LLM_BACKENDS = ("llamacpp", "openai", "vllm")

__all__ = ["Backend", "Sampling", "short_model_name", "LLM_BACKENDS", "make_backend"]


def make_backend(
    kind: str, sampling: Sampling, *, model: str | None = None, batch_size: int | None = None, **options
) -> Backend:
    """Build backend ``kind``; ``options`` are that backend's own keyword arguments."""
    extra = {"batch_size": batch_size} if batch_size else {}
    if kind == "llamacpp":
        from motif_jax.annotate.backends.llamacpp import LlamaCppBackend

        return LlamaCppBackend(model, sampling, **options, **extra)
    if kind == "openai":
        from motif_jax.annotate.backends.openai import OpenAIBackend

        return OpenAIBackend(model=model, sampling=sampling, **options, **extra)
    if kind == "vllm":
        from motif_jax.annotate.backends.vllm import VLLMBackend

        return VLLMBackend(model, sampling, **options, **extra)
    raise ValueError(f"unknown backend {kind!r}; expected one of {LLM_BACKENDS}")
