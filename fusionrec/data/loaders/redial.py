"""ReDial loader: the official dialogue files, `@<id>` replaced by movie names, and the ReDial movie list.

Outputs (as a `Dataset`):
- items: the ReDial movie list (ids are ReDial's own), enriched where the title matches:
  ml-latest-small gives genres, tags and IMDb/TMDB ids (`metadata["ml_latest_id"]`), ML-100k gives the
  TMDB overview and the poster (`metadata["ml_item_id"]`; matched by title, else through the IMDb id of
  the ml-latest-small match); ML-100k genres stand in where ml-latest-small has none;
- interactions: the seeker's own "liked" answers in the TRAIN dialogues (rating 1.0 liked, 0.0
  disliked; "did not say" is skipped), user = the seeker's worker id, timestamp 0;
- dialogues: {"train"|"valid"|"test": [record, ...]} from train_subset_500.jsonl, valid_subset_100.jsonl
  (600 dialogues of the official train split) and test_data.jsonl (the official test split, whole).
  A conversation id already in the test file is dropped from train/valid (reported), so no test
  dialogue reaches training.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

from fusionrec.config import Config
from fusionrec.data.cleaning import CleaningReport, RawItem, clean_items
from fusionrec.data.loaders import Dataset, DataSourceError, TitleIndex, locate, split_title_year
from fusionrec.data.loaders.download import not_found
from fusionrec.types import Interaction, Item

FOLDERS = ("redial",)
MOVIES_CSV = "movies_with_mentions.csv"
DIALOGUE_FILES = {
    "test": "test_data.jsonl",
    "train": "train_subset_500.jsonl",
    "valid": "valid_subset_100.jsonl",
}
SPLITS = ("train", "valid", "test")
_MENTION = re.compile(r"@(\d+)")


def find_redial(cfg: Config, source: str = "") -> Path:
    """The folder with movies_with_mentions.csv and the three dialogue files."""
    roots = [Path(source).expanduser()] if source else [p for p in (cfg.shared_data_dir,) if p]
    for root in roots:
        found = locate(root, MOVIES_CSV, FOLDERS)
        if found:
            missing = [f for f in DIALOGUE_FILES.values() if not (found / f).is_file()]
            if missing:
                raise DataSourceError(f"{found}: missing {', '.join(missing)} (ReDial needs all three files)")
            return found
    if source:
        raise DataSourceError(
            f"{source}: no {MOVIES_CSV} there nor in its redial/ folder "
            "(--source must point at the ReDial folder or a folder holding it)"
        )
    raise not_found(
        "redial",
        [r / "redial" for r in roots],
        "ReDial is not downloaded automatically (get it from https://redialdata.github.io/website/).",
    )


def _clean_name(name: str) -> str:
    return " ".join(str(name).split())


def _read_movies(path: Path) -> tuple[list[RawItem], dict[str, str]]:
    raw, names = [], {}
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        prev = reader.line_num
        for row in reader:
            lineno, prev = prev + 1, reader.line_num
            r = dict(zip(header, row, strict=False))
            mid, name = (r.get("movieId") or "").strip(), _clean_name(r.get("movieName") or "")
            title, year = split_title_year(name)
            meta: dict[str, Any] = {"redial_name": name}
            if (r.get("nbMentions") or "").strip().isdigit():
                meta["nb_mentions"] = int(r["nbMentions"])
            raw.append(RawItem(mid, title, str(path), lineno, year, [], "", [], {}, meta))
            if mid and name and mid not in names:
                names[mid] = name
    return raw, names


def _enrich(
    raw: list[RawItem], ml_items: list[Item] | None, latest_items: list[Item] | None
) -> tuple[dict[str, str | None], dict[str, Any]]:
    """Join each movie to ml-latest-small and ML-100k in place; (ReDial id -> ML-100k id, stats)."""
    stats: dict[str, Any] = {}
    latest_index = TitleIndex(latest_items) if latest_items else None
    latest_by_id = {i.id: i for i in latest_items or []}
    ml_index = TitleIndex(ml_items) if ml_items else None
    ml_by_id = {i.id: i for i in ml_items or []}
    ml_by_imdb = {str(i.metadata["imdb_id"]): i.id for i in ml_items or [] if i.metadata.get("imdb_id")}
    ml_ids: dict[str, str | None] = {}
    for r in raw:
        name, mid = r.metadata["redial_name"], str(r.id).strip()
        latest = None
        if latest_index is not None:
            latest_id, method = latest_index.match(name)
            stats[f"ml_latest_match_{method}"] = stats.get(f"ml_latest_match_{method}", 0) + 1
            if latest_id:
                latest = latest_by_id[latest_id]
                r.metadata["ml_latest_id"], r.metadata["ml_latest_match"] = latest_id, method
                r.genres, r.tags = list(latest.genres), list(latest.tags)
                for key in ("imdb_id", "tmdb_id"):
                    if latest.metadata.get(key):
                        r.metadata[key] = latest.metadata[key]
        if ml_index is None:
            continue
        ml_id, method = ml_index.match(name)
        if ml_id is None and latest is not None and latest.metadata.get("imdb_id") in ml_by_imdb:
            ml_id, method = ml_by_imdb[latest.metadata["imdb_id"]], "imdb_via_ml_latest"
        ml_ids[mid] = ml_id
        stats[f"ml100k_match_{method}"] = stats.get(f"ml100k_match_{method}", 0) + 1
        if ml_id:
            ml = ml_by_id[ml_id]
            r.metadata["ml_item_id"], r.metadata["ml_match"] = ml_id, method
            r.text, r.media = ml.text, dict(ml.media)
            r.genres = r.genres or list(ml.genres)
    return ml_ids, dict(sorted(stats.items()))


def _record(
    d: dict[str, Any],
    split: str,
    names: dict[str, str],
    ml_ids: dict[str, str | None],
    path: Path,
    lineno: int,
    report: CleaningReport,
) -> dict[str, Any]:
    cid = str(d["conversationId"])
    seeker, recommender = d.get("initiatorWorkerId"), d.get("respondentWorkerId")
    local = {str(k): _clean_name(v) for k, v in (d.get("movieMentions") or {}).items() if v}
    messages = []
    for m in d.get("messages") or []:
        raw_text = m.get("text") or ""
        ids: list[str] = []

        def name_of(match: re.Match[str], ids: list[str] = ids) -> str:
            mid = match.group(1)
            name = names.get(mid) or local.get(mid)
            if not name:
                report.add(path, lineno, mid, "text", "unknown movie mention", "flagged", f"dialogue {cid}")
                return match.group(0)
            if mid not in ids:
                ids.append(mid)
            return name

        text = _MENTION.sub(name_of, raw_text)
        sender = m.get("senderWorkerId")
        role = "seeker" if sender == seeker else "recommender" if sender == recommender else "unknown"
        if role == "unknown":
            report.add(
                path, lineno, "", "senderWorkerId", "unknown sender", "flagged", f"dialogue {cid}: {sender}"
            )
        messages.append(
            {
                "message_id": m.get("messageId"),
                "role": role,
                "sender_id": str(sender),
                "time_offset": m.get("timeOffset"),
                "text": text,
                "raw_text": raw_text,
                "movie_ids": ids,
                "ml_item_ids": [ml_ids[i] for i in ids if ml_ids.get(i)],
            }
        )
    seeker_q, rec_q = d.get("initiatorQuestions") or {}, d.get("respondentQuestions") or {}
    movies = {}
    for mid in sorted(set(local) | set(seeker_q) | set(rec_q), key=lambda x: (len(x), x)):
        movies[mid] = {
            "name": names.get(mid) or local.get(mid, ""),
            "ml_item_id": ml_ids.get(mid),
            "seeker": seeker_q.get(mid),
            "recommender": rec_q.get(mid),
        }
    return {
        "conversation_id": cid,
        "split": split,
        "seeker_id": str(seeker),
        "recommender_id": str(recommender),
        "movies": movies,
        "messages": messages,
    }


def _read_dialogues(
    folder: Path, names: dict[str, str], ml_ids: dict[str, str | None], report: CleaningReport
) -> dict[str, list[dict[str, Any]]]:
    """{split: records}; the test file is read first, so an id it holds never enters train/valid."""
    dialogues: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    seen: dict[str, str] = {}
    for split, fname in DIALOGUE_FILES.items():
        path = folder / fname
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    d = json.loads(line)
                    cid = str(d["conversationId"])
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    report.add(
                        path, lineno, "", "record", "malformed dialogue", "dropped_row", str(exc)[:120]
                    )
                    continue
                if cid in seen:
                    report.add(path, lineno, cid, "conversationId", "duplicate id", "deduplicated", seen[cid])
                    continue
                seen[cid] = f"first at {fname}:{lineno}"
                if not d.get("messages"):
                    report.add(path, lineno, cid, "messages", "empty dialogue", "dropped_row")
                    continue
                dialogues[split].append(_record(d, split, names, ml_ids, path, lineno, report))
    return dialogues


def load_redial(
    folder: Path, ml_items: list[Item] | None = None, latest_items: list[Item] | None = None
) -> Dataset:
    """Read the ReDial folder; `ml_items` (ML-100k) and `latest_items` (ml-latest-small) enrich the
    movies whose titles match (either may be None: that join is skipped and the report says so)."""
    folder = Path(folder)
    report = CleaningReport("redial", sources={"redial": str(folder)})
    raw, names = _read_movies(folder / MOVIES_CSV)
    ml_ids, match_stats = _enrich(raw, ml_items, latest_items)
    items = clean_items(raw, report, verify_media=False)  # ML-100k media were verified there
    dialogues = _read_dialogues(folder, names, ml_ids, report)

    known = {i.id for i in items}
    interactions = [
        Interaction(rec["seeker_id"], mid, float(liked), 0)
        for rec in dialogues["train"]
        for mid, mv in rec["movies"].items()
        if (liked := (mv["seeker"] or {}).get("liked")) in (0, 1) and mid in known
    ]
    all_dialogues = [r for s in SPLITS for r in dialogues[s]]
    mentions = [i for r in all_dialogues for m in r["messages"] for i in m["movie_ids"]]
    mentioned = set(mentions)
    stats: dict[str, Any] = {
        "dialogues": len(all_dialogues),
        **{f"dialogues_{s}": len(dialogues[s]) for s in SPLITS},
        "messages": sum(len(r["messages"]) for r in all_dialogues),
        **{f"messages_{s}": sum(len(r["messages"]) for r in dialogues[s]) for s in SPLITS},
        "mentions": len(mentions),
        "movies": len(items),
        "mentioned_movies": len(mentioned),
        "interactions": len(interactions),
        "users": len({x.user for x in interactions}),
        "items_with_genres": sum(bool(i.genres) for i in items),
        "items_with_text": sum(bool(i.text) for i in items),
        "items_with_image": sum("image" in i.media for i in items),
    }
    if latest_items is None:
        stats["ml_latest_match"] = "skipped: no ml-latest-small catalog found"
    else:
        stats["ml_latest_matched_movies"] = sum("ml_latest_id" in i.metadata for i in items)
    if ml_items is None:
        stats["ml100k_match"] = "skipped: no ML-100k catalog found"
    else:
        matched = {m for m, v in ml_ids.items() if v}
        stats.update(
            {
                "ml100k_matched_movies": len(matched),
                "ml100k_match_rate_movies": round(len(matched) / max(1, len(ml_ids)), 4),
                "ml100k_matched_mentioned_movies": len(mentioned & matched),
                "ml100k_match_rate_mentioned_movies": round(
                    len(mentioned & matched) / max(1, len(mentioned)), 4
                ),
                "ml100k_match_rate_mentions": round(
                    sum(m in matched for m in mentions) / max(1, len(mentions)), 4
                ),
            }
        )
    stats.update(match_stats)
    report.stats = stats
    return Dataset("redial", items, interactions, report, dialogues)
