"""The real `fusionrec` CLI never shows a traceback: an internal error is one line (exit 1) with the
traceback in <home>/logs/fusionrec.log, bad config values are one line naming the key (exit 2), and
the chat echoes user text without terminal escape sequences."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fusionrec.config import REPO_ROOT
from tests.agent.conftest import FAST, TINY_HOME, TINY_ITEMS
from tests.conftest import home_config, ingested_catalog
from tests.reliability.conftest import cli, error_line


def corrupt_store(home: Path) -> None:
    """A Chroma folder whose database file is garbage: chromadb fails inside (an internal error)."""
    (home / "chroma").mkdir(exist_ok=True)
    (home / "chroma" / "chroma.sqlite3").write_bytes(os.urandom(8192))


def test_internal_error_is_one_line_and_the_traceback_is_in_the_log(home: Path) -> None:
    corrupt_store(home)
    r = cli(home, "search", "a comedy", timeout=60)
    log_file = home / "logs" / "fusionrec.log"
    assert r.rc == 1, (r.rc, r.err)
    assert "Traceback" not in r.out + r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: internal error: "), r.err
    assert f"(details in {log_file}; rerun with --verbose to print them)" in lines[0]
    assert "Traceback" in log_file.read_text()


def test_verbose_prints_the_traceback(home: Path) -> None:
    corrupt_store(home)
    r = cli(home, "--verbose", "search", "a comedy", timeout=60)
    assert r.rc == 1 and "Traceback" in r.err
    assert r.err.strip().splitlines()[-1].startswith("error: internal error: ")


def test_unusable_home_is_one_line_naming_the_path(tmp_path: Path) -> None:
    home = tmp_path / "home-is-a-file"
    home.write_text("not a folder")
    cmd = [sys.executable, "-m", "fusionrec", "data", "prepare", "movielens-100k", f"paths.home={home}"]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1 and str(home) in proc.stderr and "Not a directory" in proc.stderr


@pytest.mark.parametrize(
    ("override", "names"),
    [
        ("agent.num_candidates=0", "agent.num_candidates=0"),
        ("agent.max_message_chars=-1", "agent.max_message_chars=-1"),
        ("agent.max_attachment_mb=0", "agent.max_attachment_mb=0"),
        ("ui.port=99999", "ui.port=99999"),
        ("ui.max_upload_mb=inf", "ui.max_upload_mb=inf"),
    ],
)
def test_out_of_range_config_is_refused_with_one_line(home: Path, override: str, names: str) -> None:
    line = error_line(cli(home, "models", "list", override, timeout=60))
    assert line.startswith(f"error: {names}: expected a number from ")


def test_out_of_range_value_in_a_config_file(home: Path) -> None:
    path = home / "bad.toml"
    path.write_text("[agent]\nnum_candidates = 50\n")
    line = error_line(cli(home, "--config", str(path), "models", "list", timeout=60))
    assert "agent.num_candidates=50" in line


def test_bad_ui_auth_names_the_config_key_and_a_bad_flag_names_the_flag(home: Path) -> None:
    line = error_line(cli(home, "serve", "ui.auth=ann", timeout=60))
    assert "ui.auth" in line and "--auth" not in line and "expected user:pass" in line
    line = error_line(cli(home, "serve", "--auth", "ann:", timeout=60))
    assert "--auth" in line and "expected user:pass" in line


def test_chat_echo_strips_escape_sequences(tiny_cfg, shared_data) -> None:
    cfg = home_config(tiny_cfg.models_dir, TINY_HOME, "tiny", FAST)
    ingested_catalog(cfg, ["text"], TINY_ITEMS)  # the agent tests' catalog (a no-op when already there)
    msg = "\x1b[2Jshow me\x1b]0;pwned\x07 a comedy\x1b[31m\x07\x08 please\x1b"
    r = cli(TINY_HOME, "chat", "-m", msg, *FAST, "agent.explain_top_k=0", timeout=120)
    assert r.rc == 0, r.err
    assert "you> show me a comedy please\n" in r.out
    assert not any(ch in r.out for ch in "\x1b\x07\x08"), repr(r.out)
    assert "pwned" not in r.out and "Ranked by" in r.out
