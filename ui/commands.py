"""`fusionrec serve`: the gradio chat app."""

from __future__ import annotations

import argparse

from fusionrec.config import Config


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("serve", help="start the gradio chat app (127.0.0.1 by default)")
    s.add_argument("--host", default=None, help="bind address (default: ui.host)")
    s.add_argument("--port", type=int, default=None, help="port (default: ui.port; 0 = a free one)")
    s.add_argument("--auth", default=None, help="user:pass required to log in")
    s.set_defaults(func=_serve)


def _serve(cfg: Config, args: argparse.Namespace) -> int:
    from fusionrec.ui.app import serve

    return serve(cfg, args)
