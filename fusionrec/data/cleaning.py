"""Row validation for raw catalogs and interactions, and the report of everything changed or dropped.

Nothing is lost silently: every dropped row, dropped field, deduplicated id or flagged value is an
`Issue` (file, line, item id, field, reason, action) in a `CleaningReport`, written to report.json.
Actions: `dropped_row` (the row is not in the output), `dropped_field` (the row is kept without that
value), `deduplicated` (a later row with an id already seen), `flagged` (kept as is, but suspicious),
`hidden` (kept in the prepared files, so its id, interactions and evaluation sets stay valid, but never
returned by search: a placeholder title such as ML-100k's item 267 "unknown", see `is_placeholder_title`
and `retrieval.store.Store.query`).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fusionrec.types import Interaction, Item

YEAR_MIN, YEAR_MAX = 1870, 2100
ACTIONS = ("dropped_row", "dropped_field", "deduplicated", "flagged", "hidden")
MEDIA_KINDS = ("image", "audio", "video")
# titles that stand for "no title" (compared case-folded, without surrounding brackets/quotes/dots)
PLACEHOLDER_TITLES = frozenset(
    [
        "unknown",
        "untitled",
        "no title",
        "unknown title",
        "n/a",
        "na",
        "n.a",
        "none",
        "null",
        "nan",
        "tbd",
        "tba",
    ]
)


@dataclass
class Issue:
    file: str
    line: int
    item_id: str
    field: str
    reason: str  # a short category, counted in the summary ("missing title", "corrupt image", ...)
    action: str  # one of ACTIONS
    detail: str = ""  # the specific value or error message


@dataclass
class CleaningReport:
    """Issues found while cleaning one dataset, plus summary statistics (`stats`)."""

    dataset: str
    sources: dict[str, str] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)

    def add(
        self,
        file: str | Path,
        line: int,
        item_id: str,
        field: str,
        reason: str,
        action: str,
        detail: str = "",
    ) -> None:
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r} (known: {ACTIONS})")
        self.issues.append(Issue(str(file), int(line), str(item_id), field, reason, action, detail))

    def counts(self) -> dict[str, int]:
        """Issue counts keyed "reason [action]", most frequent first."""
        c = Counter(f"{i.reason} [{i.action}]" for i in self.issues)
        return dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))

    def action_counts(self) -> dict[str, int]:
        c = Counter(i.action for i in self.issues)
        return {a: c[a] for a in ACTIONS if c[a]}

    def find(self, reason: str = "", action: str = "", item_id: str = "") -> list[Issue]:
        return [
            i
            for i in self.issues
            if (not reason or i.reason == reason)
            and (not action or i.action == action)
            and (not item_id or i.item_id == item_id)
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "sources": dict(self.sources),
            "stats": dict(self.stats),
            "counts": {
                "by_action": self.action_counts(),
                "by_reason": self.counts(),
                "total": len(self.issues),
            },
            "issues": [asdict(i) for i in self.issues],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=1) + "\n"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CleaningReport:
        return cls(
            dataset=d["dataset"],
            sources=dict(d.get("sources", {})),
            stats=dict(d.get("stats", {})),
            issues=[Issue(**i) for i in d.get("issues", [])],
        )

    def print_summary(self, console: Any = None, examples: int = 3) -> None:
        """Rich tables: the statistics, then the issue counts per reason with a few examples."""
        from rich.console import Console
        from rich.table import Table

        console = console or Console()
        st = Table(title=f"{self.dataset}: prepared", show_header=True)
        st.add_column("statistic")
        st.add_column("value", justify="right")
        for k, v in self.stats.items():
            st.add_row(
                k, f"{v:,}" if isinstance(v, int) else (f"{v:.3f}" if isinstance(v, float) else str(v))
            )
        console.print(st)
        if not self.issues:
            console.print("no rows dropped or changed")
            return
        it = Table(title=f"{self.dataset}: cleaning ({len(self.issues):,} issues)", show_header=True)
        it.add_column("reason")
        it.add_column("action")
        it.add_column("count", justify="right")
        it.add_column("example (file:line)")
        groups: dict[tuple[str, str], list[Issue]] = {}
        for i in self.issues:
            groups.setdefault((i.reason, i.action), []).append(i)
        for (reason, action), group in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            ex = "; ".join(
                f"{Path(i.file).name}:{i.line} id={i.item_id}" + (f" ({i.detail})" if i.detail else "")
                for i in group[:examples]
            )
            it.add_row(reason, action, f"{len(group):,}", ex)
        console.print(it)


@dataclass
class RawItem:
    """An item as read from a source file, before validation (year may still be a string)."""

    id: Any
    title: Any
    file: str
    line: int
    year: Any = None
    genres: list[str] = field(default_factory=list)
    text: str = ""
    tags: list[str] = field(default_factory=list)
    media: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


# --- single values -----------------------------------------------------------------------
def parse_year(value: Any) -> int | None:
    """An int year in [YEAR_MIN, YEAR_MAX], None for empty; ValueError for anything else."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a year: {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"not a year: {value!r}")
        value = int(value)
    if isinstance(value, str):
        s = value.strip()
        if s.endswith(".0"):
            s = s[:-2]
        if not s.isdigit():
            raise ValueError(f"not a year: {value!r}")
        value = int(s)
    if not isinstance(value, int):
        raise ValueError(f"not a year: {value!r}")
    if not YEAR_MIN <= value <= YEAR_MAX:
        raise ValueError(f"year {value} outside {YEAR_MIN}-{YEAR_MAX}")
    return value


