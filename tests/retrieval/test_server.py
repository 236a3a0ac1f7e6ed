"""Server mode: a real `chroma run` on 127.0.0.1, ingestion and retrieval through chromadb.HttpClient."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from fusionrec.retrieval.ingest import ingest
from fusionrec.retrieval.search import Retriever
from fusionrec.retrieval.store import Store, chroma_server
from fusionrec.types import Attachment
from tests.retrieval.conftest import DATASET, retrieval_config

pytestmark = pytest.mark.real


def test_server_mode_passes_the_retrieval_test(ret_cfg, subset, tmp_path):
    items = subset[:60]
    with chroma_server(tmp_path / "server-db") as url:
        cfg = retrieval_config([f"retrieval.server_url={url}"])
        client = Store(cfg).client
        assert type(client).__name__ != "PersistentClient" and client.heartbeat() > 0
        report = ingest(cfg, DATASET, modalities=["text", "image"], progress=False, catalog=items)
        assert report.written == 60
        assert ingest(cfg, DATASET, modalities=["text", "image"], progress=False, catalog=items).written == 0
        assert Store(cfg).count("early") == 60
        retriever = Retriever(cfg)
        sample = random.Random(11).sample([i for i in items if len(i.text) > 40 and "image" in i.media], 20)
        found = sum(i.id in [c.item.id for c in retriever.retrieve(i.text, k=5)] for i in sample)
        assert found >= 16, f"overview -> own film in top 5 for only {found}/20 through the server"
        for item in sample[:5]:
            top = retriever.retrieve("", [Attachment("image", Path(item.media["image"]))], k=1)
            assert top[0].item.id == item.id
        comedies = retriever.retrieve("friends", filters={"genres": ["Comedy"]}, exclude_ids=["1"], k=10)
        assert comedies and all("Comedy" in c.item.genres and c.item.id != "1" for c in comedies)
    # the data lives in the server's folder, not in the embedded store
    assert (tmp_path / "server-db" / "chroma.sqlite3").is_file()
