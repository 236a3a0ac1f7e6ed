"""Reports: results.json (every number and the config), results.md (tables), PNG plots (Agg)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

LOO_COLUMNS = ("hr@1", "hr@5", "hr@10", "ndcg@5", "ndcg@10", "mrr")


def fmt(est: Mapping[str, float] | None, ci: bool = True) -> str:
    """0.123 [0.101, 0.145] (or "-" when missing)."""
    if not est:
        return "-"
    text = f"{est['mean']:.3f}"
    if ci and est.get("lo") is not None and est.get("hi") is not None and est["lo"] != est["hi"]:
        text += f" [{est['lo']:.3f}, {est['hi']:.3f}]"
    return text


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def _ms(summary: Mapping[str, Any]) -> str:
    lat = summary.get("latency") or {}
    return f"{1000 * lat.get('mean_s', 0.0):.1f}" if lat.get("n") else "-"


def loo_markdown(section: Mapping[str, Any]) -> list[str]:
    lines = [f"## ML-100k leave-one-out ({section['split']} targets, 20 candidates)", ""]
    src = section["candidates"]
    lines += [
        f"- Candidates: {src['source']} (`{src['path']}`, sha256 `{src['sha256'][:16]}`).",
        f"- Users: {section['users']} of {section['users_total']} evaluated by the non-LLM systems; "
        f"LLM systems: {section['llm_subset']}.",
        f"- Baselines trained on {section['train_interactions']} interactions (held-out targets removed).",
        *_prompt_lines(section["systems"]),
        "- 95% bootstrap intervals in brackets. Latency: mean milliseconds per user.",
        "",
    ]
    systems = section["systems"]
    n_common = section["llm_users"]
    lines += [f"### All systems on the same {n_common} users", ""]
    rows = []
    for name, s in systems.items():
        c = s["common"]
        if not c.get("n"):
            continue
        m = c["metrics"]
        rows.append(
            [f"`{name}`", c["n"], *[fmt(m.get(k)) for k in LOO_COLUMNS], f"{c['valid_ratio']:.3f}", _ms(c)]
        )
    lines += _table(
        ["system", "users", "HR@1", "HR@5", "HR@10", "NDCG@5", "NDCG@10", "MRR", "valid", "ms/user"], rows
    )
    full = [(n, s) for n, s in systems.items() if s.get("all") and s["all"].get("n")]
    if full and section["users"] != n_common:
        lines += ["", f"### Non-LLM systems on all {section['users']} evaluated users", ""]
        rows = [
            [f"`{n}`", s["all"]["n"], *[fmt(s["all"]["metrics"].get(k)) for k in LOO_COLUMNS]]
            for n, s in full
        ]
        lines += _table(["system", "users", "HR@1", "HR@5", "HR@10", "NDCG@5", "NDCG@10", "MRR"], rows)
    if section.get("paired"):
        lines += ["", *paired_markdown(section)]
    gen = [(n, s["common"]["generative"]) for n, s in systems.items() if s["common"].get("generative")]
    if gen:
        lines += ["", "### Generative ranking: output errors (share of written answers) and HR@1", ""]
        rows = [
            [f"`{n}`", f"{g['valid_ratio']:.3f}", f"{g['rate_not_a_candidate']:.3f}", f"{g['rate_duplicate']:.3f}",
             f"{g['rate_already_seen']:.3f}", f"{g['rate_unparseable']:.3f}", f"{g['answers_per_example']:.1f}",
             f"{g['hr@1_unconditional']:.3f}", f"{g['hr@1_conditional_on_valid']:.3f}"]
            for n, g in gen
        ]  # fmt: skip
        lines += _table(
            ["system", "valid ratio", "non-candidate", "duplicate", "already seen", "unparseable", "answers/user",
             "HR@1 (all)", "HR@1 (valid only)"],
            rows,
        )  # fmt: skip
    expl = [(n, s["explanations"]) for n, s in systems.items() if s.get("explanations")]
    if expl:
        lines += ["", "### Explanations (top-1 item, raw generated text) passing the fact check", ""]
        rows = [[f"`{n}`", e["n"], f"{e['pass_rate']:.3f} [{e['pass_rate_ci'][0]:.3f}, {e['pass_rate_ci'][1]:.3f}]",
                 f"{e['mean_seconds']:.2f}", ", ".join(e["problems"]) or "-"] for n, e in expl]  # fmt: skip
        lines += _table(["system", "explained", "pass rate", "s/explanation", "problems seen"], rows)
    if section.get("ablations"):
        lines += ["", *ablation_markdown(section["ablations"])]
    if section.get("llm_ablations"):
        lines += ["", *llm_ablation_markdown(section["llm_ablations"])]
    if section.get("unavailable"):
        lines += [
            "",
            "Not evaluated: " + "; ".join(f"`{k}` ({v})" for k, v in section["unavailable"].items()),
        ]
    return lines


def _interval(d: Sequence[float]) -> str:
    return f"{d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}]"


def _signed(v: Sequence[float]) -> str:
    """+0.012 [-0.010, +0.034] from [mean, lo, hi]."""
    text = f"{v[0]:+.3f}"
    return text + (f" [{v[1]:+.3f}, {v[2]:+.3f}]" if v[1] != v[2] else "")


def paired_markdown(section: Mapping[str, Any]) -> list[str]:
    """The shipped ranker minus each other system, on the users both ranked."""
    lines = [
        f"### Paired differences: `{section['shipped']}` minus each system (same users resampled, 95% CI)",
        "",
    ]
    if section.get("prior"):
        lines += [f"Residual adapter prior: `{section['prior']}`.", ""]
    rows = [[f"`{k}`", v.get("users", "-"), _signed(v["HR@1"]), _signed(v["NDCG@10"])]
            for k, v in section["paired"].items()]  # fmt: skip
    return lines + _table(["difference", "users", "HR@1", "NDCG@10"], rows)


def _prompt_lines(systems: Mapping[str, Any]) -> list[str]:
    out = []
    for name, s in systems.items():
        p = s.get("prompt")
        if p:
            out.append(
                f"- `{name}`: template `{p['template']}`, overviews {p['overview_chars']} chars, "
                f"{p['history_len']} history items attached, prompt budget {p['max_prompt_tokens']} tokens"
                + (
                    f", adapter `{s['adapter']}`"
                    if s.get("adapter")
                    else ", no adapter (projectors untrained)"
                )
                + "."
            )
    return out


def ablation_markdown(abl: Mapping[str, Any]) -> list[str]:
    lines = [
        f"### Retrieval-only: modalities x fusion ({abl['users']} users)",
        "",
        f"Vectors: {abl['vectors']}; cross-modal module {'trained' if abl['cross_trained'] else 'untrained (equal weights per modality)'}.",
        "",
    ]
    rows, missing = [], {}
    for r in abl["rows"]:
        if not r["available"]:
            missing.setdefault(r["reason"], []).append(f"{r['fusion']} {r['modalities']}")
            continue
        m = r["metrics"]
        rows.append(
            [r["fusion"], r["modalities"], fmt(m["hr@1"]), fmt(m["hr@10"]), fmt(m["ndcg@10"]), fmt(m["mrr"])]
        )
    lines += _table(["fusion", "modalities", "HR@1", "HR@10", "NDCG@10", "MRR"], rows)
    for reason, which in missing.items():
        lines += ["", f"Not available ({', '.join(which)}): {reason}."]
    lines += contribution_markdown(abl["contribution"], "retrieval-only")
    if abl.get("images"):
        lines += ["", abl["images"]["note"]]
    return lines


def contribution_markdown(contrib: Mapping[str, Any], system: str) -> list[str]:
    dropped = contrib.get("dropped") or {}
    if not dropped:
        return []
    lines = [
        "",
        f"Modality contribution ({system}, {contrib['fusion']} fusion over {contrib['base']}): the ranking "
        "with one modality dropped at test time vs the full ranking.",
        "",
    ]
    rows = [[m, fmt(d["kendall_tau"]), f"{d['changed_top1']:.3f}", fmt(d["delta_hr@1"]), fmt(d["delta_hr@10"]),
             fmt(d["delta_ndcg@10"])] for m, d in dropped.items()]  # fmt: skip
    lines += _table(
        ["dropped", "Kendall tau", "top-1 changed", "delta HR@1", "delta HR@10", "delta NDCG@10"], rows
    )
    return lines


def llm_ablation_markdown(abl: Mapping[str, Any]) -> list[str]:
    lines = [
        f"### LLM item tokens: modalities x fusion (`{abl['system']}`, {abl['users']} users, "
        f"projectors {abl['projectors']})",
        "",
    ]
    rows = [[r["item_tokens"], r["fusion"], fmt(r["metrics"]["hr@1"]), fmt(r["metrics"]["hr@10"]),
             fmt(r["metrics"]["ndcg@10"])] for r in abl["rows"]]  # fmt: skip
    lines += _table(["item tokens", "fusion", "HR@1", "HR@10", "NDCG@10"], rows)
    lines += contribution_markdown(abl["contribution"], abl["system"])
    return lines


def redial_markdown(section: Mapping[str, Any]) -> list[str]:
    lines = [
        "## ReDial: recommender turns naming a ReDial movie",
        "",
        f"- {section['examples']} of {section['examples_total']} (turn, movie) examples ({section['turns']} of "
        f"{section['turns_total']} recommender turns) from {section['dialogues']} dialogues ({'+'.join(section['splits'])} split) "
        f"({section['new_targets']} name a movie not mentioned before); LLM systems on {section['llm_examples']}.",
        f"- Catalog {section['catalog']} movies; baselines learned from {section['train_dialogues']} dialogues "
        f"({'+'.join(section['train_splits'])}); retrieval ranks its top {section['pool']}; "
        "`new`: already-mentioned movies removed from targets and rankings.",
        "",
    ]
    rows = []
    for name, s in section["systems"].items():
        row = [f"`{name}`"]
        for variant in ("all", "new"):
            v = s.get(variant) or {}
            row.append(str(v.get("n", 0)))
            row += [fmt((v.get("metrics") or {}).get(f"recall@{k}")) for k in (1, 10, 50)]
        row.append(_ms(s))
        rows.append(row)
    lines += _table(
        ["system", "n (all)", "R@1", "R@10", "R@50", "n (new)", "R@1 new", "R@10 new", "R@50 new", "ms/turn"],
        rows,
    )
    if section.get("paired"):
        lines += ["", "Paired bootstrap differences, mean [95% interval]:", ""]
        rows = [[f"`{pair}`", str(d["examples"]), *(_interval(d[m]) for m in ("R@1", "R@10", "R@50", "R@10_new"))]
                for pair, d in section["paired"].items()]  # fmt: skip
        lines += _table(["pair", "n", "R@1", "R@10", "R@50", "R@10 new"], rows)
    if section.get("unavailable"):
        lines += [
            "",
            "Not evaluated: " + "; ".join(f"`{k}` ({v})" for k, v in section["unavailable"].items()),
        ]
    return lines


def markdown(report: Mapping[str, Any]) -> str:
    lines = ["# FusionRec evaluation", ""]
    if report.get("command"):
        lines += ["Produced by:", "", "```", report["command"], "```", ""]
    meta = report.get("meta", {})
    if meta:
        lines += [f"Models: LLM `{meta.get('llm')}`, text `{meta.get('text_embedder')}`; seed {meta.get('seed')}; "
                  f"{meta.get('seconds', 0):.0f} s.", ""]  # fmt: skip
    for key, section in report.get("protocols", {}).items():
        lines += loo_markdown(section) if key == "ml100k-loo" else redial_markdown(section)
        lines.append("")
    text = "\n".join(lines).rstrip() + "\n"
    home, given = meta.get("home"), (report.get("config") or {}).get("paths", {}).get("home")
    return text.replace(home, given) if home and given else text  # paths as configured (e.g. .fusionrec)


# --- plots ------------------------------------------------------------------------------------------
def _bars(
    ax: Any, labels: Sequence[str], series: Mapping[str, Sequence[Mapping[str, float]]], title: str
) -> None:
    import numpy as np

    x = np.arange(len(labels))
    width = 0.8 / max(1, len(series))
    for k, (metric, ests) in enumerate(series.items()):
        means = [e["mean"] if e else 0.0 for e in ests]
        err = np.array([[max(0.0, e["mean"] - e["lo"]) if e else 0.0 for e in ests],
                        [max(0.0, e["hi"] - e["mean"]) if e else 0.0 for e in ests]])  # fmt: skip
        ax.bar(x + (k - (len(series) - 1) / 2) * width, means, width, yerr=err, capsize=2, label=metric)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)


def write_plots(report: Mapping[str, Any], folder: Path) -> list[Path]:
    """metric_by_system.png and metric_by_ablation.png (and redial_by_system.png) with CI error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    loo = report.get("protocols", {}).get("ml100k-loo")
    if loo:
        names = [n for n, s in loo["systems"].items() if s["common"].get("n")]
        fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(names) + 2), 4.5))
        series = {
            m: [loo["systems"][n]["common"]["metrics"].get(m) for n in names]
            for m in ("hr@1", "hr@10", "ndcg@10")
        }
        _bars(ax, names, series, f"ML-100k leave-one-out, {loo['llm_users']} users (95% bootstrap CI)")
        fig.tight_layout()
        written.append(folder / "metric_by_system.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
        abl = loo.get("ablations")
        if abl:
            panels = [("retrieval-only", [r for r in abl["rows"] if r["available"]], "modalities")]
            if loo.get("llm_ablations"):
                panels.append((loo["llm_ablations"]["system"], loo["llm_ablations"]["rows"], "item_tokens"))
            fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 4.5), squeeze=False)
            for ax, (title, rows, field) in zip(axes[0], panels, strict=True):
                labels = [r[field] if r["fusion"] == "-" else f"{r['fusion']}: {r[field]}" for r in rows]
                series = {m: [r["metrics"][m] for r in rows] for m in ("hr@1", "ndcg@10")}
                _bars(ax, labels, series, f"{title}: metric by ablation")
            fig.tight_layout()
            written.append(folder / "metric_by_ablation.png")
            fig.savefig(written[-1], dpi=110)
            plt.close(fig)
    red = report.get("protocols", {}).get("redial")
    if red and red["systems"]:
        names = list(red["systems"])
        fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(names) + 2), 4.5))
        series = {
            f"R@{k}": [red["systems"][n]["all"]["metrics"].get(f"recall@{k}") for n in names]
            for k in (1, 10, 50)
        }
        _bars(ax, names, series, "ReDial recommender turns (all targets)")
        fig.tight_layout()
        written.append(folder / "redial_by_system.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    return written


def write_report(report: Mapping[str, Any], folder: Path, plots: bool = True) -> dict[str, Path]:
    """Write results.json, results.md and the plots into `folder`; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "results.json", "markdown": folder / "results.md"}
    paths["json"].write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    paths["markdown"].write_text(markdown(report), encoding="utf-8")
    if plots:
        for p in write_plots(report, folder):
            paths[p.stem] = p
    return paths
