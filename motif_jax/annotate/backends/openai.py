"""Any OpenAI-compatible ``/v1/chat/completions`` server (vllm serve, llama.cpp's server, hosted APIs).

Requests run on a thread pool (``concurrency`` in flight); transient failures (429, 5xx, timeouts,
dropped connections) are retried with exponential backoff, while 401/403/404 stop the run at once
because retrying cannot fix a wrong key, model or URL. The API key is read from an environment
variable whose *name* is configured, and is never printed or logged.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from motif_jax.annotate.backends.base import Sampling, short_model_name
from motif_jax.annotate.backends.vllm import fit_reasoning, is_retry, verdict_only
from motif_jax.annotate.prompts import Conversation
from motif_jax.annotate.verdict import probs_from_top_logprobs
from motif_jax.errors import MotifError

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
FATAL_STATUS = {
    401: "unauthorised (check the API key variable)",
    403: "forbidden (check the API key)",
    404: "not found (check --base-url and --model)",
}
TOP_LOGPROBS = 20


def chat_request(
    model: str,
    conversation: Conversation,
    sampling: Sampling,
    mode: str,
    prefill: bool,
    send_top_k: bool = True,
    guided_regex: str | None = None,
) -> dict:
    """JSON body of one chat completion.

    In logprob mode we ask for one token with its top alternatives. With ``prefill`` the answer
    prefix is sent as a final assistant message to be continued (vLLM's ``continue_final_message``);
    without it the prefix is dropped and the first answer token is read instead, which any server
    with ``logprobs`` support handles. ``guided_regex`` (generate mode) becomes vLLM's
    ``structured_outputs`` field, with the same length fitting and verdict-only retries as the
    in-process vllm backend.
    """
    body = {
        "model": model,
        "messages": conversation,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "max_tokens": sampling.max_tokens,
    }
    if sampling.seed is not None:
        body["seed"] = sampling.seed
    if send_top_k:
        body["top_k"] = sampling.top_k
    if mode == "generate" and guided_regex:
        regex = (
            verdict_only(guided_regex) if is_retry(conversation) else fit_reasoning(guided_regex, sampling.max_tokens)
        )
        body["structured_outputs"] = {"regex": regex}
    if mode == "logprob":
        body.update(max_tokens=1, logprobs=True, top_logprobs=TOP_LOGPROBS)
        if prefill:
            body.update(continue_final_message=True, add_generation_prompt=False)
        else:
            body["messages"] = conversation[:-1]
    return body


def backoff_seconds(attempt: int, retry_after: str | None = None, base: float = 1.0, cap: float = 30.0) -> float:
    """Delay before retry ``attempt`` (0-based): the server's Retry-After if given, else base·2^n."""
    if retry_after:
        try:
            return min(cap, max(0.0, float(retry_after)))
        except ValueError:
            pass
    return min(cap, base * 2**attempt)


def top_logprobs_of_first_token(response: dict) -> dict[str, float]:
    """token -> logprob of the first generated token's alternatives in a chat completion."""
    try:
        first = response["choices"][0]["logprobs"]["content"][0]
    except (KeyError, IndexError, TypeError) as e:
        raise MotifError(
            "the server returned no logprobs: it may not support logprob mode (use --mode generate)"
        ) from e
    top = {item["token"]: float(item["logprob"]) for item in first.get("top_logprobs") or []}
    top.setdefault(first["token"], float(first["logprob"]))
    return top


class OpenAIBackend:
    supports_logprob = True

    def __init__(
        self,
        base_url: str,
        model: str,
        sampling: Sampling = Sampling(),
        api_key_env: str | None = "OPENAI_API_KEY",
        concurrency: int = 8,
        timeout: float = 120.0,
        max_retries: int = 5,
        prefill: bool = False,
        send_top_k: bool = True,
        batch_size: int = 64,
        backoff_base: float = 1.0,
        transport: httpx.BaseTransport | None = None,
        guided_regex: str | None = None,
    ):
        if not model:
            raise MotifError("backend openai needs --model (the model name the server serves)")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.model_name = short_model_name(model)
        self.model_id = model
        self.sampling, self.prefill, self.send_top_k = sampling, prefill, send_top_k
        self.guided_regex = guided_regex
        self.max_retries, self.backoff_base = max_retries, backoff_base
        self.batch_size = batch_size
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(api_key_env) if api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self._client = httpx.Client(headers=headers, timeout=timeout, limits=limits, transport=transport)
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="motif-openai")

    def _post(self, body: dict) -> dict:
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                response = self._client.post(self.url, json=body)
            except (httpx.TimeoutException, httpx.TransportError) as e:
                if last:
                    raise MotifError(f"{self.url}: no answer after {attempt + 1} tries ({type(e).__name__})") from e
                time.sleep(backoff_seconds(attempt, base=self.backoff_base))
                continue
            if response.status_code in FATAL_STATUS:
                raise MotifError(f"{self.url}: HTTP {response.status_code} {FATAL_STATUS[response.status_code]}")
            if response.status_code in RETRY_STATUS and not last:
                time.sleep(backoff_seconds(attempt, response.headers.get("retry-after"), self.backoff_base))
                continue
            if response.status_code != 200:
                raise MotifError(f"{self.url}: HTTP {response.status_code}: {response.text[:200]}")
            return response.json()
        raise AssertionError("unreachable")

    def _map(self, bodies: list[dict]) -> list[dict]:
        return list(self._pool.map(self._post, bodies))

    def complete(self, conversations: list[Conversation]) -> list[str]:
        bodies = [
            chat_request(self.model, c, self.sampling, "generate", False, self.send_top_k, self.guided_regex)
            for c in conversations
        ]
        return [r["choices"][0]["message"].get("content") or "" for r in self._map(bodies)]

    def verdict_probs(self, conversations: list[Conversation]) -> list[tuple[float, float]]:
        bodies = [
            chat_request(self.model, c, self.sampling, "logprob", self.prefill, self.send_top_k) for c in conversations
        ]
        return [probs_from_top_logprobs(top_logprobs_of_first_token(r)) for r in self._map(bodies)]

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._client.close()
