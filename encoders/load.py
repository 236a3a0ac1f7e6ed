"""Each modality's encoder for the model the config names (``models.<role>``), cached per process.

The registry (`fusionrec.models.registry`) says where a role's model lives; these build the encoders
on it: text, image (bridged into the text space), audio (Whisper + classic features), video.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fusionrec.config import Config
from fusionrec.models.registry import ModelError, cached, load_whisper, require_local, source, torch_device


def load_text_encoder(cfg: Config) -> Any:
    """The TextEncoder for ``models.text_embedder`` (``encoders.text.open_text_encoder``), cached."""
    src, device = source(cfg, "text_embedder"), torch_device(cfg)
    require_local(src, "text_embedder")

    def build() -> Any:
        from fusionrec.encoders.text import open_text_encoder

        return open_text_encoder(src, device)

    return cached(("text_embedder", src, device), build)


def load_image_encoder(cfg: Config) -> Any:
    """The ImageEncoder for ``models.image_encoder`` (``encoders.image.open_image_encoder``), bridged
    into the text encoder's space; cached."""
    src, device = source(cfg, "image_encoder"), torch_device(cfg)
    require_local(src, "image_encoder")
    text, projector = load_text_encoder(cfg), cfg.models.poster_projector

    def build() -> Any:
        from fusionrec.encoders.image import open_image_encoder

        return open_image_encoder(src, device, text, projector)

    return cached(("image_encoder", src, device, id(text), projector), build)


def load_audio_encoder(cfg: Config) -> Any:
    """The AudioEncoder: Whisper (transcript, language, pooled states) + classic features."""
    src, m = source(cfg, "speech"), cfg.models
    whisper_model, text = load_whisper(cfg), load_text_encoder(cfg)
    decoding = (m.speech_beam_size, tuple(m.speech_temperatures), m.speech_prompt, m.speech_language,
                m.speech_min_word_prob)  # fmt: skip

    def build() -> Any:
        from fusionrec.encoders.audio import AudioEncoder

        try:
            return AudioEncoder(
                whisper_model,
                text,
                model_id=Path(src).name,
                beam_size=decoding[0],
                temperature=decoding[1],
                prompt=decoding[2],
                language=decoding[3],
                min_word_prob=decoding[4],
            )
        except ValueError as exc:
            raise ModelError(str(exc)) from None

    return cached(("audio", id(whisper_model), id(text), decoding), build)


def load_video_encoder(cfg: Config) -> Any:
    """The VideoEncoder: sampled frames through the image encoder, the sound track through audio."""
    image, audio = load_image_encoder(cfg), load_audio_encoder(cfg)

    def build() -> Any:
        from fusionrec.encoders.video import VideoEncoder

        return VideoEncoder(image, audio, cache_dir=cfg.home / "cache" / "frames")

    return cached(("video", id(image), id(audio), str(cfg.home)), build)
