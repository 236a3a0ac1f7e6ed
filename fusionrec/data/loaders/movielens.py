"""MovieLens loaders: ML-100k (+ TMDB posters/overviews) and ml-latest-small (+ tags, YouTube ids)."""

from __future__ import annotations

import csv
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from fusionrec.config import Config
from fusionrec.data.cleaning import CleaningReport, RawItem, clean_interactions, clean_items
from fusionrec.data.loaders import Dataset, DataSourceError, display_title, locate, split_title_year
from fusionrec.data.loaders.download import fetch, not_found

ML100K_FOLDERS = ("movielens-100k", "ml-100k")
POSTER_FOLDERS = ("movielens-100k-posters",)
LATEST_FOLDERS = ("movielens-latest-small", "ml-latest-small")
YOUTUBE_FOLDERS = ("movielens-20m-youtube",)
N_GENRE_FLAGS = 19


# --- locating the raw files --------------------------------------------------------------
def _roots(cfg: Config, source: str) -> list[Path]:
    if source:
        return [Path(source).expanduser()]
    roots = [cfg.shared_data_dir] if cfg.shared_data_dir else []
    return [*roots, cfg.data_dir / "raw"]


def _find_main(
    cfg: Config, source: str, name: str, marker: str, folders: tuple[str, ...], download: bool = True
) -> Path:
    roots = _roots(cfg, source)
    for root in roots:
        found = locate(root, marker, folders)
        if found:
            return found
    if source:
        raise DataSourceError(
            f"{source}: no {marker} there nor in its {' or '.join(f + '/' for f in folders)} folder "
            f"(--source must point at the {name} folder or a folder holding it)"
        )
    looked = [r / f for r in roots for f in folders[:1]]
    if not download:
        raise not_found(name, looked, "")
    return fetch(name, cfg.data_dir / "raw", looked)


def _find_side(main: Path, roots: list[Path], marker: str, folders: tuple[str, ...]) -> Path | None:
    """An optional companion folder (posters, YouTube ids): next to the main folder or under a root."""
    for cand in (*roots, main.parent, main):
        found = locate(cand, marker, folders)
        if found:
            return found
    return None


def find_ml100k(cfg: Config, source: str = "", download: bool = True) -> tuple[Path, Path | None]:
    """(folder with u.item/u.data, folder with posters/ + items.csv + links.csv or None)."""
    main = _find_main(cfg, source, "movielens-100k", "u.item", ML100K_FOLDERS, download)
    return main, _find_side(main, _roots(cfg, source), "items.csv", POSTER_FOLDERS)


def find_ml_latest(cfg: Config, source: str = "", download: bool = True) -> tuple[Path, Path | None]:
    """(folder with movies.csv/ratings.csv, ml-youtube.csv or None)."""
    main = _find_main(cfg, source, "ml-latest-small", "movies.csv", LATEST_FOLDERS, download)
    yt = _find_side(main, _roots(cfg, source), "ml-youtube.csv", YOUTUBE_FOLDERS)
    return main, (yt / "ml-youtube.csv") if yt else None


# --- shared helpers ----------------------------------------------------------------------
def _csv_rows(path: Path, encoding: str = "utf-8-sig") -> list[tuple[int, dict[str, str]]]:
    """(line number where the record starts, row) for each record of a headed CSV file."""
    rows: list[tuple[int, dict[str, str]]] = []
    with open(path, encoding=encoding, newline="") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        prev = reader.line_num
        for row in reader:
            if row:
                rows.append((prev + 1, dict(zip(header, row, strict=False))))
            prev = reader.line_num
    return rows


def _number(value: str) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if f == f else None


def _interaction_rows(path: Path, sep: str, header: bool) -> tuple[list, list[tuple[int, str]]]:
    """Split a ratings file into (user, item, rating, timestamp, line) tuples plus malformed lines."""
    rows, bad = [], []
    with open(path, encoding="utf-8", newline="") as fh:
        for lineno, line in enumerate(fh, start=1):
            if header and lineno == 1:
                continue
            line = line.rstrip("\r\n")
            if not line:
                continue
            parts = line.split(sep)
            if len(parts) != 4:
                bad.append((lineno, line))
                continue
            rows.append((parts[0], parts[1], parts[2], parts[3], lineno))
    return rows, bad


