"""`fusionrec data prepare`: read a raw dataset, clean it and write the catalog + interactions."""

from __future__ import annotations

import argparse

from fusionrec.config import Config


def register(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("data", help="prepare datasets (clean, validate, report what was dropped)")
    dsub = d.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    prep = dsub.add_parser("prepare", help="read a raw dataset and write the cleaned catalog + interactions")
    prep.add_argument("dataset", help="movielens-100k | ml-latest-small | redial | a .jsonl/.csv catalog file")
    prep.add_argument("--source", default="", help="local copy of the raw data (default: ../shared/data copy)")
    prep.set_defaults(func=_data_prepare)


def _data_prepare(cfg: Config, args: argparse.Namespace) -> int:
    from fusionrec.data.prepare import prepare_command

    return prepare_command(cfg, args.dataset, source=args.source or cfg.data.source)
