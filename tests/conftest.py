"""Session-wide fixtures: one test home, models prepared once, the shared real data.

Prepared models live in <repo>/.fusionrec-test (git-ignored) and are reused by later runs,
so the expensive conversions (GGUF dequantisation, Whisper conversion) happen once per clone.

Without the shared data (../shared/data or $FUSIONREC_SHARED_DATA) the tests that need it skip, and
the run says so in its header and in a banner with the count; with CI=true the run then fails.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from fusionrec import env
from fusionrec.config import REPO_ROOT, Config, load_config

env.configure(offline=True)

TEST_HOME = Path(os.environ.get("FUSIONREC_TEST_HOME", REPO_ROOT / ".fusionrec-test"))
NO_DATA = "real data not found"  # the start of the skip reason the session summary counts
_skipped_for_data: list[str] = []  # node ids skipped because the shared data is missing


def make_config(profile: str, home: Path | None = None, overrides: list[str] | None = None) -> Config:
    """A config for tests: the given profile, all state (models included) under `home` (default TEST_HOME)."""
    cfg = load_config(None, [f"models.profile={profile}", *(overrides or [])])
    cfg.paths.home = str(home or TEST_HOME)
    return cfg


def home_config(models_dir: Path, home: Path, profile: str, overrides: list[str] | None = None) -> Config:
    """A config whose state lives in `home`, with `home/models` linked to the prepared models."""
    home.mkdir(parents=True, exist_ok=True)
    link = home / "models"
    if not link.exists():
        link.symlink_to(models_dir, target_is_directory=True)
    return make_config(profile, home=home, overrides=overrides)


def ingested_catalog(
    cfg: Config, modalities: list[str], n_items: int = 0, dataset: str = "movielens-100k"
) -> list:
    """Prepare `dataset` in cfg's home (once) and ingest its first `n_items` items (0 = all).

    A stamp (item ids, modalities, the ingest hash version, fusion weights, the models manifest)
    skips the ~25 s that even a no-op ingest spends loading encoders; any change re-ingests.
    Returns the prepared items (all of them, not only the ingested ones).
    """
    from fusionrec.data.prepare import load_prepared, prepare_dataset
    from fusionrec.retrieval.ingest import HASH_VERSION, ingest
    from fusionrec.retrieval.store import Store

    if not (cfg.data_dir / dataset / "items.jsonl").is_file():
        prepare_dataset(cfg, dataset, verbose=False)
    items = load_prepared(cfg, dataset)[0]
    chosen = items[:n_items] if n_items else items
    manifest = cfg.models_dir / "manifest.json"
    key = json.dumps(
        [[i.id for i in chosen], modalities, HASH_VERSION, cfg.retrieval.weights,
         manifest.read_text() if manifest.is_file() else ""],
        sort_keys=True,
    )  # fmt: skip
    stamp = cfg.home / f"ingested-{dataset}.sha256"
    digest = hashlib.sha256(key.encode()).hexdigest()
    if stamp.is_file() and stamp.read_text() == digest and Store(cfg, dataset).count("early") == len(chosen):
        return items
    ingest(cfg, dataset, modalities=modalities, progress=False, catalog=chosen)
    stamp.write_text(digest)
    return items


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The raw datasets folder (../shared/data); tests that need real data skip without it."""
    path = Config().shared_data_dir
    if path is None:
        pytest.skip(f"{NO_DATA}: set FUSIONREC_SHARED_DATA or place it in ../shared/data")
    return path


# --- the missing shared data is reported, never a silent skip ----------------------------------
def _sought() -> str:
    """Where the shared data was looked for."""
    named = os.environ.get("FUSIONREC_SHARED_DATA", "")
    return named or f"{REPO_ROOT.parent / 'shared' / 'data'} (../shared/data)"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def pytest_report_header(config: pytest.Config) -> str:
    found = Config().shared_data_dir
    return f"shared data: {found}" if found else f"shared data: MISSING at {_sought()}"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and NO_DATA in str(report.longrepr):
        _skipped_for_data.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """CI=true: tests skipped for want of the shared data fail the run."""
    if _skipped_for_data and _in_ci() and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if Config().shared_data_dir is not None:
        return
    n = len(_skipped_for_data)
    banner = (
        f"SHARED DATA MISSING at {_sought()}: {n} test{'s' * (n != 1)} skipped for it "
        f"(set FUSIONREC_SHARED_DATA or place the data in ../shared/data)"
    )
    if n and _in_ci():
        banner += "; CI=true: the run fails"
    terminalreporter.write_sep("!", banner, red=True, bold=True)


@pytest.fixture(scope="session")
def tiny_cfg() -> Config:
    """Tiny profile: the real architectures from small configs with random weights (built once)."""
    from fusionrec.models.prepare import prepare_models

    cfg = make_config("tiny")
    prepare_models(cfg, profile="tiny")
    return cfg


@pytest.fixture(scope="session")
def offline_cfg() -> Config:
    """Offline profile: the real packaged weights, converted into local folders once per clone."""
    from fusionrec.models.prepare import prepare_models

    cfg = make_config("offline")
    prepare_models(cfg, profile="offline")
    return cfg
