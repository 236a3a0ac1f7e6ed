"""The collaborative side of a run: the prior the residual mix adds to the LLM's scores, the
collaborative item table appended to item vectors, and the residual mix's starting weights."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusionrec.data.splits import id_key
from fusionrec.finetune.data import Datasets
from fusionrec.finetune.recipe import Recipe
from fusionrec.retrieval.collaborative.bpr import TABLE_FILE, collab_table, load_table, train_bpr
from fusionrec.types import Interaction

log = logging.getLogger(__name__)


def fit_priors(data: Datasets, recipe: Recipe, out: Path | None, progress: bool) -> tuple[Any, Any]:
    """(prior, prior_fit) of `recipe.data.prior` (set), and the examples' `prior` scores filled in.

    `prior` is trained on every training interaction, its component weights chosen on ALL users'
    validation targets; it scores validation (and, in the agent and the evaluation, test) examples.
    `prior_fit` is the same recipe trained without each user's training positions that the LLM
    learns from, so a training example's prior score is as out-of-sample as a test example's.
    The weight selection table goes to `out/prior_selection.json` (when `out` is given).
    """
    from fusionrec.retrieval.collaborative.prior import PriorExample, choose_weights, fit_prior

    d, seed = recipe.data, recipe.seed
    comps = ("bpr", "sasrec", "popularity") if d.prior == "auto" else (d.prior,)
    ids = sorted(data.items, key=id_key)
    splits = data.splits
    full = fit_prior({u: s.train for u, s in splits.items()}, ids, seed=seed, components=comps,
                     collab_dim=max(d.collab_dim, 8), progress=progress)  # fmt: skip
    valid = [PriorExample(e.user, splits[e.user].train, e.candidates, e.target) for e in data.valid_all]
    weights, table = choose_weights(full, valid) if d.prior == "auto" else ({d.prior: 1.0}, [])
    full.weights = weights
    if out is not None and table:
        out.mkdir(parents=True, exist_ok=True)
        (out / "prior_selection.json").write_text(json.dumps(table, indent=1), encoding="utf-8")
    first: dict[str, int] = {}
    for e in data.train:
        first[e.user] = min(first.get(e.user, e.position), e.position)
    cut = {u: s.train[: first.get(u, len(s.train))] for u, s in splits.items()}
    fit = fit_prior(cut, ids, seed=seed, components=comps, collab_dim=max(d.collab_dim, 8))
    fit.weights = dict(weights)
    for e in data.train:
        e.prior = fit.scores(e.user, splits[e.user].train[: e.position], e.candidates).tolist()
    score_valid(data, full)
    log.info("prior %s: validation %s (fit without %d training positions)", full.name,
             full.metrics.get("valid"), len(data.train))  # fmt: skip
    return full, fit


def score_valid(data: Datasets, prior: Any) -> None:
    """Fill in the validation examples' `prior` scores (each user's whole training sequence)."""
    for e in data.valid:
        e.prior = prior.scores(e.user, data.splits[e.user].train, e.candidates).tolist()


def item_table(
    data: Datasets, recipe: Recipe, saved: Sequence[Path], prior_fit: Any = None
) -> dict[str, np.ndarray]:
    """The collaborative item table (empty for `data.collab_dim` 0): the first of the `saved` checkpoint
    folders that holds one (resumed run, warm start), else the leakage-free prior's BPR, else BPR trained
    on the training split."""
    dim = recipe.data.collab_dim
    if dim <= 0:
        return {}
    for folder in saved:  # the resumed run's, or the warm start's: the vectors its LoRA was trained with
        table = load_table(folder / TABLE_FILE)
        if table:
            return table
    if prior_fit is not None and prior_fit.bpr is not None:
        return collab_table(prior_fit.bpr)
    seen = [Interaction(u, i, 1.0, t) for u, s in data.splits.items() for t, i in enumerate(s.train)]
    model = train_bpr(seen, sorted(data.items, key=id_key), dim=dim, seed=recipe.seed)
    log.info("collaborative vectors: BPR dim %d on %d training interactions (%.1f s)", dim, len(seen),
             model.seconds)  # fmt: skip
    return collab_table(model)


def warm_prior(data: Datasets, prior: Any, init: Path) -> Any:
    """A warm start keeps the prior its checkpoint was trained with (a refit SASRec differs in the last
    bits): loaded from `init` when it holds one, and the validation examples rescored with it."""
    from fusionrec.retrieval.collaborative.prior import PRIOR_FILE, Prior

    if prior is None or not (init / PRIOR_FILE).is_file():
        return prior
    kept = Prior.load(init)
    score_valid(data, kept)
    log.info("prior %s from the warm start %s", kept.name, init)
    return kept


def initial_residual(examples: Sequence[Any], file: str = "") -> Any:
    """The residual mix of a new run: the prior's weight fitted to the training examples (each with
    `prior`, `candidates`, `target`), LLM weight 0; saved as `file` (default residual.json)."""
    from fusionrec.agent.residual import RESIDUAL_FILE, Residual

    rows = [(torch.tensor(e.prior), e.candidates.index(e.target)) for e in examples if e.prior]
    best, best_loss = 1.0, float("inf")
    for w in (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0):  # the prior's temperature, by training loss
        nll = [-torch.log_softmax(w * row, 0)[t] for row, t in rows]  # candidate lists may differ in length
        loss = float(torch.stack(nll).mean()) if nll else 0.0
        if loss < best_loss:
            best, best_loss = w, loss
    log.info("residual: prior weight %.2f (training loss %.4f), LLM weight 0", best, best_loss)
    return Residual(prior_weight=best, llm_weight=0.0, file=file or RESIDUAL_FILE)
