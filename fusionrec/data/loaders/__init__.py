"""Raw dataset loaders (MovieLens, ReDial, users' own JSONL/CSV) and what they share.

Each loader returns a `Dataset`: cleaned items and interactions plus the `CleaningReport`.
This module also holds the title helpers used for joining datasets by title.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusionrec.data.cleaning import CleaningReport
from fusionrec.types import Interaction, Item


class DataSourceError(FileNotFoundError):
    """A raw dataset could not be found (or fetched); the message says where it looked and what to do."""


@dataclass
class Dataset:
    name: str
    items: list[Item]
    interactions: list[Interaction]
    report: CleaningReport
    dialogues: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # split -> records (ReDial)


def locate(source: str | Path, marker: str, folders: Iterable[str]) -> Path | None:
    """The folder holding `marker`: `source` itself or `source/<folder>` for one of `folders`."""
    root = Path(source).expanduser()
    for cand in (root, *(root / f for f in folders)):
        if (cand / marker).is_file():
            return cand.resolve()
    return None


# --- titles ------------------------------------------------------------------------------
_YEAR_PAREN = re.compile(r"\((\d{4})(?:\s*[–-]\s*\d{0,4})?\)")
_ARTICLES = "The|A|An|Les|La|Le|L'|Il|El|Das|Der|Die|Los|Las|Lo|Gli|Une|Un|Det|Den"
_TRAILING_ARTICLE = re.compile(rf"^(.*\S),\s*({_ARTICLES})$", re.IGNORECASE)
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def split_title_year(title: str) -> tuple[str, int | None]:
    """ "Toy Story (1995)" -> ("Toy Story", 1995); the last "(YYYY)" or "(YYYY–YYYY)" is removed."""
    t = " ".join(title.split())
    matches = list(_YEAR_PAREN.finditer(t))
    if not matches:
        return t, None
    m = matches[-1]
    rest = t[m.end() :].strip()
    if rest and not re.fullmatch(r"(\([^()]*\)\s*)+", rest):  # a year inside the title proper
        return t, None
    stripped = " ".join((t[: m.start()].strip() + " " + rest).split())
    return (stripped or t), int(m.group(1))


def _move_article(segment: str) -> str:
    m = _TRAILING_ARTICLE.match(segment.strip())
    if not m:
        return segment.strip()
    art, sep = m.group(2), ("" if m.group(2).endswith("'") else " ")
    return f"{art}{sep}{m.group(1)}"


def display_title(title: str) -> str:
    """ "Usual Suspects, The" -> "The Usual Suspects"; alternative titles in parentheses are kept."""
    cut = title.find(" (")
    main, rest = (title, "") if cut <= 0 else (title[:cut], title[cut:])
    return _move_article(main) + rest


def _norm(segment: str) -> str:
    s = unicodedata.normalize("NFKD", _move_article(segment))
    s = "".join(c for c in s if not unicodedata.combining(c)).lower()
    s = s.replace("&", " and ").replace("'", "").replace("’", "")
    s = s.removeprefix("a.k.a.").removeprefix("aka ")
    return " ".join(_NON_ALNUM.sub(" ", s).split())


def title_keys(title: str) -> list[str]:
    """Normalised match keys: the main title first, then any alternative titles in parentheses."""
    t, _ = split_title_year(title)
    cut = t.find(" (")
    main = t if cut <= 0 else t[:cut]
    parts = [main, *re.findall(r"\(([^()]+)\)", t[len(main) :])]
    keys: list[str] = []
    for p in parts:
        k = _norm(p)
        if k and k not in {"v", "tv"} and k not in keys:
            keys.append(k)
    return keys


def _id_order(item_id: str) -> tuple[int, str]:
    return (len(item_id), item_id)


class TitleIndex:
    """Match free titles ("Name (Year)") against a catalog by normalised title and year."""

    def __init__(self, items: Iterable[Item]) -> None:
        self.by_key_year: dict[tuple[str, int | None], set[str]] = {}
        self.by_key: dict[str, set[str]] = {}
        for it in items:
            for k in title_keys(it.title):
                self.by_key_year.setdefault((k, it.year), set()).add(it.id)
                self.by_key.setdefault(k, set()).add(it.id)

    def match(self, name: str) -> tuple[str | None, str]:
        """(item id, method): exact | exact_duplicate | year+-1 | title; or (None, "none" | "ambiguous")."""
        _, year = split_title_year(name)
        keys = title_keys(name)
        ambiguous = False
        for k in keys:
            if year is not None:
                exact = self.by_key_year.get((k, year), set())
                if exact:  # several ids = the catalog lists the same film twice: take the lowest id
                    return min(exact, key=_id_order), "exact" if len(exact) == 1 else "exact_duplicate"
                near = self.by_key_year.get((k, year - 1), set()) | self.by_key_year.get((k, year + 1), set())
                if len(near) == 1:
                    return next(iter(near)), "year+-1"
                ambiguous |= len(near) > 1
            else:
                ids = self.by_key.get(k, set())
                if len(ids) == 1:
                    return next(iter(ids)), "title"
                ambiguous |= len(ids) > 1
        return None, "ambiguous" if ambiguous else "none"
