"""Modality x fusion ablations and the modality-contribution report (ML-100k leave-one-out).

Retrieval-only: every modality set (text, +image, +audio, +video, all) under every fusion strategy
(early, late, cross), scored from the stored vectors. LLM: the verbalizer re-scores the same prompt
with different hybrid item tokens: none (titles only), one modality, several fused early (weighted
mean of their projected soft tokens), late (weighted mean of per-modality label log-probs) or cross
(per-modality log-probs weighted by the cross-modal attention module). Contribution: how much the
ranking moves when one modality is dropped at test time (Kendall tau to the full ranking, and the
change in HR/NDCG), per user, with bootstrap intervals.

Images, text+image vs text: on every split the paired bootstrap difference (text+image - text) per
fusion under the configured weights, and a verdict line. On the validation split
(``eval.split=valid``) also the image block weights (``image``: native poster features,
``image_text``: the poster in the text space) tried on a grid for the fusions they act on (early,
late; cross learns its own): the highest NDCG@10 among the weights whose HR@10 is at least text's
is the weight to configure, and the test split then reports it once (``retrieval.weights``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from fusionrec.evaluation.baselines import RetrievalRanker, load_cross, order_by
from fusionrec.evaluation.metrics import aggregate, example_metrics, kendall_tau, paired_difference
from fusionrec.evaluation.records import Records
from fusionrec.evaluation.vectors import MODALITIES, MODALITY_BLOCKS, NATIVE_BLOCK, has_blocks
from fusionrec.retrieval.fusion import FUSIONS, block_weight

SETS = (("text",), ("text", "image"), ("text", "audio"), ("text", "video"), MODALITIES)
REPORT_METRICS = ("hr@1", "hr@5", "hr@10", "ndcg@10", "mrr")
IMAGE_GRID = {"image": (0.0, 0.25, 0.5), "image_text": (0.0, 0.25, 0.5, 1.0, 2.0)}  # tried on validation
WEIGHTED = ("early", "late")  # the fusions retrieval.weights act on (cross weighs blocks by attention)


def set_name(mods: Sequence[str]) -> str:
    if tuple(mods) == MODALITIES:
        return "all"
    return "+".join(mods)


def _missing_reason(table: Any, mods: Sequence[str]) -> str:
    lacking = [m for m in mods if not (set(table.blocks()) & set(MODALITY_BLOCKS[m]))]
    return (
        f"no {', '.join(lacking)} vectors in the store: ingest them "
        f"(data.generated_media=true fusionrec ingest --modalities text,image,audio,video)"
    )


def _metrics(orders: Mapping[str, list[str]], targets: Mapping[str, str], resamples: int, seed: int) -> dict:
    per = [example_metrics(orders[k], targets[k]) for k in orders]
    return {m: aggregate([p[m] for p in per], resamples, seed).as_dict() for m in REPORT_METRICS}


def _contribution(
    base: Mapping[str, list[str]],
    dropped: Mapping[str, list[str]],
    targets: Mapping[str, str],
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    """Kendall tau between the full and the dropped ranking, and metric deltas (dropped - full)."""
    keys = list(base)
    taus = [kendall_tau(base[k], dropped[k]) for k in keys]
    out = {"kendall_tau": aggregate(taus, resamples, seed).as_dict()}
    full = [example_metrics(base[k], targets[k]) for k in keys]
    drop = [example_metrics(dropped[k], targets[k]) for k in keys]
    for m in ("hr@1", "hr@10", "ndcg@10"):
        out[f"delta_{m}"] = aggregate(
            [d[m] - f[m] for f, d in zip(full, drop, strict=True)], resamples, seed
        ).as_dict()
    out["changed_top1"] = float(np.mean([base[k][0] != dropped[k][0] for k in keys])) if keys else 0.0
    return out


def retrieval_ablations(run: Any) -> dict[str, Any]:
    """Retrieval-only metrics for each (fusion, modality set) and the drop-one-modality report."""
    cfg, ecfg = run.cfg, run.ecfg
    table = run.table
    rcfg = cfg.retrieval
    cross, trained = load_cross(cfg, table)
    examples = run.examples
    targets = {e.key: e.target for e in examples}
    available = table.modalities()
    rows: list[dict[str, Any]] = []
    orders_by: dict[tuple, dict[str, list[str]]] = {}

    def orders(
        fusion: str, mods: Sequence[str], weights: Mapping[str, float] | None = None
    ) -> dict[str, list[str]]:
        weights = dict(rcfg.weights if weights is None else weights)
        key = (
            fusion,
            tuple(m for m in MODALITIES if m in mods and m in available),
            tuple(sorted(weights.items())),
        )
        if key not in orders_by:
            ranker = RetrievalRanker(table, key[1], fusion, weights, rcfg.late_combine, cross)
            orders_by[key] = {
                e.key: ranker.rank(e.key, e.candidates, e.history)
                for e in run.bar(examples, f"ablation {fusion} {'+'.join(key[1])}")
            }
        return orders_by[key]

    for fusion in FUSIONS:
        for mods in SETS:
            row: dict[str, Any] = {"fusion": fusion, "modalities": set_name(mods)}
            if not has_blocks(table, mods):
                if tuple(mods) != MODALITIES:
                    rows.append({**row, "available": False, "reason": _missing_reason(table, mods)})
                    continue
                if any(set(m) == set(available) for m in SETS[:-1]):
                    continue  # "all" is one of the sets above (e.g. text+image)
                row["modalities"] = f"all ({'+'.join(available)})"
            row.update(
                {
                    "available": True,
                    "metrics": _metrics(orders(fusion, mods), targets, ecfg.bootstrap, ecfg.seed),
                }
            )
            rows.append(row)
    base_fusion = rcfg.fusion
    base = orders(base_fusion, available)
    contribution = {}
    for m in available:
        rest = [x for x in available if x != m]
        if not rest:
            continue
        contribution[m] = _contribution(base, orders(base_fusion, rest), targets, ecfg.bootstrap, ecfg.seed)
    images = (
        image_weights(orders, targets, run.ecfg.split, rcfg.weights, ecfg.bootstrap, ecfg.seed)
        if has_blocks(table, ("text", "image"))
        else None
    )
    return {
        "system": "retrieval-only",
        "users": len(examples),
        "available_modalities": available,
        "images": images,
        "coverage": table.coverage(),
        "vectors": table.source,
        "cross_trained": trained,
        "rows": rows,
        "contribution": {"fusion": base_fusion, "base": "+".join(available), "dropped": contribution},
    }


def _paired(
    a: Mapping[str, list[str]],
    b: Mapping[str, list[str]],
    targets: Mapping[str, str],
    resamples: int,
    seed: int,
) -> dict[str, list[float]]:
    """[mean, lo, hi] of a - b per metric over the same users (paired bootstrap)."""
    pa = [example_metrics(a[k], targets[k]) for k in targets]
    pb = [example_metrics(b[k], targets[k]) for k in targets]
    return {
        m: paired_difference([x[m] for x in pa], [x[m] for x in pb], resamples, seed)
        for m in ("hr@10", "ndcg@10")
    }


def image_weights(
    orders: Callable[..., dict[str, list[str]]],
    targets: Mapping[str, str],
    split: str,
    configured: Mapping[str, float],
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    """text+image vs text per fusion under the configured weights (paired), a verdict line, and on
    the validation split the image block weights of the early and late fusions chosen on a grid: the
    highest NDCG@10 among the weights that keep HR@10 at least text's (image weights 0 always do)."""
    text = {f: orders(f, ("text",)) for f in FUSIONS}
    paired = {f: _paired(orders(f, ("text", "image")), text[f], targets, resamples, seed) for f in FUSIONS}
    out: dict[str, Any] = {
        "split": split,
        "weights": {b: block_weight(configured, b) for b in ("image", "image_text")},
        "text_image_minus_text": paired,
    }
    if split == "valid":
        grid, chosen = [], {}
        for fusion in WEIGHTED:
            best = None  # the highest NDCG@10 among the weights whose HR@10 is at least text's
            for wi in IMAGE_GRID["image"]:
                for wt in IMAGE_GRID["image_text"]:
                    ranked = orders(fusion, ("text", "image"), {**configured, "image": wi, "image_text": wt})
                    per = [example_metrics(ranked[k], targets[k]) for k in targets]
                    row = {
                        "fusion": fusion,
                        "image": wi,
                        "image_text": wt,
                        "hr@10": float(np.mean([p["hr@10"] for p in per])),
                        "ndcg@10": float(np.mean([p["ndcg@10"] for p in per])),
                        "minus_text": _paired(ranked, text[fusion], targets, resamples, seed),
                    }
                    grid.append(row)
                    if row["minus_text"]["hr@10"][0] >= 0 and (
                        best is None or row["ndcg@10"] > best["ndcg@10"]
                    ):
                        best = row  # ties keep the smaller image weights (tried first); 0, 0 is text itself
            chosen[fusion] = {k: best[k] for k in ("image", "image_text", "hr@10", "ndcg@10", "minus_text")}
        out.update({"grid": grid, "chosen": chosen})
    out["note"] = _image_note(out)
    return out


