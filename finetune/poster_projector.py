"""`fusionrec finetune --recipe poster_projector`: train the poster -> text-space projector.

Pairs: every catalog item with a readable poster gives (its poster's native image features, the
text encoder's vector of its title, year, genres and overview: `retrieval.ingest.item_text`
without auto-labels). A seeded permutation splits the items into train / validation / test. Each
candidate of the recipe's search (closed-form ridge regressions, one per alpha; contrastive
projectors, linear or MLP, trained with a symmetric InfoNCE loss, best epoch on validation) is
fitted on the training items and scored on the validation items: poster -> own text vector
retrieval among them (hit@1, hit@10, mean rank). The best by `metric` is saved as safetensors
(`encoders.poster_projector`) and scored once on the test items, next to the zero-shot
ImageNet-label bridge on the same items (paired bootstrap intervals).

Output (``<paths.home>/checkpoints/<name>`` or ``--output``): ``poster_projector.safetensors`` and
``report.json``. Use it with ``models.poster_projector=<file>``, then ``fusionrec ingest`` (the
catalog's image_text block changes).
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec import settings
from fusionrec.config import Config
from fusionrec.finetune.recipe import RecipeError, load_recipe_as, read_recipe

log = logging.getLogger(__name__)

KIND = "poster_projector"
FILE = "poster_projector.safetensors"
METRICS = ("mean_rank", "hit@10", "hit@1")  # selection metric: mean_rank lower is better, hits higher


# --- the recipe ----------------------------------------------------------------------------------
@dataclass
class PairsSection:
    dataset: str = "movielens-100k"
    max_items: int = 0
    valid_fraction: float = 0.15
    test_fraction: float = 0.15


@dataclass
class SearchSection:
    ridge_alphas: list[float] = field(default_factory=lambda: [0.1, 0.3, 1.0, 3.0])
    contrastive_hidden: list[int] = field(default_factory=lambda: [0, 512])


@dataclass
class ContrastiveSection:
    epochs: int = 30
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.01
    temperature: float = 0.05
    dropout: float = 0.2
    eval_every: int = 1


@dataclass
class ProjectorRecipe:
    kind: str = KIND
    name: str = KIND
    seed: int = 0
    metric: str = "mean_rank"
    data: PairsSection = field(default_factory=PairsSection)
    search: SearchSection = field(default_factory=SearchSection)
    train: ContrastiveSection = field(default_factory=ContrastiveSection)
    path: str = settings.not_a_file_key()  # where it was read from (not a YAML key)


def is_projector_recipe(name: str) -> bool:
    """Whether the recipe (path or shipped name) trains the poster projector (``kind: poster_projector``)."""
    return read_recipe(name)[1].get("kind") == KIND


def load_projector_recipe(name: str, overrides: settings.Overrides | None = None) -> ProjectorRecipe:
    """Read a poster-projector recipe, apply ``train.epochs=3``-style overrides, check it."""
    recipe = load_recipe_as(ProjectorRecipe, name, overrides)
    _check(recipe)
    return recipe


def _check(r: ProjectorRecipe) -> None:
    where, d, t = r.path, r.data, r.train
    problems = [
        (r.kind != KIND, f"kind must be {KIND}"),
        (r.metric not in METRICS, f"metric must be one of {', '.join(METRICS)}"),
        (d.max_items < 0, "data.max_items must be >= 0 (0 = all)"),
        (not (0 < d.valid_fraction < 1 and 0 < d.test_fraction < 1), "data.*_fraction must be in (0, 1)"),
        (d.valid_fraction + d.test_fraction >= 0.9, "data.valid_fraction + test_fraction must be < 0.9"),
        (not (r.search.ridge_alphas or r.search.contrastive_hidden), "search: no candidate to train"),
        (any(a <= 0 for a in r.search.ridge_alphas), "search.ridge_alphas must be > 0"),
        (any(h < 0 for h in r.search.contrastive_hidden), "search.contrastive_hidden must be >= 0"),
        (
            t.epochs < 1 or t.batch_size < 2 or t.eval_every < 1,
            "train.epochs and eval_every must be >= 1, batch_size >= 2",
        ),
        (
            t.lr <= 0 or t.temperature <= 0 or t.weight_decay < 0,
            "train.lr and temperature must be > 0, weight_decay >= 0",
        ),
        (not 0 <= t.dropout < 1, "train.dropout must be in [0, 1)"),
    ]
    for bad, message in problems:
        if bad:
            raise RecipeError(f"{where}: {message}")


# --- pairs ---------------------------------------------------------------------------------------
@dataclass
class Pairs:
    """Aligned rows: item ids, unit native poster features, bridge vectors, unit text targets."""

    ids: list[str]
    native: np.ndarray
    bridge: np.ndarray
    target: np.ndarray
    image_model: str
    text_model: str


def _posters(image: Any, paths: list[str]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(native, bridge, kept row indices): a batch with a bad poster is retried one by one."""
    from fusionrec.media import MediaError

    native, bridge, kept = [], [], []
    step = image.batch_size
    for start in range(0, len(paths), step):
        rows = list(range(start, min(start + step, len(paths))))
        try:
            feats = [image.features([paths[i] for i in rows], probs=False)]
            good = rows
        except MediaError:
            feats, good = [], []
            for i in rows:
                try:
                    feats.append(image.features([paths[i]], probs=False))
                    good.append(i)
                except MediaError as exc:
                    log.warning("skipping poster %s: %s", paths[i], exc)
        native += [f.native for f in feats]
        bridge += [f.text for f in feats]
        kept += good
    return np.concatenate(native), np.concatenate(bridge), kept


