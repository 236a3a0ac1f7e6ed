"""The gradio app."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class UIConfig:
    host: str = "127.0.0.1"  # bind address; 0.0.0.0 exposes the app to the network
    port: int = 7860  # 0 = first free port
    auth: str = ""  # "user:pass" to require a login; "" = open
    max_upload_mb: float = 25.0  # uploads larger than this are refused before encoding
    concurrency: int = 2  # gradio queue: requests processed at once
