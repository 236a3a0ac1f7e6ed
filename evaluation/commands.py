"""`fusionrec eval`: protocols, baselines, ablations, reports."""

from __future__ import annotations

import argparse

from fusionrec.config import Config

SYSTEMS_HELP = (
    "comma list of systems (default: eval.systems, else all available): random, popularity, bpr, sasrec, "
    "retrieval, zeroshot-verbalizer, zeroshot-generative, zeroshot-verbalizer/<template>, lora-verbalizer "
    "(or, for a residual adapter, lora-hybrid, lora-llm, lora-prior), lora-generative; prefixes and the "
    "groups 'baselines' and 'llm' work too"
)


def register(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("eval", help="evaluate systems on ML-100k leave-one-out or ReDial; write reports")
    e.add_argument("--protocol", default=None, help="ml100k-loo | redial | all (default: eval.protocol)")
    e.add_argument(
        "--limit", type=int, default=None, help="evaluate at most N users/examples (seeded subset)"
    )
    e.add_argument(
        "--llm-limit", type=int, default=None, help="LLM systems on at most N of them (nested subset)"
    )
    e.add_argument("--systems", default="", help=SYSTEMS_HELP)
    e.add_argument("--name", default="", help="report folder name (default: a timestamp); same name resumes")
    e.add_argument(
        "--summary",
        default="",
        help="also update this JSON file's ml100k_loo (and/or redial) section (e.g. "
        "docs/results/summary.json; other sections are kept) and write its plots beside it "
        "(default: eval.summary)",
    )
    e.set_defaults(func=_eval)


def _eval(cfg: Config, args: argparse.Namespace) -> int:
    from fusionrec.evaluation.run import eval_command

    return eval_command(cfg, args)
