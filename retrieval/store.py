"""The Chroma store: one client per location, collections that always get explicit embeddings.

Embedded ``chromadb.PersistentClient`` under ``cfg.chroma_dir`` by default; ``chromadb.HttpClient``
when ``retrieval.server_url`` is set. Telemetry is off. Collections are created with
``embedding_function=None`` and every add/upsert passes the vectors itself (Chroma would otherwise try
to download its default model). Records are keyed by item id; their metadata carries the item id,
title, year (-1 when unknown), one boolean flag per genre (``g_<genre>``) so filters run inside
Chroma's ``where``, the content hash and the model id. `Store.query` answers a ``where`` from an
in-memory index of the collection (`retrieval.filtered`) and never returns a record whose title is a
placeholder (`fusionrec.data.cleaning.is_placeholder_title`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.config import Config
from fusionrec.data.cleaning import is_placeholder_title
from fusionrec.retrieval import filtered
from fusionrec.retrieval.config import parse_server_url as _parse_url
from fusionrec.types import Item

MAX_BATCH = 5000  # Chroma refuses batches above ~5,461 records
_CLIENTS: dict[tuple, Any] = {}
_LOCK = threading.Lock()


class StoreError(RuntimeError):
    """The store cannot be reached or holds something other than what the config expects."""


def parse_server_url(url: str) -> tuple[str, int, bool]:
    """``http://host:port`` -> (host, port, ssl); StoreError naming the key for anything else."""
    try:
        return _parse_url(url)
    except ValueError as exc:
        raise StoreError(str(exc)) from None


def _server_hint(cfg: Config, host: str, port: int) -> str:
    return (
        f"start it with `chroma run --path {cfg.chroma_dir} --host {host} --port {port}`, "
        "or set retrieval.server_url= (empty) to use the embedded store"
    )


def _server_error(cfg: Config, url: str, exc: Exception, tries: int) -> StoreError:
    """One line: which server, what went wrong, what to run."""
    import httpx

    host, port, _ = _parse_url(url)
    timeout = cfg.retrieval.server_timeout_s
    reason = getattr(exc, "reason", None)  # urllib wraps connect errors and timeouts in URLError
    if isinstance(exc, httpx.TimeoutException | TimeoutError) or isinstance(reason, TimeoutError):
        what = f"did not answer within {timeout:g} s ({tries} tries; retrieval.server_timeout_s)"
    else:
        what = f"cannot be reached ({reason or exc})"
    return StoreError(f"the Chroma server at {url} {what}: {_server_hint(cfg, host, port)}")


def _probe(cfg: Config, url: str) -> None:
    """GET the heartbeat with the configured timeout and retries (before chromadb's own calls,
    which have no timeout); StoreError when the server does not answer."""
    import time
    import urllib.error
    import urllib.request

    tries = cfg.retrieval.server_retries + 1
    for attempt in range(tries):
        try:
            with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=cfg.retrieval.server_timeout_s):
                return
        except urllib.error.HTTPError:  # it answered: chromadb reports what it says
            return
        except (OSError, TimeoutError) as exc:
            if attempt + 1 == tries:
                raise _server_error(cfg, url, exc, tries) from None
            time.sleep(0.2)


def _bound_requests(client: Any, cfg: Config, url: str) -> None:
    """Give every request of an HttpClient the configured timeout and bounded retries.

    chromadb's HTTP layer (``FastAPI``: one ``httpx.Client`` with no timeout, every call through
    ``_make_request``) has no setting for either, so both are set on that instance.
    """
    import time

    import httpx

    server = getattr(client, "_server", None)
    session = getattr(server, "_session", None)
    if not isinstance(session, httpx.Client) or not callable(getattr(server, "_make_request", None)):
        raise StoreError(
            "this chromadb version's HTTP client cannot be given a request timeout "
            "(expected FastAPI._session/_make_request); install the version in requirements/"
        )
    session.timeout = httpx.Timeout(cfg.retrieval.server_timeout_s)
    request = server._make_request
    tries = cfg.retrieval.server_retries + 1

    def bounded(method: str, path: str, **kwargs: Any) -> Any:
        for attempt in range(tries):
            try:
                return request(method, path, **kwargs)
            except (httpx.TimeoutException, httpx.NetworkError) as exc:  # requests are idempotent here
                if attempt + 1 == tries:
                    raise _server_error(cfg, url, exc, tries) from None
                time.sleep(0.2)
        raise AssertionError("unreachable")

    server._make_request = bounded


def open_client(cfg: Config) -> Any:
    """The Chroma client for this config, one per location per process (telemetry off)."""
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False, allow_reset=True)
    url = cfg.retrieval.server_url.strip().rstrip("/")
    if url:
        host, port, ssl = parse_server_url(url)
        r = cfg.retrieval
        key: tuple = ("http", host, port, ssl, r.server_timeout_s, r.server_retries)
    else:
        path = cfg.chroma_dir
        key = ("path", str(path))
    with _LOCK:
        if key not in _CLIENTS:
            if url:
                _probe(cfg, url)
                try:
                    client = chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=settings)
                except Exception as exc:  # it answered the heartbeat but not chromadb's handshake
                    raise StoreError(
                        f"the Chroma server at {url} refused the client ({exc}): {_server_hint(cfg, host, port)}"
                    ) from None
                _bound_requests(client, cfg, url)
            else:
                path.mkdir(parents=True, exist_ok=True)
                client = chromadb.PersistentClient(path=str(path), settings=settings)
            _CLIENTS[key] = client
        return _CLIENTS[key]


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


