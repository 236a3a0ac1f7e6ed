"""The `fusionrec` CLI: every subcommand has help, help is instant, overrides reach the config."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from fusionrec.cli import build_parser, main

SUBCOMMANDS = ["models", "data", "ingest", "search", "chat", "serve", "finetune", "eval"]


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_each_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: fusionrec {name}")


def test_help_is_fast_and_imports_nothing_heavy():
    code = (
        "import sys, time; t=time.time(); from fusionrec.cli import build_parser; build_parser();"
        "heavy=[m for m in ('torch','transformers','chromadb','gradio') if m in sys.modules];"
        "print(heavy, time.time()-t)"
    )
    t0 = time.time()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("[]"), out
    assert time.time() - t0 < 10


def test_unknown_override_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["models", "list", "models.nope=1"])
    assert exc.value.code == 2
    assert "models.nope: unknown key" in capsys.readouterr().err


def test_parser_lists_all_subcommands():
    text = build_parser().format_help()
    for name in SUBCOMMANDS:
        assert name in text
