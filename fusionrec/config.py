"""The app config: one typed section per concern, read by `fusionrec.settings` from TOML or YAML and
overridden with `section.key=value`."""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusionrec import settings
from fusionrec.agent.config import AgentConfig
from fusionrec.data.config import DataConfig
from fusionrec.evaluation.config import EvalConfig
from fusionrec.finetune.config import FinetuneConfig
from fusionrec.models.config import ModelsConfig
from fusionrec.retrieval.config import RetrievalConfig
from fusionrec.settings import ConfigError
from fusionrec.ui.config import UIConfig

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class PathsConfig:
    home: str = ".fusionrec"  # all persistent state: models, prepared data, Chroma, checkpoints, reports
    shared_data: str = ""  # folder holding the raw datasets; "" = $FUSIONREC_SHARED_DATA or ../shared/data


@dataclass
class Config:
    paths: PathsConfig = field(default_factory=PathsConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    ui: UIConfig = field(default_factory=UIConfig)

    # --- derived locations -------------------------------------------------------------
    @property
    def home(self) -> Path:
        return Path(self.paths.home).expanduser().resolve()

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def chroma_dir(self) -> Path:
        return self.home / "chroma"

    @property
    def checkpoints_dir(self) -> Path:
        return self.home / "checkpoints"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def shared_data_dir(self) -> Path | None:
        """The folder with the raw datasets, or None when no local copy exists. A folder named by
        `paths.shared_data` or $FUSIONREC_SHARED_DATA is the only one looked at (never a guess)."""
        named = self.paths.shared_data or os.environ.get("FUSIONREC_SHARED_DATA", "")
        guesses = [Path.cwd().parent / "shared" / "data", REPO_ROOT.parent / "shared" / "data"]
        found = [Path(named).expanduser()] if named else guesses
        return next((p.resolve() for p in found if p.is_dir()), None)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Keys renamed so that one idea has one name; an old key is an error that names the new one.
RENAMED = {
    "eval.prompt_history": "eval.history_len",
    "eval.bpr_dim": "eval.collab_dim",
}


# Keys whose name now means another idea: a file that sets one without its companion gets a warning.
MOVED = {"eval.history_len": ("eval.example_history", "the LLM prompt's watched items; the baselines' "
                              "example history, which this key used to set, is eval.example_history")}  # fmt: skip


def _check_renamed(data: dict[str, Any], overrides: list[str], source: str) -> None:
    words = [w.partition("=")[0] for w in overrides]
    named = [f"{s}.{k}" for s, v in data.items() if isinstance(v, dict) for k in v]
    for where, keys in ((source, named), ("override", words)):
        for key in keys:
            if key in RENAMED:
                raise ConfigError(f"{where}: {key} was renamed {RENAMED[key]}")
    for key, (companion, meaning) in MOVED.items():
        if key in named and companion not in named:
            logging.getLogger(__name__).warning("%s: %s is %s", source, key, meaning)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults, then the file (TOML or YAML), then `section.key=value` overrides (`fusionrec.settings`)."""
    _check_renamed(settings.read_file(path) if path else {}, list(overrides or []), str(path))
    cfg = settings.load(Config, path, overrides)
    for f in dataclasses.fields(cfg):  # sections with a `check()` range-check their values
        check = getattr(getattr(cfg, f.name), "check", None)
        if check is not None:
            try:
                check()
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
    return cfg
