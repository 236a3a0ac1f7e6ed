"""ReDial loader: dialogues with `@<id>` replaced by movie names, split by dialogue, matched to ML-100k.

Outputs (as a `Dataset`):
- items: the ReDial movie list (ids are ReDial's own), enriched with genres/overview/poster of the
  ML-100k item its title matches (`metadata["ml_item_id"]`);
- interactions: the seeker's own "liked" answers (rating 1.0 liked, 0.0 disliked; "did not say"
  is skipped), user = the seeker's worker id, timestamp 0 (ReDial has no clock time);
- dialogues: {"train"|"valid"|"test": [record, ...]}, split by a hash of conversationId
  (80/10/10 of test_data.jsonl; when the official train_data.jsonl is present too, it is split
  90/10 into train/valid and test_data.jsonl is the test split).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from fusionrec.config import Config
from fusionrec.types import Interaction, Item
from retrieval.cleaning import CleaningReport, RawItem, clean_items
from retrieval.loaders import Dataset, DataSourceError, TitleIndex, locate, split_title_year
from retrieval.loaders.download import not_found

FOLDERS = ("redial",)
MOVIES_CSV = "movies_with_mentions.csv"
DIALOGUE_FILES = ("train_data.jsonl", "test_data.jsonl")
SPLITS = ("train", "valid", "test")
_MENTION = re.compile(r"@(\d+)")


def find_redial(cfg: Config, source: str = "") -> Path:
    """The folder with movies_with_mentions.csv and test_data.jsonl (and/or train_data.jsonl)."""
    roots = [Path(source).expanduser()] if source else [p for p in (cfg.shared_data_dir,) if p]
    for root in roots:
        found = locate(root, MOVIES_CSV, FOLDERS)
        if found and any((found / f).is_file() for f in DIALOGUE_FILES):
            return found
    if source:
        raise DataSourceError(
            f"{source}: no {MOVIES_CSV} with test_data.jsonl there nor in its redial/ folder "
            "(--source must point at the ReDial folder or a folder holding it)"
        )
    raise not_found(
        "redial",
        [r / "redial" for r in roots],
        "ReDial is not downloaded automatically (get it from https://redialdata.github.io/website/).",
    )


def split_of(conversation_id: str, official_train: bool = False) -> str:
    """Deterministic split from a hash of the dialogue id (stable across runs and machines)."""
    bucket = int(hashlib.sha1(conversation_id.encode("utf-8")).hexdigest(), 16) % 100
    if official_train:
        return "train" if bucket < 90 else "valid"
    return "train" if bucket < 80 else ("valid" if bucket < 90 else "test")


def _clean_name(name: str) -> str:
    return " ".join(str(name).split())


def _read_movies(path: Path, report: CleaningReport) -> tuple[list[RawItem], dict[str, str]]:
    import csv

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


def load_redial(folder: Path, ml_items: list[Item] | None = None) -> Dataset:
    """Read the ReDial folder; `ml_items` (the ML-100k catalog) enables title matching."""
    folder = Path(folder)
    report = CleaningReport("redial", sources={"redial": str(folder)})
    raw, names = _read_movies(folder / MOVIES_CSV, report)
    index = TitleIndex(ml_items) if ml_items else None
    ml_by_id = {i.id: i for i in ml_items or []}
    ml_ids: dict[str, str | None] = {}
    methods: dict[str, int] = {}
    for r in raw:
        if index is None:
            continue
        ml_id, method = index.match(r.metadata["redial_name"])
        ml_ids[str(r.id).strip()] = ml_id
        methods[method] = methods.get(method, 0) + 1
        if ml_id:
            ml = ml_by_id[ml_id]
            r.metadata["ml_item_id"], r.metadata["ml_match"] = ml_id, method
            r.genres, r.text, r.media = list(ml.genres), ml.text, dict(ml.media)
    items = clean_items(raw, report, verify_media=False)  # ML-100k media were verified there

    dialogues: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    interactions: list[Interaction] = []
    official_train = (folder / "train_data.jsonl").is_file()
    seen: dict[str, str] = {}
    known = {i.id for i in items}
    for fname in DIALOGUE_FILES:
        path = folder / fname
        if not path.is_file():
            continue
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
                split = (
                    "test" if official_train and fname == "test_data.jsonl" else split_of(cid, official_train)
                )
                rec = _record(d, split, names, ml_ids, path, lineno, report)
                dialogues[split].append(rec)
                for mid, mv in rec["movies"].items():
                    liked = (mv["seeker"] or {}).get("liked")
                    if liked in (0, 1) and mid in known:
                        interactions.append(Interaction(rec["seeker_id"], mid, float(liked), 0))

    all_dialogues = [r for s in SPLITS for r in dialogues[s]]
    mentions = [i for r in all_dialogues for m in r["messages"] for i in m["movie_ids"]]
    mentioned = set(mentions)
    stats: dict[str, Any] = {
        "dialogues": len(all_dialogues),
        **{f"dialogues_{s}": len(dialogues[s]) for s in SPLITS},
        "messages": sum(len(r["messages"]) for r in all_dialogues),
        "mentions": len(mentions),
        "movies": len(items),
        "mentioned_movies": len(mentioned),
        "interactions": len(interactions),
        "users": len({x.user for x in interactions}),
    }
    if index is None:
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
                **{f"ml100k_match_{k}": v for k, v in sorted(methods.items())},
            }
        )
    report.stats = stats
    return Dataset("redial", items, interactions, report, dialogues)
