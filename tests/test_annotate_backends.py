"""Backend pieces that need no model: OpenAI request/retry handling, vLLM request building, tokens."""

import json
import math
import types

import httpx
import numpy as np
import pytest

from motif_jax.annotate.backends import Sampling, make_backend, short_model_name
from motif_jax.annotate.backends import openai as openai_backend
from motif_jax.annotate.backends import vllm as vllm_backend
from motif_jax.annotate.backends.llamacpp import answer_token_ids, default_model_path, softmax_pair
from motif_jax.annotate.prompts import load_template
from motif_jax.errors import MotifError

TEMPLATE = load_template("default", "defaultgoal")
GENERATE = TEMPLATE.first_turn("You kill the newt!", "It's a wall.")
LOGPROB = TEMPLATE.first_turn("You kill the newt!", "It's a wall.", "logprob")


def test_short_model_names():
    assert short_model_name("SmolLM2-135M-Instruct.Q4_1.gguf") == "smollm2-135m-instruct"
    assert short_model_name("/models/llama-2-70b-chat.Q5_K_M.gguf") == "llama-2-70b-chat"
    assert short_model_name("meta-llama/Llama-3.1-8B-Instruct") == "llama-3.1-8b-instruct"


def test_default_model_is_the_smollm2_gguf():
    path = default_model_path()
    assert path.suffix == ".gguf" and path.stat().st_size > 10_000_000


def test_answer_tokens_handle_a_merged_trailing_space():
    # a toy tokenizer that merges " 1"/" 2" into one token, like sentencepiece vocabularies
    vocab = {"x": 1, ":": 2, " ": 3, " 1": 4, " 2": 5, "1": 6, "2": 7}

    def tokenize(text):
        out, i = [], 0
        while i < len(text):
            piece = text[i : i + 2] if text[i : i + 2] in vocab else text[i]
            out.append(vocab[piece])
            i += len(piece)
        return out

    assert answer_token_ids(tokenize, "x: ") == ([1, 2], 4, 5)
    assert answer_token_ids(tokenize, "x:") == ([1, 2], 6, 7)


def test_softmax_pair_matches_hand_values():
    p1, p2 = softmax_pair(np.log(np.array([0.5, 0.3, 0.2])) + 7.0, 0, 2)
    assert p1 == pytest.approx(0.5) and p2 == pytest.approx(0.2)


def test_openai_request_bodies():
    s = Sampling(max_tokens=100, seed=3)
    body = openai_backend.chat_request("m", GENERATE, s, "generate", prefill=False)
    assert body == {
        "model": "m",
        "messages": GENERATE,
        "temperature": 0.1,
        "top_p": 0.95,
        "max_tokens": 100,
        "seed": 3,
        "top_k": 50,
    }
    body = openai_backend.chat_request("m", LOGPROB, s, "logprob", prefill=False, send_top_k=False)
    assert body["messages"] == LOGPROB[:-1] and body["max_tokens"] == 1 and "top_k" not in body
    assert body["logprobs"] is True and body["top_logprobs"] == 20
    body = openai_backend.chat_request("m", LOGPROB, s, "logprob", prefill=True)
    assert body["messages"] == LOGPROB and body["continue_final_message"] is True
    assert body["add_generation_prompt"] is False


