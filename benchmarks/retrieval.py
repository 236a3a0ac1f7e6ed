"""Retrieval benchmark: ingest throughput per modality vs the encoders' own, Chroma query latency.

    .venv/bin/python benchmarks/retrieval.py                 # defaults: a few minutes on 2 CPU cores
    .venv/bin/python benchmarks/retrieval.py --items 100 --sizes 10000 --queries 100   # quicker
    .venv/bin/python benchmarks/retrieval.py --skip-ingest --store-cache /tmp/fusionrec-stores  # Chroma only

1. Ingest: the first ``--items`` ML-100k items through `retrieval.ingest.ingest` one modality at a
   time (text, image; audio and video on ``--media-items`` items with generated media), into a fresh
   store, timed end to end (hashing, validation, encoding, Chroma upserts). Next to it, the same
   encoder on the same inputs called directly in batches; ratio = ingest rate / encoder rate.
2. Chroma: ``--sizes`` synthetic 384-d unit vectors with item metadata (year, genre flags) in a
   `retrieval.store.Store` collection, built once per size (``--store-cache`` keeps them: 100k takes
   ~2-5 min to add). Top-50 latency p50/p95 over ``--queries`` random queries, embedded
   `PersistentClient` and a `chroma run` server on 127.0.0.1 holding a copy: unfiltered
   (`Store.query`), then per filter (genre + year; no horror with 30 seen ids excluded) Chroma's own
   ``where`` ("exact", on 50 queries: it is slow) and `Store.query` ("fast", `retrieval.filtered`),
   their ratio, each one's recall@50 against brute force and the share of identical id lists.

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
WHERE_QUERIES = 50  # Chroma's own filter is ~100x slower at 100k: fewer queries for it
DATASET, KIND = "bench", "text"  # the synthetic store: collection catalog.bench.text
SEEN = 30  # ids a user has already seen, excluded by the second filter
# name -> (build_where filters, exclude seen?, the same filter in plain Python for brute force)
FILTERS: dict[str, tuple[dict[str, Any], bool, Any]] = {
    "genre+year": ({"genres": ["Comedy"], "year_min": 1990}, False, lambda m: m.get("g_comedy") and m["year"] >= 1990),
    "no horror, seen excluded": ({"exclude_genres": ["Horror"]}, True, lambda m: not m.get("g_horror")),
}  # fmt: skip


# --- Chroma latency ------------------------------------------------------------------------------
def synthetic(n: int, seed: int = 0) -> tuple[list[str], np.ndarray, list[dict[str, Any]]]:
    """n random 384-d unit vectors with item metadata (year, 1-3 genre flags); same seed, same data."""
    from fusionrec.retrieval.store import genre_key

    rng = np.random.default_rng(seed)
    vecs = rng.normal(size=(n, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    metas = []
    for i in range(n):
        meta: dict[str, Any] = {"item_id": str(i), "year": int(rng.integers(1920, 2019))}
        for g in rng.choice(GENRES, size=int(rng.integers(1, 4)), replace=False):
            meta[genre_key(str(g))] = True
        metas.append(meta)
    return [str(i) for i in range(n)], vecs, metas


def _home_config(home: Path, server_url: str = "") -> Any:
    return load_config(None, [f"paths.home={home}", f"retrieval.server_url={server_url}"])


def build_store(home: Path, n: int) -> float:
    """Fill a fresh embedded store under `home` with the synthetic records; returns records per second."""
    from fusionrec.retrieval.store import Store

    ids, vecs, metas = synthetic(n)
    store = Store(_home_config(home), DATASET)
    store.ensure(KIND, DIM, "synthetic")
    start = time.perf_counter()
    store.upsert(KIND, ids, vecs, metas)
    return n / (time.perf_counter() - start)


def cached_store(n: int, cache: Path) -> tuple[Path, float]:
    """The home of a complete n-record store under `cache` (built now in a child process, so that it
    is closed before it is copied, when it is not there yet) and its add rate."""
    home = cache / f"store-{n}"
    done = home / "built.json"
    if not done.is_file():
        shutil.rmtree(home, ignore_errors=True)
        out = subprocess.run(
            [sys.executable, __file__, "--build-store", str(home), str(n)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        done.write_text(json.dumps({"add_per_s": float(out.stdout.strip().splitlines()[-1])}))
    return home, json.loads(done.read_text())["add_per_s"]


def _times(fn: Any, queries: np.ndarray, warm: int) -> tuple[dict[str, float], list[list[str]]]:
    """p50/p95 ms of fn(query) over the queries (after `warm` untimed ones) and the ids it returned."""
    for q in queries[:warm]:
        fn(q)
    times, ids = [], []
    for q in queries:
        t0 = time.perf_counter()
        ids.append(fn(q))
        times.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95))}, ids


def _recall(got: list[list[str]], truth: list[list[str]]) -> float:
    return float(np.mean([len(set(g) & set(t)) / max(len(t), 1) for g, t in zip(got, truth, strict=True)]))


def measure_mode(
    cfg: Any, queries: np.ndarray, wheres: dict[str, dict | None], truth: dict[str, list]
) -> dict:
    """One store (embedded or server): unfiltered, then per filter Chroma's own filter ("exact") and
    `Store.query` ("fast"): latency, recall@TOP against brute force, identical-id share."""
    from fusionrec.retrieval import filtered
    from fusionrec.retrieval.store import Store, hidden

    store = Store(cfg, DATASET)
    col = store.get(KIND)
    t0 = time.perf_counter()
    filtered.index_for(store.client, col, hidden, vectors=True)
    out: dict[str, Any] = {"index_build_s": round(time.perf_counter() - t0, 2)}
    u_time, u_ids = _times(lambda q: [rid for rid, _ in store.query(KIND, q, TOP)], queries, 10)
    out["unfiltered"] = {**u_time, "recall": _recall(u_ids[:WHERE_QUERIES], truth["none"])}
    for name, where in wheres.items():
        if where is None:
            continue

        def exact(q: np.ndarray, where: dict = where) -> list[str]:
            got = col.query(query_embeddings=[q], n_results=TOP, where=where, include=["distances"])
            return got["ids"][0]

        def fast(q: np.ndarray, where: dict = where) -> list[str]:
            return [rid for rid, _ in store.query(KIND, q, TOP, where)]

        e_time, e_ids = _times(exact, queries[:WHERE_QUERIES], 3)
        f_time, f_ids = _times(fast, queries, 10)
        f_ids = f_ids[:WHERE_QUERIES]
        out[name] = {
            "exact": {**e_time, "recall": _recall(e_ids, truth[name])},
            "fast": {**f_time, "recall": _recall(f_ids, truth[name])},
            "fast_over_exact_p50": f_time["p50_ms"] / e_time["p50_ms"],
            "fast_over_exact_p95": f_time["p95_ms"] / e_time["p95_ms"],
            "same_ids": float(np.mean([f == e for f, e in zip(f_ids, e_ids, strict=True)])),
        }
    return out


def chroma_latency(sizes: list[int], n_queries: int, workdir: Path, cache: Path) -> list[dict[str, Any]]:
    from fusionrec.retrieval.store import build_where, chroma_server

    rows = []
    for n in sizes:
        home, add_rate = cached_store(n, cache)
        ids, vecs, metas = synthetic(n)
        rng = np.random.default_rng(1)
        queries = rng.normal(size=(n_queries, DIM)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        seen = {str(i) for i in rng.choice(n, SEEN, replace=False)}
        wheres, truth, shares = {}, {}, {}
        for name, (filters, exclude, keep) in {"none": ({}, False, lambda m: True), **FILTERS}.items():
            wheres[name] = build_where(filters, seen if exclude else ())
            kept = [bool(keep(m)) and not (exclude and i in seen) for i, m in zip(ids, metas, strict=True)]
            mask = np.array(kept)
            scores = np.where(mask[:, None], vecs @ queries[:WHERE_QUERIES].T, -np.inf)
            truth[name] = [[ids[i] for i in np.argsort(-scores[:, j])[:TOP]] for j in range(WHERE_QUERIES)]
            shares[name] = round(float(mask.mean()), 4)
        del vecs, scores
        row: dict[str, Any] = {"items": n, "dim": DIM, "top_k": TOP, "add_per_s_embedded": round(add_rate)}
        row["filter_share"] = {k: v for k, v in shares.items() if k != "none"}
        embedded_home, server_home = workdir / f"embedded-{n}", workdir / f"server-{n}"
        for target in (embedded_home, server_home):
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(home, target)
        row["embedded"] = measure_mode(_home_config(embedded_home), queries, wheres, truth)
        with chroma_server(server_home / "chroma") as url:
            row["server"] = measure_mode(_home_config(server_home, url), queries, wheres, truth)
        rows.append(row)
        for mode in ("embedded", "server"):
            worst = max(row[mode][f]["fast"]["p95_ms"] for f in FILTERS)
            print(f"chroma {n:>7} items, {mode}: unfiltered p95 {row[mode]['unfiltered']['p95_ms']:.2f} ms, "
                  f"filtered p95 (worst filter) {worst:.2f} ms", flush=True)  # fmt: skip
    return rows


# --- ingest throughput ---------------------------------------------------------------------------
def _encoder_rate(modality: str, items: list, batch: int) -> float:
    """Items per second of the encoder alone, on the same inputs, in the same batches."""
    from fusionrec import encoders
    from fusionrec.retrieval.ingest import VIDEO_FPS, item_text

    cfg = _CFG
    start = time.perf_counter()
    for lo in range(0, len(items), batch):
        part = items[lo : lo + batch]
        if modality == "text":
            encoders.load_text_encoder(cfg).encode([item_text(i) for i in part])
        elif modality == "image":
            encoders.load_image_encoder(cfg).features([i.media["image"] for i in part])
        elif modality == "audio":
            encoders.load_audio_encoder(cfg).encode([i.media["audio"] for i in part], transcribe=False)
        elif modality == "video":
            video = encoders.load_video_encoder(cfg)
            for i in part:
                video.encode(i.media["video"], fps=VIDEO_FPS, with_audio=False)
    return len(items) / (time.perf_counter() - start)


def ingest_throughput(cfg: Any, n_items: int, n_media: int) -> list[dict[str, Any]]:
    from fusionrec import encoders
    from fusionrec.data.generated_media import add_generated_media
    from fusionrec.data.prepare import load_prepared, prepare_dataset
    from fusionrec.retrieval.ingest import ingest

    dataset = "movielens-100k"
    if not (cfg.data_dir / dataset / "items.jsonl").is_file():
        prepare_dataset(cfg, dataset, verbose=False)
    catalog = load_prepared(cfg, dataset)[0]
    with_poster = [i for i in catalog if "image" in i.media and i.text][:n_items]
    media_items = [i for i in with_poster[:n_media]]
    add_generated_media(cfg, dataset, media_items, progress=False)  # made once, not timed
    for loader in (encoders.load_text_encoder, encoders.load_image_encoder, encoders.load_audio_encoder,
                   encoders.load_video_encoder):  # fmt: skip
        loader(cfg)  # model loading is not part of either rate
    plan = [("text", with_poster), ("image", with_poster), ("audio", media_items), ("video", media_items)]
    rows = []
    for modality, items in plan:
        frames = Path(tempfile.mkdtemp(prefix="fusionrec-bench-frames-"))
        encoders.load_video_encoder(cfg).cache_dir = frames  # cold frame cache for the ingest run
        run_cfg = load_config(None, [f"retrieval.collection=bench_{modality}", f"paths.home={cfg.paths.home}",
                                     f"models.profile={cfg.models.profile}"])  # fmt: skip
        report = ingest(run_cfg, dataset, modalities=[modality], progress=False, catalog=items)
        assert report.written == len(items), report.summary()
        ingest_rate = len(items) / report.seconds
        encoders.load_video_encoder(cfg).cache_dir = Path(tempfile.mkdtemp(prefix="fusionrec-bench-frames-"))
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
    ap.add_argument("--store-cache", default="", help="reuse synthetic stores here (default: in workdir)")
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
            cache = Path(args.store_cache) if args.store_cache else workdir / "stores"
            result["chroma"] = chroma_latency(sizes, args.queries, workdir, cache)
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

    console = Console(width=150)
    if "ingest" in result:
        t = Table(title="Ingest throughput (items/s, end to end vs the encoder alone)")
        for c in ("modality", "items", "ingest/s", "encoder/s", "ratio"):
            t.add_column(c, justify="left" if c == "modality" else "right")
        for r in result["ingest"]:
            t.add_row(r["modality"], str(r["items"]), f"{r['ingest_items_per_s']:.1f}",
                      f"{r['encoder_items_per_s']:.1f}", f"{r['ratio']:.2f}")  # fmt: skip
        console.print(t)
    if "chroma" in result:
        t = Table(title=f"Top-{TOP} query latency (ms), {DIM}-d synthetic vectors: Chroma's own filter (exact) "
                  "vs Store.query (fast); recall@50 against brute force")  # fmt: skip
        cols = ("items", "mode", "filter", "kept", "exact p50", "exact p95", "fast p50", "fast p95",
                "fast/exact p95", "recall exact", "recall fast")  # fmt: skip
        for c in cols:
            t.add_column(c, justify="left" if c in ("mode", "filter") else "right")
        for r in result["chroma"]:
            for mode in ("embedded", "server"):
                u = r[mode]["unfiltered"]
                t.add_row(f"{r['items']:,}", mode, "none", "1.0", "", "", f"{u['p50_ms']:.2f}",
                          f"{u['p95_ms']:.2f}", "", "", f"{u['recall']:.3f}")  # fmt: skip
                for name in FILTERS:
                    f = r[mode][name]
                    e, q = f["exact"], f["fast"]
                    t.add_row(f"{r['items']:,}", mode, name, f"{r['filter_share'][name]:.3f}",
                              f"{e['p50_ms']:.1f}", f"{e['p95_ms']:.1f}", f"{q['p50_ms']:.2f}",
                              f"{q['p95_ms']:.2f}", f"{f['fast_over_exact_p95']:.3f}", f"{e['recall']:.3f}",
                              f"{q['recall']:.3f}")  # fmt: skip
        console.print(t)
    m = result["machine"]
    console.print(f"{m['cpus']} CPUs, load {m['load_avg_at_start'][0]:.1f} at start, torch threads "
                  f"{m['torch_threads']}; {result['seconds']} s")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
