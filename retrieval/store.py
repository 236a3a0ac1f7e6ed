"""The Chroma store: one client per location, collections that always get explicit embeddings.

Embedded ``chromadb.PersistentClient`` under ``cfg.chroma_dir`` by default; ``chromadb.HttpClient``
when ``retrieval.server_url`` is set. Telemetry is off. Collections are created with
``embedding_function=None`` and every add/upsert passes the vectors itself (Chroma would otherwise try
to download its default model). Records are keyed by item id; their metadata carries the item id,
title, year (-1 when unknown), one boolean flag per genre (``g_<genre>``) so filters run inside
Chroma's ``where``, the content hash and the model id.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from fusionrec.config import Config
from fusionrec.types import Item

MAX_BATCH = 5000  # Chroma refuses batches above ~5,461 records
_CLIENTS: dict[tuple, Any] = {}
_LOCK = threading.Lock()


class StoreError(RuntimeError):
    """The store cannot be reached or holds something other than what the config expects."""


def parse_server_url(url: str) -> tuple[str, int, bool]:
    """``http://host:port`` -> (host, port, ssl); the port defaults to 8000 (443 for https)."""
    raw = url.strip()
    parsed = urlparse(raw if "://" in raw else f"http://{raw}")
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        raise StoreError(f"retrieval.server_url={url!r}: expected http://host:port")
    ssl = parsed.scheme == "https"
    return parsed.hostname, parsed.port or (443 if ssl else 8000), ssl


def open_client(cfg: Config) -> Any:
    """The Chroma client for this config, one per location per process (telemetry off)."""
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False, allow_reset=True)
    url = cfg.retrieval.server_url.strip()
    if url:
        host, port, ssl = parse_server_url(url)
        key: tuple = ("http", host, port, ssl)
    else:
        path = cfg.chroma_dir
        key = ("path", str(path))
    with _LOCK:
        if key not in _CLIENTS:
            if url:
                try:
                    client = chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=settings)
                    client.heartbeat()
                except Exception as exc:  # connection refused, DNS, TLS ...
                    raise StoreError(
                        f"cannot reach the Chroma server at {url} ({exc}); start one with "
                        f"`chroma run --path DIR --host {host} --port {port}` or clear retrieval.server_url"
                    ) from exc
            else:
                path.mkdir(parents=True, exist_ok=True)
                client = chromadb.PersistentClient(path=str(path), settings=settings)
            _CLIENTS[key] = client
        return _CLIENTS[key]


def forget_clients() -> None:
    """Drop cached clients (tests that restart a server on the same port)."""
    with _LOCK:
        _CLIENTS.clear()


# --- metadata and filters ------------------------------------------------------------------------
def genre_key(genre: str) -> str:
    """The metadata flag for a genre: ``Sci-Fi`` -> ``g_sci_fi`` (case and punctuation folded)."""
    return "g_" + re.sub(r"[^a-z0-9]+", "_", genre.lower()).strip("_")


def item_metadata(item: Item, content_hash: str, model_id: str, **extra: Any) -> dict[str, Any]:
    """Chroma metadata for one item's record (scalars only: str, int, float, bool)."""
    meta: dict[str, Any] = {
        "item_id": item.id,
        "title": item.title,
        "year": int(item.year) if item.year else -1,
        "genres": ", ".join(item.genres),
        "content_hash": content_hash,
        "model_id": model_id,
    }
    for genre in item.genres:
        meta[genre_key(genre)] = True
    for key, value in extra.items():
        if value is None:
            continue
        meta[key] = value if isinstance(value, str | int | float | bool) else json.dumps(value)
    return meta