def test_backoff_schedule():
    assert [openai_backend.backoff_seconds(a) for a in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert openai_backend.backoff_seconds(0, retry_after="3") == 3.0
    assert openai_backend.backoff_seconds(0, retry_after="soon") == 1.0


def _server(responses):
    """MockTransport replaying (status, json) pairs and recording the requests it saw."""
    seen = []

    def handler(request):
        seen.append(request)
        status, payload = responses[min(len(seen), len(responses)) - 1]
        return httpx.Response(status, json=payload)

    return httpx.MockTransport(handler), seen


def _backend(transport, monkeypatch, **kw):
    monkeypatch.setenv("MY_KEY", "sk-secret")
    return make_backend(
        "openai",
        Sampling(),
        model="m",
        base_url="http://x/v1",
        api_key_env="MY_KEY",
        transport=transport,
        backoff_base=0.0,
        concurrency=2,
        **kw,
    )


def test_openai_retries_transient_errors_then_answers(monkeypatch):
    reply = {"choices": [{"message": {"content": '{"best_message": 2}'}}]}
    transport, seen = _server([(429, {}), (503, {}), (200, reply)])
    backend = _backend(transport, monkeypatch)
    assert backend.complete([GENERATE]) == ['{"best_message": 2}']
    assert len(seen) == 3 and str(seen[0].url) == "http://x/v1/chat/completions"
    assert seen[0].headers["authorization"] == "Bearer sk-secret"
    assert json.loads(seen[0].content)["messages"] == GENERATE
    backend.close()


@pytest.mark.parametrize("status, words", [(401, "unauthorised"), (404, "not found"), (400, "HTTP 400")])
def test_openai_hard_errors_do_not_retry_and_hide_the_key(monkeypatch, status, words):
    transport, seen = _server([(status, {"error": "nope"})])
    backend = _backend(transport, monkeypatch)
    with pytest.raises(MotifError, match=words) as e:
        backend.complete([GENERATE])
    assert len(seen) == 1 and "sk-secret" not in str(e.value)
    backend.close()


def test_openai_gives_up_after_max_retries(monkeypatch):
    transport, seen = _server([(500, {})])
    backend = _backend(transport, monkeypatch, max_retries=2)
    with pytest.raises(MotifError, match="HTTP 500"):
        backend.complete([GENERATE])
    assert len(seen) == 3
    backend.close()


def test_openai_logprobs_are_read_from_the_first_token(monkeypatch):
    top = [
        {"token": "1", "logprob": math.log(0.6)},
        {"token": " 2", "logprob": math.log(0.3)},
        {"token": "Message", "logprob": math.log(0.05)},
    ]
    reply = {
        "choices": [
            {
                "message": {"content": "1"},
                "logprobs": {"content": [{"token": "1", "logprob": math.log(0.6), "top_logprobs": top}]},
            }
        ]
    }
    transport, _ = _server([(200, reply)])
    backend = _backend(transport, monkeypatch)
    ((p1, p2),) = backend.verdict_probs([LOGPROB])
    assert p1 == pytest.approx(0.6) and p2 == pytest.approx(0.3)
    transport, _ = _server([(200, {"choices": [{"message": {"content": "1"}}]})])
    with pytest.raises(MotifError, match="no logprobs"):
        _backend(transport, monkeypatch).verdict_probs([LOGPROB])
    backend.close()


def test_vllm_sampling_and_chat_options():
    s = Sampling(max_tokens=300, seed=1)
    assert vllm_backend.sampling_kwargs(s, "generate") == {
        "temperature": 0.1,
        "top_p": 0.95,
        "top_k": 50,
        "max_tokens": 300,
        "seed": 1,
    }
    assert vllm_backend.sampling_kwargs(s, "logprob")["max_tokens"] == 1
    assert vllm_backend.sampling_kwargs(s, "logprob")["logprobs"] == 20
    assert vllm_backend.chat_kwargs("logprob") == {"add_generation_prompt": False, "continue_final_message": True}
    assert vllm_backend.chat_kwargs("generate") == {"add_generation_prompt": True}
    assert vllm_backend.structured_output_spec("generate", TEMPLATE.guided_regex) == {"regex": TEMPLATE.guided_regex}
    assert vllm_backend.structured_output_spec("logprob", TEMPLATE.guided_regex) is None
    assert vllm_backend.structured_output_spec("generate", None) is None


def _fake_vllm(param_class_name):
    made = {}

    class Params:
        def __init__(self, **kw):
            made["structured"] = kw

    class SamplingParams:
        def __init__(self, **kw):
            made["sampling"] = kw

    module = types.SimpleNamespace(
        SamplingParams=SamplingParams, sampling_params=types.SimpleNamespace(**{param_class_name: Params})
    )
    return module, made


@pytest.mark.parametrize(
    "class_name, keyword",
    [("StructuredOutputsParams", "structured_outputs"), ("GuidedDecodingParams", "guided_decoding")],
)
def test_vllm_structured_outputs_use_the_newer_or_older_api(class_name, keyword):
    module, made = _fake_vllm(class_name)
    vllm_backend.build_sampling_params(module, Sampling(), "generate", TEMPLATE.guided_regex)
    assert made["structured"] == {"regex": TEMPLATE.guided_regex} and keyword in made["sampling"]


def test_guided_regex_only_admits_replies_that_parse():
    import re

    from motif_jax.annotate.verdict import parse_verdict
    from motif_jax.data import Label

    ok = 'Message 1 is a kill, which scores.\n{"best_message": 1}'
    assert re.fullmatch(TEMPLATE.guided_regex, ok) and parse_verdict(ok, TEMPLATE.verdict_regex) == Label.FIRST
    assert not re.fullmatch(TEMPLATE.guided_regex, "I cannot decide.")
    assert parse_verdict("I cannot decide.", TEMPLATE.verdict_regex) == Label.UNKNOWN


def test_vllm_missing_is_a_clear_error():
    try:  # vllm is deliberately not installed on CPU machines
        import vllm  # noqa: F401

        pytest.skip("vllm is installed here")
    except ImportError:
        pass
    with pytest.raises(MotifError, match="needs the vllm package"):
        make_backend("vllm", Sampling(), model="some/model")
