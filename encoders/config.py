"""Which model serves each role, and where it runs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ModelsConfig:
    profile: str = "offline"  # offline | online | tiny: picks the default source of every role
    llm: str = ""  # hub name or local folder; "" = the profile's default
    text_embedder: str = ""  # sentence-transformers name or folder; "" = profile default
    image_encoder: str = ""  # "open_clip:ARCH/TAG", "timm:folder" or a folder; "" = profile default
    speech: str = ""  # whisper name ("base") or checkpoint path; "" = profile default
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "float32"  # float32 | bfloat16 | float16 (LLM weights)
