"""The gradio app."""

from __future__ import annotations

from dataclasses import dataclass

from fusionrec.settings import check_range


@dataclass
class UIConfig:
    host: str = "127.0.0.1"  # bind address; 0.0.0.0 exposes the app to the network
    port: int = 7860  # 0 = first free port
    auth: str = ""  # "user:pass" to require a login; "" = open
    max_upload_mb: float = 25.0  # uploads larger than this are refused before encoding
    concurrency: int = 2  # gradio queue: requests processed at once

    def check(self) -> None:
        """Raise ValueError naming the key (and its value, unless it is a password) when a setting is bad."""
        if not self.host.strip():
            raise ValueError("ui.host='': expected a bind address such as 127.0.0.1")
        check_range("ui.port", self.port, 0, 65_535)
        check_range("ui.max_upload_mb", self.max_upload_mb, 0.01, 10_240)
        check_range("ui.concurrency", self.concurrency, 1, 64)
        parse_auth(self.auth, "ui.auth")


def parse_auth(text: str, key: str = "ui.auth") -> tuple[str, str] | None:
    """'user:pass' -> (user, pass); '' -> None; else ValueError naming `key` (the value is not echoed)."""
    if not text:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise ValueError(f"{key}: expected user:pass with both parts non-empty (or empty for an open app)")
    return user, password
