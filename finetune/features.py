"""Item vectors for soft tokens, computed once and cached as safetensors.

- ``item``: the item's text vector — from the Chroma store's text block when the catalog is
  ingested (exactly what the agent uses at inference), else the text encoder on
  ``retrieval.ingest.item_text(item)`` (the agent's own fallback);
- ``image``: the poster's native image features (what the agent feeds the image projector);
- ``audio``: Whisper encoder states of the item's audio file, pooled; ``video``: the pooled frames.

Cache: ``cfg.data_dir/<dataset>/features/<modality>-<digest>.safetensors`` (one tensor per item id;
the digest names the model source), extended when new items are asked for.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.config import Config
from fusionrec.types import Item

log = logging.getLogger(__name__)
ROLE_OF = {"item": "text_embedder", "image": "image_encoder", "audio": "speech", "video": "image_encoder"}


def _cache_file(cfg: Config, dataset: str, modality: str, origin: str) -> Path:
    from fusionrec.models.registry import source

    digest = hashlib.sha1(f"{source(cfg, ROLE_OF[modality])}|{origin}".encode()).hexdigest()[:10]
    return cfg.data_dir / dataset / "features" / f"{modality}-{digest}.safetensors"


def _read(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        return {}
    from safetensors.numpy import load_file

    return dict(load_file(str(path)))


def _write(path: Path, vectors: dict[str, np.ndarray]) -> None:
    import os

    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in vectors.items()}, str(tmp))
    os.replace(tmp, path)


def _has_media(item: Item, modality: str) -> bool:
    return modality == "item" or bool(item.media.get(modality))


def _encode(cfg: Config, modality: str, items: Sequence[Item], progress: bool) -> dict[str, np.ndarray]:
    from tqdm import tqdm

    from fusionrec import encoders

    out: dict[str, np.ndarray] = {}
    if modality == "item":
        from fusionrec.retrieval.ingest import item_text

        enc = encoders.load_text_encoder(cfg)
        batch = 64
        for start in tqdm(range(0, len(items), batch), desc="item text vectors", disable=not progress):
            chunk = items[start : start + batch]
            for it, v in zip(chunk, enc.encode([item_text(i) for i in chunk]), strict=True):
                out[it.id] = v
        return out
    if modality == "image":
        from fusionrec.media import MediaError

        enc = encoders.load_image_encoder(cfg)
        batch = 32
        for start in tqdm(range(0, len(items), batch), desc="poster vectors", disable=not progress):
            chunk = items[start : start + batch]
            try:
                vecs = enc.encode([i.media["image"] for i in chunk])
                out.update({it.id: v for it, v in zip(chunk, vecs, strict=True)})
            except MediaError:  # one bad poster: encode one by one and skip the bad ones
                for it in chunk:
                    try:
                        out[it.id] = enc.encode([it.media["image"]])[0]
                    except MediaError as exc:
                        log.warning("skipping the poster of item %s: %s", it.id, exc)
        return out
    if modality == "audio":
        enc = encoders.load_audio_encoder(cfg)
        for it in tqdm(items, desc="audio vectors", disable=not progress):
            out[it.id] = enc.encode([it.media["audio"]])[0].whisper
        return out
    if modality == "video":
        from fusionrec.retrieval.ingest import VIDEO_FPS

        enc = encoders.load_video_encoder(cfg)
        for it in tqdm(items, desc="video vectors", disable=not progress):
            out[it.id] = enc.encode(it.media["video"], fps=VIDEO_FPS).image
        return out
    raise ValueError(f"unknown modality {modality!r} (known: {', '.join(ROLE_OF)})")


def _store_item_vectors(retriever: Any, ids: Sequence[str]) -> dict[str, np.ndarray]:
    store = getattr(retriever, "store", None)
    if store is None or "text" not in getattr(retriever, "blocks", []):
        return {}
    return {
        rid: np.asarray(rec[0], dtype=np.float32) for rid, rec in store.records("text", list(ids)).items()
    }


def item_vectors(
    cfg: Config,
    dataset: str,
    items: Sequence[Item],
    modality: str,
    retriever: Any = None,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Vectors of `items` for one modality (items without that medium are left out)."""
    wanted = [i for i in items if _has_media(i, modality)]
    from_store = _store_item_vectors(retriever, [i.id for i in wanted]) if modality == "item" else {}
    path = _cache_file(cfg, dataset, modality, "encoder")
    cached = _read(path)
    missing = [i for i in wanted if i.id not in from_store and i.id not in cached]
    if missing:
        cached.update(_encode(cfg, modality, missing, progress))
        _write(path, cached)
    merged = {**cached, **from_store}
    return {i.id: merged[i.id] for i in wanted if i.id in merged}


def feature_dims(vectors: dict[str, dict[str, np.ndarray]]) -> dict[str, int]:
    """The input size of each modality's projector."""
    return {m: int(next(iter(v.values())).shape[-1]) for m, v in vectors.items() if v}