def poster_pairs(cfg: Config, recipe: ProjectorRecipe) -> Pairs:
    """The recipe's items with posters, their features (the bridge encoder, never a configured
    projector) and their text targets."""
    from fusionrec import encoders
    from fusionrec.data.prepare import load_prepared
    from fusionrec.encoders.image import TimmImageEncoder
    from fusionrec.models import registry
    from fusionrec.retrieval.ingest import item_text
    from fusionrec.vectors import l2_normalise

    items = [
        i
        for i in load_prepared(cfg, recipe.data.dataset)[0]
        if i.media.get("image") and Path(i.media["image"]).is_file()
    ]
    if not items:
        raise RecipeError(f"{recipe.path}: no item of {recipe.data.dataset} has a readable poster file")
    if recipe.data.max_items and recipe.data.max_items < len(items):
        keep = np.random.default_rng(recipe.seed).permutation(len(items))[: recipe.data.max_items]
        items = [items[k] for k in sorted(keep)]
    bridge_cfg = copy.deepcopy(cfg)
    bridge_cfg.models.poster_projector = ""
    image = encoders.load_image_encoder(bridge_cfg)
    if not isinstance(image, TimmImageEncoder):
        raise RecipeError(
            f"models.image_encoder={registry.source(cfg, 'image_encoder')!r}: the poster projector "
            "replaces a timm encoder's label bridge; this encoder has its own image-text space"
        )
    native, bridge, kept = _posters(image, [i.media["image"] for i in items])
    items = [items[k] for k in kept]
    texts = [item_text(i) for i in items]
    text = image.text_encoder
    target = np.concatenate([text.encode(texts[s : s + 128]) for s in range(0, len(texts), 128)])
    return Pairs([i.id for i in items], native, bridge, l2_normalise(target), image.model_id, text.model_id)


def split_rows(n: int, recipe: ProjectorRecipe) -> dict[str, np.ndarray]:
    """Seeded train / valid / test row indices (at least 2 rows in each held-out part)."""
    n_test = int(round(recipe.data.test_fraction * n))
    n_valid = int(round(recipe.data.valid_fraction * n))
    if min(n_test, n_valid) < 2 or n - n_test - n_valid < 2:
        raise RecipeError(f"{recipe.path}: {n} items with posters are too few to split (data.max_items?)")
    perm = np.random.default_rng([recipe.seed, 1]).permutation(n)
    return {
        "test": perm[:n_test],
        "valid": perm[n_test : n_test + n_valid],
        "train": perm[n_test + n_valid :],
    }