def hidden(meta: dict[str, Any]) -> bool:
    """Whether a record is never returned by search: its title is a placeholder (ML-100k's "unknown")."""
    year = meta.get("year")
    return is_placeholder_title(
        str(meta.get("title", "")), year if isinstance(year, int) and year >= 0 else None
    )


# --- collections ---------------------------------------------------------------------------------
class Store:
    """The collections of one dataset's catalog: ``<retrieval.collection>.<dataset>.<kind>``
    (kind: early, text, image ...), so several datasets' catalogs share one Chroma store.

    The prefix has no dots (the config checks it) and no kind has one, so a name maps back to
    exactly one (prefix, dataset, kind).
    """

    def __init__(self, cfg: Config, dataset: str = "") -> None:
        from fusionrec.data.prepare import prepared_name

        self.cfg = cfg
        self.dataset = prepared_name(dataset or cfg.data.dataset)
        self.client = open_client(cfg)
        self.prefix = f"{cfg.retrieval.collection}.{self.dataset}"
        self._cols: dict[str, Any] = {}

    def name(self, kind: str) -> str:
        return f"{self.prefix}.{kind}"

    def _names(self) -> list[str]:
        return [c if isinstance(c, str) else c.name for c in self.client.list_collections()]

    def kinds(self) -> list[str]:
        """The kinds of this catalog's collections that exist."""
        start = f"{self.prefix}."
        return sorted(
            n[len(start) :] for n in self._names() if n.startswith(start) and "." not in n[len(start) :]
        )

    def datasets(self) -> list[str]:
        """The datasets with an ingested catalog (an ``early`` collection) under this prefix."""
        start = f"{self.cfg.retrieval.collection}."
        return sorted(
            n[len(start) : -len(".early")]
            for n in self._names()
            if n.startswith(start) and n.endswith(".early")
        )

    def get(self, kind: str) -> Any | None:
        """The collection, or None when it does not exist."""
        if kind not in self._cols:
            try:
                self._cols[kind] = self.client.get_collection(self.name(kind), embedding_function=None)
            except StoreError:
                raise
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
        # get_or_create: a retried request (see _bound_requests) must not fail as "already exists"
        col = self.client.get_or_create_collection(self.name(kind), embedding_function=None, metadata=meta)
        self._cols[kind] = col
        return col

    def drop(self, kind: str) -> None:
        col = self.get(kind)
        if col is not None:
            filtered.invalidate(self.client, col)
        if kind in self.kinds():
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
        filtered.invalidate(self.client, col)
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
            filtered.invalidate(self.client, col)
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
        """Top-n (id, cosine similarity) from one collection, best first; `hidden` records never.

        With a ``where``: the exact top-n among the records it keeps, from the collection's in-memory
        index (`retrieval.filtered`: fast at any size); Chroma's own filter answers where that index
        cannot (a ``where`` shape it does not read, vectors above its memory cap). Without one: Chroma's
        HNSW search, asked for as many more results as there are hidden records.
        """
        col = self.get(kind)
        if col is None or n <= 0:
            return []
        index = filtered.index_for(self.client, col, hidden, vectors=where is not None)
        size = col.count() if index is None else index.size
        if size == 0:
            return []
        if where is not None and index is not None:
            hits = index.search(vector, n, where)
            if hits is not None:
                return hits
        skip = index.hidden_ids if index is not None else frozenset()
        got = col.query(
            query_embeddings=[np.asarray(vector, dtype=np.float32)],
            n_results=min(n + len(skip), size),
            where=where,
            include=["distances"],
        )
        hits = zip(got["ids"][0], got["distances"][0], strict=True)
        return [(rid, 1.0 - float(d)) for rid, d in hits if rid not in skip][:n]


# --- a local server (tests, benchmarks, `chroma run` users) --------------------------------------
def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def start_chroma_server(
    path: str | Path, host: str = "127.0.0.1", port: int = 0, timeout: float = 60.0
) -> tuple[subprocess.Popen, str]:
    """Start `chroma run --path PATH --host HOST --port PORT`; (process, URL) once it answers.

    The server's output goes to PATH/../chroma-server-<port>.log. Stop it with `stop_chroma_server`.
    """
    import shutil
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
    deadline = time.monotonic() + timeout
    try:
        while True:
            if proc.poll() is not None:
                raise StoreError(f"chroma run exited with {proc.returncode}; see {log_file}")
            try:
                with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=2) as resp:
                    if resp.status == 200:
                        return proc, url
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise StoreError(f"chroma run did not answer within {timeout:.0f} s; see {log_file}")
            time.sleep(0.2)
    except BaseException:
        stop_chroma_server(proc, url)
        raise


def stop_chroma_server(proc: subprocess.Popen, url: str) -> None:
    """Stop a server from `start_chroma_server` (a frozen one too) and forget its clients."""
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGCONT)  # a stopped process only acts on SIGTERM once continued
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    host, port, _ = _parse_url(url)
    with _LOCK:
        for key in [k for k in _CLIENTS if k[0] == "http" and k[1] == host and k[2] == port]:
            del _CLIENTS[key]


@contextlib.contextmanager
def chroma_server(
    path: str | Path, host: str = "127.0.0.1", port: int = 0, timeout: float = 60.0
) -> Iterator[str]:
    """Run `chroma run --path PATH --host HOST --port PORT` until the block ends; yields its URL."""
    proc, url = start_chroma_server(path, host, port, timeout)
    try:
        yield url
    finally:
        stop_chroma_server(proc, url)
