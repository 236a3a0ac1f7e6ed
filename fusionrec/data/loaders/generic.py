"""Users' own catalogs: a JSONL or CSV file with at least `id` and `title`.

Recognised columns/keys: id, title, year, genres (list or "a|b"), text (or overview / description /
plot), tags (list or "a|b"), image / audio / video (file paths, relative to the catalog's folder), and
in JSONL also `media` and `metadata` objects. Every other column goes into `metadata`.
Optional interactions: `<stem>.interactions.csv` next to the catalog with user,item,rating[,timestamp].
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fusionrec.data.catalog import CatalogError
from fusionrec.data.cleaning import MEDIA_KINDS, CleaningReport, RawItem, clean_interactions, clean_items
from fusionrec.data.loaders import Dataset, DataSourceError

TEXT_KEYS = ("text", "overview", "description", "plot")
KNOWN = {"id", "title", "year", "genres", "tags", "media", "metadata", *TEXT_KEYS, *MEDIA_KINDS}
SUFFIXES = (".jsonl", ".csv")


RESERVED = {"movielens-100k", "ml-latest-small", "redial", "raw"}  # builtin datasets, download cache


def safe_name(text: str) -> str:
    """`text` as a folder and Chroma collection name part: letters, digits, '.', '_' and '-'."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text)
    return re.sub(r"\.{2,}", ".", name).strip("._") or "catalog"  # ".." is not a Chroma name


def dataset_name(path: str | Path) -> str:
    """The prepared dataset's folder name for a catalog file: its stem, made safe (`safe_name`),
    with "_catalog" appended when the stem is a builtin dataset's name."""
    name = safe_name(Path(path).stem)
    return f"{name}_catalog" if name.lower() in RESERVED else name


def _read_text(path: Path, report: CleaningReport) -> str:
    """The file as text; a line that is not UTF-8 becomes empty (that row is dropped) and is reported."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    lines = data.removeprefix(b"\xef\xbb\xbf").split(b"\n")
    for lineno, raw in enumerate(lines, start=1):
        try:
            lines[lineno - 1] = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            detail = f"byte {raw[exc.start]:#04x} at column {exc.start + 1}; save the file as UTF-8"
            report.add(path, lineno, "", "encoding", "not UTF-8", "dropped_row", detail)
            lines[lineno - 1] = ""
    return "\n".join(lines)


def _media_path(value: Any, base: Path) -> str:
    s = str(value).strip() if value is not None else ""
    if not s or "://" in s:
        return s
    p = Path(s).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def _raw_item(obj: dict[str, Any], path: Path, line: int) -> RawItem:
    base = path.parent
    text = next((obj[k] for k in TEXT_KEYS if obj.get(k) not in (None, "")), "")
    media_in = obj.get("media") if isinstance(obj.get("media"), dict) else {}
    media = {str(k): _media_path(v, base) for k, v in media_in.items() if v}
    for kind in MEDIA_KINDS:
        if obj.get(kind):
            media[kind] = _media_path(obj[kind], base)
    meta: dict[str, Any] = dict(obj["metadata"]) if isinstance(obj.get("metadata"), dict) else {}
    for k, v in obj.items():
        if k not in KNOWN and v not in (None, ""):
            meta[k] = v
    return RawItem(
        id=obj.get("id"),
        title=obj.get("title"),
        file=str(path),
        line=line,
        year=obj.get("year"),
        genres=obj.get("genres") or [],
        text=text if isinstance(text, str) else str(text),
        tags=obj.get("tags") or [],
        media=media,
        metadata=meta,
    )


def _jsonl_rows(path: Path, report: CleaningReport) -> list[RawItem]:
    rows = []
    for lineno, line in enumerate(_read_text(path, report).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            report.add(
                path, lineno, "", "json", "invalid JSON", "dropped_row", f"{exc.msg} at column {exc.colno}"
            )
            continue
        if not isinstance(obj, dict):
            report.add(path, lineno, "", "record", "not a JSON object", "dropped_row", type(obj).__name__)
            continue
        rows.append(_raw_item(obj, path, lineno))
    return rows


def _csv_lines(
    path: Path, report: CleaningReport, required: tuple[str, ...], expected: str = ""
) -> Iterator[tuple[int, list[str], list[str]]]:
    """(line number, header, row) for each non-blank row of a CSV file (a quoted newline keeps the
    numbering right); `CatalogError` at line 1 naming the first missing `required` column and what was
    `expected` (default: the columns found)."""
    reader = csv.reader(io.StringIO(_read_text(path, report), newline=""))
    header = [h.strip() for h in next(reader, [])]
    for col in required:
        if col not in header:
            found = f"found: {', '.join(header) or 'nothing'}"
            raise CatalogError(path, 1, "header", f"missing column {col!r} ({expected or found})")
    prev = reader.line_num
    for row in reader:
        lineno, prev = prev + 1, reader.line_num
        if any(c.strip() for c in row):
            yield lineno, header, row


def _csv_rows(path: Path, report: CleaningReport) -> list[RawItem]:
    rows = []
    for lineno, header, row in _csv_lines(path, report, ("id", "title")):
        if len(row) != len(header):
            report.add(
                path,
                lineno,
                row[0] if row else "",
                "row",
                "wrong column count",
                "dropped_row",
                f"{len(row)} columns, header has {len(header)}",
            )
            continue
        rows.append(_raw_item(dict(zip(header, row, strict=True)), path, lineno))
    return rows


def _interactions(path: Path, known: set[str], report: CleaningReport) -> list:
    side = path.with_name(f"{path.stem}.interactions.csv")
    if not side.is_file():
        return []
    rows = []
    need = "need user,item,rating[,timestamp]"
    for lineno, header, row in _csv_lines(side, report, ("user", "item", "rating"), need):
        r = dict(zip(header, row, strict=False))
        rows.append((r.get("user"), r.get("item"), r.get("rating"), r.get("timestamp") or 0, lineno))
    report.sources["interactions"] = str(side)
    return clean_interactions(rows, known, side, report)


def load_generic(path: str | Path, verify_media: bool = True) -> Dataset:
    """Load and clean a user catalog (.jsonl or .csv) and its optional interactions file."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise DataSourceError(f"catalog file not found: {path}")
    if path.suffix.lower() not in SUFFIXES:
        raise DataSourceError(f"{path}: unsupported catalog format {path.suffix!r} (use .jsonl or .csv)")
    name = dataset_name(path)
    report = CleaningReport(name, sources={"catalog": str(path)})
    raw = _jsonl_rows(path, report) if path.suffix.lower() == ".jsonl" else _csv_rows(path, report)
    items = clean_items(raw, report, verify_media=verify_media)
    ds = Dataset(name, items, _interactions(path, {i.id for i in items}, report), report)
    report.stats = {
        "items": len(items),
        "interactions": len(ds.interactions),
        "users": len({x.user for x in ds.interactions}),
        "items_with_year": sum(i.year is not None for i in items),
        "items_with_text": sum(bool(i.text) for i in items),
        **{f"items_with_{k}": sum(k in i.media for i in items) for k in MEDIA_KINDS},
    }
    return ds
