"""Nothing raw reaches the terminal: printable text, one-line errors, tracebacks and library warnings in the log."""

from __future__ import annotations

import logging
import subprocess
import sys
import warnings

import pytest

from fusionrec import logs
from fusionrec.config import REPO_ROOT, ConfigError, load_config
from fusionrec.text import one_line, printable


@pytest.fixture
def restore_logging():
    """setup() changes the root logger and warnings routing: put them back after the test."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    for handler in logs._handlers:
        root.removeHandler(handler)
        handler.close()
    logs._handlers.clear()
    root.setLevel(level)
    root.handlers[:] = handlers
    logging.captureWarnings(False)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("hi \x1b[2Jthere", "hi there"),  # CSI: clear screen
        ("\x1b[31mred\x1b[0m", "red"),  # colours
        ("a\x1b]0;title\x07b", "ab"),  # OSC: window title (BEL)
        ("a\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\b", "alinkb"),  # OSC 8 hyperlink (ST)
        ("a\x1bPq#0;1\x1b\\b", "ab"),  # DCS (sixel)
        ("a\x1b(Bb\x1bcc\x1b", "abc"),  # charset, reset, a lone ESC
        ("bell\x07 back\x08 nul\x00 del\x7f c1\x9b", "bell back nul del c1"),
        ("over\rwrite", "overwrite"),
        ("evil\u202eelif.exe", "evilelif.exe"),  # bidi override
        ("tab\tand\nnewline", "tab\tand\nnewline"),
        ("Amélie (2001) — 東京", "Amélie (2001) — 東京"),
    ],
)
def test_printable_strips_escapes_and_control_characters(raw, clean):
    assert printable(raw) == clean


def test_one_line_collapses_and_bounds():
    assert one_line("a\n  b\x1b[2J\tc") == "a b c"
    assert printable("a\nb", newlines=False) == "a b"
    long = one_line("x" * 1000, limit=50)
    assert len(long) == 50 and long.endswith("...")


def test_library_warnings_and_tracebacks_go_to_the_log_only(tmp_path, capsys, restore_logging):
    path = logs.setup(tmp_path)
    assert path == tmp_path / "logs" / "fusionrec.log"
    from PIL import Image

    warnings.warn("a huge image", Image.DecompressionBombWarning, stacklevel=1)
    logging.getLogger("chromadb.telemetry").warning("library chatter")
    logging.getLogger("fusionrec.retrieval.ingest").warning("item 7: image skipped")
    try:
        {}["missing"]
    except KeyError:
        logs.log_traceback(logging.getLogger("fusionrec.agent.agent"), "turn failed")
    err = capsys.readouterr().err
    assert err == "warning: item 7: image skipped\n"  # the project's own warning, one line
    text = path.read_text()
    assert "DecompressionBombWarning: a huge image" in text and "library chatter" in text
    assert "turn failed" in text and "Traceback" in text and "KeyError: 'missing'" in text


def test_verbose_prints_everything(tmp_path, capsys, restore_logging):
    logs.setup(tmp_path, verbose=True)
    warnings.warn("deprecated thing", UserWarning, stacklevel=1)
    try:
        int("x")
    except ValueError:
        logs.log_traceback(logging.getLogger("fusionrec.agent.agent"), "turn failed")
    err = capsys.readouterr().err
    assert "deprecated thing" in err and "Traceback" in err and "invalid literal" in err


def test_report_failure_one_line_and_exit_codes(tmp_path, capsys, restore_logging):
    path = logs.setup(tmp_path)
    try:
        [][1]
    except IndexError as exc:
        internal = exc
    assert logs.report_failure(internal, path) == 1
    line = capsys.readouterr().err
    assert line.count("\n") == 1 and line.startswith("error: internal error: IndexError: list index out of range")
    assert f"details in {path}; rerun with --verbose" in line
    assert logs.report_failure(ConfigError("agent.k=0: expected 1..20\nsecond line"), path) == 2
    assert capsys.readouterr().err.startswith("error: agent.k=0: expected 1..20 second line (details in")
    assert logs.report_failure(FileNotFoundError(2, "No such file", "/no/such.toml"), None) == 2
    assert "/no/such.toml" in capsys.readouterr().err
    assert path.read_text().count("command failed") == 3 and "Traceback" in path.read_text()


def test_unusable_home_still_gives_one_line(tmp_path, capsys, restore_logging):
    home = tmp_path / "a-file"
    home.write_text("not a folder")
    assert logs.setup(home) is None
    assert logs.report_failure(RuntimeError("boom"), None) == 1
    assert capsys.readouterr().err == (
        "error: internal error: RuntimeError: boom (no log file could be written; rerun with --verbose for details)\n"
    )


def test_transformers_and_hub_loggers_are_routed_when_imported_later(tmp_path):
    """A fresh process: their own stderr handlers are removed as they are imported."""
    code = (
        "import sys; from pathlib import Path; from fusionrec import logs\n"
        f"path = logs.setup(Path({str(tmp_path)!r}))\n"
        "assert 'transformers' not in sys.modules\n"
        "from transformers.utils import logging as tl; import huggingface_hub.utils.logging as hl\n"
        "tl.get_logger('transformers.modeling_utils').warning('tf says hi')\n"
        "hl.get_logger('huggingface_hub.file_download').warning('hub says hi')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "says hi" not in proc.stderr
    text = (tmp_path / "logs" / "fusionrec.log").read_text()
    assert "tf says hi" in text and "hub says hi" in text


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("agent.num_candidates=0", "agent.num_candidates=0: expected a number from 1 to 20"),
        ("agent.num_candidates=21", "agent.num_candidates=21"),
        ("agent.max_message_chars=0", "agent.max_message_chars=0"),
        ("agent.max_attachment_mb=-5", "agent.max_attachment_mb=-5"),
        ("agent.repetition_penalty=nan", "agent.repetition_penalty=nan"),
        ("agent.ranker=magic", "agent.ranker='magic': expected one of verbalizer, generative"),
        ("ui.port=70000", "ui.port=70000: expected a number from 0 to 65535"),
        ("ui.max_upload_mb=0", "ui.max_upload_mb=0.0"),
        ("ui.concurrency=0", "ui.concurrency=0"),
        ("ui.auth=ann", "ui.auth: expected user:pass"),
        ("ui.host=", "ui.host=''"),
    ],
)
def test_out_of_range_values_name_the_key_and_value(override, message):
    with pytest.raises(ConfigError) as exc:
        load_config(None, [override])
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_auth_errors_do_not_echo_the_password():
    with pytest.raises(ConfigError) as exc:
        load_config(None, ["ui.auth=:s3cret"])
    assert "s3cret" not in str(exc.value) and "ui.auth" in str(exc.value)


def test_in_range_values_load(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[agent]\nnum_candidates = 20\nexplain_top_k = 0\n[ui]\nport = 0\nauth = "ann:pw"\n')
    cfg = load_config(path, ["ui.max_upload_mb=0.5", "agent.seed=123456789"])
    assert cfg.agent.num_candidates == 20 and cfg.ui.port == 0 and cfg.ui.max_upload_mb == 0.5
