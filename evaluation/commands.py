"""`fusionrec eval`: protocols, baselines, ablations, reports."""

from __future__ import annotations

import argparse

from fusionrec.config import Config


def register(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("eval", help="evaluate systems on ML-100k leave-one-out or ReDial; write reports")
    e.add_argument("--protocol", default=None, help="ml100k-loo | redial (default: eval.protocol)")
    e.add_argument("--limit", type=int, default=None, help="evaluate at most N examples")
    e.add_argument("--systems", default="", help="comma list of systems (default: all that are available)")
    e.set_defaults(func=_eval)


def _eval(cfg: Config, args: argparse.Namespace) -> int:
    from evaluation.run import eval_command

    return eval_command(cfg, args)
