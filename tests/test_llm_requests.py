"""What the vllm and openai backends ask their engines for (pure functions: no engine needed, so this
runs in the fast suite; the engines themselves are exercised by the `llm`-marked tests)."""

import re

import pytest

from motif_jax.annotate.backends import Sampling
from motif_jax.annotate.backends import openai as openai_backend
from motif_jax.annotate.backends import vllm as vllm_backend
from motif_jax.annotate.benchmark import builtin_pairs
from motif_jax.annotate.export import resolve_gguf
from motif_jax.annotate.prompts import load_template
from motif_jax.errors import MotifError

TEMPLATE = load_template("default", "defaultgoal")


def test_reasoning_is_capped_to_leave_room_for_the_verdict():
    fitted = vllm_backend.fit_reasoning(TEMPLATE.guided_regex, max_tokens=64)
    assert fitted.startswith("[^{}]{0,120}")
    assert re.fullmatch(fitted, "x" * 120 + '{"best_message": 2}') and not re.fullmatch(
        fitted, "x" * 121 + '{"best_message": 2}'
    )
    assert vllm_backend.fit_reasoning(TEMPLATE.guided_regex, max_tokens=10_000) == TEMPLATE.guided_regex
    assert vllm_backend.fit_reasoning("(1|2)", 64) == "(1|2)"  # no free-text part: unchanged
    only = vllm_backend.verdict_only(TEMPLATE.guided_regex)
    assert re.fullmatch(only, '{"best_message": None}') and not re.fullmatch(only, 'so {"best_message": 1}')


def test_retries_are_recognised_by_the_reply_they_hold():
    first = TEMPLATE.first_turn("a", "b")
    assert not vllm_backend.is_retry(first)
    assert vllm_backend.is_retry(TEMPLATE.retry_turn(first, "I think..."))
    assert not vllm_backend.is_retry(TEMPLATE.first_turn("a", "b", "logprob"))  # ends with the assistant prefix


def test_engine_settings_on_cpu_and_gpu(monkeypatch):
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    cpu = vllm_backend.engine_kwargs("m", Sampling(seed=3), on_cpu=True)
    assert cpu["enable_prefix_caching"] and cpu["enforce_eager"] and cpu["dtype"] == "float32"
    assert cpu["kv_cache_memory_bytes"] == 2 << 30 and cpu["seed"] == 3 and "gpu_memory_utilization" not in cpu
    gpu = vllm_backend.engine_kwargs("m", Sampling(), on_cpu=False, tensor_parallel_size=8)
    assert gpu["enable_prefix_caching"] and not gpu["enforce_eager"] and gpu["dtype"] == "auto"
    assert gpu["tensor_parallel_size"] == 8 and gpu["gpu_memory_utilization"] == 0.9
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "6")
    assert "kv_cache_memory_bytes" not in vllm_backend.engine_kwargs("m", Sampling(), on_cpu=True)
    assert "seed" not in vllm_backend.sampling_kwargs(Sampling(), "generate", per_request_seed=False)


def test_model_folder_checks(tmp_path):
    with pytest.raises(MotifError, match="motif export-model"):
        vllm_backend.check_model_folder(str(tmp_path / "m.Q4_1.gguf"))
    with pytest.raises(MotifError, match="no config.json"):
        vllm_backend.check_model_folder(str(tmp_path))
    vllm_backend.check_model_folder("meta-llama/Llama-3.1-8B-Instruct")  # a hub id is left to vLLM


def test_openai_structured_outputs_and_optional_seed():
    first = TEMPLATE.first_turn("a", "b")
    body = openai_backend.chat_request(
        "m", first, Sampling(max_tokens=64), "generate", False, guided_regex=TEMPLATE.guided_regex
    )
    assert body["structured_outputs"]["regex"].startswith("[^{}]{0,120}") and body["seed"] == 0
    retry = openai_backend.chat_request(
        "m",
        TEMPLATE.retry_turn(first, "hm"),
        Sampling(seed=None),
        "generate",
        False,
        guided_regex=TEMPLATE.guided_regex,
    )
    assert retry["structured_outputs"]["regex"] == vllm_backend.verdict_only(TEMPLATE.guided_regex)
    assert "seed" not in retry
    assert "structured_outputs" not in openai_backend.chat_request("m", first, Sampling(), "generate", False)


def test_export_source_resolution(tmp_path):
    with pytest.raises(MotifError, match="no such GGUF file"):
        resolve_gguf(tmp_path / "x.gguf")
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(MotifError, match="not a .gguf file"):
        resolve_gguf(tmp_path / "notes.txt")
    with pytest.raises(MotifError, match="exactly one .gguf"):
        resolve_gguf(tmp_path)
    (tmp_path / "a.gguf").write_bytes(b"GGUF")
    assert resolve_gguf(tmp_path) == tmp_path / "a.gguf"


def test_builtin_benchmark_pairs_are_distinct_and_seeded():
    pairs = builtin_pairs(40, seed=1)
    assert pairs == builtin_pairs(40, seed=1) and len(set(pairs)) == 40
    assert all(a != b for a, b in pairs)
