"""Ranking metrics for one ranked list, aggregate statistics and seeded bootstrap intervals.

Ranks are 1-based here (they are stored in the per-example records); a target that is not in the
list has rank None and scores 0 on every metric. The values come from `fusionrec.metrics` (0-based
ranks), the same functions training and the prior report with. Per-example functions take the ranked
ids (best first) and the target id(s); `aggregate` turns per-example values into a mean with a
percentile bootstrap interval (numpy, seeded).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fusionrec import metrics as shared

DEFAULT_KS = (1, 5, 10)
NDCG_KS = (5, 10)
INVALID_KINDS = ("not a candidate", "unparseable", "duplicate", "already seen")


# --- one ranked list -------------------------------------------------------------------------------
def _zero_based(rank: int | None) -> int | None:
    return None if rank is None else rank - 1


def rank_of(ranked: Sequence[str], target: str) -> int | None:
    """1-based position of `target` in `ranked`, None when absent."""
    r = shared.rank_in(ranked, target)
    return None if r is None else r + 1


def hit_at(rank: int | None, k: int) -> float:
    """HR@k of one example (1-based rank): 1 when the target is in the top k."""
    return shared.hit(_zero_based(rank), k)


def ndcg_at(rank: int | None, k: int) -> float:
    """NDCG@k of one example (1-based rank): 1 / log2(rank + 1) inside the top k, else 0."""
    return shared.ndcg(_zero_based(rank), k)


def reciprocal_rank(rank: int | None) -> float:
    """MRR term of one example (1-based rank): 1 / rank, 0 when absent."""
    return shared.reciprocal_rank(_zero_based(rank))


def example_metrics(
    ranked: Sequence[str], target: str, ks: Sequence[int] = DEFAULT_KS, ndcg_ks: Sequence[int] = NDCG_KS
) -> dict[str, float]:
    """HR@k, NDCG@k and MRR of one ranked list against one target."""
    r = rank_of(ranked, target)
    out = {f"hr@{k}": hit_at(r, k) for k in ks}
    out.update({f"ndcg@{k}": ndcg_at(r, k) for k in ndcg_ks})
    out["mrr"] = reciprocal_rank(r)
    return out


# --- generative output ----------------------------------------------------------------------------
def classify_invalid(invalid: Sequence[str], seen_titles: Iterable[str] = ()) -> dict[str, int]:
    """Count invalid generated answers by kind.

    `invalid` holds `agent.rank.parse_generated`'s strings ("<kind>: <answer>"); an unparseable or
    non-candidate answer that names an item the user has already seen (a history title) counts as
    "already seen" instead.
    """
    seen = {form for t in seen_titles for form in _title_forms(t)}
    counts = dict.fromkeys(INVALID_KINDS, 0)
    for entry in invalid:
        kind, _, answer = entry.partition(": ")
        kind = kind.strip().lower()
        if kind != "duplicate" and _norm(answer) and any(_matches(_norm(answer), t) for t in seen):
            kind = "already seen"
        counts[kind if kind in counts else "unparseable"] += 1
    return counts


def _norm(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", " ", str(text).lower()).strip()


def _title_forms(title: str) -> set[str]:
    """A catalog title normalised, also with a trailing article moved to the front and without a year."""
    title = re.sub(r"\s*\(\d{4}\)\s*$", "", str(title)).strip()
    forms = {title}
    m = re.match(r"^(.*), (The|A|An)$", title)
    if m:
        forms.add(f"{m.group(2)} {m.group(1)}")
    return {_norm(f) for f in forms if _norm(f)}


def _matches(answer: str, title: str) -> bool:
    return answer == title or (len(answer) > 3 and (answer in title or title in answer))


def generative_summary(records: Sequence[Mapping]) -> dict[str, float]:
    """Error rates and HR@1 of generated rankings.

    Each record has `answers` (candidate ids the model wrote, in order), `invalid_counts` (from
    `classify_invalid`) and `target`. A record is VALID when the model named at least one candidate
    and wrote no invalid answer. Rates are per written answer; HR@1 counts the model's own first
    answer only (a fallback order is never credited): unconditional over all records, conditional
    over the valid ones.
    """
    n = len(records)
    answers = sum(len(r["answers"]) for r in records)
    kinds = {k: sum(r["invalid_counts"].get(k, 0) for r in records) for k in INVALID_KINDS}
    written = answers + sum(kinds.values())
    valid = [r for r in records if r["answers"] and not sum(r["invalid_counts"].values())]
    first_hit = [1.0 if r["answers"] and r["answers"][0] == r["target"] else 0.0 for r in records]
    valid_hit = [1.0 if r["answers"][0] == r["target"] else 0.0 for r in valid]
    out = {
        "examples": float(n),
        "valid_ratio": len(valid) / n if n else 0.0,
        "answers_per_example": written / n if n else 0.0,
        "hr@1_unconditional": float(np.mean(first_hit)) if n else 0.0,
        "hr@1_conditional_on_valid": float(np.mean(valid_hit)) if valid else 0.0,
    }
    for kind, count in kinds.items():
        out[f"rate_{kind.replace(' ', '_')}"] = count / written if written else 0.0
    return out


# --- agreement between two rankings ---------------------------------------------------------------
def kendall_tau(a: Sequence[str], b: Sequence[str]) -> float:
    """Kendall's tau-a between two orderings of the same ids (1 = same order, -1 = reversed)."""
    in_b = set(b)
    common = [x for x in a if x in in_b]
    n = len(common)
    if n < 2:
        return 1.0
    pos_b = {x: i for i, x in enumerate(b)}
    concordant = discordant = 0
    for i in range(n):
        for j in range(i + 1, n):
            if pos_b[common[i]] < pos_b[common[j]]:
                concordant += 1
            else:
                discordant += 1
    return (concordant - discordant) / (n * (n - 1) / 2)


