"""`fusionrec data prepare`: raw dataset -> cleaned catalog, interactions, report (and ReDial dialogues).

Layout under cfg.data_dir/<name>/: items.jsonl, interactions.csv (user,item,rating,timestamp),
report.json (stats + every dropped/changed row with file and line), and for ReDial
dialogues_{train,valid,test}.jsonl. Re-running gives byte-identical files (atomic writes).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from fusionrec.config import Config
from fusionrec.data.catalog import (
    CatalogError,
    atomic_write_text,
    dumps_interactions,
    dumps_items,
    read_interactions,
    read_items,
)
from fusionrec.data.loaders import Dataset, DataSourceError
from fusionrec.types import Interaction, Item

BUILTIN = ("movielens-100k", "ml-latest-small", "redial")
ALIASES = {
    "ml-100k": "movielens-100k",
    "ml100k": "movielens-100k",
    "movielens100k": "movielens-100k",
    "movielens-latest-small": "ml-latest-small",
    "ml-latest": "ml-latest-small",
}
CATALOG_SUFFIXES = (".jsonl", ".csv")


class DatasetNotPrepared(FileNotFoundError):
    """The prepared files are missing; the message names the command that makes them."""


def is_catalog_file(name: str) -> bool:
    return Path(name).suffix.lower() in CATALOG_SUFFIXES


def canonical_name(name: str) -> str:
    """Builtin dataset name (aliases resolved) or, for a .jsonl/.csv path, the file's stem."""
    key = name.strip()
    if is_catalog_file(key):
        from fusionrec.data.loaders.generic import dataset_name

        return dataset_name(key)
    if key.lower() in BUILTIN:
        return key.lower()
    if key.lower() in ALIASES:
        return ALIASES[key.lower()]
    raise DataSourceError(
        f"unknown dataset {name!r}: use one of {', '.join(BUILTIN)} or a path to a .jsonl/.csv catalog"
    )


def prepared_name(name: str) -> str:
    """The prepared dataset's folder (and catalog) name: a builtin dataset's canonical name, or for a
    user catalog (its path or its name) the file's stem made filesystem-safe."""
    try:
        return canonical_name(name)
    except DataSourceError:
        from fusionrec.data.loaders.generic import safe_name

        return safe_name(name.strip())


def dataset_dir(cfg: Config, name: str) -> Path:
    """cfg.data_dir/<prepared_name(name)>."""
    return cfg.data_dir / prepared_name(name)


def _catalog_for_matching(cfg: Config, source: str, name: str) -> tuple[list[Item] | None, str]:
    """The items of MovieLens dataset `name` ("movielens-100k" | "ml-latest-small") for ReDial title
    matching: the prepared copy first, else the raw files (None when neither is there)."""
    prepared = cfg.data_dir / name / "items.jsonl"
    if prepared.is_file():
        return read_items(prepared), str(prepared)
    from fusionrec.data.loaders import movielens

    find, load = {
        "movielens-100k": (movielens.find_ml100k, movielens.load_ml100k),
        "ml-latest-small": (movielens.find_ml_latest, movielens.load_ml_latest),
    }[name]
    for src in ([source] if source else []) + [""]:
        try:
            folder, extra = find(cfg, src, download=False)
        except DataSourceError:
            continue
        return load(folder, extra).items, str(folder)
    return None, ""


def load_raw(cfg: Config, name: str, source: str = "") -> Dataset:
    """Read and clean a raw dataset (nothing written)."""
    if is_catalog_file(name):
        from fusionrec.data.loaders.generic import load_generic

        return load_generic(name)
    canon = canonical_name(name)
    if canon == "movielens-100k":
        from fusionrec.data.loaders.movielens import find_ml100k, load_ml100k

        return load_ml100k(*find_ml100k(cfg, source))
    if canon == "ml-latest-small":
        from fusionrec.data.loaders.movielens import find_ml_latest, load_ml_latest

        return load_ml_latest(*find_ml_latest(cfg, source))
    from fusionrec.data.loaders.redial import find_redial, load_redial

    folder = find_redial(cfg, source)
    ml_items, ml_source = _catalog_for_matching(cfg, source, "movielens-100k")
    latest_items, latest_source = _catalog_for_matching(cfg, source, "ml-latest-small")
    ds = load_redial(folder, ml_items, latest_items)
    ds.report.sources["ml100k_catalog"] = ml_source
    ds.report.sources["ml_latest_catalog"] = latest_source
    return ds


def prepare_dataset(cfg: Config, name: str, source: str = "", verbose: bool = True) -> Path:
    """Clean `name` (movielens-100k | ml-latest-small | redial | a .jsonl/.csv path) into cfg.data_dir."""
    t0 = time.perf_counter()
    ds = load_raw(cfg, name, source)
    t_load = time.perf_counter() - t0
    out = cfg.data_dir / ds.name
    _refuse_other_catalog(out, ds)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "items.jsonl", dumps_items(ds.items))
    atomic_write_text(out / "interactions.csv", dumps_interactions(ds.interactions))
    for split, records in ds.dialogues.items():
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        atomic_write_text(out / f"dialogues_{split}.jsonl", text)
    atomic_write_text(out / "report.json", ds.report.dumps())
    elapsed = time.perf_counter() - t0
    if verbose:
        ds.report.print_summary()
        print(
            f"wrote {out}/ (items.jsonl, interactions.csv, report.json"
            + (", dialogues_{train,valid,test}.jsonl" if ds.dialogues else "")
            + f") in {elapsed:.2f} s (reading + cleaning {t_load:.2f} s)"
        )
    return out


def _refuse_other_catalog(out: Path, ds: Dataset) -> None:
    """DataSourceError when `out` holds a catalog prepared from another file (b.csv vs b.jsonl,
    or two folders' b.jsonl): both would be dataset `ds.name`, the second overwriting the first."""
    new = ds.report.sources.get("catalog")
    try:
        old = json.loads((out / "report.json").read_text(encoding="utf-8"))["sources"]["catalog"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    if new and old and Path(old) != Path(new):
        raise DataSourceError(
            f"{new} would replace the catalog prepared from {old} (both are dataset {ds.name!r}, "
            f"in {out}): rename one of the files, or delete {out} to replace that catalog"
        )


def prepare_command(cfg: Config, name: str, source: str = "") -> int:
    """CLI wrapper: clear one-line errors (exit 2) instead of tracebacks for bad input."""
    try:
        prepare_dataset(cfg, name, source=source)
    except (DataSourceError, CatalogError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _require(cfg: Config, name: str, filename: str) -> Path:
    path = dataset_dir(cfg, name) / filename
    if not path.is_file():
        raise DatasetNotPrepared(
            f"dataset {name!r} is not prepared ({path} is missing): run `fusionrec data prepare {name}`"
            + (f" paths.home={cfg.paths.home}" if cfg.paths.home != ".fusionrec" else "")
        )
    return path


def load_prepared(cfg: Config, name: str) -> tuple[list[Item], list[Interaction]]:
    """(items, interactions) of a prepared dataset; `DatasetNotPrepared` says how to make them."""
    items = read_items(_require(cfg, name, "items.jsonl"))
    return items, read_interactions(_require(cfg, name, "interactions.csv"))


def load_dialogues(cfg: Config, split: str, name: str = "redial") -> list[dict[str, Any]]:
    """Prepared ReDial dialogue records of one split (train | valid | test)."""
    path = _require(cfg, name, f"dialogues_{split}.jsonl")
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_report(cfg: Config, name: str) -> dict[str, Any]:
    return json.loads(_require(cfg, name, "report.json").read_text(encoding="utf-8"))
