"""The prepared catalog on disk: items as JSONL (one `Item` per line), interactions as CSV.

Both readers are strict: the files are written by `fusionrec data prepare`, so any deviation is a
`CatalogError` naming the file, the line and the field. Writers are atomic (temp file, then rename)
and deterministic (same items -> same bytes).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fusionrec.types import Interaction, Item

ITEM_FIELDS = tuple(f.name for f in dataclasses.fields(Item))
INTERACTION_HEADER = ("user", "item", "rating", "timestamp")


class CatalogError(ValueError):
    """A catalog or interactions file is malformed: "<file>:<line>: <field>: <reason>"."""

    def __init__(self, path: str | Path, line: int, field: str, reason: str) -> None:
        self.path, self.line, self.field, self.reason = str(path), line, field, reason
        super().__init__(f"{path}:{line}: {field}: {reason}")


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` (UTF-8, "\\n" newlines) to `path` through a temp file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # per process: concurrent writers never collide
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


# --- items -------------------------------------------------------------------------------
def item_to_dict(item: Item) -> dict[str, Any]:
    """Item as a JSON-ready dict in field order, with metadata keys sorted (stable bytes)."""
    d = dataclasses.asdict(item)
    d["metadata"] = dict(sorted(d["metadata"].items()))
    d["media"] = dict(sorted(d["media"].items()))
    return d


def dumps_items(items: Iterable[Item]) -> str:
    return "".join(json.dumps(item_to_dict(i), ensure_ascii=False) + "\n" for i in items)


def write_items(path: str | Path, items: Iterable[Item]) -> Path:
    """Write items as JSONL (one JSON object per line with every `Item` field)."""
    path = Path(path)
    atomic_write_text(path, dumps_items(items))
    return path


def _str_list(value: Any, path: Path, line: int, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CatalogError(path, line, name, f"expected a list of strings, got {value!r}")
    return list(value)


def item_from_dict(obj: Any, path: str | Path = "<items>", line: int = 0) -> Item:
    """Validate one decoded JSON object against the `Item` schema."""
    path = Path(path)
    if not isinstance(obj, dict):
        raise CatalogError(path, line, "record", f"expected a JSON object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - set(ITEM_FIELDS))
    if unknown:
        raise CatalogError(path, line, unknown[0], f"unknown field (known: {', '.join(ITEM_FIELDS)})")
    item_id = obj.get("id")
    if isinstance(item_id, int) and not isinstance(item_id, bool):
        item_id = str(item_id)
    if not isinstance(item_id, str) or not item_id.strip():
        raise CatalogError(path, line, "id", f"missing or empty (got {item_id!r})")
    title = obj.get("title")
    if not isinstance(title, str) or not title.strip():
        raise CatalogError(path, line, "title", f"missing or empty (got {title!r})")
    year = obj.get("year")
    if year is not None and (not isinstance(year, int) or isinstance(year, bool)):
        raise CatalogError(path, line, "year", f"expected an integer or null, got {year!r}")
    text = obj.get("text", "")
    if not isinstance(text, str):
        raise CatalogError(path, line, "text", f"expected a string, got {text!r}")
    media = obj.get("media", {})
    if not isinstance(media, dict) or not all(isinstance(v, str) for v in media.values()):
        raise CatalogError(path, line, "media", f"expected an object of file paths, got {media!r}")
    metadata = obj.get("metadata", {})
    if not isinstance(metadata, dict):
        raise CatalogError(path, line, "metadata", f"expected an object, got {metadata!r}")
    return Item(
        id=item_id,
        title=title,
        year=year,
        genres=_str_list(obj.get("genres", []), path, line, "genres"),
        text=text,
        tags=_str_list(obj.get("tags", []), path, line, "tags"),
        media=dict(media),
        metadata=dict(metadata),
    )


def read_items(path: str | Path) -> list[Item]:
    """Read a JSONL catalog written by `write_items`; raise `CatalogError` at the first bad line."""
    path = Path(path)
    items: list[Item] = []
    seen: dict[str, int] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise CatalogError(
                    path, lineno, "json", f"invalid JSON ({exc.msg} at column {exc.colno})"
                ) from None
            item = item_from_dict(obj, path, lineno)
            if item.id in seen:
                raise CatalogError(
                    path, lineno, "id", f"duplicate id {item.id!r} (first at line {seen[item.id]})"
                )
            seen[item.id] = lineno
            items.append(item)
    return items


# --- interactions ------------------------------------------------------------------------
def _fmt_rating(r: float) -> str:
    return repr(float(r))


def dumps_interactions(interactions: Iterable[Interaction]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(INTERACTION_HEADER)
    for x in interactions:
        w.writerow((x.user, x.item, _fmt_rating(x.rating), int(x.timestamp)))
    return buf.getvalue()


def write_interactions(path: str | Path, interactions: Iterable[Interaction]) -> Path:
    """Write interactions as CSV with the header user,item,rating,timestamp."""
    path = Path(path)
    atomic_write_text(path, dumps_interactions(interactions))
    return path


def read_interactions(path: str | Path) -> list[Interaction]:
    """Read an interactions CSV; raise `CatalogError` naming the line of the first bad row."""
    path = Path(path)
    out: list[Interaction] = []
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != INTERACTION_HEADER:
            raise CatalogError(path, 1, "header", f"expected {','.join(INTERACTION_HEADER)}, got {header!r}")
        for row in reader:
            lineno = reader.line_num
            if len(row) != 4:
                raise CatalogError(path, lineno, "row", f"expected 4 columns, got {len(row)}")
            user, item, rating, ts = row
            if not user or not item:
                raise CatalogError(path, lineno, "user" if not user else "item", "empty")
            try:
                r = float(rating)
            except ValueError:
                raise CatalogError(path, lineno, "rating", f"not a number: {rating!r}") from None
            if math.isnan(r) or math.isinf(r):
                raise CatalogError(path, lineno, "rating", f"not a finite number: {rating!r}")
            try:
                t = int(ts)
            except ValueError:
                raise CatalogError(path, lineno, "timestamp", f"not an integer: {ts!r}") from None
            out.append(Interaction(user, item, r, t))
    return out
