"""Grounded explanations: evidence gathering, the constrained decoder, the turn's prefix cache."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import torch

from fusionrec.agent.constrained import SENTENCE_STARTS, Allowed, Guard, restricted
from fusionrec.agent.decode import greedy_ids, stop_ids
from fusionrec.agent.evidence import Evidence, TurnContext, closest_sentence, gather, prior_vectors
from fusionrec.agent.explain import GroundedExplainer, check_explanation, fact_check, grounded_prompt
from fusionrec.retrieval.collaborative.bpr import BPRModel
from fusionrec.retrieval.collaborative.prior import Prior
from fusionrec.types import Candidate, DialogueState, Item

TOY = Item(
    "1",
    "Toy Story",
    1995,
    ["Animation", "Children's", "Comedy"],
    "Led by Woody, Andy's toys live happily in his room until Andy's birthday brings Buzz Lightyear onto the "
    "scene. Afraid of losing his place in Andy's heart, Woody plots against Buzz. But when circumstances "
    "separate Buzz and Woody from their owner, the duo eventually learns to put aside their differences.",
)
ALADDIN = Item("95", "Aladdin", 1992, ["Animation", "Children's", "Comedy", "Musical"], "A street urchin.")
HEAT = Item("6", "Heat", 1995, ["Action", "Crime", "Thriller"], "A group of professional bank robbers.")
SCREAM = Item("7", "Scream", 1996, ["Horror", "Thriller"], "A killer stalks a small town.")
TITLES = ["Toy Story", "Aladdin", "Heat", "Scream", "Paris, Texas", "Star Wars"]
WORD = re.compile(r"[^\W_]+")


def ctx_for(request: str = "a funny film for kids, no horror", **kw) -> TurnContext:
    state = DialogueState(include_genres={"Comedy"}, exclude_genres={"Horror"}, year_min=1990, year_max=1999)
    return TurnContext.from_state(request, state, **kw)


def bpr(vectors: dict[str, list[float]]) -> Prior:
    ids = list(vectors)
    factors = np.array([vectors[i] for i in ids], dtype=np.float64)
    model = BPRModel({}, {i: k for k, i in enumerate(ids)}, np.zeros((0, factors.shape[1])), factors,
                     np.zeros(len(ids)))  # fmt: skip
    return Prior({"bpr": 1.0}, model)


# --- evidence ------------------------------------------------------------------------------------------
def test_evidence_picks_the_liked_film_closest_in_the_prior():
    prior = bpr({"1": [1.0, 0.0], "95": [0.2, 1.0], "6": [0.9, 0.3], "7": [-1.0, 0.1]})
    vectors = prior_vectors(prior)
    ev = gather(TOY, ctx_for(liked=[ALADDIN, HEAT, SCREAM]), vectors=vectors)
    assert ev.liked == "Heat"  # cosine 0.95, above Aladdin's 0.20 and Scream's -0.99
    assert gather(TOY, ctx_for(liked=[SCREAM]), vectors=vectors).liked == ""  # not positively related
    assert gather(TOY, ctx_for(liked=[HEAT]), vectors={}).liked == ""  # no prior: nothing to cite
    assert gather(TOY, ctx_for(), vectors=vectors).liked == ""  # no liked film
    table = {"1": np.array([0.0, 1.0]), "95": np.array([0.1, 1.0]), "6": np.array([1.0, 0.0])}
    assert gather(TOY, ctx_for(liked=[HEAT, ALADDIN]), vectors=prior_vectors(None, table)).liked == "Aladdin"


def test_evidence_matches_constraints_and_the_attachment():
    cands = [
        Candidate(HEAT, 0.9, {"text": 0.5, "image": 0.40}),
        Candidate(TOY, 0.8, {"text": 0.4, "image": 0.35}),
        Candidate(ALADDIN, 0.7, {"text": 0.3, "image": 0.10}),
        Candidate(SCREAM, 0.6, {"text": 0.2, "image": 0.05}),
    ]
    ctx = ctx_for(attachments=["image"], candidates=cands)
    ev = gather(TOY, ctx)
    assert ev.matched == ("Comedy, as you asked", "from 1995, within the years you asked for")
    assert ev.refused == ("Horror",)
    assert ev.media == ("its poster is the second closest of the candidates to your image",)
    assert gather(SCREAM, ctx).media == ()  # fourth on the image score: nothing claimed
    assert gather(TOY, ctx_for(candidates=cands)).media == ()  # no attachment this turn
    assert ev.sentence.startswith("Led by Woody")  # no encoder: the first sentence
    lines = ev.lines()
    assert lines[:3] == ["Title: Toy Story", "Year: 1995", "Genres: Animation, Children's, Comedy"]
    assert "Matches your request: Comedy, as you asked; from 1995, within the years you asked for; " \
           "not Horror, as you asked" in lines  # fmt: skip
    assert (
        TurnContext.from_request("a comedy from the 90s, no horror").asked()
        == "Comedy; no Horror; years 1990 to 1999"
    )


@pytest.mark.real
def test_evidence_sentence_is_the_one_closest_to_the_request(real_agent_cfg):
    from fusionrec.encoders import load_text_encoder

    enc = load_text_encoder(real_agent_cfg)
    request = enc.encode(["friends who learn to put aside their differences"])[0]
    assert closest_sentence(TOY.text, request, enc).startswith("But when circumstances separate Buzz")
    request = enc.encode(["afraid of losing a child's love to a newcomer"])[0]
    assert closest_sentence(TOY.text, request, enc).startswith("Afraid of losing his place")
    request = enc.encode(["a birthday present arrives and changes everything"])[0]
    assert closest_sentence(TOY.text, request, enc).startswith("Led by Woody")


def test_cited_pieces():
    ev = Evidence("1", "Toy Story", 1995, ("Comedy",), sentence="Woody plots against Buzz.", liked="Heat",
                  media=("its poster is the closest of the candidates to your image",))  # fmt: skip
    assert ev.cited("Toy Story fits because it is a funny film from 1995.") == ["year", "genre"]
    assert ev.cited("Toy Story fits because Woody plots against Buzz, and you liked Heat.") == [
        "story",
        "liked",
    ]
    assert ev.cited("Toy Story fits because its poster looks like yours.") == ["media"]
    assert ev.cited("Toy Story fits because it is a good film.") == []


def test_fact_check_accepts_what_the_evidence_holds():
    wars = Item("50", "Star Wars", 1977, ["Action", "Sci-Fi"])
    ev = gather(TOY, ctx_for(liked=[wars]), vectors=prior_vectors(bpr({"1": [1.0, 0.0], "50": [1.0, 0.1]})))
    text = "Toy Story fits because you liked Star Wars, and it is a comedy without horror."
    assert "names another title: Star Wars" in fact_check(text, TOY, TITLES)
    assert fact_check(text, TOY, TITLES, evidence=ev.text()) == []
    assert not check_explanation(text, TOY, "default", TITLES, evidence=ev.text()).fallback


# --- the constrained decoder -----------------------------------------------------------------------------
def test_guard_judges_words_across_token_boundaries(tiny_llm):
    _, tok = tiny_llm
    ev = gather(TOY, ctx_for())
    guard = Guard(tok, ev.allowed())
    stop = stop_ids(tok)

    def ok(text: str, piece: str) -> bool:
        ids = tok.encode(piece, add_special_tokens=False)
        assert len(ids) == 1, piece
        return guard.accepts(text, ids[0], stop)

    opening = "Toy Story fits because"
    assert ok(opening, " Wood") and ok(f"{opening} Wood", "y")  # "Woody" is in the evidence
    assert not ok(f"{opening} Wood", " is")  # ... "Wood" alone is not
    end = tok.convert_tokens_to_ids("<|im_end|>")
    assert not guard.accepts(f"{opening} Wood", end, stop) and guard.accepts(f"{opening} Woody.", end, stop)
    assert ok(f"{opening} it came out in", " ") and ok(f"{opening} it came out in ", "1")
    assert ok(f"{opening} it came out in 199", "5") and not ok(f"{opening} it came out in 19", "6")
    assert not ok(opening, " Paris") and not ok(f"{opening} (", "Paris")  # both tokenizer variants
    assert not ok(f"{opening} it is a", " horror") and ok(f"{opening} it has no", " horror")  # refused genre
    assert ok(f"{opening} it is a", " thr") and not ok(f"{opening} it is a thr", "iller")  # "thriller"
    assert ok(f"{opening} it is a", " comedy")
    assert ok(f"{opening} it is funny.", " It") and not ok(f"{opening} it is funny and", " It")
    assert not ok(opening, "\n")


@contextmanager
def forced(model, token_ids: list[int], bias: float = 40.0) -> Iterator[None]:
    """The model's logits with a large bonus for `token_ids` (the first the largest)."""
    head = model.get_output_embeddings()

    def hook(_module, _inputs, output):
        output = output.clone()
        for k, tid in enumerate(token_ids):
            output[..., tid] += bias - k
        return output

    handle = head.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def test_constrained_decoder_cannot_emit_a_name_or_number_outside_the_evidence(tiny_llm):
    model, tok = tiny_llm
    ev = gather(TOY, ctx_for())
    ctx = ctx_for()
    forbidden = [" Paris", "Paris", " D", " H", " horror", "7", "6"]  # D(aredevil), H(anks), digits
    ids = [tok.encode(w, add_special_tokens=False)[0] for w in [*forbidden, " Wood"]]  # Wood(y): allowed
    explainer = GroundedExplainer(model, tok, "default", catalog_titles=TITLES, max_new_tokens=24)
    with forced(model, ids):
        prompt = grounded_prompt(tok, "default", ev, ctx)
        embeds = model.get_input_embeddings()(torch.tensor([[*prompt.prefix, *prompt.item]]))
        free = tok.decode(list(greedy_ids(model, embeds, 24, stop_ids(tok, model), 1.2)))
        text = "".join(explainer.stream(ev, ctx))
    assert " Paris" in free  # the forced logits do favour the forbidden tokens ...
    generated = text[len(prompt.opening) :]
    assert generated.strip()  # ... and the guarded decoder still writes something
    allowed = ev.allowed()
    for m in WORD.finditer(generated):
        word = m.group(0)
        if restricted(word):
            start = re.search(r"(?:^|[.!?]\s+)$", prompt.opening + generated[: m.start()]) is not None
            assert word in allowed.names or (start and word in SENTENCE_STARTS), (word, text)
    assert " Woody" in generated  # the favoured evidence name is written, and finished ("Wood" + "y")
    low = generated.lower()
    assert "paris" not in low and "hanks" not in low and "thriller" not in low
    assert not re.search(r"(?<!no )(?<!not )horror", low)
    assert all(n in {"1995"} for n in re.findall(r"\d+", generated)), text


