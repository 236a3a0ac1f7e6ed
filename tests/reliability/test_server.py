"""A Chroma server that is frozen, absent or misnamed, and out-of-range search input: each gives
one clear line (exit code 2 from the CLI), within the configured timeout, never a hang or a traceback."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import numpy as np
import pytest

from fusionrec.retrieval.store import (
    Store,
    StoreError,
    free_port,
    item_metadata,
    start_chroma_server,
    stop_chroma_server,
)
from fusionrec.types import Item
from tests.conftest import make_config
from tests.reliability.conftest import cli, error_line

TIMEOUT = ["retrieval.server_timeout_s=1", "retrieval.server_retries=1"]  # 2 tries of 1 s


@pytest.fixture()
def server(tmp_path: Path):
    """A real `chroma run` on 127.0.0.1 (a free port): (process, URL); continued and stopped after."""
    proc, url = start_chroma_server(tmp_path / "server-db")
    try:
        yield proc, url
    finally:
        stop_chroma_server(proc, url)


def test_frozen_server_fails_within_the_timeout(server, home: Path) -> None:
    proc, url = server
    # an open session (what a chat turn uses): its next call times out
    store = Store(make_config("tiny", home=home, overrides=[f"retrieval.server_url={url}", *TIMEOUT]), "x")
    store.ensure("text", 4, "m")
    store.upsert("text", ["1"], np.ones((1, 4)), [item_metadata(Item("1", "One"), "h", "m")])
    assert store.query("text", np.ones(4), 1)[0][0] == "1"
    proc.send_signal(signal.SIGSTOP)
    t0 = time.monotonic()
    with pytest.raises(StoreError) as err:
        store.query("text", np.ones(4), 1)
    assert time.monotonic() - t0 < 2 * 1 + 1.5
    message = str(err.value)
    assert f"the Chroma server at {url} did not answer within 1 s (2 tries" in message
    assert f"chroma run --path {home / 'chroma'} --host 127.0.0.1 --port {url.rsplit(':', 1)[1]}" in message
    # a new command against the frozen server
    result = cli(home, "search", "a film", f"retrieval.server_url={url}", *TIMEOUT, timeout=60)
    line = error_line(result)
    assert url in line and "did not answer within 1 s" in line and "chroma run --path" in line


def test_unreachable_server_is_one_line(home: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    line = error_line(cli(home, "search", "a film", f"retrieval.server_url={url}", *TIMEOUT, timeout=60))
    assert f"the Chroma server at {url} cannot be reached" in line and "chroma run --path" in line


def test_bad_server_url_is_refused_when_the_config_loads(home: Path) -> None:
    line = error_line(cli(home, "search", "a film", "retrieval.server_url=notaurl", timeout=60))
    assert "retrieval.server_url='notaurl'" in line and "http://host:port" in line


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--k", "-5"], "--k -5: expected a number from 1 to 10000"),
        (["retrieval.k=-5"], "retrieval.k=-5: expected a number from 1 to 10000"),
        (["retrieval.batch_size=0"], "retrieval.batch_size=0: expected a number from 1 to 5000"),
        (["retrieval.server_timeout_s=0"], "retrieval.server_timeout_s=0.0: expected a number from 0.1"),
    ],
)
def test_out_of_range_numbers_are_refused(home: Path, args: list[str], expected: str) -> None:
    assert expected in error_line(cli(home, "search", "a film", *args, timeout=60))


def test_search_has_the_chat_message_limit(home: Path) -> None:
    line = error_line(cli(home, "search", "x" * 50_000, timeout=60))
    assert "too long (50000 characters; agent.max_message_chars=2000)" in line