def build_where(filters: dict[str, Any] | None, exclude_ids: Iterable[str] = ()) -> dict[str, Any] | None:
    """A Chroma ``where`` for {"genres", "exclude_genres", "year_min", "year_max"} and excluded ids.

    Listed genres must all be present; excluded genres must be absent; a year bound also drops
    items without a known year.
    """
    filters = filters or {}
    known = {"genres", "exclude_genres", "year_min", "year_max"}
    unknown = set(filters) - known
    if unknown:
        raise ValueError(f"unknown filter key(s) {sorted(unknown)} (known: {sorted(known)})")
    clauses: list[dict[str, Any]] = []
    for genre in filters.get("genres") or []:
        clauses.append({genre_key(genre): True})
    for genre in filters.get("exclude_genres") or []:
        clauses.append({genre_key(genre): {"$ne": True}})
    year_min, year_max = filters.get("year_min"), filters.get("year_max")
    if year_min is not None:
        clauses.append({"year": {"$gte": int(year_min)}})
    if year_max is not None:
        clauses.append({"year": {"$lte": int(year_max)}})
        if year_min is None:
            clauses.append({"year": {"$gte": 0}})
    ids = sorted({str(i) for i in exclude_ids})
    if ids:
        clauses.append({"item_id": {"$nin": ids}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


# --- collections ---------------------------------------------------------------------------------
class Store:
    """The collections of one catalog: ``<retrieval.collection>_<kind>`` (kind: early, text, image ...)."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.client = open_client(cfg)
        self.prefix = cfg.retrieval.collection
        self._cols: dict[str, Any] = {}

    def name(self, kind: str) -> str:
        return f"{self.prefix}_{kind}"

    def kinds(self) -> list[str]:
        """The kinds of this catalog's collections that exist."""
        names = [c if isinstance(c, str) else c.name for c in self.client.list_collections()]
        start = f"{self.prefix}_"
        return sorted(n[len(start) :] for n in names if n.startswith(start))

    def get(self, kind: str) -> Any | None:
        """The collection, or None when it does not exist."""
        if kind not in self._cols:
            try:
                self._cols[kind] = self.client.get_collection(self.name(kind), embedding_function=None)
            except Exception:  # chromadb raises NotFoundError / ValueError depending on the client
                return None
        return self._cols[kind]

    def ensure(self, kind: str, dim: int, model_id: str, extra: dict[str, Any] | None = None) -> Any:
        """Get or create a cosine collection; recreate it when it holds another model or dimension."""
        meta = {"hnsw:space": "cosine", "model_id": model_id, "dim": int(dim), **(extra or {})}
        col = self.get(kind)
        if col is not None:
            old = col.metadata or {}
            if (
                old.get("model_id") == model_id
                and old.get("dim") == int(dim)
                and all(old.get(k) == v for k, v in (extra or {}).items())
            ):
                return col
            self.drop(kind)
        col = self.client.create_collection(self.name(kind), embedding_function=None, metadata=meta)
        self._cols[kind] = col
        return col

    def drop(self, kind: str) -> None:
        with contextlib.suppress(Exception):  # already gone
            self.client.delete_collection(self.name(kind))
        self._cols.pop(kind, None)

    def count(self, kind: str) -> int:
        col = self.get(kind)
        return 0 if col is None else col.count()

    def upsert(
        self,
        kind: str,
        ids: Sequence[str],
        embeddings: np.ndarray,
        metadatas: Sequence[dict[str, Any]],
        documents: Sequence[str] | None = None,
    ) -> None:
        """Upsert records in batches of at most MAX_BATCH, always with explicit embeddings."""
        col = self.get(kind)
        if col is None:
            raise StoreError(f"collection {self.name(kind)} does not exist (call ensure first)")
        vectors = np.asarray(embeddings, dtype=np.float32)
        if len(ids) != len(vectors) or len(ids) != len(metadatas):
            raise ValueError(f"{len(ids)} ids, {len(vectors)} embeddings, {len(metadatas)} metadatas")
        for start in range(0, len(ids), MAX_BATCH):
            end = start + MAX_BATCH
            col.upsert(
                ids=list(ids[start:end]),
                embeddings=vectors[start:end],
                metadatas=list(metadatas[start:end]),
                documents=None if documents is None else list(documents[start:end]),
            )

    def delete(self, kind: str, ids: Sequence[str]) -> None:
        col = self.get(kind)
        if col is not None and ids:
            for start in range(0, len(ids), MAX_BATCH):
                col.delete(ids=list(ids[start : start + MAX_BATCH]))

    def all_ids(self, kind: str) -> list[str]:
        col = self.get(kind)
        return [] if col is None else list(col.get(include=[])["ids"])

    def metadatas(self, kind: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """id -> metadata for the ids that exist in the collection."""
        col = self.get(kind)
        out: dict[str, dict[str, Any]] = {}
        if col is None or not ids:
            return out
        for start in range(0, len(ids), MAX_BATCH):
            got = col.get(ids=list(ids[start : start + MAX_BATCH]), include=["metadatas"])
            out.update(zip(got["ids"], got["metadatas"], strict=True))
        return out

    def records(self, kind: str, ids: Sequence[str]) -> dict[str, tuple[np.ndarray, dict, str | None]]:
        """id -> (embedding, metadata, document) for the ids that exist in the collection."""
        col = self.get(kind)
        out: dict[str, tuple[np.ndarray, dict, str | None]] = {}
        if col is None or not ids:
            return out
        for start in range(0, len(ids), MAX_BATCH):
            got = col.get(
                ids=list(ids[start : start + MAX_BATCH]), include=["embeddings", "metadatas", "documents"]
            )
            docs = got.get("documents") or [None] * len(got["ids"])
            for i, rid in enumerate(got["ids"]):
                out[rid] = (np.asarray(got["embeddings"][i], dtype=np.float32), got["metadatas"][i], docs[i])
        return out

    def query(
        self, kind: str, vector: np.ndarray, n: int, where: dict[str, Any] | None = None
    ) -> list[tuple[str, float]]:
        """Top-n (id, cosine similarity) from one collection, best first."""
        col = self.get(kind)
        if col is None or n <= 0:
            return []
        size = col.count()
        if size == 0:
            return []
        got = col.query(
            query_embeddings=[np.asarray(vector, dtype=np.float32)],
            n_results=min(n, size),
            where=where,
            include=["distances"],
        )
        return [(rid, 1.0 - float(d)) for rid, d in zip(got["ids"][0], got["distances"][0], strict=True)]


# --- a local server (tests, benchmarks, `chroma run` users) --------------------------------------
def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def chroma_server(
    path: str | Path, host: str = "127.0.0.1", port: int = 0, timeout: float = 60.0
) -> Iterator[str]:
    """Run `chroma run --path PATH --host HOST --port PORT` until the block ends; yields its URL.

    Waits for the heartbeat; the server's output goes to PATH/../chroma-server-<port>.log.
    """
    import shutil
    import subprocess
    import sys
    import time
    import urllib.request

    exe = Path(sys.executable).with_name("chroma")
    cli = str(exe) if exe.is_file() else shutil.which("chroma")
    if not cli:
        raise StoreError("the `chroma` command is not installed (it comes with the chromadb package)")
    port = port or free_port(host)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    log_file = path.parent / f"chroma-server-{port}.log"
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    with open(log_file, "wb") as out:
        proc = subprocess.Popen(
            [cli, "run", "--path", str(path), "--host", host, "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://{host}:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise StoreError(f"chroma run exited with {proc.returncode}; see {log_file}")
            try:
                with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise StoreError(f"chroma run did not answer within {timeout:.0f} s; see {log_file}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with _LOCK:
            for key in [k for k in _CLIENTS if k[0] == "http" and k[1] == host and k[2] == port]:
                del _CLIENTS[key]
