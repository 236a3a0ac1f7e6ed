"""Validation during training: the verbalizer ranks each validation example's candidates (every item
hybrid), split over the processes and gathered; and the popularity baseline of the same sets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from fusionrec.data.loo import LOOExample
from fusionrec.finetune.encode import ExampleEncoder
from fusionrec.finetune.tasks import RecModel, collate, hr_ndcg, ranks_of_targets


@torch.no_grad()
def validate(
    model: RecModel,
    encoder: ExampleEncoder,
    examples: Sequence[Any],
    acc: Any,
    batch_size: int,
    pad_id: int,
    dialogue: bool = False,
) -> dict[str, float]:
    """HR@1, HR@10, NDCG@10, loss and n over `examples` (this process takes every world-th one; `acc` is
    the run's accelerate.Accelerator); with a residual mix also the LLM's and the prior's HR@1 alone and
    the mix weights; `dialogue`: the examples are ReDial turns. The model's train/eval mode is left as it was."""
    from accelerate.utils import gather_object

    was_training = model.training
    model.eval()
    mine = examples[acc.process_index :: acc.num_processes]
    encode = encoder.dialogue_evaluation if dialogue else encoder.evaluation
    residual = model.residual_for("dialogue" if dialogue else "ranking")
    rows: list[tuple[int, float, int, int]] = []  # (rank, loss, LLM-alone rank, prior-alone rank)
    for start in range(0, len(mine), batch_size):
        batch = collate([encode(e) for e in mine[start : start + batch_size]], pad_id)
        batch.to(acc.device)
        with acc.autocast():
            llm = model.label_logits(batch)
        logits = llm if residual is None or batch.prior is None else residual(llm, batch.prior)
        prior = batch.prior.masked_fill(torch.isinf(llm), float("-inf")) if batch.prior is not None else llm
        losses = torch.nn.functional.cross_entropy(logits, batch.targets, reduction="none")
        ranks = [ranks_of_targets(x, batch.targets) for x in (logits, llm, prior)]
        rows += list(zip(ranks[0], losses.tolist(), ranks[1], ranks[2], strict=True))
    if acc.num_processes > 1:
        rows = gather_object(rows)
    model.train(was_training)
    metrics = hr_ndcg([r[0] for r in rows])
    metrics["loss"] = float(np.mean([r[1] for r in rows])) if rows else float("nan")
    metrics["n"] = len(rows)
    if residual is not None:
        metrics["llm_hr@1"] = hr_ndcg([r[2] for r in rows])["hr@1"]
        metrics["prior_hr@1"] = hr_ndcg([r[3] for r in rows])["hr@1"]
        metrics.update(residual.weights())
    return metrics


def popularity_metrics(examples: Sequence[LOOExample], popularity: dict[str, int]) -> dict[str, float]:
    """HR/NDCG of ranking each example's candidates by training popularity (the baseline to beat)."""
    ranks = []
    for ex in examples:
        scores = torch.tensor([[float(popularity.get(i, 0)) for i in ex.candidates]])
        ranks += ranks_of_targets(scores, torch.tensor([ex.candidates.index(ex.target)]))
    return hr_ndcg(ranks)
