"""Retrieval settings: the Chroma store, fusion, filters."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlparse

from fusionrec.settings import check_range

K_MAX = 10_000  # the most candidates one query may ask for (retrieval.k, `search --k`)
TEXT_SPACE_BLOCKS = {"text", "tfidf", "image_text"}  # the blocks whose items live in a text space
_COLLECTION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")


@dataclass
class RetrievalConfig:
    fusion: str = "early"  # early | late | cross: how modality vectors are combined
    late_combine: str = "rrf"  # late fusion only: rrf (reciprocal rank) | weighted (score sum)
    server_url: str = ""  # "" = embedded PersistentClient under paths.home; else http://host:port
    server_timeout_s: float = 5.0  # seconds each Chroma server request may wait for an answer
    server_retries: int = 1  # further tries of a request that timed out or could not connect
    collection: str = "catalog"  # collection name prefix: <collection>.<dataset>.<kind>
    k: int = 50  # candidates fetched from Chroma per query
    batch_size: int = 32  # items encoded per batch during ingestion
    weights: dict[str, float] = field(
        default_factory=lambda: {"text": 1.0, "image": 0.5, "audio": 0.25, "video": 0.25}
    )  # per-modality weight in early and weighted late fusion
    # Not image_text by default: the offline poster bridge (ImageNet labels -> text space) does not
    # really reach a text request (docs/results/requests.md: tuning half of benchmarks/requests.jsonl)
    text_blocks: list[str] = field(
        default_factory=lambda: ["text", "tfidf"]
    )  # blocks a typed or transcribed text is searched in: some of text, tfidf, image_text
    # Spoken requests: a transcript span is replaced by a sound-alike catalog title, name or phrase
    # when Whisper finds it at most this many nats (log-likelihood) less likely than what it wrote
    # (retrieval.transcripts); 0 = search what Whisper heard. Off: on the tuning half of
    # benchmarks/requests.jsonl the best bonus (6) changed one hit@10 and no hit@5, and cost up to 2 s
    # per spoken request on 2 cores (docs/results/requests.md)
    speech_correction: float = 0.0
    # A search's pool is re-scored by the request's word match: z(fused) + lexical_weight * z(TF-IDF
    # cosine over the whole catalog vocabulary) (retrieval.lexical); 0 = dense vectors only. Tuned on
    # the tuning half of benchmarks/requests.jsonl, typed and spoken (docs/results/requests.md)
    lexical_weight: float = 1.5
    rrf_k: int = 0  # late rrf: item score = mean over its blocks of w / (rrf_k + rank), rank from 1 (tuned)
    like_weight: float = 0.5  # "like X": X's stored vector weighs this much against the turn's own query vector (tuned: docs/results/chat_ranking.md)
    # fusion=cross: a trained cross_fusion.safetensors (typically <run>/last/cross_fusion.safetensors of a
    # finetune run with tasks.fusion_weight > 0); "" = untrained equal weights per modality (logged)
    cross_weights: str = ""

    def check(self) -> None:
        """Raise ValueError naming the key and its value when a setting is out of range."""
        if self.server_url.strip():
            parse_server_url(self.server_url)
        if not _COLLECTION.fullmatch(self.collection):
            raise ValueError(
                f"retrieval.collection={self.collection!r}: expected 1-63 letters, digits, '_' or '-' "
                "(starting with a letter or digit)"
            )
        check_range("retrieval.k", self.k, 1, K_MAX)
        check_range("retrieval.batch_size", self.batch_size, 1, 5000)
        check_range("retrieval.server_timeout_s", self.server_timeout_s, 0.1, 600)
        check_range("retrieval.server_retries", self.server_retries, 0, 10)
        for key, value in self.weights.items():
            check_range(f"retrieval.weights.{key}", value, 0, 1000)
        check_range("retrieval.lexical_weight", self.lexical_weight, 0, 1000)
        check_range("retrieval.rrf_k", self.rrf_k, 0, 10_000)
        check_range("retrieval.like_weight", self.like_weight, 0, 1000)
        check_range("retrieval.speech_correction", self.speech_correction, 0, 100)
        unknown = sorted(set(self.text_blocks) - TEXT_SPACE_BLOCKS)
        if unknown:
            raise ValueError(
                f"retrieval.text_blocks={self.text_blocks!r}: {', '.join(unknown)} cannot take a text query "
                f"(expected some of {', '.join(sorted(TEXT_SPACE_BLOCKS))})"
            )


def parse_server_url(url: str) -> tuple[str, int, bool]:
    """``http://host:port`` -> (host, port, ssl); the port defaults to 8000 (443 for https).

    ValueError naming ``retrieval.server_url`` and the value for anything else.
    """
    bad = ValueError(f"retrieval.server_url={url!r}: expected http://host:port or https://host[:port]")
    parsed = urlparse(url.strip())
    try:
        port = parsed.port
    except ValueError:
        raise bad from None
    if parsed.scheme not in {"http", "https"} or not parsed.hostname or parsed.path.strip("/"):
        raise bad
    if parsed.query or parsed.fragment or parsed.username:
        raise bad
    ssl = parsed.scheme == "https"
    return parsed.hostname, port or (443 if ssl else 8000), ssl