def _add_interactions(ds: Dataset, path: Path, sep: str, header: bool) -> None:
    rows, bad = _interaction_rows(path, sep, header)
    for lineno, line in bad:
        ds.report.add(path, lineno, "", "row", "malformed row", "dropped_row", line[:80])
    ds.interactions = clean_interactions(rows, {i.id for i in ds.items}, path, ds.report)


def _basic_stats(ds: Dataset) -> dict[str, Any]:
    items = ds.items
    return {
        "items": len(items),
        "interactions": len(ds.interactions),
        "users": len({x.user for x in ds.interactions}),
        "items_with_year": sum(i.year is not None for i in items),
        "items_with_genres": sum(bool(i.genres) for i in items),
        "items_with_text": sum(bool(i.text) for i in items),
        "items_with_image": sum("image" in i.media for i in items),
    }


# --- ML-100k -----------------------------------------------------------------------------
def _release_date(value: str) -> str:
    try:
        return datetime.strptime(value.strip(), "%d-%b-%Y").date().isoformat()
    except ValueError:
        return ""


def _tmdb_rows(
    posters: Path, report: CleaningReport
) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    """items.csv deduplicated (first non-empty overview per movie_id) and links.csv, by movie id."""
    tmdb: dict[str, dict[str, str]] = {}
    first: dict[str, int] = {}
    items_csv = posters / "items.csv"
    if items_csv.is_file():
        for lineno, row in _csv_rows(items_csv):
            mid = (row.get("movie_id") or "").strip()
            if not mid:
                report.add(items_csv, lineno, "", "movie_id", "missing id", "dropped_row")
                continue
            if mid in first:
                had = bool(tmdb[mid].get("overview", "").strip())
                takes = not had and bool((row.get("overview") or "").strip())
                report.add(
                    items_csv,
                    lineno,
                    mid,
                    "movie_id",
                    "duplicate id",
                    "deduplicated",
                    f"first at line {first[mid]}"
                    + ("; its overview is used (first one was empty)" if takes else ""),
                )
                if takes:
                    tmdb[mid] = row
                continue
            first[mid] = lineno
            tmdb[mid] = row
    links: dict[str, dict[str, str]] = {}
    links_csv = posters / "links.csv"
    if links_csv.is_file():
        for _, row in _csv_rows(links_csv):
            links[(row.get("movie_id") or "").strip()] = row
    return tmdb, links


