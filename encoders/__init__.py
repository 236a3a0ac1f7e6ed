"""Media to vectors, one module per modality; `load_*_encoder(cfg)` builds each for the configured model."""

from fusionrec.encoders.load import (
    load_audio_encoder,
    load_image_encoder,
    load_text_encoder,
    load_video_encoder,
)

__all__ = ["load_audio_encoder", "load_image_encoder", "load_text_encoder", "load_video_encoder"]
