"""`fusionrec chat`: the terminal REPL over the same Agent the UI and evaluation use."""

from __future__ import annotations

import argparse

from fusionrec.config import Config


def register(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser(
        "chat",
        help="chat in the terminal (/image, /audio, /video, /why N, /like N, /dislike N, /reset, /quit)",
    )
    c.add_argument(
        "--prepare", action="store_true", help="prepare models, data and the index first if missing"
    )
    c.add_argument("--message", "-m", action="append", default=[], help="send these messages, print, exit")
    c.set_defaults(func=_chat)


def _chat(cfg: Config, args: argparse.Namespace) -> int:
    from agent.repl import run_repl

    return run_repl(cfg, args)