# --- metrics -------------------------------------------------------------------------------------
def own_ranks(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """0-based rank of each row's own target among all rows' targets by cosine (ties count against)."""
    from fusionrec.vectors import l2_normalise

    s = l2_normalise(pred) @ l2_normalise(target).T
    return (s >= np.diag(s)[:, None]).sum(1) - 1


def rank_summary(ranks: np.ndarray) -> dict[str, float]:
    """hit@1, hit@10, mean rank (1 = first) and n of a set of 0-based ranks."""
    return {
        "hit@1": float(np.mean(ranks < 1)),
        "hit@10": float(np.mean(ranks < 10)),
        "mean_rank": float(np.mean(ranks + 1)),
        "n": int(ranks.size),
    }


def chance(n: int) -> dict[str, float]:
    """What a random projector scores among n items."""
    return {"hit@1": 1 / n, "hit@10": min(10, n) / n, "mean_rank": (n + 1) / 2, "n": n}


def better(a: dict[str, float], b: dict[str, float] | None, metric: str) -> bool:
    """Whether summary `a` beats `b` on `metric` (strictly; None is beaten by anything)."""
    if b is None:
        return True
    return a[metric] < b[metric] if metric == "mean_rank" else a[metric] > b[metric]


def paired_interval(a: np.ndarray, b: np.ndarray, resamples: int = 1000, seed: int = 0) -> list[float]:
    """[mean, lo, hi] of a - b over the same items (95% percentile bootstrap of the mean)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    idx = np.random.default_rng(seed).integers(0, d.size, size=(resamples, d.size))
    lo, hi = np.quantile(d[idx].mean(axis=1), [0.025, 0.975])
    return [float(d.mean()), float(lo), float(hi)]


# --- candidates ----------------------------------------------------------------------------------
def fit_ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> Any:
    """Closed-form ridge regression x -> y (centred, intercept unpenalised) as a linear projector."""
    import torch

    from fusionrec.encoders.poster_projector import PosterProjector

    mx, my = x.mean(0), y.mean(0)
    xc = (x - mx).astype(np.float64)
    w = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ (y - my))
    module = PosterProjector(x.shape[1], y.shape[1])
    linear = module.net[-1]
    with torch.no_grad():
        linear.weight.copy_(torch.as_tensor(w.T, dtype=torch.float32))
        linear.bias.copy_(torch.as_tensor(my - mx @ w, dtype=torch.float32))
    return module.eval()


def project(module: Any, x: np.ndarray) -> np.ndarray:
    import torch

    module.eval()
    with torch.inference_mode():
        return module(torch.as_tensor(x, dtype=torch.float32)).numpy()


def fit_contrastive(
    x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray, hidden: int, recipe: ProjectorRecipe
) -> tuple[Any, dict[str, Any]]:
    """A projector trained with symmetric InfoNCE (posters vs texts in a batch); the state of the
    best validation score (checked every `eval_every` epochs) is kept. Returns (module, log)."""
    import torch
    from torch.nn.functional import cross_entropy

    from fusionrec.encoders.poster_projector import PosterProjector

    t = recipe.train
    torch.manual_seed(recipe.seed)
    module = PosterProjector(x.shape[1], y.shape[1], hidden, t.dropout)
    opt = torch.optim.AdamW(module.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)
    gen = torch.Generator().manual_seed(recipe.seed)
    losses: list[float] = []
    best: tuple[dict[str, float], int, dict[str, Any]] | None = None
    for epoch in range(1, t.epochs + 1):
        module.train()
        total, batches = 0.0, 0
        for idx in torch.randperm(len(xt), generator=gen).split(t.batch_size):
            if len(idx) < 2:
                continue
            logits = module(xt[idx]) @ yt[idx].T / t.temperature
            labels = torch.arange(len(idx))
            loss = (cross_entropy(logits, labels) + cross_entropy(logits.T, labels)) / 2
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, batches = total + loss.item(), batches + 1
        losses.append(total / max(1, batches))
        if epoch % t.eval_every == 0 or epoch == t.epochs:
            score = rank_summary(own_ranks(project(module, xv), yv))
            if best is None or better(score, best[0], recipe.metric):
                best = (score, epoch, copy.deepcopy(module.state_dict()))
    assert best is not None
    module.load_state_dict(best[2])
    return module.eval(), {"best_epoch": best[1], "losses": losses}


# --- the run -------------------------------------------------------------------------------------
@dataclass
class ProjectorResult:
    path: Path  # the saved projector
    report: dict[str, Any] = field(default_factory=dict)


def train_projector(
    cfg: Config, recipe: ProjectorRecipe, output: str = "", pairs: Pairs | None = None
) -> ProjectorResult:
    """Search the candidates on validation, save the best, score it once on the test items."""
    from fusionrec.encoders.poster_projector import save_projector

    pairs = pairs or poster_pairs(cfg, recipe)
    rows = split_rows(len(pairs.ids), recipe)
    x = {k: pairs.native[v] for k, v in rows.items()}
    y = {k: pairs.target[v] for k, v in rows.items()}
    candidates: list[dict[str, Any]] = []
    best: tuple[dict[str, float], Any, dict[str, Any]] | None = None
    for alpha in recipe.search.ridge_alphas:
        module, row = fit_ridge(x["train"], y["train"], alpha), {"method": "ridge", "alpha": alpha}
        candidates.append(row)
        row["valid"] = rank_summary(own_ranks(project(module, x["valid"]), y["valid"]))
        if best is None or better(row["valid"], best[0], recipe.metric):
            best = (row["valid"], module, row)
    for hidden in recipe.search.contrastive_hidden:
        module, fit_log = fit_contrastive(x["train"], y["train"], x["valid"], y["valid"], hidden, recipe)
        row = {"method": "contrastive", "hidden": hidden, **fit_log}
        candidates.append(row)
        row["valid"] = rank_summary(own_ranks(project(module, x["valid"]), y["valid"]))
        if best is None or better(row["valid"], best[0], recipe.metric):
            best = (row["valid"], module, row)
    assert best is not None
    _, module, chosen = best
    test_proj = own_ranks(project(module, x["test"]), y["test"])
    test_bridge = own_ranks(pairs.bridge[rows["test"]], y["test"])
    report = {
        "recipe": recipe.path,
        "settings": {k: v for k, v in asdict(recipe).items() if k != "path"},
        "image_model": pairs.image_model,
        "text_model": pairs.text_model,
        "items": {k: int(v.size) for k, v in rows.items()},
        "candidates": candidates,
        "chosen": {k: v for k, v in chosen.items() if k != "losses"},
        "valid": {
            "projector": chosen["valid"],
            "bridge": rank_summary(own_ranks(pairs.bridge[rows["valid"]], y["valid"])),
            "chance": chance(int(rows["valid"].size)),
        },
        "test": {
            "projector": rank_summary(test_proj),
            "bridge": rank_summary(test_bridge),
            "chance": chance(int(rows["test"].size)),
            "projector_minus_bridge": {
                "hit@10": paired_interval(test_proj < 10, test_bridge < 10, seed=recipe.seed),
                "mean_rank": paired_interval(test_proj + 1, test_bridge + 1, seed=recipe.seed),
            },
        },
    }
    folder = Path(output).expanduser() if output else cfg.checkpoints_dir / recipe.name
    info = {k: report[k] for k in ("recipe", "items", "chosen", "test")}
    path = save_projector(module, folder / FILE, pairs.image_model, pairs.text_model, info)
    report["path"] = str(path)
    (folder / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return ProjectorResult(path, report)


def print_report(report: dict[str, Any]) -> None:
    """The chosen candidate and the held-out comparison, one line each."""

    def line(name: str, m: dict[str, float]) -> str:
        return (
            f"  {name:<10} hit@1 {m['hit@1']:.3f}  hit@10 {m['hit@10']:.3f}  mean rank {m['mean_rank']:.1f}"
        )

    chosen = {k: v for k, v in report["chosen"].items() if k != "valid"}
    print(f"chosen on validation ({report['items']['valid']} items): {json.dumps(chosen)}")
    print(line("valid", report["chosen"]["valid"]))
    print(f"test ({report['items']['test']} held-out items, poster -> own text vector among them):")
    for name in ("projector", "bridge", "chance"):
        print(line(name, report["test"][name]))
    diff = report["test"]["projector_minus_bridge"]
    print(f"  projector - bridge [mean, lo, hi]: hit@10 {diff['hit@10']}, mean rank {diff['mean_rank']}")
    print(f"wrote {report['path']} (use: models.poster_projector={report['path']}, then fusionrec ingest)")


def projector_command(cfg: Config, name: str, overrides: settings.Overrides, output: str = "") -> int:
    """`fusionrec finetune --recipe poster_projector`: train, print the held-out comparison."""
    result = train_projector(cfg, load_projector_recipe(name, overrides), output)
    print_report(result.report)
    return 0
