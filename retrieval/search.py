"""Candidate retrieval: a text and/or media query -> Chroma -> candidates with per-modality scores.

`Retriever(cfg).retrieve(query_text, attachments, filters, exclude_ids, k)` is what the agent calls
(and `retrieve_like` for "more like this one"); the Retriever is the only door to the store.
The query becomes one vector per block (see `retrieval.fusion`): text goes to the blocks it really
reaches (``retrieval.text_blocks``: text and TF-IDF, not the posters' label bridge); an image to the
image and video blocks natively and to the image-in-text-space block through ``to_text_space`` (not
to the overview's text block: an exact poster match must not be outvoted by a noisy
image-to-overview channel); audio through its transcript (as text) and its Whisper vector; a video
through its pooled frames (as an image) and its sound track (as audio).
``retrieval.fusion`` then picks the strategy: ``early`` (one fused vector, one collection), ``late``
(one search per block, combined by RRF or a weighted score mean) or ``cross`` (late candidates,
scored by the cross-modal attention module whose trained weights ``retrieval.cross_weights``
names). Filters and excluded ids go into Chroma's ``where``. Whatever the strategy, the pool is then
re-scored by the request's words (`retrieval.lexical`, ``retrieval.lexical_weight``).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.config import Config
from fusionrec.retrieval.fusion import (
    BLOCKS,
    COMBINES,
    FUSIONS,
    cross_inputs,
    cross_scores,
    early_fuse,
    load_cross_fusion,
    modality_scores,
    pool_scores,
    query_dim,
    split_blocks,
)
from fusionrec.retrieval.ingest import VIDEO_FPS
from fusionrec.retrieval.lexical import Lexicon, hybrid
from fusionrec.retrieval.store import Store, build_where, hidden
from fusionrec.types import Attachment, Candidate, Item
from fusionrec.vectors import l2_normalise

log = logging.getLogger(__name__)

OVERFETCH = 2  # each block search fetches this many times k (late / cross)


class RetrievalError(RuntimeError):
    """The store is empty, built with other models, or the config names an unknown strategy."""


def ingested(cfg: Config) -> bool:
    """Whether the configured dataset has items in the store (`fusionrec ingest` ran)."""
    return Store(cfg).count("early") > 0


def not_ingested(cfg: Config, store: Store) -> str:
    """Which dataset is missing from which store, which ones are there, and what to run."""
    where = cfg.retrieval.server_url or cfg.chroma_dir
    there = ", ".join(store.datasets()) or "none"
    home = f" paths.home={cfg.paths.home}" if cfg.paths.home != ".fusionrec" else ""
    return (
        f"dataset {store.dataset!r} is not ingested in the Chroma store at {where} "
        f"(collection prefix {cfg.retrieval.collection!r}; ingested: {there}): "
        f"run `fusionrec ingest --dataset {store.dataset}{home}` or pick one with data.dataset=NAME"
    )


@dataclass
class QueryVectors:
    """One vector per block the query reaches, the turn's text-space vector, and what was heard/seen."""

    blocks: dict[str, np.ndarray] = field(default_factory=dict)
    turn: np.ndarray | None = None
    transcripts: list[str] = field(default_factory=list)  # what Whisper heard
    searched: list[str] = field(default_factory=list)  # the transcripts as searched (`Retriever.corrected`)
    texts: list[str] = field(default_factory=list)  # the typed text and searched transcripts (lexical match)
    uploads: list[Upload] = field(default_factory=list)  # one per attachment, in order


@dataclass
class Upload:
    """An attachment as the query encoded it, for the prompt: its native vector and what it shows/says."""

    kind: str  # image | audio | video
    vector: np.ndarray | None  # native features (image), pooled Whisper states (audio), pooled frames (video)
    labels: list[str] = field(default_factory=list)  # top image classes
    transcript: str = ""  # what the audio (or the video's sound track) says