# --- aggregation ----------------------------------------------------------------------------------
@dataclass
class Estimate:
    """A mean with its bootstrap interval (lo == hi == mean when no resampling was done)."""

    mean: float
    lo: float
    hi: float
    n: int

    def as_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "lo": self.lo, "hi": self.hi, "n": self.n}


def bootstrap_ci(
    values: Sequence[float], resamples: int = 1000, seed: int = 0, alpha: float = 0.05
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (seeded numpy Generator; same seed, same interval)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return 0.0, 0.0
    if resamples <= 0 or x.size == 1:
        m = float(x.mean())
        return m, m
    rng = np.random.default_rng(seed)
    means = np.empty(resamples, dtype=np.float64)
    for start in range(0, resamples, 256):  # bounded memory for large n
        stop = min(resamples, start + 256)
        idx = rng.integers(0, x.size, size=(stop - start, x.size))
        means[start:stop] = x[idx].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def aggregate(values: Sequence[float], resamples: int = 1000, seed: int = 0) -> Estimate:
    """Mean of per-example values with a 95% bootstrap interval."""
    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean()) if x.size else 0.0
    lo, hi = bootstrap_ci(x, resamples, seed)
    return Estimate(mean, lo, hi, int(x.size))


def aggregate_metrics(
    per_example: Sequence[Mapping[str, float]], resamples: int = 1000, seed: int = 0
) -> dict[str, dict[str, float]]:
    """{metric: {mean, lo, hi, n}} over per-example metric dicts (every key of the first one)."""
    if not per_example:
        return {}
    keys = list(per_example[0])
    return {k: aggregate([m[k] for m in per_example], resamples, seed).as_dict() for k in keys}


def paired_difference(
    a: Sequence[float], b: Sequence[float], resamples: int = 1000, seed: int = 0
) -> list[float]:
    """[mean, lo, hi] of the per-user differences a - b: the same users are resampled for both
    systems (95% percentile bootstrap interval of the mean difference)."""
    if len(a) != len(b):
        raise ValueError(f"paired values of different lengths: {len(a)} and {len(b)}")
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    mean = float(d.mean()) if d.size else 0.0
    lo, hi = bootstrap_ci(d, resamples, seed)
    return [mean, lo, hi]


def ratio(flags: Sequence[bool]) -> float:
    """Share of True values (valid ratio, fact-check pass rate); 0 for an empty list."""
    return float(np.mean(np.asarray(flags, dtype=np.float64))) if len(flags) else 0.0


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """Per-example latency: mean, p50, p95 and total, in seconds."""
    x = np.asarray(seconds, dtype=np.float64)
    if x.size == 0:
        return {"mean_s": 0.0, "p50_s": 0.0, "p95_s": 0.0, "total_s": 0.0, "n": 0}
    return {
        "mean_s": float(x.mean()),
        "p50_s": float(np.percentile(x, 50)),
        "p95_s": float(np.percentile(x, 95)),
        "total_s": float(x.sum()),
        "n": int(x.size),
    }
