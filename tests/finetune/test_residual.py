"""Residual scoring: the hybrid ranks like the prior at initialisation; the checkpoint carries the prior
and the agent ranks with it (always a permutation of the candidates)."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from fusionrec.agent.residual import Residual
from fusionrec.finetune.recipe import load_recipe
from fusionrec.finetune.run import train
from fusionrec.retrieval.collaborative.prior import Prior
from tests.finetune.conftest import SMALL


def test_residual_mix_ranks_like_the_prior_while_the_llm_weight_is_zero():
    gen = torch.Generator().manual_seed(0)
    llm = torch.randn(5, 20, generator=gen) * 8
    llm[0, 15:] = float("-inf")  # padding stays padding
    prior = torch.randn(5, 20, generator=gen)
    mixed = Residual(prior_weight=1.7)(llm, prior)
    assert torch.isinf(mixed[0, 15:]).all()
    assert torch.equal(mixed[1:].argsort(-1, descending=True), prior[1:].argsort(-1, descending=True))
    assert torch.equal(mixed[0, :15].argsort(descending=True), prior[0, :15].argsort(descending=True))
    moved = Residual(prior_weight=1.7, llm_weight=0.5)(llm, prior)
    assert not torch.equal(moved[1:].argsort(-1, descending=True), prior[1:].argsort(-1, descending=True))


def test_ranker_recipe_starts_at_its_prior_and_the_agent_ranks_with_it(ft_cfg, tiny_llm, tmp_path, ml100k):
    overrides = {
        **SMALL,
        "data.prior": "bpr",
        "data.history_len": 3,
        "train.max_steps": 3,
        "train.eval_every": 3,
        "train.mixed_precision": "no",
        "train.lr": 0.01,
    }
    recipe = load_recipe("ranker_cpu", overrides)
    result = train(ft_cfg, recipe, str(tmp_path / "ranker"), progress=False)
    start = result.evals[0]
    assert start["step"] == 0 and start["llm_weight"] == 0.0
    assert start["hr@1"] == start["prior_hr@1"] and start["n"] == 4
    folder = result.last_dir
    for name in ("prior.json", "residual.json", "bpr.safetensors", "collab.safetensors"):
        assert (folder / name).is_file(), name
    assert Residual.load(folder).weights()["llm_weight"] != 0.0  # the LLM's share was trained

    from fusionrec.agent.agent import Agent
    from fusionrec.types import Candidate

    cfg = dataclasses.replace(ft_cfg, agent=dataclasses.replace(ft_cfg.agent, adapter=str(folder)))
    agent = Agent(cfg, llm=tiny_llm)
    assert agent.residual is not None and agent.cfg.agent.template == "compact"
    items, splits = ml100k
    user = next(u for u in sorted(splits, key=int) if splits[u].valid)
    ids = [splits[user].valid, *[i for i in list(items)[:60] if i not in splits[user].all_items][:19]]
    prompt = agent.build_prompt("a film", [Candidate(items[i], 0.0) for i in ids])
    views = agent.score_views(prompt, user=user, history=splits[user].train)
    expected = Prior.load(folder).scores(user, splits[user].train, ids)
    assert np.allclose(views["prior"], expected)
    ranking = agent.rank(prompt, user=user, history=splits[user].train)
    assert sorted(c.item.id for c in ranking.candidates) == sorted(ids)
    assert ranking.method.startswith("residual")
    w = agent.residual.weights()
    hybrid = [
        w["llm_weight"] * a + w["prior_weight"] * b for a, b in zip(views["llm"], views["prior"], strict=True)
    ]
    assert [c.item.id for c in ranking.candidates] == [
        ids[i] for i in np.argsort(-np.array(hybrid), kind="stable")
    ]

    # `fusionrec finetune ship`: the inference files only, and the agent ranks the same from the copy
    from fusionrec.finetune.ship import ship

    shipped = ship(folder, tmp_path / "shipped")
    assert not (shipped / "optimizer.safetensors").exists() and (shipped / "metrics.csv").is_file()
    assert (shipped / "prior.json").is_file() and (shipped / "residual.json").is_file()
    copy_cfg = dataclasses.replace(ft_cfg, agent=dataclasses.replace(ft_cfg.agent, adapter=str(shipped)))
    again = Agent(copy_cfg, llm=tiny_llm).rank(prompt, user=user, history=splits[user].train)
    assert [c.item.id for c in again.candidates] == [c.item.id for c in ranking.candidates]
