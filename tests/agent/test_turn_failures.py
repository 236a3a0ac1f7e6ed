"""A failed turn: one line for the user naming what failed (the Chroma server and how to start it),
the traceback only in the log; the session goes on."""

from __future__ import annotations

import copy
import logging

from fusionrec import logs
from fusionrec.agent.agent import Agent
from fusionrec.agent.failures import failure_text
from fusionrec.config import load_config
from fusionrec.retrieval.ingest import ingest
from fusionrec.retrieval.store import free_port, start_chroma_server, stop_chroma_server
from fusionrec.types import DialogueState, Turn
from tests.agent.conftest import DATASET


def test_failure_text_for_a_refused_connection_names_the_server_and_the_fix():
    import httpx

    url = f"http://127.0.0.1:{free_port('127.0.0.1')}"
    cfg = load_config(None, [f"retrieval.server_url={url}", "paths.home=/tmp/fr-home"])
    try:
        httpx.get(url, timeout=2)
    except httpx.ConnectError as exc:
        refused = exc
    text = failure_text(refused, cfg)
    assert text.startswith(f"cannot reach the Chroma server at {url} (retrieval.server_url; ConnectError: ")
    assert f"start one with: chroma run --path {cfg.chroma_dir} --port {url.rsplit(':', 1)[1]}" in text
    embedded = load_config(None, ["paths.home=/tmp/fr-home"])
    assert failure_text(refused, embedded).startswith("ConnectError: ")  # no server configured
    assert failure_text(KeyError("x\n\x1b[2Jy"), embedded) == "KeyError: 'x\\n\\x1b[2Jy'"


def test_turn_with_the_server_gone_is_one_line_and_the_session_goes_on(tiny_agent, ml100k, tmp_path, caplog):
    proc, url = start_chroma_server(tmp_path / "server-db")
    try:
        cfg = copy.deepcopy(tiny_agent.cfg)
        cfg.retrieval.server_url = url
        cfg.retrieval.server_timeout_s, cfg.retrieval.server_retries = 2.0, 0
        ingest(cfg, DATASET, modalities=["text"], progress=False, catalog=ml100k[:20])
        agent = Agent(cfg, llm=(tiny_agent.model, tiny_agent.tokenizer))
        agent.catalog()  # the session is open while the server runs
    finally:
        stop_chroma_server(proc, url)
    state = DialogueState()
    with caplog.at_level(logging.ERROR):
        events = list(agent.respond(state, Turn("user", "a comedy")))
    errors = [e.payload["message"] for e in events if e.kind == "error"]
    assert len(errors) == 1 and "\n" not in errors[0], errors
    assert url in errors[0] and "chroma run --path" in errors[0] and "--port" in errors[0]
    assert "Traceback" not in errors[0] and events[-1].kind == "done" and not events[-1].payload["ok"]
    failed = [r for r in caplog.records if r.getMessage() == "turn failed"]
    assert failed and failed[0].exc_info and getattr(failed[0], logs.FILE_ONLY)  # the log has the traceback
    assert state == DialogueState()  # nothing half-done is kept
