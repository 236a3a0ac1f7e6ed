"""`fusionrec eval`: run the protocols, write results.json / results.md / plots under the report folder."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from fusionrec.config import Config

PROTOCOLS = ("ml100k-loo", "redial", "all")


class EvalError(ValueError):
    """The eval settings are inconsistent (unknown protocol or split)."""


def report_folder(cfg: Config) -> Path:
    """<eval.output_dir or paths.home/reports>/<eval.name or a timestamp>."""
    root = Path(cfg.eval.output_dir).expanduser() if cfg.eval.output_dir else cfg.reports_dir
    name = cfg.eval.name or time.strftime("eval-%Y%m%d-%H%M%S")
    return root / name


def command_line(args: argparse.Namespace) -> str:
    """The command that produced the report: as typed (set by fusionrec.cli), else rebuilt from the flags."""
    given = getattr(args, "command_line", "")
    if given:
        return given
    parts = ["fusionrec", "eval"]
    for flag in ("protocol", "limit", "llm_limit", "systems", "name", "summary"):
        value = getattr(args, flag, None)
        if value not in (None, ""):
            parts += [f"--{flag.replace('_', '-')}", str(value)]
    return shlex.join(parts)


def effective_config(cfg: Config, args: argparse.Namespace) -> Config:
    """The config with the command-line flags applied to the eval section."""
    changes: dict[str, Any] = {}
    for flag, key in (("protocol", "protocol"), ("limit", "limit"), ("systems", "systems"), ("name", "name"),
                      ("llm_limit", "llm_limit"), ("summary", "summary")):  # fmt: skip
        value = getattr(args, flag, None)
        if value not in (None, ""):
            changes[key] = value
    return dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, **changes))


def _meta(cfg: Config) -> dict[str, Any]:
    from fusionrec.models import registry

    meta: dict[str, Any] = {"seed": cfg.eval.seed, "profile": cfg.models.profile, "home": str(cfg.home)}
    for role, key in (("llm", "llm"), ("text_embedder", "text_embedder")):
        try:
            meta[key] = registry.source(cfg, role)
        except Exception as exc:  # an unknown profile: reported, not fatal here
            meta[key] = f"unknown ({exc})"
    return meta


def evaluate(cfg: Config, command: str = "") -> tuple[dict[str, Any], dict[str, Path]]:
    """Run the configured protocol(s); write and return (report, written paths)."""
    from fusionrec.evaluation.records import check_folder
    from fusionrec.evaluation.report import write_report

    ecfg = cfg.eval
    if ecfg.protocol not in PROTOCOLS:
        raise EvalError(f"eval.protocol={ecfg.protocol!r}: expected one of {', '.join(PROTOCOLS)}")
    if ecfg.split not in ("valid", "test"):
        raise EvalError(f"eval.split={ecfg.split!r}: expected valid or test")
    summary = Path(ecfg.summary).expanduser() if ecfg.summary else None
    if summary is not None:
        from fusionrec.evaluation.summary import read_summary

        try:
            read_summary(summary)  # a malformed file is refused before the run, not after it
        except ValueError as exc:
            raise EvalError(f"eval.summary: {exc}") from None
    folder = report_folder(cfg)
    check_folder(folder, cfg)
    if ecfg.threads > 0:
        import torch

        torch.set_num_threads(ecfg.threads)
    t0 = time.perf_counter()
    report: dict[str, Any] = {
        "command": command,
        "config": cfg.to_dict(),
        "meta": _meta(cfg),
        "protocols": {},
    }
    if ecfg.protocol in ("ml100k-loo", "all"):
        from fusionrec.evaluation.loo import run_loo

        report["protocols"]["ml100k-loo"] = run_loo(cfg, folder, ecfg.systems)
    if ecfg.protocol in ("redial", "all"):
        from fusionrec.evaluation.redial import run_redial

        report["protocols"]["redial"] = run_redial(cfg, folder, ecfg.systems)
    report["meta"]["seconds"] = time.perf_counter() - t0
    report["meta"]["folder"] = str(folder)
    paths = write_report(report, folder, plots=ecfg.plots)
    if summary is not None:
        from fusionrec.evaluation.summary import write_summary

        paths.update(write_summary(report, summary, plots=ecfg.plots, checkpoints=cfg.checkpoints_dir))
        if "redial" in report["protocols"]:
            from fusionrec.evaluation.redial import summary_section
            from fusionrec.evaluation.summary import write_section

            write_section(summary, "redial", summary_section(report["protocols"]["redial"], command))
            paths["summary"] = summary
    return report, paths


def eval_command(cfg: Config, args: argparse.Namespace) -> int:
    """CLI entry: clear one-line errors (exit 2) for missing data, bad files or unknown systems."""
    from fusionrec.data.prepare import DatasetNotPrepared
    from fusionrec.evaluation.protocols import ProtocolError
    from fusionrec.evaluation.records import RecordsMismatch
    from fusionrec.evaluation.systems import SystemsError

    cfg = effective_config(cfg, args)
    try:
        report, paths = evaluate(cfg, command_line(args))
    except (DatasetNotPrepared, ProtocolError, RecordsMismatch, SystemsError, EvalError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(paths["markdown"].read_text(encoding="utf-8"))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0