_AUDIO_MAGIC = (
    b"RIFF",
    b"ID3",
    b"fLaC",
    b"OggS",
    b"\xff\xfb",
    b"\xff\xf3",
    b"\xff\xf2",
    b"\xff\xf1",
    b"\xff\xf9",
)
_VIDEO_MAGIC = (b"\x1a\x45\xdf\xa3", b"RIFF", b"OggS", b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3")


def check_media(path: Path, kind: str) -> tuple[str, str]:
    """("", "") if `path` is a readable `kind` file, else (reason, detail).

    Images are opened and verified with Pillow; audio/video are checked by their container
    signature (WAV, MP3, FLAC, OGG, MP4/M4A/MOV, WebM/MKV, AVI, MPEG): full decoding is the
    encoders' job.
    """
    if not path.is_file():
        return "file not found", str(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        return "unreadable file", f"{path}: {exc.strerror or exc}"
    if size == 0:
        return "empty file", str(path)
    if kind == "image":
        from PIL import UnidentifiedImageError

        from fusionrec.media import pillow

        Image = pillow()  # noqa: N806 (Pillow with the configured pixel limit, its warning silenced)

        try:
            with Image.open(path) as im:
                fmt = im.format
                im.verify()  # structure (and checksums where the format has them, e.g. PNG)
            if fmt == "JPEG":  # verify() reads only the header: check the end-of-image marker
                with open(path, "rb") as fh:
                    fh.seek(max(0, size - 64))
                    if b"\xff\xd9" not in fh.read():
                        return "corrupt image", f"{path}: truncated JPEG (no end-of-image marker)"
            else:  # other formats: decode the pixels (catches truncation verify() lets through)
                with Image.open(path) as im:
                    im.load()
        except (
            UnidentifiedImageError,
            OSError,
            SyntaxError,
            ValueError,
            Image.DecompressionBombError,
        ) as exc:
            return "corrupt image", f"{path}: {exc}"
        return "", ""
    is_mp4 = head[4:8] == b"ftyp"
    if kind == "audio" and (is_mp4 or head.startswith(_AUDIO_MAGIC)):
        return "", ""
    if kind == "video" and (is_mp4 or head.startswith(_VIDEO_MAGIC)):
        return "", ""
    return f"unrecognised {kind} file", f"{path}: starts with {head[:8]!r}"


def split_list(value: Any) -> list[str]:
    """A list of strings from a list or a "|"-separated string, stripped, empties and repeats dropped."""
    if value is None:
        return []
    parts = value if isinstance(value, list | tuple) else str(value).split("|")
    out: list[str] = []
    seen: set[str] = set()
    for p in parts:
        s = str(p).strip()
        if s and s.lower() not in seen:
            seen.add(s.lower())
            out.append(s)
    return out


def is_placeholder_title(title: str, year: int | None) -> bool:
    """Whether a title stands for "no title": "unknown", "N/A", "(untitled)", "???" ... without a year
    (films called "Unknown" exist: ml-latest-small has two, with their years). Empty is not a
    placeholder but a missing title."""
    key = re.sub(r"\s+", " ", str(title)).strip(" \t()[]{}<>\"'.").casefold()
    placeholder = key in PLACEHOLDER_TITLES or not any(c.isalnum() for c in key)
    return year is None and bool(str(title).strip()) and placeholder


# --- rows --------------------------------------------------------------------------------
def clean_items(raw: Iterable[RawItem], report: CleaningReport, verify_media: bool = True) -> list[Item]:
    """Validate raw items: id, title, year, duplicates (first kept), media files (bad ones dropped);
    a placeholder title is kept but reported as `hidden` (search never returns the item)."""
    items: list[Item] = []
    first_line: dict[str, tuple[str, int]] = {}
    for r in raw:
        item_id = "" if r.id is None else str(r.id).strip()
        if not item_id:
            report.add(r.file, r.line, "", "id", "missing id", "dropped_row")
            continue
        title = (
            str(r.title).strip()
            if isinstance(r.title, str | int | float) and not isinstance(r.title, bool)
            else ""
        )
        if not title:
            report.add(r.file, r.line, item_id, "title", "missing title", "dropped_row", repr(r.title))
            continue
        if item_id in first_line:
            f, ln = first_line[item_id]
            report.add(
                r.file, r.line, item_id, "id", "duplicate id", "deduplicated", f"first at {Path(f).name}:{ln}"
            )
            continue
        first_line[item_id] = (r.file, r.line)
        try:
            year = parse_year(r.year)
        except ValueError as exc:
            report.add(r.file, r.line, item_id, "year", "bad year", "dropped_field", str(exc))
            year = None
        if is_placeholder_title(title, year):
            report.add(r.file, r.line, item_id, "title", "placeholder title", "hidden", repr(r.title))
        media: dict[str, str] = {}
        for kind, p in r.media.items():
            if kind not in MEDIA_KINDS:
                report.add(r.file, r.line, item_id, kind, "unknown media kind", "dropped_field", str(p))
                continue
            if not p:
                continue
            if "://" in str(p):
                report.add(r.file, r.line, item_id, kind, "remote media", "dropped_field", str(p))
                continue
            reason, detail = check_media(Path(p), kind) if verify_media else ("", "")
            if reason:
                report.add(r.file, r.line, item_id, kind, reason, "dropped_field", detail)
                continue
            media[kind] = str(p)
        items.append(
            Item(
                id=item_id,
                title=title,
                year=year,
                genres=split_list(r.genres),
                text=(r.text or "").strip(),
                tags=split_list(r.tags),
                media=media,
                metadata=dict(r.metadata),
            )
        )
    return items


RawInteraction = tuple[Any, Any, Any, Any, int]  # user, item, rating, timestamp, line


def clean_interactions(
    rows: Iterable[RawInteraction], known_items: set[str], file: str | Path, report: CleaningReport
) -> list[Interaction]:
    """Validate (user, item, rating, timestamp, line) rows: ids present, rating numeric, item known."""
    out: list[Interaction] = []
    file = str(file)
    for user, item, rating, ts, line in rows:
        user = str(user).strip() if user is not None else ""
        item = str(item).strip() if item is not None else ""
        if not user:
            report.add(file, line, item, "user", "missing user", "dropped_row")
            continue
        if not item:
            report.add(file, line, "", "item", "missing item", "dropped_row")
            continue
        try:
            r = float(rating)
            if math.isnan(r) or math.isinf(r):
                raise ValueError
        except (TypeError, ValueError):
            report.add(file, line, item, "rating", "non-numeric rating", "dropped_row", repr(rating))
            continue
        if item not in known_items:
            report.add(file, line, item, "item", "unknown item", "dropped_row")
            continue
        try:
            t = int(ts)
        except (TypeError, ValueError):
            try:
                t = int(float(ts))
            except (TypeError, ValueError):
                report.add(file, line, item, "timestamp", "bad timestamp", "dropped_field", repr(ts))
                t = 0
        out.append(Interaction(user, item, r, t))
    return out
