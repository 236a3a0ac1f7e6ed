"""`fusionrec finetune`: run a training recipe, merge an adapter, sweep hyper-parameters."""

from __future__ import annotations

import argparse

from fusionrec.config import Config
from fusionrec.finetune.recipe import OVERRIDE_SECTIONS


def register(sub: argparse._SubParsersAction) -> None:
    f = sub.add_parser("finetune", help="train projectors + LoRA from a recipe; merge; sweep; ship")
    f.add_argument("action", nargs="?", default="train", choices=["train", "merge", "sweep", "ship"])
    f.add_argument("--recipe", default="", help="recipe YAML or shipped name (default: finetune.recipe)")
    f.add_argument(
        "--resume", action="store_true", help="continue from the last checkpoint in the output dir"
    )
    f.add_argument("--checkpoint", default="", help="merge/ship: the checkpoint folder")
    f.add_argument("--output", default="", help="output folder")
    f.epilog = (
        "Recipe keys are overridden like config keys, with section.key=value words: train.max_steps=20 "
        f"(sections {', '.join(OVERRIDE_SECTIONS)}; `data.` means the recipe's data section here)."
    )
    f.set_defaults(func=_finetune, override_sections=OVERRIDE_SECTIONS)


def _finetune(cfg: Config, args: argparse.Namespace) -> int:
    from fusionrec.finetune.run import finetune_command

    return finetune_command(cfg, args)
