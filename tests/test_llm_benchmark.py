"""`motif benchmark annotate --json F`: llama.cpp, vLLM and `vllm serve` on the same model and pairs."""

import json

import pytest

from llm_support import exported_model, motif

pytestmark = pytest.mark.llm


def test_benchmark_annotate_measures_three_engines(tmp_path, tmp_path_factory):
    model = exported_model(tmp_path_factory)
    out = tmp_path / "annotate.json"
    result = motif(
        "benchmark",
        "annotate",
        "--json",
        str(out),
        "--pairs",
        "8",
        "--modes",
        "logprob",
        "--vllm-model",
        str(model),
        "--threads",
        "1",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(out.read_text())
    for engine in ("llamacpp", "vllm", "openai"):
        assert data[engine]["pairs_per_s"] > 0 and data[engine]["llm_calls_per_s"] > 0
        assert data[engine]["pairs"] == 8 and data[engine]["modes"]["logprob"]["label_counts"][3] == 0
    assert "pairs/s" in result.stdout and "vllm" in result.stdout
