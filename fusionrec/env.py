"""Process environment: telemetry and analytics off, hub offline when the profile says so."""

from __future__ import annotations

import os

_PRIVACY = {
    "ANONYMIZED_TELEMETRY": "False",  # Chroma
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
_OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def configure(offline: bool) -> None:
    """Set privacy defaults (never overriding the user's own values) and, if asked, offline mode."""
    for key, value in _PRIVACY.items():
        os.environ.setdefault(key, value)
    if offline:
        for key, value in _OFFLINE.items():
            os.environ.setdefault(key, value)
