"""`fusionrec finetune`: run a training recipe, merge an adapter, sweep hyper-parameters."""

from __future__ import annotations

import argparse

from fusionrec.config import Config


def register(sub: argparse._SubParsersAction) -> None:
    f = sub.add_parser("finetune", help="train projectors + LoRA from a recipe; merge; sweep; ship")
    f.add_argument("action", nargs="?", default="train", choices=["train", "merge", "sweep", "ship"])
    f.add_argument("--recipe", default="", help="recipe YAML or shipped name (default: finetune.recipe)")
    f.add_argument(
        "--resume", action="store_true", help="continue from the last checkpoint in the output dir"
    )
    f.add_argument("--checkpoint", default="", help="merge/ship: the checkpoint folder")
    f.add_argument("--output", default="", help="output folder")
    f.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY:VALUE",
        help="override a recipe key, e.g. --set train.max_steps:20 (repeatable)",
    )
    f.set_defaults(func=_finetune)


def _finetune(cfg: Config, args: argparse.Namespace) -> int:
    from finetune.run import finetune_command

    return finetune_command(cfg, args)
