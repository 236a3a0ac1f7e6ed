"""`fusionrec ingest`: the prepared catalog, encoded per modality, upserted into Chroma by item id.

Resumable and idempotent: every record carries a content hash (item fields, media bytes, model ids,
blocks and fusion weights). Items whose stored records all carry the expected hash are skipped, so a
re-run writes nothing; the rest is encoded batch by batch and each batch is upserted as soon as it
is encoded (late collections first, the early record last), so a killed run resumes where it
stopped, and ids are item ids, so nothing is ever duplicated.

Collections (``<retrieval.collection>.<dataset>.<kind>``, see ``retrieval.store.Store``: each
dataset's catalog is its own, and an ingest removes stale ids of its own dataset only): one per
block (``text``, ``image``, ``image_text``, ``audio``, ``video``, ``tfidf``; see ``retrieval.fusion``)
for late and cross-modal fusion, and ``early`` holding one fused vector per item. All are written on every ingest, so the
fusion strategy can be switched at query time without re-encoding. Each record's document is the
item as JSON (with auto-labels merged into its tags), so the store alone can answer `item(id)`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.config import Config
from fusionrec.retrieval.fusion import early_fuse
from fusionrec.retrieval.store import Store, item_metadata
from fusionrec.types import Item

log = logging.getLogger(__name__)

MODALITIES = ("text", "image", "audio", "video", "tfidf")
BLOCKS_OF = {
    "text": ("text",),
    "image": ("image", "image_text"),
    "audio": ("audio",),
    "video": ("video",),
    "tfidf": ("tfidf",),
}
MEDIA_OF = {"image": "image", "audio": "audio", "video": "video"}  # modality -> Item.media key
LABELS_K = 3  # auto-labels kept per poster
LABELS_MIN_SCORE = 0.05  # and only those at least this likely
VIDEO_FPS = 1.0  # frames sampled per second from item videos
TFIDF_FEATURES = 4096  # TF-IDF vocabulary size (the vector dimension stored in Chroma)
HASH_VERSION = "1"  # bump when what goes into a vector changes


@dataclass
class IngestReport:
    dataset: str
    total: int = 0
    written: int = 0
    unchanged: int = 0
    removed: int = 0
    media_errors: list[dict[str, str]] = field(default_factory=list)
    modalities: list[str] = field(default_factory=list)
    seconds: float = 0.0
    encode_seconds: dict[str, float] = field(default_factory=dict)  # per modality: validate + encode
    encoded: dict[str, int] = field(default_factory=dict)  # per modality: items encoded
    generated: dict[str, int] = field(default_factory=dict)  # generated media files made this run

    def summary(self) -> str:
        text = f"{self.written} written, {self.unchanged} unchanged"
        if self.removed:
            text += f", {self.removed} removed"
        return text + f", {len(self.media_errors)} media errors ({self.total} items, {self.seconds:.1f} s)"


def item_text(item: Item, labels: Sequence[str] = ()) -> str:
    """What the text encoder reads: title, year, genres, overview, then tags and auto-labels."""
    head = item.title + (f" ({item.year})" if item.year else "")
    parts = [head]
    if item.genres:
        parts.append("Genres: " + ", ".join(item.genres) + ".")
    if item.text:
        parts.append(item.text.strip())
    tags = list(dict.fromkeys([*item.tags, *labels]))
    if tags:
        parts.append("Tags: " + ", ".join(tags) + ".")
    return " ".join(parts)


def _file_digest(path: str) -> str:
    p = Path(path)
    if not p.is_file():
        return "missing"
    h = hashlib.sha256()
    with p.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def content_hash(item: Item, modalities: Sequence[str], settings: dict[str, Any]) -> str:
    """Hash of everything a record depends on: item fields, media bytes, models, blocks, weights."""
    from fusionrec.data.catalog import item_to_dict

    media = {m: _file_digest(item.media[MEDIA_OF[m]]) for m in modalities if MEDIA_OF.get(m) in item.media}
    payload = {"v": HASH_VERSION, "item": item_to_dict(item), "media": media, "settings": settings}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def fitted_tfidf(cfg: Config, dataset: str, texts: Sequence[str]) -> tuple[Any, Path]:
    """The TF-IDF encoder fitted on the whole catalog's texts, persisted under the dataset's data dir
    (named by a digest of those texts, so an edited catalog gets a new fit and the old one stays)."""
    from fusionrec.encoders.text import TfidfEncoder

    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:10]
    path = cfg.data_dir / dataset / f"tfidf-{digest}.json"
    if path.is_file():
        return TfidfEncoder.load(path), path
    enc = TfidfEncoder(max_features=TFIDF_FEATURES, name=f"tfidf-{digest}").fit(texts)
    enc.save(path)
    return enc, path


class Encoders:
    """The encoders a set of modalities needs, loaded once; dims and model ids per block."""

    def __init__(self, cfg: Config, modalities: Sequence[str], dataset: str, catalog: Sequence[Item]) -> None:
        from fusionrec import encoders

        self.cfg, self.modalities = cfg, list(modalities)
        needs_text = bool({"text", "image", "video"} & set(modalities))  # image: the text-space bridge
        self.text = encoders.load_text_encoder(cfg) if needs_text else None
        self.image = encoders.load_image_encoder(cfg) if {"image", "video"} & set(modalities) else None
        self.audio = encoders.load_audio_encoder(cfg) if "audio" in modalities else None
        self.video = encoders.load_video_encoder(cfg) if "video" in modalities else None
        self.tfidf = None
        self.collection_meta: dict[str, dict[str, Any]] = {}  # block -> extra collection metadata
        if "tfidf" in modalities:
            self.tfidf, path = fitted_tfidf(cfg, dataset, [item_text(i) for i in catalog])
            self.collection_meta["tfidf"] = {"source": str(path)}
        self.dims: dict[str, int] = {}
        self.model_ids: dict[str, str] = {}
        for block in self.blocks():
            self.dims[block], self.model_ids[block] = self._describe(block)

    def blocks(self) -> list[str]:
        return [b for m in MODALITIES if m in self.modalities for b in BLOCKS_OF[m]]

    def _describe(self, block: str) -> tuple[int, str]:
        if block == "text":
            return int(self.text.dim), str(self.text.model_id)
        if block == "tfidf":
            return int(self.tfidf.dim), str(self.tfidf.model_id)
        if block in {"image", "video"}:
            suffix = f"@{VIDEO_FPS}fps" if block == "video" else ""
            return int(self.image.dim), str(self.image.model_id) + suffix
        if block == "image_text":
            dim = int(getattr(self.image, "text_dim", 0) or self.image.encode_text(["a poster"]).shape[1])
            return dim, f"{self.image.model_id}->text:{self.text.model_id}"
        if block == "audio":
            return int(self.audio.dim), str(self.audio.model_id)
        raise ValueError(block)


def _settings(enc: Encoders, cfg: Config) -> dict[str, Any]:
    return {
        "blocks": {b: [enc.dims[b], enc.model_ids[b]] for b in enc.blocks()},
        "weights": {k: float(v) for k, v in sorted(cfg.retrieval.weights.items())},
        "labels": [LABELS_K, LABELS_MIN_SCORE],
    }


def _unchanged_ids(store: Store, blocks: Sequence[str], hashes: dict[str, str]) -> tuple[set[str], list]:
    """Ids whose early record and every block record it lists carry the expected hash, and the
    media errors recorded for them."""
    ids = list(hashes)
    early = store.metadatas("early", ids)
    stored = {b: {i: m.get("content_hash") for i, m in store.metadatas(b, ids).items()} for b in blocks}
    same, errors = set(), []
    for item_id, meta in early.items():
        if meta.get("content_hash") != hashes[item_id]:
            continue
        had = json.loads(meta.get("blocks", "[]"))
        if all(b in stored and stored[b].get(item_id) == hashes[item_id] for b in had):
            same.add(item_id)
            errors += json.loads(meta.get("media_errors", "[]"))
    return same, errors


def _batches(seq: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [seq[i : i + size] for i in range(0, len(seq), max(1, size))]


def ingest(
    cfg: Config,
    dataset: str = "",
    limit: int = 0,
    modalities: Sequence[str] = ("text", "image"),
    progress: bool = True,
    on_batch: Callable[[int, IngestReport], None] | None = None,
    catalog: Sequence[Item] | None = None,
) -> IngestReport:
    """Encode the prepared catalog (or ``catalog`` when given) and upsert it.

    Returns what was written, skipped as unchanged, removed (ids no longer in this dataset's
    catalog; only when ingesting without a limit) and refused (media errors).
    ``on_batch(index, report)`` runs after each batch is stored.
    """
    from tqdm import tqdm

    from fusionrec.data.catalog import item_to_dict
    from fusionrec.data.prepare import load_prepared, prepared_name
    from fusionrec.media import MediaError, validate

    start = time.perf_counter()
    dataset = prepared_name(dataset or cfg.data.dataset)
    modalities = [m.strip() for m in modalities if m.strip()]
    unknown = [m for m in modalities if m not in MODALITIES]
    if unknown or not modalities:
        raise ValueError(f"unknown modalities {unknown or modalities} (known: {', '.join(MODALITIES)})")
    if catalog is None:
        catalog, _ = load_prepared(cfg, dataset)
    catalog = [replace(i, media=dict(i.media), metadata=dict(i.metadata)) for i in catalog]  # we add media
    items = catalog[:limit] if limit else list(catalog)
    report = IngestReport(dataset=dataset, total=len(items), modalities=list(modalities))
    if cfg.data.generated_media and {"audio", "video"} & set(modalities):
        from fusionrec.data.generated_media import add_generated_media

        report.generated = add_generated_media(cfg, dataset, items, progress=progress)

    enc = Encoders(cfg, modalities, dataset, catalog)
    blocks = enc.blocks()
    settings = _settings(enc, cfg)
    store = Store(cfg, dataset)
    layout = [(b, enc.dims[b]) for b in blocks]
    for b in blocks:
        store.ensure(b, enc.dims[b], enc.model_ids[b], enc.collection_meta.get(b))
    for b in set(store.kinds()) - {*blocks, "early"}:  # blocks of an earlier modality set
        store.drop(b)
    store.ensure(
        "early",
        sum(d for _, d in layout),
        "+".join(enc.model_ids[b] for b in blocks),
        {"layout": json.dumps(layout), "weights": json.dumps(settings["weights"], sort_keys=True)},
    )

    hashes = {i.id: content_hash(i, modalities, settings) for i in items}
    same, report.media_errors = _unchanged_ids(store, blocks, hashes)
    todo = [i for i in items if i.id not in same]
    report.unchanged = len(items) - len(todo)

    bar = tqdm(total=len(todo), desc="ingest", unit="item", disable=not progress or not todo)
    try:
        for bi, batch in enumerate(_batches(todo, cfg.retrieval.batch_size)):
            _ingest_batch(cfg, enc, store, batch, hashes, layout, report, validate, MediaError, item_to_dict)
            report.written += len(batch)
            bar.update(len(batch))
            if on_batch is not None:
                on_batch(bi, report)
    finally:
        bar.close()
    if not limit:
        stale = sorted(set(store.all_ids("early")) - {i.id for i in catalog})
        for kind in ["early", *blocks]:
            store.delete(kind, stale)
        report.removed = len(stale)
    report.seconds = time.perf_counter() - start
    _write_report(cfg, report)
    return report


def _ingest_batch(
    cfg: Config,
    enc: Encoders,
    store: Store,
    batch: Sequence[Item],
    hashes: dict[str, str],
    layout: list[tuple[str, int]],
    report: IngestReport,
    validate: Callable[..., Any],
    media_error: type[Exception],
    item_to_dict: Callable[[Item], dict],
) -> None:
    """Validate, encode and upsert one batch: block records first, the early records last."""
    vectors: dict[str, dict[str, np.ndarray]] = {b: {} for b, _ in layout}
    extras: dict[str, dict[str, Any]] = {i.id: {} for i in batch}
    errors: dict[str, list[dict[str, str]]] = {i.id: [] for i in batch}

    def valid(kind: str) -> list[Item]:
        ok = []
        for item in batch:
            path = item.media.get(kind)
            if not path:
                continue
            try:
                validate(path, kind)
            except media_error as exc:
                errors[item.id].append(
                    {"item_id": item.id, "kind": kind, "path": str(path), "error": str(exc)}
                )
                log.warning("item %s: %s skipped: %s", item.id, kind, exc)
                continue
            ok.append(item)
        return ok

    def timed(modality: str, n: int, t0: float) -> None:
        report.encode_seconds[modality] = report.encode_seconds.get(modality, 0.0) + time.perf_counter() - t0
        report.encoded[modality] = report.encoded.get(modality, 0) + n

    labels: dict[str, list[str]] = {}
    if "image" in enc.modalities:
        t0 = time.perf_counter()
        posters = valid("image")
        if posters:
            paths = [i.media["image"] for i in posters]
            native, bridged, top = _image_features(enc.image, paths)
            for row, item in enumerate(posters):
                vectors["image"][item.id], vectors["image_text"][item.id] = native[row], bridged[row]
                labels[item.id] = [name for name, p in top[row] if p >= LABELS_MIN_SCORE]
                extras[item.id]["labels"] = ", ".join(labels[item.id])
        timed("image", len(posters), t0)
    texts = [item_text(i, labels.get(i.id, ())) for i in batch]
    if "text" in enc.modalities:
        t0 = time.perf_counter()
        for row, vec in enumerate(enc.text.encode(texts)):
            vectors["text"][batch[row].id] = vec
        timed("text", len(batch), t0)
    if "tfidf" in enc.modalities:
        t0 = time.perf_counter()
        for row, vec in enumerate(enc.tfidf.encode(texts)):
            vectors["tfidf"][batch[row].id] = vec
        timed("tfidf", len(batch), t0)
    if "audio" in enc.modalities:
        t0 = time.perf_counter()
        clips = valid("audio")
        # A generated reading of the overview is not transcribed: its words are the overview's.
        for generated in (True, False):
            part = [i for i in clips if ("audio" in i.metadata.get("generated_media", [])) == generated]
            if not part:
                continue
            feats_list = enc.audio.encode([i.media["audio"] for i in part], transcribe=not generated)
            for item, feats in zip(part, feats_list, strict=True):
                vectors["audio"][item.id] = np.asarray(feats.whisper, dtype=np.float32).reshape(-1)
                if feats.transcript:
                    extras[item.id]["transcript"] = feats.transcript[:500]
        timed("audio", len(clips), t0)
    if "video" in enc.modalities:
        t0 = time.perf_counter()
        videos = valid("video")
        for item in videos:
            feats = enc.video.encode(
                item.media["video"], fps=VIDEO_FPS, with_audio=False
            )  # sound: audio block
            vectors["video"][item.id] = np.asarray(feats.image, dtype=np.float32).reshape(-1)
        timed("video", len(videos), t0)

    docs: dict[str, str] = {}
    for item in batch:
        shown = replace(item, tags=list(dict.fromkeys([*item.tags, *labels.get(item.id, [])])))
        docs[item.id] = json.dumps(item_to_dict(shown), ensure_ascii=False)
        report.media_errors += errors[item.id]

    def meta(item: Item, model_id: str, **more: Any) -> dict[str, Any]:
        generated = item.metadata.get("generated_media")
        return item_metadata(
            item, hashes[item.id], model_id, generated_media=generated, **extras[item.id], **more
        )

    for block, _ in layout:
        have = [i for i in batch if i.id in vectors[block]]
        if have:
            store.upsert(
                block,
                [i.id for i in have],
                np.stack([vectors[block][i.id] for i in have]),
                [meta(i, enc.model_ids[block]) for i in have],
                [docs[i.id] for i in have],
            )
        store.delete(block, [i.id for i in batch if i.id not in vectors[block]])
    weights = cfg.retrieval.weights
    fused = [early_fuse(layout, {b: vectors[b].get(i.id) for b, _ in layout}, weights) for i in batch]
    store.upsert(
        "early",
        [i.id for i in batch],
        np.stack(fused),
        [
            meta(
                i,
                "early",
                blocks=json.dumps([b for b, _ in layout if i.id in vectors[b]]),
                media_errors=json.dumps(errors[i.id]) if errors[i.id] else None,
            )
            for i in batch
        ],
        [docs[i.id] for i in batch],
    )


def _image_features(image: Any, paths: list[str]) -> tuple[np.ndarray, np.ndarray, list]:
    """Native vectors, text-space vectors and top labels, in one forward pass when the encoder can."""
    if hasattr(image, "features"):
        from fusionrec.encoders.image import top_labels

        feats = image.features(paths)
        return feats.native, feats.text, top_labels(feats.probs, image.class_names, LABELS_K)
    return image.encode(paths), image.to_text_space(paths), image.labels(paths, k=LABELS_K)


def report_path(cfg: Config, dataset: str) -> Path:
    return cfg.data_dir / dataset / "ingest_report.json"


def _write_report(cfg: Config, report: IngestReport) -> None:
    path = report_path(cfg, report.dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(report), indent=2) + "\n", encoding="utf-8")


def ingest_command(cfg: Config, args: Any) -> int:
    """`fusionrec ingest [--dataset D] [--limit N] [--modalities text,image,...]`."""
    from fusionrec.models.registry import ModelError
    from fusionrec.retrieval.store import StoreError

    modalities = [m for m in (args.modalities or "text,image").split(",") if m.strip()]
    try:
        report = ingest(cfg, args.dataset or cfg.data.dataset, limit=args.limit, modalities=modalities)
    except (FileNotFoundError, ModelError, StoreError, ValueError) as exc:  # not prepared, bad option ...
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    for err in report.media_errors:
        print(f"  media error: item {err['item_id']} {err['kind']} {err['path']}: {err['error']}")
    print(f"report: {report_path(cfg, report.dataset)}")
    return 0
