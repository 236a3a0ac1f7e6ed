"""`fusionrec` command line: one entry point, one subcommand per job.

Each package registers its own subcommands in a light `commands.py` (no heavy imports there),
so `fusionrec --help` stays instant. Trailing `section.key=value` words override the config.

No traceback reaches the terminal: an exception that escapes a command becomes one `error:` line
(exit code 2 for a user error, 1 for an internal one) and its traceback goes to
`<paths.home>/logs/fusionrec.log`; `--verbose` (anywhere on the line) prints it too.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from collections.abc import Callable

from fusionrec import env, logs
from fusionrec.config import Config, ConfigError, load_config
from fusionrec.text import one_line

_OVERRIDE = re.compile(r"^[a-z_]+\.[a-z_]+=")
_VERBOSE = {"--verbose", "-v"}


def _registrars() -> list[Callable[[argparse._SubParsersAction], None]]:
    from agent import commands as agent_cmds
    from encoders import commands as encoders_cmds
    from evaluation import commands as eval_cmds
    from finetune import commands as finetune_cmds
    from retrieval import commands as retrieval_cmds
    from ui import commands as ui_cmds

    return [
        encoders_cmds.register,
        retrieval_cmds.register,
        agent_cmds.register,
        ui_cmds.register,
        finetune_cmds.register,
        eval_cmds.register,
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fusionrec",
        description="FusionRec: a multimodal, LLM-driven conversational recommender.",
        epilog="Any trailing 'section.key=value' overrides the config, e.g. retrieval.k=20 models.profile=tiny.",
    )
    parser.add_argument(
        "--config",
        default=os.environ.get("FUSIONREC_CONFIG", ""),
        help="TOML or YAML config (default: $FUSIONREC_CONFIG, else ./fusionrec.toml if present)",
    )
    parser.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="print warnings, library messages and tracebacks on the terminal too (they always go to "
        "<paths.home>/logs/fusionrec.log); accepted anywhere on the line",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in _registrars():
        register(sub)
    return parser


def resolve_config(config_path: str, overrides: list[str]) -> Config:
    path = config_path or ("fusionrec.toml" if os.path.isfile("fusionrec.toml") else None)
    return load_config(path, overrides)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    overrides = [a for a in argv if _OVERRIDE.match(a)]
    verbose = any(a in _VERBOSE for a in argv)
    rest = [a for a in argv if not _OVERRIDE.match(a) and a not in _VERBOSE]
    parser = build_parser()
    args = parser.parse_args(rest)
    args.verbose = verbose
    args.command_line = "fusionrec " + shlex.join(argv)  # recorded in reports that say how they were made
    try:
        cfg = resolve_config(args.config, overrides)
    except ConfigError as exc:
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        raise SystemExit(2) from None
    log_file = logs.setup(cfg.home, verbose=verbose)
    env.configure(offline=cfg.models.profile != "online")
    try:
        return int(args.func(cfg, args) or 0)
    except KeyboardInterrupt:
        print("\ninterrupted; progress so far is saved where the command supports resuming", file=sys.stderr)
        return 130
    except Exception as exc:  # the last resort: one line here, the traceback in the log
        return logs.report_failure(exc, log_file, verbose)


if __name__ == "__main__":
    raise SystemExit(main())
