"""`fusionrec eval` defaults."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EvalConfig:
    protocol: str = "ml100k-loo"  # ml100k-loo | redial
    limit: int = 0  # evaluate at most this many examples (0 = all)
    seed: int = 0  # candidate sampling and bootstrap seed
    bootstrap: int = 1000  # bootstrap resamples for confidence intervals
    output_dir: str = ""  # "" = <paths.home>/reports
