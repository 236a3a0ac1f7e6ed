"""The headline file (`eval.summary`, e.g. docs/results/summary.json) and the plots beside it.

`write_summary` replaces the file's "ml100k_loo" section and "command" and keeps every other
top-level section; benchmarks own theirs ("requests", "explanations", "turn") through
`write_section`, each with its own "command". Writes are atomic. The systems
listed there are those that ranked ALL evaluated users, with their all-users numbers.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SECTION = "ml100k_loo"
METRICS = {"HR@1": "hr@1", "HR@5": "hr@5", "NDCG@10": "ndcg@10", "MRR": "mrr"}
CURVES = {"valid_hr@1": "-", "valid_prior_hr@1": "--", "valid_llm_hr@1": "-."}
CURVE_NAMES = {"valid_prior_hr@1": "prior only", "valid_llm_hr@1": "LLM only"}


def _numbers(s: Mapping[str, Any]) -> dict[str, Any]:
    m = s["metrics"]
    out: dict[str, Any] = {label: m[key]["mean"] for label, key in METRICS.items() if key in m}
    out["valid"] = s["valid_ratio"]
    out["users"] = s["n"]
    out["ci"] = {label: [m[key]["lo"], m[key]["hi"]] for label, key in METRICS.items() if key in m}
    return out


def summary_section(loo: Mapping[str, Any]) -> dict[str, Any]:
    """The "ml100k_loo" section from the report's ML-100k section (all-users systems only)."""
    systems, partial = {}, []
    for name, s in loo["systems"].items():
        full = s.get("all")
        if full and full.get("n") == loo["users"]:
            systems[name] = _numbers(full)
        else:
            partial.append(name)
    adapter = loo.get("adapter")
    return {
        "users": loo["users"],
        "split": loo["split"],
        "candidates_sha256": loo["candidates"]["sha256"],
        "adapter": Path(adapter).name if adapter else None,
        "shipped": loo.get("shipped"),
        "prior": loo.get("prior"),
        "systems": systems,
        "not_on_all_users": partial,
        "paired": loo.get("paired", {}),
    }


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON (indent 1) to a temp file beside `path`, then os.replace it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def training_metrics(adapter: str | Path | None) -> Path | None:
    """The finetune metrics.csv of an adapter: in its folder, else in the run folder above best/ or last/."""
    if not adapter:
        return None
    folder = Path(adapter)
    for cand in (
        folder / "metrics.csv",
        folder.parent / "metrics.csv" if folder.name in ("best", "last") else None,
    ):
        if cand is not None and cand.is_file():
            return cand
    return None


def training_runs(adapter: str | Path | None, checkpoints: Path | None = None) -> dict[str, Path]:
    """{run: metrics.csv} of the adapter's training and of the warm starts it continued, earliest first:
    `model.init_from` of each recipe, resolved as the trainer does (a folder, else a name under
    `checkpoints`); the chain stops at a run whose folder or metrics.csv is not here."""
    from fusionrec.agent.checkpoint import read_adapter_recipe, warm_start

    runs: dict[str, Path] = {}
    folder = Path(adapter) if adapter else None
    while folder is not None and len(runs) < 8 and folder.name not in runs:
        csv_path = training_metrics(folder)
        if csv_path is None:
            break
        runs[folder.name] = csv_path
        try:
            init = read_adapter_recipe(folder).model.init_from
        except ValueError:
            break
        nxt = warm_start(init, checkpoints) if init else None
        folder = nxt if nxt is not None and nxt.is_dir() else None
    return dict(reversed(list(runs.items())))


def read_summary(path: Path) -> dict[str, Any]:
    """The summary file's content ({} when it does not exist); ValueError naming it when malformed."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


def write_section(path: Path, name: str, section: Mapping[str, Any]) -> None:
    """Replace one top-level section of the summary file (each section carries its own "command")."""
    data = read_summary(path)
    data[name] = dict(section)
    write_json_atomic(path, data)


def write_summary(
    report: Mapping[str, Any], path: Path, plots: bool = True, checkpoints: Path | None = None
) -> dict[str, Path]:
    """Update `path` with the report's ML-100k headline (and its plots: the systems, and the validation
    curves of the adapter's training after those of its warm starts under `checkpoints`); returns the
    written paths."""
    loo = (report.get("protocols") or {}).get("ml100k-loo")
    if loo is None:
        return {}
    data = read_summary(path)
    data[SECTION] = summary_section(loo)
    data["command"] = report.get("command", "")
    write_json_atomic(path, data)
    written = {"summary": path}
    if plots:
        written["ml100k_systems"] = plot_systems(loo, path.parent / "ml100k_systems.png")
        runs = training_runs(loo.get("adapter"), checkpoints)
        if runs:
            written["valid_hr1_by_step"] = plot_validation_curves(runs, path.parent / "valid_hr1_by_step.png")
    return written


# --- plots ------------------------------------------------------------------------------------------
def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_systems(loo: Mapping[str, Any], out: Path) -> Path:
    """Every system's HR@1 and NDCG@10 with 95% intervals (all users where it ran on all, else the
    LLM subset; the label says how many users)."""
    plt = _pyplot()
    rows = []
    for name, s in loo["systems"].items():
        part = s.get("all") if (s.get("all") or {}).get("n") else s["common"]
        if part.get("n"):
            rows.append((f"{name} ({part['n']})", part["metrics"]))
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.45 * len(rows) + 1.6), sharey=True, squeeze=False)
    y = list(range(len(rows)))[::-1]
    for ax, (label, key) in zip(axes[0], (("HR@1", "hr@1"), ("NDCG@10", "ndcg@10")), strict=True):
        mean = [m[key]["mean"] for _, m in rows]
        err = [[max(0.0, m[key]["mean"] - m[key]["lo"]) for _, m in rows],
               [max(0.0, m[key]["hi"] - m[key]["mean"]) for _, m in rows]]  # fmt: skip
        ax.errorbar(mean, y, xerr=err, fmt="o", capsize=3)
        ax.set_title(label, fontsize=10)
        ax.set_xlim(0, 1)
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(y)
    axes[0][0].set_yticklabels([r[0] for r in rows], fontsize=8)
    fig.suptitle(
        f"ML-100k leave-one-out, {loo['split']} targets (users in brackets; 95% bootstrap CI)", fontsize=10
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _curve(path: Path, column: str) -> tuple[list[int], list[float]]:
    steps, values = [], []
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            value = (row.get(column) or "").strip()
            if value:
                steps.append(int(float(row["step"])))
                values.append(float(value))
    return steps, values


def plot_validation_curves(metrics_csvs: Mapping[str, Path], out: Path) -> Path:
    """Validation HR@1 per training step from finetune metrics.csv files (the rows with `valid_hr@1`),
    one run after the other (a warm-started run's steps continue from the last step of the run before);
    the residual's prior-only and LLM-only HR@1 dashed when the file has them."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    offset = 0
    for label, path in metrics_csvs.items():
        color, last = None, 0
        for column, style in CURVES.items():
            steps, values = _curve(Path(path), column)
            if not steps:
                continue
            last = max(last, steps[-1])
            name = label if column == "valid_hr@1" else f"{label}: {CURVE_NAMES[column]}"
            xs = [offset + s for s in steps]
            line = ax.plot(xs, values, style, marker="o", markersize=3, label=name, color=color)[0]
            color = color or line.get_color()
        offset += last
    ax.set_xlabel("training step" + (" (warm-started runs continue the run before)" if len(metrics_csvs) > 1 else ""))
    ax.set_ylabel("validation HR@1")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Validation HR@1 by training step", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
