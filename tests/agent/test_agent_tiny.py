"""The whole turn loop with the tiny models over a real ML-100k slice: events, state, bad input."""

from __future__ import annotations

import statistics

import pytest

from fusionrec.agent.agent import EVENT_KINDS, Agent, AgentError
from fusionrec.types import Attachment, DialogueState, Turn


def run(agent, state, text, attachments=()):
    events = list(agent.respond(state, Turn("user", text, list(attachments))))
    assert events[-1].kind == "done" and all(e.kind in EVENT_KINDS for e in events)
    return events


def first(events, kind):
    return next(e.payload for e in events if e.kind == kind)


def test_turn_events_in_order(tiny_agent):
    state = DialogueState()
    events = run(tiny_agent, state, "a funny animated movie")
    kinds = [e.kind for e in events]
    assert kinds[0] == "retrieved" and kinds[1] == "ranked" and kinds[-2:] == ["message", "done"]
    assert "explanation_token" in kinds and kinds.index("explanation_token") < kinds.index("explanation")
    ranked = first(events, "ranked")
    cand_ids = {c.item.id for c in first(events, "retrieved")["candidates"]}
    assert {c.item.id for c in ranked["ranking"].candidates} == cand_ids  # a permutation of the retrieved
    assert len(ranked["shown"]) == tiny_agent.cfg.agent.show_top_k
    assert state.last_ranking == [c.item.id for c in ranked["shown"]] and state.shown == state.last_ranking
    assert [t.role for t in state.turns] == ["user", "assistant"]
    expl = first(events, "explanation")
    assert expl["explanation"].grounded  # raw text or the grounded fallback
    streamed = "".join(e.payload["text"] for e in events if e.kind == "explanation_token")
    assert streamed == expl["raw"]
    assert first(events, "done")["timings"]["first_token_s"] > 0


def test_multi_turn_constraints_and_exclusions(tiny_agent):
    state = DialogueState()
    events = run(tiny_agent, state, "a horror movie")
    assert all("Horror" in c.item.genres for c in first(events, "retrieved")["candidates"])
    shown_first = list(state.last_ranking)
    events = run(tiny_agent, state, "no horror")
    cands = first(events, "retrieved")["candidates"]
    assert cands and not any("Horror" in c.item.genres for c in cands)
    assert not set(shown_first) & {c.item.id for c in cands}  # shown items are not offered again
    median = statistics.median(i.year for i in tiny_agent.retriever.items(state.last_ranking))
    events = run(tiny_agent, state, "something newer")
    cands = first(events, "retrieved")["candidates"]
    assert cands and all(c.item.year > median and "Horror" not in c.item.genres for c in cands)
    second = state.last_ranking[1]
    events = run(tiny_agent, state, "not the first, more like the second")
    assert state.liked == [second] and len(state.disliked) == 1
    assert second not in {c.item.id for c in first(events, "retrieved")["candidates"]}


def test_impossible_constraints_get_a_clear_reply_and_keep_state(tiny_agent):
    state = DialogueState()
    run(tiny_agent, state, "a comedy")
    before = (set(state.include_genres), state.year_min, list(state.turns))
    events = run(tiny_agent, state, "from 1920")
    assert "Nothing in the catalog matches" in first(events, "message")["text"]
    assert (state.include_genres, state.year_min, state.turns) == before


def test_empty_oversized_and_corrupt_input_then_the_session_goes_on(tiny_agent, tmp_path):
    state = DialogueState()
    err = first(run(tiny_agent, state, "   "), "error")["message"]
    assert "empty" in err
    err = first(run(tiny_agent, state, "x" * 5000), "error")["message"]
    assert "too long (5000 characters; the limit is 2000)" in err
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0" + b"garbage" * 50)
    err = first(run(tiny_agent, state, "like this", [Attachment("image", bad)]), "error")["message"]
    assert "broken.jpg" in err and "image" in err
    err = first(run(tiny_agent, state, "", [Attachment("audio", tmp_path / "missing.wav")]), "error")[
        "message"
    ]
    assert "missing.wav" in err and "file not found" in err
    assert state == DialogueState()  # nothing recorded from the refused turns
    events = run(tiny_agent, state, "a comedy")
    assert first(events, "ranked")["shown"]