def test_non_english_answers_keep_the_number_rule_only(tiny_llm):
    _, tok = tiny_llm
    guard = Guard(tok, Allowed.from_texts(["Toy Story", "1995"]), names=False)
    stop = stop_ids(tok)
    paris = tok.encode(" Paris", add_special_tokens=False)[0]
    one = tok.encode("1", add_special_tokens=False)[0]
    assert guard.accepts("Toy Story: ein Film aus", paris, stop)  # German nouns are capitalised
    assert guard.accepts("Toy Story: aus ", one, stop)
    six = tok.encode("6", add_special_tokens=False)[0]
    assert not guard.accepts("Toy Story: aus 19", six, stop)


# --- the prefix cache ---------------------------------------------------------------------------------
def test_cached_prefix_explanation_equals_uncached(tiny_llm):
    model, tok = tiny_llm
    ctx = ctx_for()
    cached = GroundedExplainer(model, tok, "default", catalog_titles=TITLES, max_new_tokens=16)
    fresh = GroundedExplainer(
        model, tok, "default", catalog_titles=TITLES, max_new_tokens=16, reuse_prefix=False
    )
    prompts = [grounded_prompt(tok, "default", cached.evidence(i, ctx), ctx) for i in (TOY, HEAT, ALADDIN)]
    assert len({p.prefix for p in prompts}) == 1 and len({p.item for p in prompts}) == 3  # one shared prefix
    assert len(prompts[0].prefix) > 20
    reused = []
    for item in (TOY, HEAT, ALADDIN):
        a = "".join(cached.stream(cached.evidence(item, ctx), ctx))
        reused.append(cached.stats.prefix_reused)
        b = "".join(fresh.stream(fresh.evidence(item, ctx), ctx))
        assert a == b and cached.stats.tokens == fresh.stats.tokens > 0
    assert reused == [False, True, True]  # computed once for the turn, then reused
    other = TurnContext.from_request("a western from the fifties")
    "".join(cached.stream(cached.evidence(TOY, other), other))
    assert not cached.stats.prefix_reused  # other constraints: a new prefix


