"""Offline batch inference on GPUs with vLLM (``vllm.LLM.chat``), imported only when used.

Structured outputs constrain each generated reply to the template's ``guided_regex`` (free text
without braces, then the verdict), so every reply that fits in ``max_tokens`` parses. Prefix caching
shares the system prompt and template text across the batch. The request-building parts are pure
functions so they are tested without vLLM installed.
"""

from __future__ import annotations

from motif_jax.annotate.backends.base import Sampling, short_model_name
from motif_jax.annotate.prompts import Conversation
from motif_jax.annotate.verdict import probs_from_top_logprobs
from motif_jax.errors import MotifError

TOP_LOGPROBS = 20


def sampling_kwargs(sampling: Sampling, mode: str) -> dict:
    """Keyword arguments of ``vllm.SamplingParams`` for one verdict mode."""
    kwargs = {"temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": sampling.top_k,
              "max_tokens": sampling.max_tokens, "seed": sampling.seed}
    if mode == "logprob":
        kwargs.update(max_tokens=1, logprobs=TOP_LOGPROBS)
    return kwargs


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


def build_sampling_params(vllm_module, sampling: Sampling, mode: str, guided_regex: str | None):
    """``SamplingParams`` with structured outputs under the current name (vLLM >= 0.11:
    ``structured_outputs=StructuredOutputsParams``) or the older one (``guided_decoding=
    GuidedDecodingParams``)."""
    kwargs = sampling_kwargs(sampling, mode)
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


class VLLMBackend:
    supports_logprob = True

    def __init__(self, model: str, sampling: Sampling = Sampling(), tensor_parallel_size: int = 1,
                 guided_regex: str | None = None, max_model_len: int | None = 8192,
                 gpu_memory_utilization: float = 0.9, batch_size: int = 1024):
        if not model:
            raise MotifError("backend vllm needs --model (a Hugging Face id or a local model folder)")
        try:
            import vllm
        except ImportError as e:
            raise MotifError("backend vllm needs the vllm package: pip install 'motif-jax[vllm]' "
                             "(GPU machines only); or use --backend openai against `vllm serve`") from e
        self._vllm = vllm
        self.model_name = short_model_name(model)
        self.model_id = model
        self.sampling, self.guided_regex, self.batch_size = sampling, guided_regex, batch_size
        self._llm = vllm.LLM(model=model, tensor_parallel_size=tensor_parallel_size,
                             enable_prefix_caching=True, seed=sampling.seed,
                             max_model_len=max_model_len, gpu_memory_utilization=gpu_memory_utilization)

    def _chat(self, conversations: list[Conversation], mode: str):
        params = build_sampling_params(self._vllm, self.sampling, mode, self.guided_regex)
        return self._llm.chat(conversations, params, use_tqdm=False, **chat_kwargs(mode))

    def complete(self, conversations: list[Conversation]) -> list[str]:
        return [out.outputs[0].text for out in self._chat(conversations, "generate")]

    def verdict_probs(self, conversations: list[Conversation]) -> list[tuple[float, float]]:
        return [probs_from_top_logprobs(top_logprobs_of_output(out))
                for out in self._chat(conversations, "logprob")]

    def close(self) -> None:
        self._llm = None