class Retriever:
    """Queries the catalog that `fusionrec ingest` stored; encoders load on first need."""

    def __init__(self, cfg: Config, dataset: str = "") -> None:
        self.cfg = cfg
        self.fusion = cfg.retrieval.fusion
        if self.fusion not in FUSIONS:
            raise RetrievalError(f"retrieval.fusion={self.fusion!r}: expected one of {', '.join(FUSIONS)}")
        if cfg.retrieval.late_combine not in COMBINES:
            raise RetrievalError(
                f"retrieval.late_combine={cfg.retrieval.late_combine!r}: expected one of {', '.join(COMBINES)}"
            )
        self.store = Store(cfg, dataset)
        self.dataset = self.store.dataset
        kinds = set(self.store.kinds())
        self.blocks = [b for b in BLOCKS if b in kinds]
        early = self.store.get("early")
        if early is None or not self.blocks:
            raise RetrievalError(not_ingested(cfg, self.store))
        self.layout: list[tuple[str, int]] = [tuple(x) for x in json.loads(early.metadata["layout"])]
        self.dims = {b: int(self.store.get(b).metadata["dim"]) for b in self.blocks}
        self.model_ids = {b: str(self.store.get(b).metadata["model_id"]) for b in self.blocks}
        self._items: dict[str, Item] = {}
        self._encoders: dict[str, Any] = {}
        self._cross: Any = None
        self._corrector: Any = None  # retrieval.transcripts.TranscriptCorrector, built on first need
        self._lexicon: Lexicon | None = None  # the catalog's document frequencies, built on first need
        self.cross_trained: bool | None = None  # known once the cross-modal module is loaded
        self.last_query: QueryVectors | None = None

    # --- encoders ----------------------------------------------------------------------------
    def _encoder(self, role: str) -> Any:
        if role not in self._encoders:
            from fusionrec import encoders

            if role == "tfidf":
                from fusionrec.encoders.text import TfidfEncoder

                self._encoders[role] = TfidfEncoder.load(self.store.get("tfidf").metadata["source"])
            else:
                loader = {
                    "text": encoders.load_text_encoder,
                    "image": encoders.load_image_encoder,
                    "audio": encoders.load_audio_encoder,
                    "video": encoders.load_video_encoder,
                }[role]
                self._encoders[role] = loader(self.cfg)
            self._check_model(role, self._encoders[role])
        return self._encoders[role]

    def _check_model(self, role: str, encoder: Any) -> None:
        block = {"text": "text", "image": "image", "audio": "audio", "tfidf": "tfidf"}.get(role)
        stored = self.model_ids.get(block or "")
        if block and stored and stored != str(encoder.model_id):
            raise RetrievalError(
                f"collection {self.store.name(block)} was built with {stored!r} but the configured "
                f"{role} model is {encoder.model_id!r}: re-run `fusionrec ingest`"
            )

    def _image_in_text_space(self) -> bool:
        """Whether the image encoder's text space is the text encoder's (the zero-shot bridge)."""
        if "same_space" not in self._encoders:
            probe = ["a film about friendship"]
            a = self._encoder("image").encode_text(probe)
            b = self._encoder("text").encode(probe)
            self._encoders["same_space"] = a.shape == b.shape and bool(np.allclose(a, b, atol=1e-4))
        return self._encoders["same_space"]

    # --- query vectors -----------------------------------------------------------------------
    def query_vectors(
        self,
        query_text: str = "",
        attachments: Sequence[Attachment] = (),
        text_blocks: Sequence[str] | None = None,
    ) -> QueryVectors:
        """The query's vector per block (only blocks the store has), averaged over contributions;
        text reaches `text_blocks` (default ``retrieval.text_blocks``)."""
        from fusionrec.encoders.image import top_labels
        from fusionrec.media import validate

        parts: dict[str, list[np.ndarray]] = {}
        texts: list[str] = []
        transcripts: list[str] = []
        searched: list[str] = []
        uploads: list[Upload] = []

        def add(block: str, vec: Any) -> None:
            v = np.asarray(vec, dtype=np.float32).reshape(-1)
            if block in self.dims and v.shape[0] == self.dims[block] and np.any(v):
                parts.setdefault(block, []).append(l2_normalise(v))

        def add_text(text: str) -> None:
            """Typed or heard text, in the blocks it really reaches (``retrieval.text_blocks``)."""
            if not text.strip():
                return
            texts.append(text)
            reach = [b for b in (text_blocks or self.cfg.retrieval.text_blocks) if b in self.dims]
            vec = None
            if "text" in reach:
                vec = self._encoder("text").encode([text])[0]
                add("text", vec)
            if "tfidf" in reach:
                add("tfidf", self._encoder("tfidf").encode([text])[0])
            if "image_text" in reach:  # the zero-shot bridge's text side is the text encoder itself
                same = vec is not None and self._image_in_text_space()
                add("image_text", vec if same else self._encoder("image").encode_text([text])[0])

        def add_image_like(native: Any, text_space: Any) -> None:
            add("image", native)
            add("video", native)
            add("image_text", text_space)  # meaning: compared with posters in the text space

        def add_audio(feats: Any) -> None:
            if feats is None:
                return
            if feats.transcript:
                transcripts.append(feats.transcript)
                searched.append(self.corrected(feats))
                add_text(searched[-1])
            add("audio", feats.whisper)

        add_text(query_text or "")
        for att in attachments:
            if not att.validated:
                att = validate(att.path, att.kind)
            path = str(att.path)
            if att.kind == "image":  # one forward pass: native features, text space, class labels
                image = self._encoder("image")
                feats = image.features([path])
                add_image_like(feats.native[0], feats.text[0])
                labels = [name for name, _ in top_labels(feats.probs, image.class_names, k=3)[0]]
                uploads.append(Upload("image", feats.native[0], labels=labels))
            elif att.kind == "audio":
                heard = self._encoder("audio").encode([path])[0]
                add_audio(heard)
                uploads.append(Upload("audio", heard.whisper, transcript=heard.transcript.strip()))
            elif att.kind == "video":
                feats = self._encoder("video").encode(path, fps=VIDEO_FPS)
                add_image_like(feats.image, feats.to_text_space)
                add_audio(feats.audio)
                said = feats.audio.transcript.strip() if feats.audio is not None else ""
                uploads.append(Upload("video", feats.image, transcript=said))
            else:
                raise ValueError(f"unknown attachment kind {att.kind!r} for {path}")
        blocks = {b: l2_normalise(np.mean(vs, axis=0)) for b, vs in parts.items()}
        turn = blocks.get("text")
        if turn is None and "image_text" in blocks and self._image_in_text_space():
            turn = blocks["image_text"]
        return QueryVectors(
            blocks=blocks, turn=turn, transcripts=transcripts, searched=searched, uploads=uploads, texts=texts
        )

    def corrected(self, feats: Any) -> str:
        """A transcript as it is searched: its confidently heard words (``models.speech_min_word_prob``), or,
        with ``retrieval.speech_correction`` > 0, the whole transcript moved toward the catalog's titles and
        names where Whisper finds them about as likely as what it wrote (`retrieval.transcripts`)."""
        bonus = self.cfg.retrieval.speech_correction
        if bonus <= 0:  # the words Whisper heard confidently (`models.speech_min_word_prob`)
            return feats.confident or feats.transcript
        from fusionrec.media import MediaError
        from fusionrec.retrieval.transcripts import CatalogLexicon, TranscriptCorrector, WhisperScorer

        if self._corrector is None:
            docs = self.store.get("early").get(include=["documents"])["documents"]
            scorer = WhisperScorer(self._encoder("audio"))
            self._corrector = TranscriptCorrector(CatalogLexicon.from_documents(docs), scorer)
        try:
            return self._corrector.correct(feats.transcript, feats.path, feats.language, bonus).text
        except MediaError:  # the clip is gone (e.g. a video's extracted sound track): search what was heard
            return feats.transcript

    # --- retrieval ---------------------------------------------------------------------------
    def retrieve(
        self,
        query_text: str = "",
        attachments: Sequence[Attachment] = (),
        filters: dict[str, Any] | None = None,
        exclude_ids: Iterable[str] = (),
        k: int | None = None,
        query: QueryVectors | None = None,
    ) -> list[Candidate]:
        """Top-k candidates, best first, each with its fused score and per-modality scores.

        `query`: the turn's vectors when the caller already has them (`query_vectors`; the text and
        attachments are then not encoded again)."""
        k = int(k or self.cfg.retrieval.k)
        exclude = {str(i) for i in exclude_ids}
        where = build_where(filters, exclude)
        query = query or self.query_vectors(query_text, attachments)
        self.last_query = query  # what the query became (e.g. the transcript of an audio attachment)
        if not query.blocks:
            return self._browse(where, k, exclude)
        scored = self._early(query, where, k) if self.fusion == "early" else self._late(query, where, k)
        scored = [s for s in scored if s[0] not in exclude]  # belt and braces: where already did it
        scored = self._with_lexical(query, scored)
        scored.sort(key=lambda s: -s[1])
        return [Candidate(self.item(rid), score, mods) for rid, score, mods in scored[:k]]

    def retrieve_like(
        self,
        item_id: str,
        query: QueryVectors | None = None,
        filters: dict[str, Any] | None = None,
        exclude_ids: Iterable[str] = (),
        k: int | None = None,
    ) -> list[Candidate]:
        """More like this one: the stored item's early-fused vector (``retrieval.like_weight`` times the
        turn's `query`, when it has vectors) searches the early index; a candidate's ``liked_item`` modality
        score is its cosine to that vector, and its score too unless the turn's words re-score the pool
        (`_with_lexical`). An item not stored: `retrieve`."""
        k = int(k or self.cfg.retrieval.k)
        item_id, exclude = str(item_id), [str(i) for i in exclude_ids]
        rec = self.store.records("early", [item_id]).get(item_id)
        if rec is None:
            return self.retrieve(filters=filters, exclude_ids=exclude, k=k, query=query)
        vec = l2_normalise(rec[0])
        if query is not None and query.blocks:
            turn = early_fuse(self.layout, query.blocks, self.cfg.retrieval.weights)
            vec = l2_normalise(self.cfg.retrieval.like_weight * vec + turn)
        worded = query is not None and bool(self._lexical_text(query))
        pool = (k * OVERFETCH + 10 if worded else k) + len(exclude) + 1
        skip = {*exclude, item_id}
        hits = [h for h in self.store.query("early", vec, pool, build_where(filters, exclude)) if h[0] not in skip]
        scored = [(rid, score, {"liked_item": score}) for rid, score in hits]
        if query is not None:
            scored = sorted(self._with_lexical(query, scored), key=lambda s: -s[1])
        return [Candidate(self.item(rid), score, mods) for rid, score, mods in scored[:k]]

    def admissible(
        self, ids: Sequence[str], filters: dict[str, Any] | None = None, exclude_ids: Iterable[str] = ()
    ) -> list[str]:
        """The stored ones of `ids` that `retrieve` could return under these filters (not excluded, no
        placeholder title), in the given order."""
        ids = [str(i) for i in ids]
        if not ids:
            return []
        got = self.store.get("early").get(ids=ids, where=build_where(filters, exclude_ids), include=["metadatas"])
        ok = {rid for rid, meta in zip(got["ids"], got["metadatas"], strict=True) if not hidden(meta or {})}
        return [i for i in ids if i in ok]

    def _browse(self, where: dict | None, k: int, exclude: set[str]) -> list[Candidate]:
        """No query vector (e.g. filters only): items matching the filters, in catalog order."""
        col = self.store.get("early")
        got = col.get(where=where, limit=k + len(exclude) + 10, include=["documents", "metadatas"])
        keep = []
        for rid, doc, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True):
            if rid not in exclude and not hidden(meta or {}):  # placeholder titles are never offered
                self._remember(rid, doc)
                keep.append(rid)
        return [Candidate(self.item(rid), 0.0, {}) for rid in keep[:k]]

    def _early(self, query: QueryVectors, where: dict | None, k: int) -> list[tuple[str, float, dict]]:
        """One fused search, re-scored over the blocks each hit shares with the query."""
        weights = self.cfg.retrieval.weights
        qvec = early_fuse(self.layout, query.blocks, weights)
        if not np.any(qvec):  # the query reaches no block of the fused vector
            return []
        hits = self.store.query("early", qvec, k * OVERFETCH + 10, where)
        records = self.store.records("early", [rid for rid, _ in hits])
        block_scores = {}
        for rid, _ in hits:
            emb, _, doc = records[rid]
            self._remember(rid, doc)
            parts = split_blocks(emb, self.layout)
            block_scores[rid] = {b: float(parts[b] @ query.blocks[b]) for b in parts if b in query.blocks}
        fused = pool_scores("early", block_scores, weights)
        return [(rid, fused[rid], modality_scores(s)) for rid, s in block_scores.items()]

    def _with_lexical(
        self, query: QueryVectors, scored: list[tuple[str, float, dict]]
    ) -> list[tuple[str, float, dict]]:
        """The pool re-scored with the request's lexical match (`retrieval.lexical`), weight
        ``retrieval.lexical_weight``; each candidate's match is its ``lexical`` modality score."""
        text = self._lexical_text(query)
        if not text or len(scored) < 2:
            return scored
        if self._lexicon is None:
            docs = self.store.get("early").get(include=["documents"])["documents"]
            self._lexicon = Lexicon.from_documents(docs)
        ids = [rid for rid, _, _ in scored]
        lexical = dict(zip(ids, self._lexicon.scores(text, self.items(ids)).tolist(), strict=True))
        fused = hybrid({rid: score for rid, score, _ in scored}, lexical, self.cfg.retrieval.lexical_weight)
        return [(rid, fused[rid], {**mods, "lexical": lexical[rid]}) for rid, _, mods in scored]

    def _lexical_text(self, query: QueryVectors) -> str:
        """The words the pool is matched with: the query's texts, or "" when ``retrieval.lexical_weight`` is 0."""
        return " ".join(query.texts).strip() if self.cfg.retrieval.lexical_weight > 0 else ""

    def _late(self, query: QueryVectors, where: dict | None, k: int) -> list[tuple[str, float, dict]]:
        channels = [b for b in query.blocks if b in self.dims]
        lists = {b: self.store.query(b, query.blocks[b], k * OVERFETCH + 10, where) for b in channels}
        ids = list(dict.fromkeys(rid for b in channels for rid, _ in lists[b]))
        block_scores, vectors = self._block_scores(query, ids, channels)
        rcfg = self.cfg.retrieval
        if self.fusion == "cross":
            turn, rows = query.turn, [block_scores[rid] for rid in ids]
            scores = cross_scores(self.cross_module(), turn, [vectors[rid] for rid in ids], rows)
            fused = dict(zip(ids, scores, strict=True))
        else:
            fused = pool_scores("late", block_scores, rcfg.weights, rcfg.late_combine, rcfg.rrf_k)
        return [(rid, float(fused.get(rid, 0.0)), modality_scores(block_scores[rid])) for rid in ids]

    def _block_scores(
        self, query: QueryVectors, ids: Sequence[str], blocks: Sequence[str]
    ) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, np.ndarray]]]:
        """Exact cosine per (item, block) for the blocks both sides have, and the item vectors."""
        scores: dict[str, dict[str, float]] = {rid: {} for rid in ids}
        vectors: dict[str, dict[str, np.ndarray]] = {rid: {} for rid in ids}
        for b in blocks:
            for rid, (emb, _, doc) in self.store.records(b, ids).items():
                self._remember(rid, doc)
                vectors[rid][b] = emb
                if b in query.blocks:
                    scores[rid][b] = float(l2_normalise(emb) @ query.blocks[b])
        return scores, vectors

    def cross_module(self) -> Any:
        """The cross-modal attention module: the trained one ``retrieval.cross_weights`` names when it
        fits the store's blocks, else equal weights per modality (logged)."""
        if self._cross is None:
            self._cross, self.cross_trained = load_cross_fusion(self.cfg, self.dims, query_dim(self.dims))
        return self._cross

    def cross_inputs(self, query: QueryVectors, ids: Sequence[str]) -> dict[str, Any]:
        """Tensors for `CrossModalFusion` (batch of one query, `retrieval.fusion.cross_inputs`) over
        the stored items `ids`: what the finetune recipes train on."""
        block_scores, vectors = self._block_scores(query, ids, self.blocks)
        rows = [block_scores[rid] for rid in ids]
        return cross_inputs(self.cross_module(), query.turn, [vectors[rid] for rid in ids], rows)

    # --- items -------------------------------------------------------------------------------
    def _remember(self, rid: str, doc: str | None) -> None:
        if doc and rid not in self._items:
            from fusionrec.data.catalog import item_from_dict

            self._items[rid] = item_from_dict(json.loads(doc), "<chroma>", 0)

    def item(self, item_id: str) -> Item:
        """The stored item (with its auto-labels among the tags); KeyError when it is not stored."""
        item_id = str(item_id)
        if item_id not in self._items:
            for kind in ["early", *self.blocks]:
                got = self.store.records(kind, [item_id])
                if item_id in got:
                    self._remember(item_id, got[item_id][2])
                    break
            else:
                raise KeyError(f"item {item_id!r} is not in collection {self.store.name('early')}")
        return self._items[item_id]

    def items(self, ids: Sequence[str]) -> list[Item]:
        """Several stored items at once (unknown ids raise KeyError)."""
        missing = [str(i) for i in ids if str(i) not in self._items]
        for rid, (_, _, doc) in self.store.records("early", missing).items():
            self._remember(rid, doc)
        return [self.item(i) for i in ids]

    def metadatas(self) -> dict[str, dict[str, Any]]:
        """Every stored item's metadata (title, year, genres, ...), placeholder titles included."""
        return self.store.metadatas("early", self.store.all_ids("early"))

    def block_vectors(self, block: str, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vectors of `ids` in one block (ids without one, or a block not stored: left out)."""
        if block not in self.blocks:
            return {}
        return {rid: rec[0] for rid, rec in self.store.records(block, [str(i) for i in ids]).items()}


# --- `fusionrec search` --------------------------------------------------------------------------
def search_command(cfg: Config, args: Any) -> int:
    """Print a table of candidates for `fusionrec search "text" [--image F] [--audio F] [--video F]`.

    Bad input and an unusable store give one line on stderr and exit code 2.
    """
    from rich.console import Console
    from rich.table import Table

    from fusionrec.media import MediaError, validate
    from fusionrec.models.registry import ModelError
    from fusionrec.retrieval.config import K_MAX
    from fusionrec.retrieval.store import StoreError

    def fail(message: str) -> int:
        print(f"error: {message}", file=sys.stderr)
        return 2

    attachments = []
    for kind in ("image", "audio", "video"):
        path = getattr(args, kind, "") or ""
        if path:
            try:
                attachments.append(validate(Path(path), kind))
            except MediaError as exc:
                return fail(str(exc))
    if not (args.query or attachments):
        return fail("give a text query and/or --image/--audio/--video")
    limit = cfg.agent.max_message_chars  # the one message length limit, shared with chat
    if len(args.query) > limit:
        return fail(f"the query is too long ({len(args.query)} characters; agent.max_message_chars={limit})")
    if not 1 <= args.k <= K_MAX:
        return fail(f"--k {args.k}: expected a number from 1 to {K_MAX}")
    filters: dict[str, Any] = {}
    if args.genre:
        filters["genres"] = list(args.genre)
    if getattr(args, "exclude_genre", None):
        filters["exclude_genres"] = list(args.exclude_genre)
    if args.year_min is not None:
        filters["year_min"] = args.year_min
    if args.year_max is not None:
        filters["year_max"] = args.year_max
    try:
        retriever = Retriever(cfg, getattr(args, "dataset", "") or "")
        candidates = retriever.retrieve(args.query, attachments, filters or None, k=args.k)
    except (RetrievalError, StoreError, ModelError, OSError, ValueError) as exc:  # ValueError: bad config
        return fail(str(exc))
    console = Console()
    mods = [
        m
        for m in ("text", "image", "audio", "video", "tfidf")
        if any(m in c.modality_scores for c in candidates)
    ]
    title = f"{len(candidates)} candidates from {retriever.dataset} ({cfg.retrieval.fusion} fusion"
    title += f", {cfg.retrieval.late_combine})" if cfg.retrieval.fusion == "late" else ")"
    table = Table(title=title)
    for col in ("#", "id", "title", "year", "genres", "score", *mods):
        table.add_column(col, justify="right" if col in {"#", "year", "score", *mods} else "left")
    for rank, cand in enumerate(candidates, start=1):
        it = cand.item
        row = [str(rank), it.id, it.title, str(it.year or ""), ", ".join(it.genres), f"{cand.score:.4f}"]
        row += [f"{cand.modality_scores[m]:.3f}" if m in cand.modality_scores else "" for m in mods]
        table.add_row(*row)
    heard = retriever.last_query.transcripts if retriever.last_query else []
    for text in heard:
        console.print(f"heard: {text!r}")
    console.print(table)
    return 0
