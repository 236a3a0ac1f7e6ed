"""The collaborative prior: a weighted mix of standardised BPR, SASRec and popularity scores.

Each component scores the candidates of one example; the scores are standardised over those
candidates (z-scores, so the components share a scale whatever the model) and mixed with weights
chosen on validation targets (`choose_weights`). The residual ranker adds the LLM's correction to
this mix (`agent.residual`). A user the BPR model never saw (a chat) is scored item-to-item from
the history instead; SASRec reads the history either way.

Saved beside an adapter as ``prior.json`` (weights, components, metrics) + ``bpr.safetensors`` /
``bpr.json`` + the SASRec folder files; no pickles.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.metrics import mean_metrics, rank_by_score
from fusionrec.retrieval.collaborative.bpr import BPRModel

COMPONENTS = ("bpr", "sasrec", "popularity")
PRIOR_FILE = "prior.json"
BPR_TENSORS = "bpr.safetensors"
BPR_JSON = "bpr.json"
GRID = (0.0, 0.25, 0.5, 0.75, 1.0)


def standardise(scores: Sequence[float]) -> np.ndarray:
    """z-scores over one candidate list; an unknown item (-inf) gets the lowest known score."""
    x = np.asarray(scores, dtype=np.float64)
    known = np.isfinite(x)
    if not known.any():
        return np.zeros_like(x)
    x = np.where(known, x, x[known].min())
    sd = x.std()
    return (x - x.mean()) / sd if sd > 1e-12 else np.zeros_like(x)


def rank_metrics(scores: Sequence[np.ndarray], targets: Sequence[int]) -> dict[str, float]:
    """HR@1 and NDCG@10 of the target index in each row (ties count against the target)."""
    m = mean_metrics((rank_by_score(s, t) for s, t in zip(scores, targets, strict=True)), (1,), (10,))
    return {"HR@1": m["hr@1"], "NDCG@10": m["ndcg@10"]}


@dataclass
class Prior:
    """Weighted standardised component scores; `weights` names the components it uses."""

    weights: dict[str, float]
    bpr: BPRModel | None = None
    sasrec: Any = None  # retrieval.collaborative.sasrec.SASRecModel
    popularity: dict[str, float] = field(default_factory=dict)  # training interactions per item
    metrics: dict[str, Any] = field(default_factory=dict)  # validation numbers behind the weights

    @property
    def name(self) -> str:
        used = [c for c in COMPONENTS if self.weights.get(c, 0.0) > 0]
        if len(used) == 1:
            return used[0]
        return "mix(" + ", ".join(f"{c} {self.weights[c]:g}" for c in used) + ")"

    def components(
        self, user: str | None, history: Sequence[str], candidates: Sequence[str], names: Sequence[str] = ()
    ) -> dict:
        """{component: standardised scores} for `names`, by default the components with a weight > 0."""
        names = names or [c for c in COMPONENTS if self.weights.get(c, 0.0) > 0]
        return {c: standardise(self._raw(c, user, history, candidates)) for c in names}

    def _raw(self, comp: str, user: str | None, history: Sequence[str], candidates: Sequence[str]) -> list:
        if comp == "bpr":
            if self.bpr is None:
                raise ValueError("the prior weighs BPR but holds no BPR model")
            if user is not None and str(user) in self.bpr.users:
                return self.bpr.scores(str(user), candidates)
            return self.bpr.item_scores(history, candidates)
        if comp == "sasrec":
            if self.sasrec is None:
                raise ValueError("the prior weighs SASRec but holds no SASRec model")
            return self.sasrec.scores(list(history), list(candidates))
        return [math.log1p(self.popularity.get(c, 0.0)) for c in candidates]

    def scores(self, user: str | None, history: Sequence[str], candidates: Sequence[str]) -> np.ndarray:
        """The prior's score of each candidate: sum of weight x standardised component score."""
        comps = self.components(user, history, candidates)
        total = np.zeros(len(candidates))
        for c, z in comps.items():
            total += self.weights[c] * z
        return total

    # --- persistence -------------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        from safetensors.numpy import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        info = {"weights": self.weights, "name": self.name, "metrics": self.metrics, "components": []}
        if self.bpr is not None and self.weights.get("bpr", 0) > 0:
            b = self.bpr
            save_file(
                {
                    "user_factors": np.ascontiguousarray(b.user_factors, dtype=np.float32),
                    "item_factors": np.ascontiguousarray(b.item_factors, dtype=np.float32),
                    "item_bias": np.ascontiguousarray(b.item_bias, dtype=np.float32),
                },
                str(folder / BPR_TENSORS),
            )
            users = sorted(b.users, key=b.users.__getitem__)
            items = sorted(b.items, key=b.items.__getitem__)
            (folder / BPR_JSON).write_text(json.dumps({"users": users, "items": items}), encoding="utf-8")
            info["components"].append("bpr")
        if self.sasrec is not None and self.weights.get("sasrec", 0) > 0:
            self.sasrec.save(folder)
            info["components"].append("sasrec")
        info["popularity"] = {k: v for k, v in self.popularity.items() if v}
        (folder / PRIOR_FILE).write_text(json.dumps(info, indent=1, sort_keys=True), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> Prior:
        """The prior saved in `folder` (ValueError naming the file when it is missing or malformed)."""
        folder = Path(folder)
        path = folder / PRIOR_FILE
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
            weights = {str(k): float(v) for k, v in info["weights"].items()}
        except FileNotFoundError:
            raise ValueError(f"{path}: missing (this checkpoint has no collaborative prior)") from None
        except (json.JSONDecodeError, KeyError, AttributeError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: malformed prior ({exc})") from None
        bpr = sasrec = None
        if "bpr" in info.get("components", []):
            from safetensors.numpy import load_file

            t = load_file(str(folder / BPR_TENSORS))
            ids = json.loads((folder / BPR_JSON).read_text(encoding="utf-8"))
            bpr = BPRModel(
                {u: k for k, u in enumerate(ids["users"])},
                {i: k for k, i in enumerate(ids["items"])},
                t["user_factors"].astype(np.float64),
                t["item_factors"].astype(np.float64),
                t["item_bias"].astype(np.float64),
            )
        if "sasrec" in info.get("components", []):
            from fusionrec.retrieval.collaborative.sasrec import SASRecModel

            sasrec = SASRecModel.load(folder)
        pop = {str(k): float(v) for k, v in info.get("popularity", {}).items()}
        return cls(weights, bpr, sasrec, pop, info.get("metrics", {}))


@dataclass
class PriorExample:
    """What a prior scores: a user (None in a chat), the history (oldest first), the candidates."""

    user: str | None
    history: list[str]
    candidates: list[str]
    target: str


def fit_prior(
    sequences: Mapping[str, Sequence[str]],
    item_ids: Sequence[str],
    *,
    seed: int = 0,
    collab_dim: int = 32,
    bpr_epochs: int = 40,
    sasrec: dict[str, Any] | None = None,
    components: Iterable[str] = COMPONENTS,
    progress: bool = False,
) -> Prior:
    """Train every component on `sequences` (training items only, time order); weights {bpr: 1} until
    `choose_weights` sets them."""
    from fusionrec.retrieval.collaborative.bpr import train_bpr
    from fusionrec.types import Interaction

    comps = set(components)
    seen = [Interaction(u, i, 1.0, t) for u, seq in sequences.items() for t, i in enumerate(seq)]
    pop: dict[str, float] = {}
    for x in seen:
        pop[x.item] = pop.get(x.item, 0.0) + 1.0
    bpr = (
        train_bpr(seen, list(item_ids), dim=collab_dim, epochs=bpr_epochs, seed=seed) if "bpr" in comps else None
    )
    sas = None
    if "sasrec" in comps:
        from fusionrec.retrieval.collaborative.sasrec import train_sasrec

        sas = train_sasrec(sequences, list(item_ids), seed=seed, progress=progress, **(sasrec or {}))
    return Prior({"bpr": 1.0}, bpr, sas, pop)


def choose_weights(
    prior: Prior, examples: Sequence[PriorExample], grid: Sequence[float] = GRID
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """The component weights with the best validation HR@1 + NDCG@10 (every trained component alone
    and every mix on the grid); returns (weights, table of all tried). Sets `prior.weights` too."""
    have = [c for c in COMPONENTS if c != "bpr" or prior.bpr is not None]
    have = [c for c in have if c != "sasrec" or prior.sasrec is not None]
    saved = prior.weights
    prior.weights = {c: 1.0 for c in have}
    comps = [prior.components(e.user, e.history, e.candidates) for e in examples]
    prior.weights = saved
    targets = [e.candidates.index(e.target) for e in examples]
    table = []
    for combo in itertools.product(grid, repeat=len(have)):
        if not any(combo) or (max(combo) < 1.0):  # scale-free: fix the largest weight at 1
            continue
        w = dict(zip(have, combo, strict=True))
        rows = [sum(w[c] * z[c] for c in have) for z in comps]
        m = rank_metrics(rows, targets)
        table.append({"weights": {c: v for c, v in w.items() if v > 0}, **m})
    best = max(table, key=lambda r: (r["HR@1"] + r["NDCG@10"], -len(r["weights"])))
    prior.weights = dict(best["weights"])
    prior.metrics = {"valid": {k: best[k] for k in ("HR@1", "NDCG@10")}, "users": len(examples)}
    return prior.weights, table
