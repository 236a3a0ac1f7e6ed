"""One typed config per concern, loaded from TOML or YAML and overridden with `section.key=value`."""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.config import AgentConfig
from encoders.config import ModelsConfig
from evaluation.config import EvalConfig
from finetune.config import FinetuneConfig
from retrieval.config import DataConfig, RetrievalConfig
from ui.config import UIConfig

REPO_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A config file or override names an unknown key or a value of the wrong type."""


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
        """The folder with the raw datasets, or None when no local copy exists."""
        candidates = [self.paths.shared_data, os.environ.get("FUSIONREC_SHARED_DATA", "")]
        found = [Path(c).expanduser() for c in candidates if c]
        found += [Path.cwd().parent / "shared" / "data", REPO_ROOT.parent / "shared" / "data"]
        return next((p.resolve() for p in found if p.is_dir()), None)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Convert a parsed or command-line value to the field's declared type."""
    origin = typing.get_origin(hint)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "1", "yes", "on", "false", "0", "no", "off"}:
            return value.lower() in {"true", "1", "yes", "on"}
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if hint in (int, float, str):
        try:
            if hint is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            return hint(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}") from None
    if origin is dict:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise ConfigError(f"{where}: expected a JSON object, got {value!r}") from None
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table/mapping, got {value!r}")
        _, vtype = typing.get_args(hint)
        return {str(k): _coerce(v, vtype, f"{where}.{k}") for k, v in value.items()}
    if origin is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        (etype,) = typing.get_args(hint)
        return [_coerce(v, etype, f"{where}[]") for v in value]
    return value


def _set(section_obj: Any, section: str, key: str, value: Any, source: str) -> None:
    hints = typing.get_type_hints(type(section_obj))
    if key not in hints:
        known = ", ".join(hints)
        raise ConfigError(f"{source}: unknown key '{section}.{key}' (known: {known})")
    setattr(section_obj, key, _coerce(value, hints[key], f"{source}: {section}.{key}"))


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix in {".yaml", ".yml"}:
        import yaml

        data = yaml.safe_load(text) or {}
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults, then the file (TOML or YAML), then `section.key=value` overrides, in that order."""
    cfg = Config()
    sections = {f.name for f in dataclasses.fields(cfg)}
    if path:
        for section, values in _read_file(Path(path)).items():
            if section not in sections or not isinstance(values, dict):
                raise ConfigError(f"{path}: unknown section [{section}] (known: {', '.join(sorted(sections))})")
            for key, value in values.items():
                _set(getattr(cfg, section), section, key, value, str(path))
    for item in overrides or []:
        name, sep, value = item.partition("=")
        section, dot, key = name.partition(".")
        if not sep or not dot or section not in sections:
            raise ConfigError(f"override {item!r}: expected section.key=value with section in {sorted(sections)}")
        _set(getattr(cfg, section), section, key, value, "command line")
    for name in sorted(sections):  # sections with a `check()` range-check their values
        check = getattr(getattr(cfg, name), "check", None)
        if check is not None:
            try:
                check()
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
    return cfg