def test_an_image_is_a_soft_token_only_where_its_projector_was_trained(tiny_agent, ml100k, monkeypatch):
    poster = next(i.media["image"] for i in ml100k if "image" in i.media)

    def soft(agent_tokens=None):
        if agent_tokens:
            monkeypatch.setattr(tiny_agent.cfg.agent, "attachment_tokens", agent_tokens)
        state = DialogueState()
        ranked = first(run(tiny_agent, state, "", [Attachment("image", poster)]), "ranked")
        assert sum(k.startswith("item:") for k in ranked["soft_tokens"]) == len(ranked["ranking"].candidates)
        assert state.turns[0].attachments[0].validated
        return [k for k in ranked["soft_tokens"] if not k.startswith("item:")]

    assert tiny_agent.trained_kinds == frozenset()  # zero-shot: every projector would be random
    assert soft() == []  # default "trained": the image reaches the LLM as its labels only
    monkeypatch.setattr(tiny_agent, "trained_kinds", frozenset({"image"}))
    assert soft() == ["image:0"]
    assert soft("never") == []
    monkeypatch.setattr(tiny_agent, "trained_kinds", frozenset())
    assert soft("always") == ["image:0"]


def test_why_explains_an_item_of_the_last_answer(tiny_agent):
    state = DialogueState()
    run(tiny_agent, state, "a drama")
    events = list(tiny_agent.why(state, 2))
    assert first(events, "explanation")["item_id"] == state.last_ranking[1]
    events = list(tiny_agent.why(state, 99))
    assert "no item 99" in first(events, "error")["message"]


def test_config_errors(tiny_agent_cfg):
    import copy

    cfg = copy.deepcopy(tiny_agent_cfg)
    cfg.agent.ranker = "magic"
    with pytest.raises(AgentError, match="agent.ranker='magic'"):
        Agent(cfg)
    cfg.agent.ranker, cfg.agent.adapter = "verbalizer", "/no/such/folder"
    with pytest.raises(AgentError, match="no such checkpoint folder"):
        Agent(cfg)


def test_adapter_folder_with_lora_and_projectors(tiny_agent, tiny_agent_cfg, tmp_path):
    import copy

    import torch
    from peft import LoraConfig, get_peft_model

    trained = get_peft_model(
        copy.deepcopy(tiny_agent.model), LoraConfig(r=4, target_modules=["q_proj", "v_proj"])
    )
    with torch.no_grad():
        for name, param in trained.named_parameters():
            if "lora_B" in name:
                param.fill_(0.05)  # a "trained" adapter that changes the outputs
    trained.save_pretrained(str(tmp_path))
    tiny_agent.projectors.save(tmp_path)
    (tmp_path / "config.yaml").write_text("data:\n  template: concise\n  overview_chars: 0\n")
    cfg = copy.deepcopy(tiny_agent_cfg)
    cfg.agent.adapter = str(tmp_path)
    agent = Agent(cfg, retriever=tiny_agent.retriever)
    assert (agent.cfg.agent.template, agent.cfg.agent.overview_chars) == ("concise", 0)  # the recipe's prompt wins
    assert cfg.agent.template == tiny_agent_cfg.agent.template  # on the agent's own settings, not on `cfg`
    from peft import PeftModel

    assert isinstance(agent.model, PeftModel)
    assert agent.projectors.dims() == tiny_agent.projectors.dims()
    assert not any(
        "lora" in n for n, _ in tiny_agent.model.named_parameters()
    )  # the cached base is untouched
    state_a, state_b = DialogueState(), DialogueState()
    a = first(run(agent, state_a, "a drama"), "ranked")["ranking"]
    b = first(run(tiny_agent, state_b, "a drama"), "ranked")["ranking"]
    assert a.raw_output != b.raw_output  # the adapter changes the label logits