def _image_note(images: Mapping[str, Any]) -> str:
    """One line: where text+image is below text under the configured weights, and the chosen weights."""

    def fmt(d: Sequence[float]) -> str:
        return f"{d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}]"

    w = images["weights"]
    diffs = images["text_image_minus_text"]
    parts = [f"{f} {fmt(d['hr@10'])}" for f, d in diffs.items()]
    hurt = [f for f, d in diffs.items() if d["hr@10"][0] < 0]
    note = (
        f"Images ({images['split']} split, weights image={w['image']:g}, image_text={w['image_text']:g}): "
        f"text+image - text HR@10 {'; '.join(parts)}. "
    )
    note += (
        f"Images hurt under {', '.join(hurt)} here: keep their weights at 0 for item-to-item and text queries "
        "(retrieval.weights) unless the validation grid finds a weight that helps."
        if hurt
        else "Images do not hurt under any fusion here."
    )
    for fusion, c in (images.get("chosen") or {}).items():
        note += (
            f" Chosen on validation for {fusion}: image={c['image']:g}, image_text={c['image_text']:g} "
            f"(HR@10 {c['hr@10']:.3f}, - text {fmt(c['minus_text']['hr@10'])}; "
            f"NDCG@10 {c['ndcg@10']:.3f}, - text {fmt(c['minus_text']['ndcg@10'])})."
        )
    return note