def test_agent_explanation_carries_its_evidence(tiny_agent, ml100k):
    state = DialogueState(include_genres={"Comedy"}, liked=[ml100k[1].id])
    item = next(i for i in ml100k if "Comedy" in i.genres and i.id != ml100k[1].id)
    events = list(tiny_agent.explain_events(item, "a comedy", 1, state=state))
    payload = events[-1].payload
    assert events[-1].kind == "explanation" and payload["raw"] == "".join(
        e.payload["text"] for e in events[:-1]
    )
    assert payload["evidence"].matched == ("Comedy, as you asked",)
    assert payload["evidence"].liked == ""  # the tiny agent has no adapter, so no prior: nothing to cite
    assert payload["tokens"] > 0 and payload["explanation"].grounded


def test_prompt_holds_the_evidence_not_the_request_words(tiny_llm):
    _, tok = tiny_llm
    ctx = ctx_for("the one where toys come alive and a spaceman shows up")
    ev = gather(TOY, ctx)
    prompt = grounded_prompt(tok, "default", ev, ctx)
    text = tok.decode([*prompt.prefix, *prompt.item])
    assert "User request: Comedy; no Horror; years 1990 to 1999" in text and "spaceman" not in text
    assert all(line in text for line in ev.lines()) and text.endswith("Toy Story fits because")
