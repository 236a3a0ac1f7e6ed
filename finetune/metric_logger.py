"""The training log: one row per `log(step, metrics)` in ``metrics.csv`` (fixed columns, read back by
`evaluation.summary` and `finetune.ship`), each value also a TensorBoard scalar under ``tb/`` when
tensorboard is installed."""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CSV_FILE = "metrics.csv"
TB_DIR = "tb"


class MetricLogger:
    """Writes metric rows into `folder`; a resumed run (`resume_step`) keeps the rows up to that step."""

    def __init__(self, folder: Path, fields: Sequence[str], resume_step: int | None = None) -> None:
        self.fields = ["step", *[f for f in fields if f != "step"]]
        path = Path(folder) / CSV_FILE
        kept: list[dict[str, str]] = []
        if resume_step is not None and path.is_file():
            with open(path, newline="", encoding="utf-8") as fh:
                kept = [r for r in csv.DictReader(fh) if int(r["step"]) <= resume_step]
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self._csv = csv.DictWriter(self._fh, fieldnames=self.fields)
        self._csv.writeheader()
        self._csv.writerows(kept)
        self._fh.flush()
        self._tb: Any = None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is an optional extra
            log.warning("tensorboard is not installed: logging to %s only", CSV_FILE)
        else:
            purge = resume_step + 1 if resume_step is not None else None
            self._tb = SummaryWriter(str(Path(folder) / TB_DIR), purge_step=purge)

    def log(self, step: int, metrics: Mapping[str, float], group: str = "train") -> None:
        """One CSV row {step, **metrics} (ValueError for a name outside the columns); TensorBoard gets each
        value as `group/name` (a leading `group_` of the name dropped: valid_loss -> valid/loss)."""
        self._csv.writerow({"step": step, **metrics})
        self._fh.flush()
        if self._tb is not None:
            for name, value in metrics.items():
                self._tb.add_scalar(f"{group}/{name.removeprefix(group + '_')}", float(value), step)

    def close(self) -> None:
        self._fh.close()
        if self._tb is not None:
            self._tb.close()
