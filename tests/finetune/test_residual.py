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


def test_redial_ranker_starts_at_the_conversational_prior_and_the_evaluation_ranks_with_it(ft_cfg, tmp_path):
    """ranker_redial on the tiny profile, warm-started from a ranker_cpu run (its mix, item tokens and prior
    kept): step 0 ranks ReDial turns like the prior; the checkpoint carries the
    dialogue mix and the prior; the ReDial evaluation's lora-prior view is repeat+co-mention on the turns with
    at most 5 mentions, and every lora ranking is a whole-catalog order."""
    overrides = {**SMALL, "data.prior": "bpr", "train.max_steps": 2, "train.eval_every": 2}
    overrides["train.mixed_precision"] = "no"
    ml = train(ft_cfg, load_recipe("ranker_cpu", {**overrides, "train.lr": 0.01}), str(tmp_path / "ml"), progress=False)
    warm = {**overrides, "model.init_from": str(ml.last_dir)}  # the warm start the shipped recipe makes
    result = train(ft_cfg, load_recipe("ranker_redial", warm), str(tmp_path / "redial"), progress=False)
    start = result.evals[0]
    assert start["step"] == 0 and start["dialogue_llm_weight"] == 0.0 and start["dialogue_n"] > 0
    assert start["dialogue_hr@1"] == start["dialogue_prior_hr@1"]
    assert start["llm_weight"] == Residual.load(ml.last_dir).weights()["llm_weight"] != 0.0  # the init's mix
    folder = result.last_dir
    for name in ("residual_dialogue.json", "conversation_prior.json", "residual.json", "prior.json"):
        assert (folder / name).is_file(), name
    for name in ("collab.safetensors", "bpr.safetensors"):  # the item tokens and prior the init was trained with
        assert (folder / name).read_bytes() == (ml.last_dir / name).read_bytes(), name

    from fusionrec.evaluation.records import Records
    from fusionrec.evaluation.redial import run_redial, summary_section

    cfg = dataclasses.replace(
        ft_cfg,
        agent=dataclasses.replace(ft_cfg.agent, adapter=str(folder)),
        eval=dataclasses.replace(ft_cfg.eval, limit=24, llm_limit=6, bootstrap=50, progress=False),
    )
    report = tmp_path / "report"
    report.mkdir()
    section = run_redial(cfg, report, "repeat+co-mention,lora")
    assert section["shipped"] == "lora-hybrid" and section["llm_examples"] == 6
    assert set(section["systems"]) == {"repeat+co-mention", "lora-hybrid", "lora-llm", "lora-prior"}
    assert "lora-hybrid - lora-prior" in section["paired"]
    from fusionrec.data import redial_turns as R
    from fusionrec.data.prepare import load_dialogues, load_prepared
    from fusionrec.evaluation.protocols import subset

    known = {i.id for i in load_prepared(cfg, "redial")[0]}
    examples = subset([e for e in R.redial_examples(load_dialogues(cfg, "test")) if e.target in known], 6, 0)
    base, prior = Records(report, "redial", "repeat+co-mention"), Records(report, "redial", "lora-prior")
    hybrid = Records(report, "redial", "lora-hybrid")
    assert all(e.key in hybrid for e in examples)
    for e in examples:
        r = hybrid.get(e.key)
        assert len(set(r["top_all"])) == len(r["top_all"]) == 10 and r["rank_all"] is not None
        if "top_new" in r:
            assert not set(r["top_new"]) & set(e.mentioned)
        if len(e.mentioned) <= 5:  # every mention among the candidates: the prior's view is repeat+co-mention
            assert prior.get(e.key)["top_all"] == base.get(e.key)["top_all"]
            assert prior.get(e.key)["rank_all"] == base.get(e.key)["rank_all"]
    assert summary_section(section, "cmd")["shipped"] == "lora-hybrid"
    # one forward pass per turn, shared by the views (a spy around the real method counts the passes)
    from fusionrec.evaluation.llm import make_agent
    from fusionrec.evaluation.redial_lora import DialogueRanker
    from fusionrec.retrieval.collaborative.conversation import ConversationPrior

    items = {i.id: i for i in load_prepared(cfg, "redial")[0]}
    prior = ConversationPrior.from_records(list(items), load_dialogues(cfg, "train"))
    ranker = DialogueRanker(make_agent(cfg, folder, None, "redial"), folder, prior, items)
    calls, real = [], ranker.agent.dialogue_views
    ranker.agent.dialogue_views = lambda *a: calls.append(1) or real(*a)
    ex = examples[0]
    orders = [ranker.system(n)(ex, False) for n in ("lora-hybrid", "lora-llm", "lora-prior", "lora-hybrid")]
    assert len(calls) == 1 and all(sorted(o) == sorted(items) for o in orders)
