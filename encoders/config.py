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
    # images with more pixels are refused from their header, before any decode (see encoders.media);
    # 40 MP is 120 MB decoded as RGB. Applied process-wide by encoders.media.set_max_image_megapixels.
    max_image_megapixels: float = 40.0

    def check(self) -> None:
        """Range-check the values and apply the image pixel limit process-wide (called at config load)."""
        from encoders.media import set_max_image_megapixels

        try:
            set_max_image_megapixels(self.max_image_megapixels)
        except ValueError:
            raise ValueError(f"models.max_image_megapixels must be > 0 (got {self.max_image_megapixels!r})") from None
