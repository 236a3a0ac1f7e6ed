"""Without the shared data the run says so in a banner with the count, and fails when CI=true."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fusionrec.config import REPO_ROOT, Config

TINY = """
def test_needs_the_data(shared_data):
    assert shared_data.is_dir()


def test_needs_nothing():
    assert True
"""


def run_pytest(folder: Path, data: Path, ci: str) -> subprocess.CompletedProcess:
    """pytest on a two-test file with the suite's conftest as a plugin (cwd: the repo, whose
    ../shared/data may exist: only $FUSIONREC_SHARED_DATA decides)."""
    (folder / "pytest.ini").write_text("[pytest]\n")  # no addopts from the project's pyproject
    (folder / "test_tiny.py").write_text(TINY)
    env = {**os.environ, "FUSIONREC_SHARED_DATA": str(data), "CI": ci, "COLUMNS": "200"}
    env.pop("PYTEST_ADDOPTS", None)
    cmd = [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
           "-c", str(folder / "pytest.ini"), str(folder / "test_tiny.py")]  # fmt: skip
    return subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_a_named_folder_is_the_only_one_looked_at(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSIONREC_SHARED_DATA", str(tmp_path / "missing"))
    assert Config().shared_data_dir is None  # never a guessed ../shared/data instead
    monkeypatch.setenv("FUSIONREC_SHARED_DATA", str(tmp_path))
    assert Config().shared_data_dir == tmp_path.resolve()


@pytest.mark.parametrize(("ci", "rc"), [("true", 1), ("", 0)])
def test_missing_shared_data_is_loud_and_fails_in_ci(tmp_path, ci, rc):
    missing = tmp_path / "no-shared-data"
    result = run_pytest(tmp_path, missing, ci)
    out = result.stdout
    assert result.returncode == rc, out + result.stderr
    assert f"shared data: MISSING at {missing}" in out  # the header
    banner = [line for line in out.splitlines() if "SHARED DATA MISSING" in line]
    assert len(banner) == 1 and f"at {missing}: 1 test skipped for it" in banner[0], out
    assert ("CI=true: the run fails" in banner[0]) == (ci == "true")
    assert "1 passed, 1 skipped" in out


def test_present_shared_data_is_named_and_no_banner(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    result = run_pytest(tmp_path, data, "true")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"shared data: {data.resolve()}" in result.stdout
    assert "SHARED DATA MISSING" not in result.stdout and "2 passed" in result.stdout
