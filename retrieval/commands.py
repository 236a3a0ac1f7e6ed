"""`fusionrec ingest|search`: Chroma ingestion and candidate search."""

from __future__ import annotations

import argparse

from fusionrec.config import Config


def register(sub: argparse._SubParsersAction) -> None:
    ing = sub.add_parser("ingest", help="encode the prepared catalog and upsert it into Chroma (resumable)")
    ing.add_argument("--dataset", default="", help="prepared dataset to ingest (default: data.dataset)")
    ing.add_argument("--limit", type=int, default=0, help="ingest only the first N items (0 = all)")
    ing.add_argument("--modalities", default="text,image", help="comma list of text,image,audio,video,tfidf")
    ing.set_defaults(func=_ingest)

    s = sub.add_parser("search", help="retrieve candidates for a text and/or media query; prints a table")
    s.add_argument("query", nargs="?", default="", help="free text")
    s.add_argument("--image", default="", help="image file")
    s.add_argument("--audio", default="", help="audio file")
    s.add_argument("--video", default="", help="video file")
    s.add_argument("--dataset", default="", help="ingested dataset to search (default: data.dataset)")
    s.add_argument("--k", type=int, default=10, help="how many results")
    s.add_argument("--genre", action="append", default=[], help="keep only this genre (repeatable)")
    s.add_argument("--exclude-genre", action="append", default=[], help="drop this genre (repeatable)")
    s.add_argument("--year-min", type=int, default=None)
    s.add_argument("--year-max", type=int, default=None)
    s.set_defaults(func=_search)


def _ingest(cfg: Config, args: argparse.Namespace) -> int:
    from fusionrec.retrieval.ingest import ingest_command

    return ingest_command(cfg, args)


def _search(cfg: Config, args: argparse.Namespace) -> int:
    from fusionrec.retrieval.search import search_command

    return search_command(cfg, args)
