"""Losses of the training tasks and the module that computes them (LLM + projectors + fusion).

- ranking / dialogue (verbalizer): cross-entropy over the candidates' logits — their label tokens at
  the answer position (listwise) or a score token at each candidate's item token (pointwise) — the same
  logits `agent.rank.rank_verbalizer` ranks by;
- explanation: LM loss on the explanation tokens only (labels -100 on the prompt and on soft tokens);
- alignment: LM loss on "Title (Year): genres" after a prompt holding the item's soft tokens;
- fusion (optional): cross-entropy of `retrieval.fusion.CrossModalFusion` scores over the candidates.

Examples are encoded to token ids + soft-token slots (`Encoded`), collated into left-padded batches
(`Batch`, explicit position ids, so a padded row computes exactly what the unpadded prompt does) and
fed to `RecModel.forward`, which returns the loss — one module, so DDP/FSDP see every parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fusionrec.agent import softtokens
from fusionrec.agent.projector import Projectors
from fusionrec.agent.prompt import RankPrompt
from fusionrec.agent.residual import Residual
from fusionrec.metrics import mean_metrics

RANK_TASKS = ("ranking", "dialogue")
LM_TASKS = ("explanation", "alignment")
IGNORE = -100


@dataclass
class Encoded:
    """One example as token ids with soft-token slots and its supervision."""

    task: str
    input_ids: list[int]
    slots: list[tuple[int, str, np.ndarray]] = field(default_factory=list)  # (position, modality, vector)
    target_len: int = 0  # LM tasks: the last `target_len` ids are the target
    label_ids: list[int] = field(default_factory=list)  # ranking: label token id per candidate
    target: int = -1  # ranking: index of the true candidate
    score_positions: list[int] = field(default_factory=list)  # pointwise: where each candidate is scored
    fusion: dict[str, Any] | None = None  # ranking: CrossModalFusion inputs (batch of one)
    prior: list[float] = field(default_factory=list)  # ranking: the collaborative prior's score per candidate

    def __len__(self) -> int:
        return len(self.input_ids)


def encode_rank(task: str, prompt: RankPrompt, target: int, prior: Sequence[float] = ()) -> Encoded:
    """A ranking prompt (built by agent.prompt) with the index of the true candidate (and the prior's
    score of each candidate, for residual scoring)."""
    enc = prompt.encoded
    slots = [
        (pos, prompt.soft_inputs[key].modality, prompt.soft_inputs[key].vector)
        for pos, key in zip(enc.positions, enc.keys, strict=True)
    ]
    pointwise = prompt.scoring == "pointwise"  # one score token per candidate, each at its own position
    label_ids = [prompt.score_id] * len(prompt.score_positions) if pointwise else list(prompt.label_ids)
    return Encoded(
        task,
        list(enc.input_ids),
        slots,
        label_ids=label_ids,
        target=target,
        score_positions=list(prompt.score_positions),
        prior=[float(x) for x in prior],
    )


def encode_lm(
    task: str,
    prompt_ids: Sequence[int],
    target_ids: Sequence[int],
    slots: Sequence[tuple[int, str, np.ndarray]] = (),
) -> Encoded:
    """Prompt + target ids; only the target is supervised."""
    return Encoded(task, [*prompt_ids, *target_ids], list(slots), target_len=len(target_ids))


@dataclass
class Batch:
    """Left-padded examples of one task."""

    task: str
    input_ids: torch.Tensor  # (B, L)
    attention_mask: torch.Tensor  # (B, L)
    position_ids: torch.Tensor  # (B, L)
    slot_index: list[tuple[int, int]]  # (row, column) of each soft token
    slot_modality: list[str]
    slot_vectors: list[np.ndarray]
    labels: torch.Tensor | None = None  # LM: (B, L), IGNORE outside the targets
    target_len: int = 0  # LM: the longest target
    label_ids: torch.Tensor | None = None  # ranking: (B, n) label token ids (-1 = padding)
    targets: torch.Tensor | None = None  # ranking: (B,)
    score_positions: torch.Tensor | None = None  # pointwise ranking: (B, n) columns scored (0 = padding)
    prior: torch.Tensor | None = None  # residual ranking: (B, n) prior scores (0 = padding)
    fusion: list[dict[str, Any]] = field(default_factory=list)
    n_examples: int = 0
    n_tokens: int = 0

    def to(self, device: torch.device | str) -> Batch:
        for name in (
            "input_ids",
            "attention_mask",
            "position_ids",
            "labels",
            "label_ids",
            "targets",
            "score_positions",
            "prior",
        ):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value.to(device))
        return self


def collate(examples: Sequence[Encoded], pad_id: int) -> Batch:
    """Left-pad one task's examples to a batch (position ids count real tokens only)."""
    tasks = {e.task for e in examples}
    if len(tasks) != 1:
        raise ValueError(f"a batch holds one task, got {sorted(tasks)}")
    task = tasks.pop()
    width = max(len(e) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    slot_index, slot_mod, slot_vec = [], [], []
    for r, e in enumerate(examples):
        off = width - len(e)
        ids[r, off:] = torch.tensor(e.input_ids, dtype=torch.long)
        mask[r, off:] = 1
        for pos, modality, vec in e.slots:
            slot_index.append((r, off + pos))
            slot_mod.append(modality)
            slot_vec.append(vec)
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    batch = Batch(task, ids, mask, position_ids, slot_index, slot_mod, slot_vec)
    batch.n_examples, batch.n_tokens = len(examples), int(mask.sum())
    if task in LM_TASKS:
        labels = torch.full_like(ids, IGNORE)
        for r, e in enumerate(examples):
            if e.target_len:
                labels[r, width - e.target_len :] = ids[r, width - e.target_len :]
        for r, c in slot_index:
            labels[r, c] = IGNORE
        batch.labels, batch.target_len = labels, max(e.target_len for e in examples)
    else:
        n = max(len(e.label_ids) for e in examples)
        label_ids = torch.full((len(examples), n), -1, dtype=torch.long)
        for r, e in enumerate(examples):
            label_ids[r, : len(e.label_ids)] = torch.tensor(e.label_ids, dtype=torch.long)
        batch.label_ids = label_ids
        if any(e.score_positions for e in examples):
            cols = torch.zeros((len(examples), n), dtype=torch.long)
            for r, e in enumerate(examples):
                off = width - len(e)
                cols[r, : len(e.score_positions)] = torch.tensor(e.score_positions, dtype=torch.long) + off
            batch.score_positions = cols
        batch.targets = torch.tensor([e.target for e in examples], dtype=torch.long)
        if all(e.prior for e in examples):
            prior = torch.zeros((len(examples), n), dtype=torch.float32)
            for r, e in enumerate(examples):
                prior[r, : len(e.prior)] = torch.tensor(e.prior, dtype=torch.float32)
            batch.prior = prior
        batch.fusion = [e.fusion for e in examples if e.fusion is not None]
        if len(batch.fusion) != len(examples):
            batch.fusion = []
    return batch


class RecModel(nn.Module):
    """The trainable whole: the (peft-wrapped) LLM, the projectors, the optional fusion module and the
    optional residual mix with the collaborative prior."""

    def __init__(
        self,
        llm: nn.Module,
        projectors: Projectors,
        fusion: nn.Module | None = None,
        fusion_weight: float = 0.0,
        fusion_temperature: float = 0.05,
        residual: Residual | None = None,
        llm_loss_weight: float = 0.0,
        dialogue_residual: Residual | None = None,
    ) -> None:
        super().__init__()
        self.dialogue_residual = dialogue_residual  # the ReDial task's own mix (its prior has its own scale)
        self.llm_loss_weight = llm_loss_weight
        self.llm = llm
        self.projectors = projectors
        self.fusion = fusion
        self.residual = residual
        self.fusion_weight = fusion_weight
        self.fusion_temperature = fusion_temperature

    def embeds(self, batch: Batch) -> torch.Tensor:
        """Token embeddings with the projected soft-token vectors written at the slots."""
        table = softtokens.embedding_layer(self.llm)
        if not batch.slot_index:
            return table(batch.input_ids)
        projected: list[torch.Tensor | None] = [None] * len(batch.slot_index)
        for modality in dict.fromkeys(batch.slot_modality):
            idx = [i for i, m in enumerate(batch.slot_modality) if m == modality]
            x = torch.as_tensor(np.stack([batch.slot_vectors[i] for i in idx]).astype(np.float32))
            out = self.projectors.project(modality, x)
            for k, i in enumerate(idx):
                projected[i] = out[k]
        vectors = torch.stack(projected)  # type: ignore[arg-type]
        return softtokens.inputs_embeds(self.llm, batch.input_ids, batch.slot_index, vectors)

    def label_logits(self, batch: Batch) -> torch.Tensor:
        """(B, n) candidate logits (-inf for padding): each label token at the answer position (listwise),
        or the score token at each candidate's scoring position (pointwise)."""
        pointwise = batch.score_positions is not None
        out = self.llm(
            inputs_embeds=self.embeds(batch),
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
            use_cache=False,
            logits_to_keep=batch.score_positions if pointwise else 1,
        )
        ids = batch.label_ids.clamp(min=0)
        if pointwise:
            logits = out.logits.float().gather(2, ids[..., None])[..., 0]
        else:
            logits = out.logits[:, -1].float().gather(1, ids)
        return logits.masked_fill(batch.label_ids < 0, float("-inf"))

    def residual_for(self, task: str) -> Residual | None:
        """The residual mix of a ranking task: the dialogue task's own, else the sequential one."""
        return self.dialogue_residual if task == "dialogue" else self.residual

    def rank_scores(self, batch: Batch) -> torch.Tensor:
        """(B, n) candidate scores: the LLM's logits, mixed with the prior's when the model is residual."""
        logits = self.label_logits(batch)
        residual = self.residual_for(batch.task)
        if residual is None or batch.prior is None:
            return logits
        return residual(logits, batch.prior.to(logits.device))

    def lm_loss(self, batch: Batch) -> torch.Tensor:
        """Mean cross-entropy over the target tokens (the logits of the last target_len+1 positions only)."""
        keep = batch.target_len + 1
        out = self.llm(
            inputs_embeds=self.embeds(batch),
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
            use_cache=False,
            logits_to_keep=keep,
        )
        logits = out.logits[:, :-1].float()
        gold = batch.labels[:, -keep + 1 :]
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), gold.reshape(-1), ignore_index=IGNORE)

    def fusion_loss(self, batch: Batch) -> torch.Tensor | None:
        if self.fusion is None or not batch.fusion or self.fusion_weight <= 0:
            return None
        f = batch.fusion
        device = batch.targets.device
        query = torch.cat([x["query"] for x in f]).to(device)
        items = {b: torch.cat([x["items"][b] for x in f]).to(device) for b in f[0]["items"]}
        sims = torch.cat([x["sims"] for x in f]).to(device)
        mask = torch.cat([x["mask"] for x in f]).to(device)
        scores, _ = self.fusion(query, items, sims, mask)
        return F.cross_entropy(scores / self.fusion_temperature, batch.targets)

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        """{"loss": the task loss (+ weighted fusion loss), "task": the task loss alone, ...}."""
        residual = self.residual_for(batch.task)
        if batch.task in RANK_TASKS and residual is not None and batch.prior is not None:
            llm = self.label_logits(batch)  # the residual loss, plus the LLM ranking on its own
            task_loss = F.cross_entropy(residual(llm, batch.prior.to(llm.device)), batch.targets)
            if self.llm_loss_weight > 0:
                task_loss = task_loss + self.llm_loss_weight * F.cross_entropy(llm, batch.targets)
        elif batch.task in RANK_TASKS:
            task_loss = F.cross_entropy(self.rank_scores(batch), batch.targets)
        else:
            task_loss = self.lm_loss(batch)
        out = {"loss": task_loss, "task": task_loss.detach()}
        fl = self.fusion_loss(batch) if batch.task == "ranking" else None
        if fl is not None:
            out["loss"] = task_loss + self.fusion_weight * fl
            out["fusion"] = fl.detach()
        return out


def ranks_of_targets(logits: torch.Tensor, targets: torch.Tensor) -> list[int]:
    """0-based rank of each target among its row's candidates (ties count against the target), batched
    on the device: `fusionrec.metrics.rank_by_score` of every row."""
    tgt = logits.gather(1, targets[:, None])
    return ((logits >= tgt).sum(-1) - 1).tolist()


def hr_ndcg(ranks: Sequence[int], k: int = 10) -> dict[str, float]:
    """HR@1, HR@k and NDCG@k of 0-based target ranks (`fusionrec.metrics`; all 0 for no ranks)."""
    return mean_metrics(ranks, hr_ks=(1, k), ndcg_ks=(k,))
