"""`fusionrec chat` (the terminal REPL over the same Agent the UI and evaluation use) and `fusionrec config show`."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

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
    s = sub.add_parser("config", help="print the effective config (with what the adapter sets)")
    s.add_argument("action", nargs="?", default="show", choices=["show"])
    s.set_defaults(func=_config_show)


def _chat(cfg: Config, args: argparse.Namespace) -> int:
    from fusionrec.agent.repl import run_repl

    return run_repl(cfg, args)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value) if isinstance(value, str) else repr(value)


def show_config(cfg: Config) -> str:
    """The effective config as TOML: every section and key, the agent keys an adapter sets marked."""
    from fusionrec.agent.adapter import effective_config

    eff = effective_config(cfg)
    lines = [f"# effective config; adapter: {eff.adapter or 'none'} ({eff.note})"]
    for f in dataclasses.fields(eff.cfg):
        lines.append(f"\n[{f.name}]")
        for key, value in dataclasses.asdict(getattr(eff.cfg, f.name)).items():
            line = f"{key} = {_toml_value(value)}"
            if f.name == "agent" and key in eff.from_adapter:
                line += f"  # from the adapter ({eff.adapter}); the config says {_toml_value(getattr(cfg.agent, key))}"
            lines.append(line)
    return "\n".join(lines)


def _config_show(cfg: Config, args: argparse.Namespace) -> int:
    print(show_config(cfg))
    return 0
