"""Reliability tests: the real `fusionrec` CLI in a subprocess, in a throwaway home with the tiny models.

`cli(home, ...)` runs one command (tiny profile, that home, offline like the session) and
`error_line(result)` checks the contract for bad input: exit code 2, no traceback, nothing on
stdout, exactly one `error:` line on stderr (which it returns).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import home_config


@dataclass
class Result:
    rc: int
    out: str
    err: str
    seconds: float


def new_home(folder: Path, tiny_cfg) -> Path:
    """An empty home in `folder` whose models/ links to the session's prepared models."""
    home = folder / "home"
    home_config(tiny_cfg.models_dir, home, "tiny")
    return home


@pytest.fixture()
def home(tmp_path: Path, tiny_cfg) -> Path:
    """An empty home for one test (tiny models prepared)."""
    return new_home(tmp_path, tiny_cfg)


def cli(home: Path, *args: str, timeout: float = 120) -> Result:
    """`fusionrec ARGS models.profile=tiny paths.home=HOME` in a subprocess (cwd: HOME)."""
    cmd = [sys.executable, "-m", "fusionrec", *args, "models.profile=tiny", f"paths.home={home}"]
    env = {**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=home, env=env, capture_output=True, text=True, timeout=timeout)
    return Result(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - t0)


def error_line(result: Result) -> str:
    """The one `error:` line of a refused command (exit 2, no traceback, stdout empty)."""
    assert "Traceback" not in result.out + result.err, result.err
    assert result.rc == 2, (result.rc, result.out, result.err)
    assert not result.out.strip(), result.out
    lines = [line for line in result.err.splitlines() if "error:" in line]
    assert len(lines) == 1, result.err
    return lines[0]
