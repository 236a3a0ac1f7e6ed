"""Paired difference of one system across two evaluation reports (e.g. two adapters on the same users).

    .venv/bin/python scripts/compare_reports.py .fusionrec/reports/A SYSTEM .fusionrec/reports/B SYSTEM [PROTOCOL]

Reads `records/<protocol>__<system>.jsonl` of both reports, keeps the users both ranked with the same
target and candidates, and prints HR@1 / NDCG@10 of each and A - B with the paired bootstrap 95 % interval
that `fusionrec eval` uses (same users resampled, seed 0, 1000 resamples).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fusionrec.evaluation.metrics import example_metrics, paired_difference

METRICS = {"HR@1": "hr@1", "NDCG@10": "ndcg@10"}


def read(report: str, system: str, protocol: str) -> dict[str, dict]:
    path = Path(report) / "records" / f"{protocol}__{system}.jsonl"
    if not path.is_file():
        raise SystemExit(f"error: {path} does not exist")
    with open(path, encoding="utf-8") as fh:
        return {r["key"]: r for r in map(json.loads, fh)}


def main(argv: list[str]) -> None:
    if len(argv) not in (4, 5):
        raise SystemExit(__doc__)
    protocol = argv[4] if len(argv) == 5 else "ml100k-loo"
    a, b = read(argv[0], argv[1], protocol), read(argv[2], argv[3], protocol)
    keys = [k for k in a if k in b and a[k]["target"] == b[k]["target"]]
    keys = [k for k in keys if set(a[k]["order"]) == set(b[k]["order"])]
    ma = [example_metrics(a[k]["order"], a[k]["target"]) for k in keys]
    mb = [example_metrics(b[k]["order"], b[k]["target"]) for k in keys]
    print(f"{len(keys)} users ranked by both (same target and candidates)")
    for label, key in METRICS.items():
        xa, xb = [m[key] for m in ma], [m[key] for m in mb]
        mean, lo, hi = paired_difference(xa, xb)
        print(f"{label}: A {sum(xa) / len(xa):.3f}  B {sum(xb) / len(xb):.3f}  A - B {mean:+.3f} [{lo:+.3f}, {hi:+.3f}]")


if __name__ == "__main__":
    main(sys.argv[1:])
