"""Item vectors per block (text, image_text, image, audio, video, tfidf), read from the Chroma store.

The retrieval-only system and the ablations compare the vectors `fusionrec ingest` stored, so their
cosine similarities are exactly the ones Chroma computes. Items (or a whole store) without a text
vector get one from the configured text encoder (counted in `computed`); the other blocks come
only from the store, and a block no item has is reported as unavailable.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from fusionrec.config import Config
from fusionrec.types import Item
from fusionrec.vectors import l2_normalise

log = logging.getLogger(__name__)

MODALITY_BLOCKS = {
    "text": ("text", "tfidf"),
    "image": ("image", "image_text"),
    "audio": ("audio",),
    "video": ("video",),
}
MODALITIES = tuple(MODALITY_BLOCKS)
PROJECTOR_OF = {"text": "item", "image": "image", "audio": "audio", "video": "video"}  # agent projector keys
NATIVE_BLOCK = {"text": "text", "image": "image", "audio": "audio", "video": "video"}  # LLM soft-token input


def blocks_of(modalities: Iterable[str]) -> list[str]:
    """The vector blocks that carry the given modalities, in fusion order."""
    from fusionrec.retrieval.fusion import BLOCKS

    wanted = {b for m in modalities for b in MODALITY_BLOCKS[m]}
    return [b for b in BLOCKS if b in wanted]


@dataclass
class VectorTable:
    """block -> item id -> unit vector; `dims` per block; where the vectors came from."""

    vectors: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    dims: dict[str, int] = field(default_factory=dict)
    source: str = ""
    computed: dict[str, int] = field(default_factory=dict)

    def blocks(self) -> list[str]:
        return [b for b, vs in self.vectors.items() if vs]

    def modalities(self) -> list[str]:
        """Modalities with at least one block that has vectors."""
        have = set(self.blocks())
        return [m for m in MODALITIES if have & set(MODALITY_BLOCKS[m])]

    def get(self, block: str, item_id: str) -> np.ndarray | None:
        return self.vectors.get(block, {}).get(item_id)

    def coverage(self) -> dict[str, int]:
        return {b: len(vs) for b, vs in self.vectors.items()}

    def profile(self, block: str, ids: Sequence[str]) -> np.ndarray | None:
        """Unit mean of the block vectors of `ids` (the user's taste in that block), None if none."""
        vs = [self.vectors.get(block, {}).get(i) for i in ids]
        vs = [v for v in vs if v is not None]
        return l2_normalise(np.mean(vs, axis=0)) if vs else None


def load_vectors(cfg: Config, items: Sequence[Item], progress: bool = False) -> VectorTable:
    """Every block the store holds for these items, plus text vectors encoded for items it lacks."""
    ids = [i.id for i in items]
    table = VectorTable()
    try:
        from fusionrec.retrieval.fusion import BLOCKS
        from fusionrec.retrieval.store import Store

        if not cfg.retrieval.server_url and not cfg.chroma_dir.is_dir():
            raise FileNotFoundError(f"{cfg.chroma_dir} does not exist (run `fusionrec ingest`)")
        store = Store(cfg)
        kinds = set(store.kinds())
        for block in BLOCKS:
            if block not in kinds:
                continue
            recs = store.records(block, ids)
            if recs:
                table.vectors[block] = {rid: l2_normalise(rec[0]) for rid, rec in recs.items()}
                table.dims[block] = int(next(iter(table.vectors[block].values())).shape[0])
        where = cfg.retrieval.server_url or str(cfg.chroma_dir)
        table.source = f"chroma store {where} (collection prefix {cfg.retrieval.collection!r})"
    except Exception as exc:  # no store at all: text vectors only, encoded below
        log.warning("no usable Chroma store (%s); encoding text vectors for the evaluation", exc)
        table.source = f"no Chroma store ({exc}); text encoder"
    missing = [i for i in items if i.id not in table.vectors.get("text", {})]
    if missing:
        from fusionrec.encoders import load_text_encoder
        from fusionrec.retrieval.ingest import item_text

        enc = load_text_encoder(cfg)
        texts = [item_text(i) for i in missing]
        vecs = np.concatenate([enc.encode(texts[s : s + 256]) for s in range(0, len(texts), 256)])
        table.vectors.setdefault("text", {}).update(
            {i.id: l2_normalise(v) for i, v in zip(missing, vecs, strict=True)}
        )
        table.dims["text"] = int(vecs.shape[1])
        table.computed["text"] = len(missing)
    return table


def has_blocks(table: VectorTable, modalities: Iterable[str]) -> bool:
    """Whether every named modality has at least one block with vectors."""
    have = set(table.blocks())
    return all(have & set(MODALITY_BLOCKS[m]) for m in modalities)
