"""Ingestion on the real ML-100k subset: records, idempotence, resume after a kill, media errors."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fusionrec.config import REPO_ROOT
from fusionrec.retrieval.ingest import ingest, item_text, report_path
from fusionrec.retrieval.search import Retriever
from fusionrec.retrieval.store import Store, genre_key
from fusionrec.types import Attachment, Item
from tests.retrieval.conftest import DATASET, N_ITEMS, retrieval_config

pytestmark = pytest.mark.real


def test_first_ingest_stores_one_record_per_item_and_block(ret_cfg, ingested, subset):
    assert (ingested.written, ingested.unchanged, ingested.media_errors) == (N_ITEMS, 0, [])
    store = Store(ret_cfg)
    posters = sum("image" in i.media for i in subset)
    assert posters == N_ITEMS - 5  # the subset has items without a poster
    counts = {k: store.count(k) for k in store.kinds()}
    assert counts == {"early": N_ITEMS, "text": N_ITEMS, "image": posters, "image_text": posters}
    meta = store.metadatas("early", ["1"])["1"]
    assert meta["title"] == "Toy Story" and meta["year"] == 1995 and meta[genre_key("Animation")] is True
    assert json.loads(meta["blocks"]) == ["text", "image", "image_text"]
    assert store.get("text").metadata["hnsw:space"] == "cosine"
    assert store.metadatas("image", ["1"])["1"]["labels"]  # auto-labels of the poster
    no_poster = next(i for i in subset if "image" not in i.media)
    assert json.loads(store.metadatas("early", [no_poster.id])[no_poster.id]["blocks"]) == ["text"]


def test_reingest_writes_nothing(ret_cfg, ingested, subset):
    again = ingest(ret_cfg, DATASET, modalities=["text", "image"], progress=False, catalog=subset)
    assert (again.written, again.unchanged) == (0, N_ITEMS)
    assert again.summary().startswith(f"0 written, {N_ITEMS} unchanged")
    saved = json.loads(report_path(ret_cfg, DATASET).read_text())
    assert saved["written"] == 0 and saved["unchanged"] == N_ITEMS


def test_changed_item_alone_is_rewritten(ret_cfg, ingested, subset):
    items = list(subset)
    items[3] = replace(items[3], text=items[3].text + " A late addition to the overview.")
    report = ingest(ret_cfg, DATASET, modalities=["text", "image"], progress=False, catalog=items)
    assert (report.written, report.unchanged) == (1, N_ITEMS - 1)
    assert Retriever(ret_cfg).item(items[3].id).text.endswith("A late addition to the overview.")
    back = ingest(ret_cfg, DATASET, modalities=["text", "image"], progress=False, catalog=subset)
    assert back.written == 1  # the original text again
    assert Retriever(ret_cfg).item(items[3].id).text == subset[3].text


def test_item_text_puts_overview_before_tags():
    item = Item("1", "Toy Story", 1995, ["Comedy"], "Toys come alive.", tags=["pixar"])
    assert (
        item_text(item, ["comic book"])
        == "Toy Story (1995) Genres: Comedy. Toys come alive. Tags: pixar, comic book."
    )


def test_killed_run_resumes_without_loss_or_duplicates(ret_cfg):
    """SIGKILL `fusionrec ingest` after some batches, run it again: every item exactly once."""
    n, batch = 96, 8
    home = Path(ret_cfg.paths.home)
    overrides = ["retrieval.collection=resume", f"retrieval.batch_size={batch}"]
    cmd = [sys.executable, "-m", "fusionrec", "ingest", "--dataset", DATASET, "--limit", str(n),
           "--modalities", "text", f"paths.home={home}", *overrides]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
    done, seen = threading.Event(), []

    def watch() -> None:  # tqdm writes "ingest: ...| 24/96 ..." to stderr
        buf = b""
        while chunk := proc.stderr.read1(4096):
            buf += chunk
            counts = [int(m) for m in re.findall(rb"ingest:.*?\| *(\d+)/%d" % n, buf)]
            if counts and max(counts) >= 3 * batch:
                seen.append(max(counts))
                done.set()

    threading.Thread(target=watch, daemon=True).start()
    assert done.wait(240), "the ingest subprocess never got past three batches"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL

    cfg = retrieval_config(overrides)
    store = Store(cfg)
    stored_before = store.count("early")
    assert 3 * batch <= stored_before < n, "the kill should leave a partial store"
    report = ingest(cfg, DATASET, limit=n, modalities=["text"], progress=False)
    assert report.unchanged == stored_before and report.written == n - stored_before
    ids = store.all_ids("early")
    assert len(ids) == len(set(ids)) == n and store.count("text") == n
    # every record is searchable: its own vector finds it
    records = store.records("text", ids[:20])
    for rid, (vec, _, _) in records.items():
        assert store.query("text", vec, 1)[0][0] == rid


def test_media_errors_are_reported_and_the_rest_goes_on(ret_cfg, catalog, tmp_path):
    from PIL import Image

    good = catalog[0]
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(Path(good.media["image"]).read_bytes()[:300])  # truncated JPEG
    notes = tmp_path / "notes.jpg"
    notes.write_text("this is a text file, not a poster")
    truncated = tmp_path / "truncated.wav"
    subprocess.run(["espeak-ng", "-w", str(truncated), "A short spoken line for the test."], check=True)
    truncated.write_bytes(truncated.read_bytes()[:60])  # header only
    png = tmp_path / "ok.png"
    Image.open(good.media["image"]).save(png)
    items = [
        replace(good, id="e1", media={"image": str(corrupt)}),
        replace(good, id="e2", media={"image": str(notes)}),
        replace(good, id="e3", media={"image": str(png), "audio": str(truncated)}),
    ]
    cfg = retrieval_config(["retrieval.collection=errors"])
    report = ingest(cfg, "errors-test", modalities=["text", "image", "audio"], progress=False, catalog=items)
    errs = {(e["item_id"], e["kind"]): e for e in report.media_errors}
    assert set(errs) == {("e1", "image"), ("e2", "image"), ("e3", "audio")}
    assert "corrupt" in errs[("e1", "image")]["error"] and errs[("e1", "image")]["path"] == str(corrupt)
    assert "not an image file" in errs[("e2", "image")]["error"]
    assert str(truncated) in errs[("e3", "audio")]["error"]
    assert report.written == 3  # every item still got its text record
    store = Store(cfg, "errors-test")
    assert store.count("text") == 3 and set(store.all_ids("image")) == {"e3"} and store.count("audio") == 0
    saved = json.loads(report_path(cfg, "errors-test").read_text())
    assert len(saved["media_errors"]) == 3
    again = ingest(cfg, "errors-test", modalities=["text", "image", "audio"], progress=False, catalog=items)
    assert again.written == 0 and len(again.media_errors) == 3  # known errors are still reported


def test_generated_media_runs_every_modality(ret_cfg, catalog):
    items = [i for i in catalog if i.text and "image" in i.media][:3]
    cfg = retrieval_config(["retrieval.collection=generated", "data.generated_media=true"])
    report = ingest(
        cfg, DATASET, modalities=["text", "image", "audio", "video"], progress=False, catalog=items
    )
    assert report.written == 3 and not report.media_errors
    store = Store(cfg)
    assert {k: store.count(k) for k in ("audio", "video", "early")} == {"audio": 3, "video": 3, "early": 3}
    meta = store.metadatas("audio", [items[0].id])[items[0].id]
    assert json.loads(meta["generated_media"]) == ["audio", "video"]
    stored = Retriever(cfg).item(items[0].id)
    assert "/generated/" in stored.media["audio"] and stored.media["video"].endswith(".mp4")
    assert stored.metadata["generated_media"] == ["audio", "video"]
    # the generated clip of an item, as a query, finds that item first (frames vs its video block)
    top = Retriever(cfg).retrieve("", [Attachment("video", Path(stored.media["video"]))], k=3)
    assert top[0].item.id == items[0].id and {"video", "image", "audio"} <= set(top[0].modality_scores)


def test_tfidf_modality(ret_cfg, catalog):
    cfg = retrieval_config(["retrieval.collection=tfidf"])
    items = catalog[:40]
    report = ingest(cfg, DATASET, modalities=["tfidf"], progress=False, catalog=items)
    assert report.written == 40 and list((cfg.data_dir / DATASET).glob("tfidf-*.json"))
    retriever = Retriever(cfg)
    hits = sum(retriever.retrieve(i.text, k=1)[0].item.id == i.id for i in items if len(i.text) > 40)
    assert hits >= 0.9 * sum(len(i.text) > 40 for i in items)
    vec = retriever.query_vectors("toys").blocks["tfidf"]
    assert vec.shape[0] == Store(cfg).get("tfidf").metadata["dim"] and np.isclose(np.linalg.norm(vec), 1)


@pytest.mark.slow
def test_all_posters_find_themselves(ret_cfg, catalog, unique_posters):
    """Every poster of the catalog (1,663) ingested; a sample of posters as queries come back first."""
    import random

    cfg = retrieval_config(["retrieval.collection=posters", "retrieval.batch_size=64"])
    report = ingest(cfg, DATASET, modalities=["image"], progress=False)
    with_poster = [i for i in catalog if "image" in i.media]
    assert len(with_poster) == 1663 and Store(cfg).count("image") == 1663
    assert report.total == len(catalog) and not report.media_errors
    retriever = Retriever(cfg)
    for item in random.Random(3).sample([i for i in with_poster if i.id in unique_posters], 60):
        top = retriever.retrieve("", [Attachment("image", Path(item.media["image"]))], k=1)
        assert top[0].item.id == item.id, f"poster {item.id} -> {top[0].item.id}"
