"""Dataset settings (the `[data]` section)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DataConfig:
    dataset: str = "movielens-100k"  # movielens-100k | ml-latest-small | redial | jsonl | csv
    source: str = ""  # local copy of the raw data; "" = ../shared/data copy if present, else download
    generated_media: bool = False  # add espeak-ng audio + ffmpeg clips for items lacking them (marked generated)
