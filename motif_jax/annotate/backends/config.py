"""The keys of an LLM backend and its sampling, shared by every command that asks an LLM (`annotate`,
`skills write-code`): one place for their names, defaults, the per-backend options and the API-key check."""

from __future__ import annotations

import dataclasses
import os

from motif_jax.annotate.backends.base import Sampling
from motif_jax.errors import MotifError


@dataclasses.dataclass
class BackendConfig:
    backend: str = "llamacpp"  # llamacpp | openai | vllm
    model: str | None = None  # GGUF file (llamacpp), served model name (openai), HF id or folder (vllm)
    temperature: float = 0.1  # sampling temperature
    top_p: float = 0.95  # nucleus sampling
    top_k: int = 50  # top-k sampling
    max_tokens: int = 512  # reply length cap
    seed: int = 0  # sampling seed
    n_ctx: int = 4096  # llamacpp: context length
    threads: int | None = None  # llamacpp: CPU threads (default: all, at most 8)
    base_url: str = "http://127.0.0.1:8000/v1"  # openai: server URL
    api_key_env: str = "OPENAI_API_KEY"  # openai: name of the environment variable holding the API key
    timeout: float = 120.0  # openai: seconds per request
    max_retries: int = 5  # openai: retries per request
    no_top_k: bool = False  # openai: do not send top_k (strict OpenAI APIs)
    tensor_parallel_size: int = 1  # vllm: GPUs per model
    max_model_len: int = 8192  # vllm: context length
    gpu_memory_utilization: float = 0.9  # vllm: share of GPU memory
    dtype: str = "auto"  # vllm: model weights dtype (auto: the model's; float32 on CPU)

    def sampling(self) -> Sampling:
        return Sampling(self.temperature, self.top_p, self.top_k, self.max_tokens, self.seed)

    def backend_options(self, concurrency: int = 1) -> dict:
        """The chosen backend's own keyword arguments (``make_backend``), from these keys."""
        if self.backend == "llamacpp":
            return {"n_ctx": self.n_ctx, "n_threads": self.threads}
        if self.backend == "openai":
            return {
                "base_url": self.base_url,
                "api_key_env": self.api_key_env,
                "concurrency": concurrency,
                "timeout": self.timeout,
                "max_retries": self.max_retries,
                "send_top_k": not self.no_top_k,
            }
        return {
            "tensor_parallel_size": self.tensor_parallel_size,
            "max_model_len": self.max_model_len,
            "gpu_memory_utilization": self.gpu_memory_utilization,
            "dtype": self.dtype,
        }

    def check_api_key(self, named: bool) -> None:
        """A key variable the user named (flag, file, --set) must be set; only the default may be absent
        (a local server needs no key). Checked before connecting, so the error says what is wrong."""
        if self.backend != "openai" or not self.api_key_env:
            return
        if (named or self.api_key_env != BackendConfig.api_key_env) and not os.environ.get(self.api_key_env):
            raise MotifError(
                f"--api-key-env {self.api_key_env}: that environment variable is not set (or empty); "
                "export it, or leave the option out for a server without a key"
            )


def add_backend_arguments(parser) -> dict:
    """The flags of ``BackendConfig``'s keys but ``--backend`` and ``--model`` (each command words those),
    in argument groups; returns the groups by backend name so a command can add its own flags to them."""
    sampling = parser.add_argument_group("sampling")
    sampling.add_argument("--temperature", type=float)
    sampling.add_argument("--top-p", type=float)
    sampling.add_argument("--top-k", type=int)
    sampling.add_argument("--max-tokens", type=int)
    sampling.add_argument("--seed", type=int)
    llama = parser.add_argument_group("llamacpp")
    llama.add_argument("--n-ctx", type=int)
    llama.add_argument("--threads", type=int, help="CPU threads (default: all, at most 8)")
    openai = parser.add_argument_group("openai")
    openai.add_argument("--base-url")
    openai.add_argument("--api-key-env", help="name of the environment variable holding the API key")
    openai.add_argument("--timeout", type=float)
    openai.add_argument("--max-retries", type=int)
    openai.add_argument("--no-top-k", action="store_true", default=None, help="do not send top_k (strict OpenAI APIs)")
    vllm = parser.add_argument_group("vllm")
    vllm.add_argument("--tensor-parallel-size", type=int)
    vllm.add_argument("--max-model-len", type=int)
    vllm.add_argument("--gpu-memory-utilization", type=float)
    vllm.add_argument("--dtype", help="model weights dtype (auto: the model's; float32 on CPU)")
    return {"sampling": sampling, "llamacpp": llama, "openai": openai, "vllm": vllm}
