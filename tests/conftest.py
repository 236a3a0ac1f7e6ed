"""Session-wide fixtures: one test home, models prepared once, the shared real data.

Prepared models live in <repo>/.fusionrec-test (git-ignored) and are reused by later runs,
so the expensive conversions (GGUF dequantisation, Whisper conversion) happen once per clone.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fusionrec import env
from fusionrec.config import REPO_ROOT, Config, load_config

env.configure(offline=True)

TEST_HOME = Path(os.environ.get("FUSIONREC_TEST_HOME", REPO_ROOT / ".fusionrec-test"))


def make_config(profile: str, home: Path | None = None, overrides: list[str] | None = None) -> Config:
    """A config for tests: the given profile, all state (models included) under `home` (default TEST_HOME)."""
    cfg = load_config(None, [f"models.profile={profile}", *(overrides or [])])
    cfg.paths.home = str(home or TEST_HOME)
    return cfg


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The raw datasets folder (../shared/data); tests that need real data skip without it."""
    path = Config().shared_data_dir
    if path is None:
        pytest.skip("real data not found: set FUSIONREC_SHARED_DATA or place it in ../shared/data")
    return path


@pytest.fixture(scope="session")
def tiny_cfg() -> Config:
    """Tiny profile: the real architectures from small configs with random weights (built once)."""
    from encoders.prepare import prepare_models

    cfg = make_config("tiny")
    prepare_models(cfg, profile="tiny")
    return cfg


@pytest.fixture(scope="session")
def offline_cfg() -> Config:
    """Offline profile: the real packaged weights, converted into local folders once per clone."""
    from encoders.prepare import prepare_models

    cfg = make_config("offline")
    prepare_models(cfg, profile="offline")
    return cfg
