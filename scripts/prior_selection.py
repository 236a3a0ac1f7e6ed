"""Validation HR@1 / NDCG@10 of every collaborative prior and mix that `ranker_cpu` chooses from.

The same code path as the trainer (`fit_prior` on every user's training items, `choose_weights` on
all 943 validation targets); writes the table as JSON. Usage:
    .venv/bin/python scripts/prior_selection.py docs/results/prior_selection.json
"""

from __future__ import annotations

import json
import sys

import torch

from fusionrec.config import load_config
from fusionrec.data.splits import id_key
from fusionrec.finetune.data import load_datasets
from fusionrec.finetune.recipe import load_recipe
from fusionrec.retrieval.collaborative.prior import PriorExample, choose_weights, fit_prior


def main(out: str) -> None:
    torch.set_num_threads(1)  # the trainer used 2 threads: SASRec differs in the last bits, and close mixes may swap
    cfg, recipe = load_config(), load_recipe("ranker_cpu")
    data = load_datasets(cfg, recipe)
    ids = sorted(data.items, key=id_key)
    full = fit_prior({u: s.train for u, s in data.splits.items()}, ids, seed=recipe.seed, collab_dim=32)
    valid = [PriorExample(e.user, data.splits[e.user].train, e.candidates, e.target) for e in data.valid_all]
    weights, table = choose_weights(full, valid)
    table.sort(key=lambda r: -(r["HR@1"] + r["NDCG@10"]))
    with open(out, "w", encoding="utf-8") as fh:
        json.dump({"chosen": weights, "users": len(valid), "table": table}, fh, indent=1)
    print(weights, table[0])


if __name__ == "__main__":
    main(sys.argv[1])
