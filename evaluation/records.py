"""Per-example records on disk: what makes an evaluation resumable and every number traceable.

Each system's results are one JSONL file under ``<report>/records/`` (one line per example, keyed);
a re-run with the same report name reads them back and only evaluates the examples still missing.
``run.json`` holds the fingerprint of the settings the records depend on, including the sha256 of
the candidate file and of the adapter's weights; a different fingerprint refuses to mix results.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from fusionrec.config import Config

# Settings that choose WHICH examples or numbers are reported, not what a record contains.
_VOLATILE_EVAL_KEYS = {
    "limit",
    "llm_limit",
    "llm_ablation_limit",
    "explain_sample",
    "systems",
    "bootstrap",
    "plots",
    "progress",
    "name",
    "output_dir",
    "protocol",
    "threads",
    "summary",
}
# The files that make an adapter what it is (hashed when present; config.yaml is in the settings).
ADAPTER_FILES = (
    "adapter_model.safetensors",
    "projectors.safetensors",
    "residual.json",
    "prior.json",
    "residual_dialogue.json",
    "conversation_prior.json",
)


class RecordsMismatch(RuntimeError):
    """The report folder holds records made with other settings."""


def adapter_digest(folder: Path | None) -> str | None:
    """sha256 over the adapter's weight files (`ADAPTER_FILES` present in `folder`); None = no adapter."""
    if folder is None or not folder.is_dir():
        return None
    h = hashlib.sha256()
    for name in ADAPTER_FILES:
        path = folder / name
        if path.is_file():
            h.update(name.encode() + b"\0")
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()


def input_digests(cfg: Config) -> dict[str, str | None]:
    """sha256 of the ML-100k candidate file of `eval.split` and of the adapter (None when absent)."""
    from fusionrec.agent.adapter import resolve_adapter
    from fusionrec.evaluation.protocols import candidates_path, file_digest

    path = candidates_path(cfg, cfg.eval.split)
    return {
        "candidates_sha256": file_digest(path) if path.is_file() else None,
        "adapter_sha256": adapter_digest(resolve_adapter(cfg)[0]),
    }


def fingerprint(cfg: Config) -> tuple[str, dict[str, Any]]:
    """(sha256, settings) of everything a per-example record depends on: the settings, the candidate
    file and the adapter's weights (the same path can hold a retrained adapter)."""
    d = cfg.to_dict()
    d["eval"] = {k: v for k, v in d["eval"].items() if k not in _VOLATILE_EVAL_KEYS}
    d.pop("ui", None)
    d["paths"] = {"home": str(cfg.home)}
    d["inputs"] = input_digests(cfg)
    text = json.dumps(d, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest(), d


def check_folder(folder: Path, cfg: Config) -> None:
    """Write run.json in a new folder; refuse a folder whose records came from other settings."""
    folder.mkdir(parents=True, exist_ok=True)
    digest, settings = fingerprint(cfg)
    path = folder / "run.json"
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old.get("fingerprint") != digest:
            changed = _diff(old.get("settings", {}), settings)
            raise RecordsMismatch(
                f"{folder} holds results made with other settings ({', '.join(changed[:5]) or 'unknown'}); "
                "use another eval.name, or delete the folder"
            )
        return
    path.write_text(json.dumps({"fingerprint": digest, "settings": settings}, indent=2, default=str) + "\n")


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [prefix.rstrip(".")] if a != b else []


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.@+-]+", "_", name)


class Records:
    """The JSONL records of one (protocol, system): read once, appended as examples are done."""

    def __init__(self, folder: Path, protocol: str, system: str) -> None:
        self.path = folder / "records" / f"{safe_name(protocol)}__{safe_name(system)}.jsonl"
        self.done: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            with open(self.path, encoding="utf-8") as fh:
                for line in fh:
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a line cut by an interrupted run: that example is redone
                    self.done[rec["key"]] = rec

    def __contains__(self, key: str) -> bool:
        return key in self.done

    def get(self, key: str) -> dict[str, Any]:
        return self.done[key]

    def add(self, key: str, record: dict[str, Any]) -> dict[str, Any]:
        rec = {"key": key, **record}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self.done[key] = rec
        return rec
