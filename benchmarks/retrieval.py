"""Retrieval benchmark: ingest throughput per modality vs the encoders' own, Chroma query latency.

    .venv/bin/python benchmarks/retrieval.py                 # defaults: a few minutes on 2 CPU cores
    .venv/bin/python benchmarks/retrieval.py --items 100 --sizes 10000 --queries 100   # quicker

1. Ingest: the first ``--items`` ML-100k items through `retrieval.ingest.ingest` one modality at a
   time (text, image; audio and video on ``--media-items`` items with generated media), into a fresh
   store, timed end to end (hashing, validation, encoding, Chroma upserts). Next to it, the same
   encoder on the same inputs called directly in batches; ratio = ingest rate / encoder rate.
2. Chroma: ``--sizes`` synthetic 384-d unit vectors with item metadata (year, genre flags), top-50
   query latency p50/p95 over ``--queries`` random queries (50 of them with a `where` filter: genre
   flag and year range), embedded `PersistentClient` vs a `chroma run` server on 127.0.0.1 holding a
   copy of the same data. About 6 minutes with the defaults on 2 busy cores, mostly adding 100k.

Prints tables and writes benchmarks/results/retrieval.json. Models come from the configured models
folder (``--models-dir``; default: the prepared test models, else ``.fusionrec/models``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fusionrec import env  # noqa: E402
from fusionrec.config import load_config  # noqa: E402

GENRES = ["Action", "Adventure", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Thriller", "Western"]
DIM = 384
TOP = 50
WHERE_QUERIES = 50


# --- Chroma latency ------------------------------------------------------------------------------
def build_store(path: Path, n: int, seed: int = 0) -> float:
    """Fill a fresh embedded store with n synthetic records; returns records added per second."""
    import chromadb
    from chromadb.config import Settings

    from retrieval.store import MAX_BATCH, genre_key

    rng = np.random.default_rng(seed)
    client = chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))
    col = client.create_collection(
        "bench_vectors", embedding_function=None, metadata={"hnsw:space": "cosine"}
    )
    start = time.perf_counter()
    for lo in range(0, n, MAX_BATCH):
        m = min(MAX_BATCH, n - lo)
        vecs = rng.normal(size=(m, DIM)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        metas = []
        for i in range(lo, lo + m):
            meta: dict[str, Any] = {"item_id": str(i), "year": int(rng.integers(1920, 2019))}
            for g in rng.choice(GENRES, size=int(rng.integers(1, 4)), replace=False):
                meta[genre_key(str(g))] = True
            metas.append(meta)
        col.add(ids=[str(i) for i in range(lo, lo + m)], embeddings=vecs, metadatas=metas)
    return n / (time.perf_counter() - start)


def _latencies(col: Any, queries: np.ndarray, where: dict | None) -> dict[str, float]:
    if where is not None:
        queries = queries[:WHERE_QUERIES]  # filtered queries are ~100x slower at 100k: fewer of them
    for q in queries[:10]:  # warm-up
        col.query(query_embeddings=[q], n_results=TOP, where=where, include=["distances"])
    times = []
    for q in queries:
        t0 = time.perf_counter()
        got = col.query(query_embeddings=[q], n_results=TOP, where=where, include=["distances"])
        times.append((time.perf_counter() - t0) * 1000)
        assert len(got["ids"][0]) == TOP
    return {"p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95))}


def chroma_latency(sizes: list[int], n_queries: int, workdir: Path) -> list[dict[str, Any]]:
    import chromadb
    from chromadb.config import Settings

    from retrieval.store import chroma_server, genre_key, parse_server_url

    where = {"$and": [{genre_key("Comedy"): True}, {"year": {"$gte": 1990}}]}
    rows = []
    for n in sizes:
        embedded_dir, server_dir = workdir / f"embedded-{n}", workdir / f"server-{n}"
        for d in (embedded_dir, server_dir):
            shutil.rmtree(d, ignore_errors=True)
        # build in a child process so that the folder is closed and complete before it is copied
        out = subprocess.run(
            [sys.executable, __file__, "--build-store", str(embedded_dir), str(n)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        add_rate = float(out.stdout.strip().splitlines()[-1])
        shutil.copytree(embedded_dir, server_dir)
        rng = np.random.default_rng(1)
        queries = rng.normal(size=(n_queries, DIM)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        settings = Settings(anonymized_telemetry=False)
        embedded = chromadb.PersistentClient(path=str(embedded_dir), settings=settings)
        row: dict[str, Any] = {"items": n, "dim": DIM, "top_k": TOP, "add_per_s_embedded": round(add_rate)}
        col = embedded.get_collection("bench_vectors")
        row["embedded"] = _latencies(col, queries, None)
        row["embedded_where"] = _latencies(col, queries, where)
        with chroma_server(server_dir) as url:
            host, port, _ = parse_server_url(url)
            http = chromadb.HttpClient(host=host, port=port, settings=settings)
            col = http.get_collection("bench_vectors")
            row["server"] = _latencies(col, queries, None)
            row["server_where"] = _latencies(col, queries, where)
        rows.append(row)
        print(f"chroma {n:>7} items: embedded p50 {row['embedded']['p50_ms']:.2f} ms, "
              f"server p50 {row['server']['p50_ms']:.2f} ms", flush=True)  # fmt: skip
    return rows


# --- ingest throughput ---------------------------------------------------------------------------
def _encoder_rate(modality: str, items: list, batch: int) -> float:
    """Items per second of the encoder alone, on the same inputs, in the same batches."""
    from encoders import registry
    from retrieval.ingest import VIDEO_FPS, item_text

    cfg = _CFG
    start = time.perf_counter()
    for lo in range(0, len(items), batch):
        part = items[lo : lo + batch]
        if modality == "text":
            registry.load_text_encoder(cfg).encode([item_text(i) for i in part])
        elif modality == "image":
            registry.load_image_encoder(cfg).features([i.media["image"] for i in part])
        elif modality == "audio":
            registry.load_audio_encoder(cfg).encode([i.media["audio"] for i in part], transcribe=False)
        elif modality == "video":
            video = registry.load_video_encoder(cfg)
            for i in part:
                video.encode(i.media["video"], fps=VIDEO_FPS, with_audio=False)
    return len(items) / (time.perf_counter() - start)


def ingest_throughput(cfg: Any, n_items: int, n_media: int) -> list[dict[str, Any]]:
    from encoders import registry
    from retrieval.generated_media import add_generated_media
    from retrieval.ingest import ingest
    from retrieval.prepare import load_prepared, prepare_dataset

    dataset = "movielens-100k"
    if not (cfg.data_dir / dataset / "items.jsonl").is_file():
        prepare_dataset(cfg, dataset, verbose=False)
    catalog = load_prepared(cfg, dataset)[0]
    with_poster = [i for i in catalog if "image" in i.media and i.text][:n_items]
    media_items = [i for i in with_poster[:n_media]]
    add_generated_media(cfg, dataset, media_items, progress=False)  # made once, not timed
    for loader in (registry.load_text_encoder, registry.load_image_encoder, registry.load_audio_encoder,
                   registry.load_video_encoder):  # fmt: skip
        loader(cfg)  # model loading is not part of either rate
    plan = [("text", with_poster), ("image", with_poster), ("audio", media_items), ("video", media_items)]
    rows = []
    for modality, items in plan:
        frames = Path(tempfile.mkdtemp(prefix="fusionrec-bench-frames-"))
        registry.load_video_encoder(cfg).cache_dir = frames  # cold frame cache for the ingest run
        run_cfg = load_config(None, [f"retrieval.collection=bench_{modality}", f"paths.home={cfg.paths.home}",
                                     f"models.profile={cfg.models.profile}"])  # fmt: skip
        report = ingest(run_cfg, dataset, modalities=[modality], progress=False, catalog=items)
        assert report.written == len(items), report.summary()
        ingest_rate = len(items) / report.seconds
        registry.load_video_encoder(cfg).cache_dir = Path(tempfile.mkdtemp(prefix="fusionrec-bench-frames-"))
        enc_rate = _encoder_rate(modality, items, cfg.retrieval.batch_size)
        rows.append({
            "modality": modality,
            "items": len(items),
            "ingest_items_per_s": round(ingest_rate, 2),
            "encoder_items_per_s": round(enc_rate, 2),
            "ratio": round(ingest_rate / enc_rate, 3),
            "ingest_seconds": round(report.seconds, 2),
        })  # fmt: skip
        print(f"ingest {modality:>5}: {ingest_rate:.1f} items/s (encoder alone {enc_rate:.1f}/s)", flush=True)
    return rows


_CFG: Any = None


def main() -> int:
    global _CFG
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=200, help="items for text and image ingest")
    ap.add_argument("--media-items", type=int, default=16, help="items with generated audio/video")
    ap.add_argument("--sizes", default="10000,100000", help="synthetic store sizes for query latency")
    ap.add_argument("--queries", type=int, default=200, help="queries per latency measurement")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0 = torch default)")
    ap.add_argument("--models-dir", default="", help="prepared models folder (default: test models)")
    ap.add_argument("--workdir", default="", help="scratch folder (default: a temp dir, removed)")
    ap.add_argument("--skip-ingest", action="store_true")
    ap.add_argument("--skip-chroma", action="store_true")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "retrieval.json"))
    ap.add_argument("--build-store", nargs=2, metavar=("DIR", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    env.configure(offline=True)
    if args.build_store:
        print(build_store(Path(args.build_store[0]), int(args.build_store[1])))
        return 0

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="fusionrec-bench-retrieval-"))
    workdir.mkdir(parents=True, exist_ok=True)
    models = Path(args.models_dir) if args.models_dir else REPO / ".fusionrec-test" / "models"
    if not models.is_dir():
        models = REPO / ".fusionrec" / "models"
    home = workdir / "home"
    home.mkdir(exist_ok=True)
    if not (home / "models").exists():
        (home / "models").symlink_to(models.resolve(), target_is_directory=True)
    _CFG = load_config(None, [f"paths.home={home}", "models.profile=offline"])
    started = time.perf_counter()
    result: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_at_start": list(os.getloadavg()),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }
    try:
        if not args.skip_ingest:
            result["ingest"] = ingest_throughput(_CFG, args.items, args.media_items)
        if not args.skip_chroma:
            sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
            result["chroma"] = chroma_latency(sizes, args.queries, workdir)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    import chromadb

    result["versions"] = {"chromadb": chromadb.__version__, "torch": torch.__version__}
    result["machine"]["load_avg_at_end"] = list(os.getloadavg())
    result["seconds"] = round(time.perf_counter() - started, 1)
    _print(result)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


def _print(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if "ingest" in result:
        t = Table(title="Ingest throughput (items/s, end to end vs the encoder alone)")
        for c in ("modality", "items", "ingest/s", "encoder/s", "ratio"):
            t.add_column(c, justify="left" if c == "modality" else "right")
        for r in result["ingest"]:
            t.add_row(r["modality"], str(r["items"]), f"{r['ingest_items_per_s']:.1f}",
                      f"{r['encoder_items_per_s']:.1f}", f"{r['ratio']:.2f}")  # fmt: skip
        console.print(t)
    if "chroma" in result:
        t = Table(title=f"Chroma top-{TOP} query latency, {DIM}-d synthetic vectors (ms)")
        for c in ("items", "mode", "p50", "p95", "p50 where", "p95 where"):
            t.add_column(c, justify="right")
        for r in result["chroma"]:
            for mode in ("embedded", "server"):
                a, w = r[mode], r[f"{mode}_where"]
                t.add_row(f"{r['items']:,}", mode, f"{a['p50_ms']:.2f}", f"{a['p95_ms']:.2f}",
                          f"{w['p50_ms']:.2f}", f"{w['p95_ms']:.2f}")  # fmt: skip
        console.print(t)
    m = result["machine"]
    console.print(f"{m['cpus']} CPUs, load {m['load_avg_at_start'][0]:.1f} at start, torch threads "
                  f"{m['torch_threads']}; {result['seconds']} s")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
