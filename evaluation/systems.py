"""System names, `--systems` selection, and turning per-example records into reported numbers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from fusionrec.evaluation.metrics import (
    aggregate_metrics,
    classify_invalid,
    example_metrics,
    generative_summary,
    latency_summary,
    paired_difference,
    ratio,
)

CLASSIC = ("random", "popularity", "bpr", "sasrec", "retrieval")
GROUPS = {
    "baselines": ("random", "popularity", "bpr", "sasrec", "retrieval"),
    "llm": ("zeroshot", "lora"),
}
# A residual adapter's three views of one forward pass (agent.Agent.score_views), as LoRA systems.
RESIDUAL_VIEWS = ("hybrid", "llm", "prior")
# What the shipped ranker is compared with, paired on the users both ranked.
PAIRED_WITH = ("lora-prior", "popularity", "bpr", "sasrec", "zeroshot-verbalizer", "lora-llm")
PAIRED_METRICS = {"HR@1": "hr@1", "NDCG@10": "ndcg@10"}


class SystemsError(ValueError):
    """`--systems` names a system that does not exist or is not available in this setup."""


def llm_names(prefix: str, templates: Sequence[str], default_template: str) -> list[str]:
    """zeroshot-verbalizer, zeroshot-generative, and zeroshot-verbalizer/<template> per other template."""
    names = [f"{prefix}-verbalizer", f"{prefix}-generative"]
    names += [f"{prefix}-verbalizer/{t}" for t in templates if t != default_template]
    return names


def parse_llm_name(name: str, default_template: str) -> tuple[str, str, str]:
    """(model prefix, method, template) of an LLM system name."""
    head, _, template = name.partition("/")
    prefix, _, method = head.partition("-")
    return prefix, method, template or default_template


def select(available: Sequence[str], wanted: str, unavailable: Mapping[str, str] | None = None) -> list[str]:
    """The available systems named by a comma list (exact names, prefixes, or the groups
    `baselines` and `llm`); all of them when `wanted` is empty."""
    tokens = [t.strip() for t in wanted.split(",") if t.strip()]
    if not tokens:
        return list(available)
    unavailable = unavailable or {}
    chosen: list[str] = []
    for tok in tokens:
        if tok in available:  # an exact name selects that system only
            hits = [tok]
        else:
            prefixes = GROUPS.get(tok, (tok,))
            hits = [
                n
                for n in available
                if any(n.startswith(p + "-") or n.startswith(p + "/") or n == p for p in prefixes)
            ]
        if not hits:
            reason = next(
                (why for n, why in unavailable.items() if tok.startswith(n) or n.startswith(tok)), ""
            )
            known = ", ".join([*available, *GROUPS])
            raise SystemsError(
                f"--systems: {tok!r} "
                + (f"is not available: {reason}" if reason else f"is unknown (known: {known})")
            )
        chosen += [h for h in hits if h not in chosen]
    return [n for n in available if n in chosen]


def summarize(
    records: Iterable[Mapping[str, Any]],
    candidates: Mapping[str, Sequence[str]],
    resamples: int,
    seed: int,
    seen_titles: Callable[[Mapping[str, Any]], list[str]] | None = None,
) -> dict[str, Any]:
    """Metrics (with bootstrap intervals), valid ratio, latency and, for generative records, error rates."""
    recs = list(records)
    if not recs:
        return {"n": 0}
    per = [example_metrics(r["order"], r["target"]) for r in recs]
    valid = [sorted(r["order"]) == sorted(candidates[r["key"]]) for r in recs]
    out: dict[str, Any] = {
        "n": len(recs),
        "metrics": aggregate_metrics(per, resamples, seed),
        "permutation_ratio": ratio(valid),
        "latency": latency_summary([float(r.get("seconds", 0.0)) for r in recs]),
    }
    if any("answers" in r for r in recs):
        gen = []
        for r in recs:
            titles = seen_titles(r) if seen_titles else []
            gen.append(
                {
                    "answers": r["answers"],
                    "target": r["target"],
                    "invalid_counts": classify_invalid(r["invalid"], titles),
                }
            )
        out["generative"] = generative_summary(gen)
        out["valid_ratio"] = out["generative"]["valid_ratio"]
    else:
        out["valid_ratio"] = out["permutation_ratio"]
    return out


def shipped_system(names: Iterable[str]) -> str | None:
    """The system that stands for the shipped ranker: lora-hybrid, else lora-verbalizer."""
    ran = set(names)
    return next((n for n in ("lora-hybrid", "lora-verbalizer") if n in ran), None)


def paired(
    records: Mapping[str, Any], shipped: str, keys: Sequence[str], resamples: int, seed: int
) -> dict[str, dict[str, Any]]:
    """{"A - B": {"HR@1": [mean, lo, hi], "NDCG@10": [...], "users": n}}: the shipped system minus each
    of `PAIRED_WITH` that ran, on the `keys` both ranked (`records`: name -> key -> record)."""
    a = records[shipped]
    out: dict[str, dict[str, Any]] = {}
    for other in PAIRED_WITH:
        if other == shipped or other not in records:
            continue
        b = records[other]
        common = [k for k in keys if k in a and k in b]
        if not common:
            continue
        ma = [example_metrics(a.get(k)["order"], a.get(k)["target"]) for k in common]
        mb = [example_metrics(b.get(k)["order"], b.get(k)["target"]) for k in common]
        row: dict[str, Any] = {
            label: paired_difference([m[key] for m in ma], [m[key] for m in mb], resamples, seed)
            for label, key in PAIRED_METRICS.items()
        }
        row["users"] = len(common)
        out[f"{shipped} - {other}"] = row
    return out
