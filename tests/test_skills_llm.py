"""The skills' LLM side with the bundled SmolLM2-135M for real: `motif skills write-code` against llama.cpp's
server, and `motif annotate --skills` with vLLM on CPU.

A 135M model rarely writes a passing test; the point is that its messy output (no fence, no test, syntax
errors, refused imports, rambling to the token cap) never crashes the tool: it finishes with exit 0 or 1,
writes the provenance and a loadable skills file.
"""

import json

import numpy as np
import pytest

from llm_support import exported_model, free_port, llamacpp_server, motif

pytestmark = pytest.mark.llm
SKILLS = ("discoverer", "descender", "ascender", "merchant", "worshipper")


def test_write_code_with_a_real_model_finishes_cleanly(tmp_path):
    from motif_jax.annotate.backends.llamacpp import default_model_path
    from motif_jax.skills.spec import load_skills

    server = llamacpp_server(default_model_path(), free_port(), tmp_path / "server.log").start()
    try:
        out = tmp_path / "written"
        result = motif(
            "skills",
            "write-code",
            "--skills",
            "nethack",
            "--skill",
            "descender",
            "--rounds",
            "1",
            "--max-tokens",
            "256",
            "--out",
            str(out),
            "--backend",
            "openai",
            "--base-url",
            server.base_url,
            "--model",
            "smol",
            timeout=300,
        )
    finally:
        server.kill()
    assert result.returncode in (0, 1), result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "skill descender: round 1/1: " in result.stdout
    provenance = json.loads((out / "descender.provenance.json").read_text())
    assert provenance["model"] == "smol" and len(provenance["rounds"]) == 1
    assert provenance["conversation"][-1]["role"] == "assistant"  # every request was answered
    written = load_skills(out / "skills.yaml")
    assert written.names == SKILLS
    accepted = provenance["accepted_round"] == 1
    assert (written.skills["descender"].code.resolve() == (out / "descender.py").resolve()) == accepted
    assert accepted == (result.returncode == 0)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return exported_model(tmp_path_factory)


def test_annotate_skills_with_vllm_writes_a_label_file_per_skill(model, tmp_path):
    data = tmp_path / "ds"
    collected = motif("collect", "--out", str(data), "--pairs", "20", "--num-envs", "2", "--no-progress", timeout=300)
    assert collected.returncode == 0, collected.stderr[-2000:]
    rules = motif("annotate", str(data), "--skills", "nethack", "--backend", "rules", "--no-progress", timeout=300)
    assert rules.returncode == 0, rules.stderr[-2000:]
    llm = motif(
        "annotate",
        str(data),
        "--skills",
        "nethack",
        "--backend",
        "vllm",
        "--model",
        str(model),
        "--max-model-len",
        "2048",
        "--mode",
        "logprob",
        "--no-progress",
        timeout=600,
    )
    assert llm.returncode == 0, llm.stdout[-2000:] + llm.stderr[-3000:]
    for skill in SKILLS:
        labels = np.load(data / "preference" / f"smollm2-135m-instruct_{skill}_default-transitions_logprob.npy")
        assert labels.shape == (20,) and (labels != 3).all()  # logprob mode always decides
        assert f"skill {skill}: agreement smollm2-135m-instruct_{skill}_default-transitions_logprob vs " in llm.stdout