def _llm_sets(singles: Sequence[str]) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """(modality sets shown in the table, sets needed for drop-one) limited to available singles."""
    shown = []
    for mods in SETS:
        s = tuple(m for m in mods if m in singles)
        if (len(s) == len(mods) or (tuple(mods) == MODALITIES and s)) and s not in shown:
            shown.append(s)
    full = tuple(singles)
    drops = [tuple(x for x in full if x != m) for m in singles if len(full) > 1]
    return shown, drops


def llm_item_token_ablation(run: Any) -> dict[str, Any]:
    """The verbalizer's ranking under different item tokens, on the `llm_ablation_limit` users."""
    from fusionrec.evaluation.llm import ItemTokenAblation, LLMRanker

    cfg, ecfg, table = run.cfg, run.ecfg, run.table
    prefix = "lora" if run.adapter is not None and run.adapter.is_dir() else "zeroshot"
    agent = run.agent(prefix)
    cross, trained = load_cross(cfg, table)
    abl = ItemTokenAblation(agent, table, cfg.retrieval.weights, cross)
    ranker = LLMRanker(agent, "verbalizer", run.settings(prefix), "ablation")
    n_hist = ranker.settings.history_len
    singles = [m for m in MODALITIES if NATIVE_BLOCK[m] in table.blocks()]
    shown, drops = _llm_sets(singles)
    multi = [s for s in dict.fromkeys([*shown, *drops]) if len(s) > 1]
    records = Records(run.folder, "ml100k-loo", f"{prefix}-item-tokens")
    examples = run.ablation_examples
    for ex in run.bar([e for e in examples if e.key not in records], f"{prefix} item-token ablation"):
        p_none = ranker.loo_prompt(run.items, ex.history, ex.candidates, vectors=None)
        text = {i: table.get("text", i) for i in [*ex.history, *ex.candidates]}
        p_slots = ranker.loo_prompt(run.items, ex.history, ex.candidates, vectors=text)
        shown_hist = ex.history[-n_hist:] if n_hist > 0 else []
        slots = {f"item:{k}": h for k, h in enumerate(shown_hist)}
        slots.update({f"item:{lab}": c for lab, c in zip(p_slots.labels, ex.candidates, strict=True)})
        lp = {"none": abl.logprobs(p_none, None)}
        for m in singles:
            lp[m] = abl.logprobs(p_slots, [m], slots)
        for s in multi:
            lp["early:" + "+".join(s)] = abl.logprobs(p_slots, s, slots)
        records.add(
            ex.key, {"target": ex.target, "logprobs": {k: [float(x) for x in v] for k, v in lp.items()}}
        )

    targets = {e.key: e.target for e in examples}
    recs = {e.key: records.get(e.key) for e in examples if e.key in records}

    def ranked(score: Callable[[Any, dict], np.ndarray]) -> dict[str, list[str]]:
        return {
            k: order_by(run.by_key[k].candidates, list(score(run.by_key[k], r["logprobs"])))
            for k, r in recs.items()
        }

    def early(mods: Sequence[str]) -> Callable[[Any, dict], np.ndarray]:
        return lambda ex, lp: np.asarray(lp[mods[0]] if len(mods) == 1 else lp["early:" + "+".join(mods)])

    def late(mods: Sequence[str]) -> Callable[[Any, dict], np.ndarray]:
        return lambda ex, lp: abl.late({m: np.asarray(lp[m]) for m in mods}, mods, ex.candidates)

    def crossed(mods: Sequence[str]) -> Callable[[Any, dict], np.ndarray]:
        return lambda ex, lp: abl.cross_fused(
            {m: np.asarray(lp[m]) for m in mods}, mods, ex.candidates, ex.history
        )

    rows = [
        {
            "item_tokens": "none (titles only)",
            "fusion": "-",
            "metrics": _metrics(
                ranked(lambda ex, lp: np.asarray(lp["none"])), targets, ecfg.bootstrap, ecfg.seed
            ),
        }
    ]
    for s in shown:
        name = set_name(s)
        fusions = (
            {"early": early(s)} if len(s) == 1 else {"early": early(s), "late": late(s), "cross": crossed(s)}
        )
        for fusion, fn in fusions.items():
            rows.append(
                {
                    "item_tokens": name,
                    "fusion": fusion,
                    "metrics": _metrics(ranked(fn), targets, ecfg.bootstrap, ecfg.seed),
                }
            )
    contribution = {}
    full = tuple(singles)
    if len(full) > 1:
        base = ranked(early(full))
        for m in singles:
            rest = tuple(x for x in full if x != m)
            contribution[m] = _contribution(base, ranked(early(rest)), targets, ecfg.bootstrap, ecfg.seed)
    return {
        "system": "lora-llm" if prefix == "lora" and run.residual else f"{prefix}-verbalizer",
        "users": len(recs),
        "projectors": "trained (adapter)" if prefix == "lora" else "untrained (random init, seed agent.seed)",
        "cross_trained": trained,
        "passes_per_user": 1 + len(singles) + len(multi),
        "rows": rows,
        "contribution": {"fusion": "early", "base": "+".join(full), "dropped": contribution},
    }
