"""The HTML cards: content, escaping, posters, the evidence block, feedback state."""

from __future__ import annotations

import base64
import math
import re
from html.parser import HTMLParser

from fusionrec.types import Item
from fusionrec.ui.cards import (
    JS_ON_LOAD,
    Card,
    card_html,
    poster_data_uri,
    render_cards,
    score_text,
    why_html,
)


class _Tags(HTMLParser):
    """Collects start tags and checks that every opened tag is closed (well-formed enough to render)."""

    VOID = {"img", "br", "hr", "input", "meta", "link"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse(html: str) -> _Tags:
    p = _Tags()
    p.feed(html)
    p.close()
    assert not p.stack, f"unclosed tags: {p.stack}"
    return p


def _card(**kw) -> Card:
    item = kw.pop("item", None) or Item("50", "Star Wars", 1977, ["Action", "Sci-Fi"], "A space opera.")
    return Card(rank=kw.pop("rank", 1), item=item, **kw)


def test_card_shows_title_year_genres_score_and_explanation():
    card = _card(llm_score=math.log(0.6), retrieval_score=0.71, explanation="A classic space adventure.")
    html = card_html(card, "verbalizer")
    tags = parse(html)
    text = " ".join(tags.text)
    for part in ("Star Wars", "1977", "Action", "Sci-Fi", "LLM 60%", "A classic space adventure."):
        assert part in text
    buttons = [a for t, a in tags.tags if t == "button"]
    assert [b["data-action"] for b in buttons] == ["like", "dislike"]
    assert all(b["data-item"] == "50" for b in buttons)


def test_catalog_and_llm_text_is_escaped():
    evil = Item("7", '<img src=x onerror="alert(1)">Title', 1999, ["<b>Drama</b>"], "")
    card = _card(item=evil, explanation="<script>alert('x')</script> & more", problems=["<i>bad</i>"])
    card.explained, card.fallback = True, True
    html = card_html(card, "verbalizer")
    tags = parse(html)
    assert not any(t in {"script", "b", "i"} for t, _ in tags.tags)
    assert not any(t == "img" and a.get("onerror") for t, a in tags.tags)
    assert "&lt;script&gt;" in html and "&amp; more" in html


def test_poster_is_embedded_as_data_uri(posters):
    path = posters / "50.jpg"
    uri = poster_data_uri(path)
    assert uri is not None and uri.startswith("data:image/jpeg;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]) == path.read_bytes()
    card = _card(item=Item("50", "Star Wars", 1977, media={"image": str(path)}))
    imgs = [a for t, a in parse(card_html(card, "verbalizer")).tags if t == "img"]
    assert len(imgs) == 1 and imgs[0]["src"] == uri and "Star Wars" in imgs[0]["alt"]


def test_missing_poster_shows_a_placeholder_and_custom_src_is_used(tmp_path):
    missing = _card(item=Item("1", "No Poster", media={"image": str(tmp_path / "nope.jpg")}))
    html = card_html(missing, "verbalizer")
    assert "<img" not in html and "no poster" in html
    (tmp_path / "p.jpg").write_bytes(b"\xff\xd8\xff")
    served = _card(item=Item("1", "Served", media={"image": str(tmp_path / "p.jpg")}))
    html = card_html(served, "verbalizer", poster_src=lambda p: "gradio_api/file=" + p)
    assert f'src="gradio_api/file={tmp_path / "p.jpg"}"' in html


def test_why_this_shows_modality_scores_retrieval_and_llm_rank():
    card = _card(
        rank=1,
        llm_score=-0.4,
        retrieval_score=0.512,
        retrieval_rank=4,
        modality_scores={"text": 0.31, "image": 0.88},
    )
    card.explained = True
    html = why_html(card, "verbalizer")
    text = " ".join(parse(html).text)
    assert re.search(r"image match\s+0\.880.*text match\s+0\.310", text), text  # best modality first
    assert "0.512" in text and "-0.400" in text and f"p = {math.exp(-0.4):.2f}" in text
    assert "#4 by retrieval" in text and "#1 after LLM ranking" in text
    assert "passed" in text
    card.fallback, card.problems = True, ["names another title: Alien"]
    assert "names another title: Alien" in why_html(card, "verbalizer")
    assert 'data-key="why-50"' in html  # the key the JS uses to keep it open while streaming


def test_score_text_by_method():
    assert score_text(_card(llm_score=None, retrieval_score=0.5), "retrieval") == "retrieval 0.50"
    assert score_text(_card(llm_score=math.log(0.25)), "verbalizer") == "LLM 25%"
    assert score_text(_card(llm_score=3.0), "generative") == "score 3.00"


def test_feedback_and_streaming_state_show_in_the_markup():
    liked = card_html(_card(feedback="like"), "verbalizer")
    assert 'class="fr-card fr-like"' in liked
    assert re.search(r'data-action="like"[^>]*class="fr-on"', liked)
    assert 'class="fr-card fr-dislike"' in card_html(_card(feedback="dislike"), "verbalizer")
    assert "fr-streaming" in card_html(_card(streaming=True, explanation="Half"), "verbalizer")
    assert "fr-streaming" not in card_html(_card(explanation="Done"), "verbalizer")


def test_render_cards_lists_in_rank_order_with_note_or_placeholder():
    cards = [_card(rank=i, item=Item(str(i), f"Movie {i}")) for i in (1, 2, 3)]
    html = render_cards(cards, "verbalizer", note="Ranked by the LLM")
    ranks = [a["data-rank"] for t, a in parse(html).tags if t == "div" and "data-rank" in a]
    assert ranks == ["1", "2", "3"] and "Ranked by the LLM" in html
    empty = render_cards([])
    assert 'fr-card"' not in empty and "Recommendations appear here" in empty


def test_js_turns_button_clicks_into_a_feedback_event():
    assert "trigger('feedback'" in JS_ON_LOAD and "data-action" in JS_ON_LOAD
    assert "watch('value'" in JS_ON_LOAD  # reopens "why this?" after each streamed update
