"""`fusionrec` command line: one entry point, one subcommand per job.

Each package registers its own subcommands in a light `commands.py` (no heavy imports there),
so `fusionrec --help` stays instant. `section.key=value` words override the config; a command whose
parser names `override_sections` (finetune: `train`, `lora`, ...) gets the words of those sections
as its own overrides (`args.overrides`), e.g. `fusionrec finetune --recipe x train.max_steps=10`.
`fusionrec config show` prints the effective config, with what an adapter sets.

No traceback reaches the terminal: an exception that escapes a command becomes one `error:` line
(exit code 2 for a user error, 1 for an internal one) and its traceback goes to
`<paths.home>/logs/fusionrec.log`; `--verbose` (anywhere on the line) prints it too.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
from collections.abc import Callable

from fusionrec import env, logs, settings
from fusionrec.config import Config, ConfigError, load_config
from fusionrec.text import one_line

_VERBOSE = {"--verbose", "-v"}


def _registrars() -> list[Callable[[argparse._SubParsersAction], None]]:
    from fusionrec.agent import commands as agent_cmds
    from fusionrec.data import commands as data_cmds
    from fusionrec.evaluation import commands as eval_cmds
    from fusionrec.finetune import commands as finetune_cmds
    from fusionrec.models import commands as models_cmds
    from fusionrec.retrieval import commands as retrieval_cmds
    from fusionrec.ui import commands as ui_cmds

    return [
        models_cmds.register,
        data_cmds.register,
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
        epilog="Any 'section.key=value' overrides the config, e.g. retrieval.k=20 models.profile=tiny "
        "(fusionrec finetune: recipe keys too, e.g. train.max_steps=10).",
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


def _command_sections(parser: argparse.ArgumentParser) -> list[str]:
    """Every section a subcommand takes overrides for (its `override_sections` default)."""
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return [s for p in subs.choices.values() for s in p.get_default("override_sections") or ()]


def resolve_config(config_path: str, overrides: list[str]) -> Config:
    path = config_path or ("fusionrec.toml" if os.path.isfile("fusionrec.toml") else None)
    return load_config(path, overrides)


def parse_command_line(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """(parsed args, the config's `section.key=value` words); `args.overrides` holds the words of the
    sections the command owns (`override_sections`, e.g. finetune's `train`). ConfigError for `--set`."""
    overrides = [a for a in argv if settings.is_override(a)]
    rest = [a for a in argv if not settings.is_override(a) and a not in _VERBOSE]
    parser = build_parser()
    config_sections = {f.name for f in dataclasses.fields(Config)}
    settings.reject_old_set(argv, sections=config_sections | set(_command_sections(parser)))
    args = parser.parse_args(rest)
    own = set(getattr(args, "override_sections", ()))  # this command's own settings (a recipe's)
    args.overrides = [a for a in overrides if a.split(".", 1)[0] in own]
    return args, [a for a in overrides if a.split(".", 1)[0] not in own]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = any(a in _VERBOSE for a in argv)
    try:
        args, overrides = parse_command_line(argv)
        args.verbose = verbose
        args.command_line = "fusionrec " + shlex.join(argv)  # recorded in reports that say how they were made
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