def load_ml100k(folder: Path, posters: Path | None = None, verify_media: bool = True) -> Dataset:
    """ML-100k: u.item (ISO-8859-1) + u.genre + u.data, enriched from the posters folder if given."""
    folder = Path(folder)
    report = CleaningReport("movielens-100k", sources={"ml100k": str(folder), "posters": str(posters or "")})
    genre_names: dict[int, str] = {}
    for line in (folder / "u.genre").read_text(encoding="iso-8859-1").splitlines():
        name, _, idx = line.strip().rpartition("|")
        if name and idx.isdigit():
            genre_names[int(idx)] = name
    tmdb, links = _tmdb_rows(posters, report) if posters else ({}, {})
    poster_dir = posters / "posters" if posters else None
    poster_files = set(os.listdir(poster_dir)) if poster_dir and poster_dir.is_dir() else set()

    u_item = folder / "u.item"
    raw: list[RawItem] = []
    with open(u_item, encoding="iso-8859-1", newline="") as fh:
        for lineno, line in enumerate(fh, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            f = line.split("|")
            if len(f) != 5 + N_GENRE_FLAGS:
                report.add(
                    u_item,
                    lineno,
                    f[0],
                    "row",
                    "malformed row",
                    "dropped_row",
                    f"{len(f)} fields, expected 24",
                )
                continue
            mid, full_title, release, _video, imdb_url = f[:5]
            title, year = split_title_year(full_title)
            date = _release_date(release)
            if year is None and date:
                year = int(date[:4])
            genres = [genre_names.get(i, str(i)) for i, flag in enumerate(f[5:]) if flag.strip() == "1"]
            genres = [g for g in genres if g != "unknown"]
            meta: dict[str, Any] = {}
            if date:
                meta["release_date"] = date
            if imdb_url:
                meta["imdb_url"] = imdb_url
            if display_title(title) != title:
                meta["display_title"] = display_title(title)
            link = links.get(mid, {})
            for key in ("imdb_id", "tmdb_id"):
                if (link.get(key) or "").strip():
                    meta[key] = link[key].strip()
            row = tmdb.get(mid, {})
            if (row.get("original_language") or "").strip():
                meta["original_language"] = row["original_language"].strip()
            for key, kind in (("runtime", int), ("vote_average", float), ("vote_count", int)):
                num = _number(row.get(key, ""))
                if num is not None:
                    meta[key] = kind(num)
            media = {"image": str(poster_dir / f"{mid}.jpg")} if f"{mid}.jpg" in poster_files else {}
            raw.append(
                RawItem(
                    mid,
                    title,
                    str(u_item),
                    lineno,
                    year,
                    genres,
                    (row.get("overview") or ""),
                    [],
                    media,
                    meta,
                )
            )
    ds = Dataset("movielens-100k", clean_items(raw, report, verify_media=verify_media), [], report)
    first_of: dict[tuple[str, int | None], str] = {}
    for it in ds.items:  # ML-100k lists some films twice under two ids: keep both, say so
        key = (it.title.casefold(), it.year)
        if key in first_of:
            line = next(r.line for r in raw if r.id == it.id)
            report.add(
                u_item,
                line,
                it.id,
                "title",
                "duplicate title",
                "flagged",
                f"same title and year as id {first_of[key]}",
            )
        else:
            first_of[key] = it.id
    _add_interactions(ds, folder / "u.data", "\t", header=False)
    dup_rows = [i for i in report.find("duplicate id", "deduplicated") if Path(i.file).name == "items.csv"]
    report.stats = {**_basic_stats(ds), "items_csv_duplicate_rows": len(dup_rows)}
    return ds


# --- ml-latest-small ---------------------------------------------------------------------
def load_ml_latest(folder: Path, youtube_csv: Path | None = None) -> Dataset:
    """ml-latest-small: movies.csv, ratings.csv, tags.csv -> Item.tags, links.csv, YouTube trailer ids."""
    folder = Path(folder)
    report = CleaningReport(
        "ml-latest-small", sources={"ml_latest": str(folder), "youtube": str(youtube_csv or "")}
    )
    links = {}
    if (folder / "links.csv").is_file():
        links = {(r.get("movieId") or "").strip(): r for _, r in _csv_rows(folder / "links.csv")}
    movies_csv = folder / "movies.csv"
    movie_rows = _csv_rows(movies_csv)
    ids = {(r.get("movieId") or "").strip() for _, r in movie_rows}

    tags: dict[str, list[str]] = {}
    tags_csv = folder / "tags.csv"
    if tags_csv.is_file():
        for lineno, r in _csv_rows(tags_csv):
            mid, tag = (r.get("movieId") or "").strip(), (r.get("tag") or "").strip()
            if mid not in ids:
                report.add(tags_csv, lineno, mid, "movieId", "unknown item", "dropped_row", tag)
            elif not tag:
                report.add(tags_csv, lineno, mid, "tag", "empty tag", "dropped_row")
            else:
                tags.setdefault(mid, []).append(tag)
    youtube: dict[str, str] = {}
    if youtube_csv and youtube_csv.is_file():
        for _, r in _csv_rows(youtube_csv):
            mid = (r.get("movieId") or "").strip()
            if mid in ids and mid not in youtube and (r.get("youtubeId") or "").strip():
                youtube[mid] = r["youtubeId"].strip()

    raw: list[RawItem] = []
    for lineno, r in movie_rows:
        mid = (r.get("movieId") or "").strip()
        title, year = split_title_year(r.get("title") or "")
        genres = [g for g in (r.get("genres") or "").split("|") if g and g != "(no genres listed)"]
        meta: dict[str, Any] = {}
        if display_title(title) != title:
            meta["display_title"] = display_title(title)
        link = links.get(mid, {})
        if (link.get("imdbId") or "").strip():
            meta["imdb_id"] = "tt" + link["imdbId"].strip()
        if (link.get("tmdbId") or "").strip():
            meta["tmdb_id"] = link["tmdbId"].strip()
        if mid in youtube:
            meta["youtube_id"] = youtube[mid]
        raw.append(
            RawItem(mid, title, str(movies_csv), lineno, year, genres, "", tags.get(mid, []), {}, meta)
        )
    ds = Dataset("ml-latest-small", clean_items(raw, report), [], report)
    _add_interactions(ds, folder / "ratings.csv", ",", header=True)
    report.stats = {
        **_basic_stats(ds),
        "items_with_tags": sum(bool(i.tags) for i in ds.items),
        "items_with_youtube_id": sum("youtube_id" in i.metadata for i in ds.items),
    }
    return ds
