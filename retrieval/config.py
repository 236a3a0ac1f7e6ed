"""Catalog data and the Chroma store."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DataConfig:
    dataset: str = "movielens-100k"  # movielens-100k | ml-latest-small | redial | jsonl | csv
    source: str = ""  # local copy of the raw data; "" = ../shared/data copy if present, else download
    generated_media: bool = False  # add espeak-ng audio + ffmpeg clips for items lacking them (marked generated)


@dataclass
class RetrievalConfig:
    fusion: str = "early"  # early | late | cross: how modality vectors are combined
    late_combine: str = "rrf"  # late fusion only: rrf (reciprocal rank) | weighted (score sum)
    server_url: str = ""  # "" = embedded PersistentClient under paths.home; else http://host:port
    collection: str = "catalog"  # Chroma collection name (prefix, one per modality in late fusion)
    k: int = 50  # candidates fetched from Chroma per query
    batch_size: int = 32  # items encoded per batch during ingestion
    weights: dict[str, float] = field(
        default_factory=lambda: {"text": 1.0, "image": 0.5, "audio": 0.25, "video": 0.25}
    )  # per-modality weight in early and weighted late fusion
