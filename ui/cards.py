"""HTML cards for the ranked items of one answer: poster, title, year, genres, score, explanation,
like/dislike buttons and a "why this?" block with the evidence (per-modality retrieval scores,
retrieval vs LLM score and rank, the fact check).

Everything that comes from the catalog or the LLM is HTML-escaped. Posters are given by a
`poster_src(path) -> url` function: the app serves them through gradio's file route; the default
embeds the (~10 KB) JPEG as a data URI so the HTML stands alone.
"""

from __future__ import annotations

import base64
import math
import mimetypes
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from fusionrec.types import Item

MODALITY_LABELS = {"liked_item": "liked item", "lexical": "word"}  # other modalities are shown by name
ON = ' class="fr-on"'
MAX_POSTER_BYTES = 512 * 1024  # larger posters are not inlined as data URIs

CSS = """
.fr-cards { display: flex; flex-direction: column; gap: 10px; }
.fr-empty { color: var(--body-text-color-subdued); padding: 12px; }
.fr-head { font-size: 0.85em; color: var(--body-text-color-subdued); }
.fr-card { display: flex; gap: 12px; padding: 10px; border: 1px solid var(--border-color-primary);
  border-radius: 10px; background: var(--background-fill-primary); }
.fr-card.fr-like { border-color: #2e9e5b; box-shadow: 0 0 0 1px #2e9e5b inset; }
.fr-card.fr-dislike { opacity: 0.55; }
.fr-poster { width: 72px; min-width: 72px; height: 108px; object-fit: cover; border-radius: 6px;
  background: var(--background-fill-secondary); display: flex; align-items: center;
  justify-content: center; font-size: 0.75em; color: var(--body-text-color-subdued); }
.fr-body { flex: 1; min-width: 0; }
.fr-title { font-weight: 600; font-size: 1.02em; }
.fr-rank { color: var(--body-text-color-subdued); margin-right: 4px; }
.fr-meta { font-size: 0.85em; color: var(--body-text-color-subdued); margin: 2px 0 4px; }
.fr-genre { display: inline-block; padding: 0 6px; margin: 1px 3px 1px 0; border-radius: 8px;
  background: var(--background-fill-secondary); font-size: 0.8em; }
.fr-score { float: right; font-size: 0.8em; font-variant-numeric: tabular-nums; }
.fr-expl { font-size: 0.92em; margin: 4px 0; min-height: 1.2em; }
.fr-expl.fr-streaming::after { content: "▍"; animation: fr-blink 1s steps(2) infinite; }
@keyframes fr-blink { 50% { opacity: 0; } }
.fr-expl.fr-none { color: var(--body-text-color-subdued); font-style: italic; }
.fr-actions button { border: 1px solid var(--border-color-primary); border-radius: 6px; font-size: 0.8em;
  font-weight: normal; background: var(--background-fill-secondary); padding: 0 8px; margin-right: 4px;
  cursor: pointer; line-height: 1.6; }
.fr-actions button.fr-on { background: var(--color-accent-soft); border-color: var(--color-accent); }
.fr-why summary { cursor: pointer; font-size: 0.85em; display: inline; }
.fr-why table { font-size: 0.8em; margin-top: 4px; border-collapse: collapse; }
.fr-why td { padding: 1px 8px 1px 0; vertical-align: middle; border: none; background: none; }
.fr-why table, .fr-why tr { border: none; background: none; }
.fr-bar { display: inline-block; height: 8px; background: var(--color-accent); border-radius: 4px; }
.fr-warn { color: #b35c00; }
"""

# Event delegation on the cards' root: like/dislike clicks become a gradio `feedback` event whose
# data is {"action", "item"}; open "why this?" blocks stay open while the explanation streams in.
JS_ON_LOAD = """
const open = new Set();
element.addEventListener('toggle', (e) => {
  const d = e.target;
  if (d && d.dataset && d.dataset.key) { d.open ? open.add(d.dataset.key) : open.delete(d.dataset.key); }
}, true);
element.addEventListener('click', (e) => {
  const b = e.target.closest('button[data-action]');
  if (b) { trigger('feedback', {action: b.dataset.action, item: b.dataset.item}); }
});
watch('value', () => {
  element.querySelectorAll('details[data-key]').forEach((d) => { if (open.has(d.dataset.key)) d.open = true; });
});
"""


@dataclass
class Card:
    """What one card shows; updated in place as the turn's events arrive."""

    rank: int
    item: Item
    llm_score: float | None = None  # the ranking score (verbalizer: label log-prob)
    retrieval_score: float = 0.0  # fused retrieval score
    retrieval_rank: int | None = None  # 1-based position in the retrieved list
    modality_scores: dict[str, float] = field(default_factory=dict)
    explanation: str = ""
    streaming: bool = False
    explained: bool = False
    fallback: bool = False  # the streamed text failed the fact check and was replaced
    problems: list[str] = field(default_factory=list)
    feedback: str = ""  # "like" | "dislike" | ""


def poster_data_uri(path: str | Path) -> str | None:
    """The image file as a data URI, or None when it is missing or too large to inline."""
    p = Path(path)
    try:
        if not p.is_file() or p.stat().st_size > MAX_POSTER_BYTES:
            return None
        data = p.read_bytes()
    except OSError:
        return None
    mime = mimetypes.guess_type(p.name)[0] or "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def score_text(card: Card, method: str) -> str:
    """The card's headline score: the LLM's probability for a verbalizer ranking, else the raw score."""
    if card.llm_score is None:
        return f"retrieval {card.retrieval_score:.2f}"
    if method == "verbalizer" and card.llm_score <= 0:
        return f"LLM {math.exp(card.llm_score):.0%}"
    return f"score {card.llm_score:.2f}"


def _bar(score: float) -> str:
    width = max(0.0, min(1.0, score)) * 80
    return f'<span class="fr-bar" style="width:{width:.0f}px"></span>'


def why_html(card: Card, method: str) -> str:
    """The evidence block: which modality matched, retrieval vs LLM score and rank, the fact check."""
    rows = []
    for modality, score in sorted(card.modality_scores.items(), key=lambda kv: -kv[1]):
        label = MODALITY_LABELS.get(modality, modality)
        rows.append(f"<tr><td>{escape(label)} match</td><td>{score:.3f}</td><td>{_bar(score)}</td></tr>")
    if not card.modality_scores:
        rows.append('<tr><td colspan="3">no query vector (filters only): catalog order</td></tr>')
    rows.append(f"<tr><td>retrieval score (fused)</td><td>{card.retrieval_score:.3f}</td><td></td></tr>")
    if card.llm_score is not None:
        prob = (
            f" (p = {math.exp(card.llm_score):.2f})" if method == "verbalizer" and card.llm_score <= 0 else ""
        )
        rows.append(
            f"<tr><td>LLM score ({escape(method)})</td><td>{card.llm_score:.3f}{prob}</td><td></td></tr>"
        )
    if card.retrieval_rank is not None:
        rows.append(
            f"<tr><td>rank</td><td colspan='2'>#{card.retrieval_rank} by retrieval → "
            f"#{card.rank} after LLM ranking</td></tr>"
        )
    if card.explained:
        check = "✓ passed" if not card.fallback else "⚠ " + escape("; ".join(card.problems) or "failed")
        rows.append(f"<tr><td>fact check</td><td colspan='2'>{check}</td></tr>")
    return (
        f'<details class="fr-why" data-key="why-{escape(card.item.id)}"><summary>why this?</summary>'
        f"<table>{''.join(rows)}</table></details>"
    )


def card_html(card: Card, method: str, poster_src: Callable[[str], str | None] = poster_data_uri) -> str:
    """One card as HTML."""
    it = card.item
    src = poster_src(it.media["image"]) if it.media.get("image") else None
    poster = (
        f'<img class="fr-poster" src="{escape(src)}" alt="poster of {escape(it.title)}">'
        if src
        else '<div class="fr-poster fr-noposter">no poster</div>'
    )
    genres = "".join(f'<span class="fr-genre">{escape(g)}</span>' for g in it.genres)
    year = f"{it.year} · " if it.year else ""
    if card.explanation:
        cls = "fr-expl fr-streaming" if card.streaming else "fr-expl"
        warn = (
            ' <span class="fr-warn" title="the generated text failed the fact check">(from the facts)</span>'
        )
        expl = f'<div class="{cls}">{escape(card.explanation)}{warn if card.fallback else ""}</div>'
    elif card.streaming:
        expl = '<div class="fr-expl fr-streaming"></div>'
    else:
        expl = ""
    iid = escape(it.id)
    buttons = "".join(
        f'<button data-action="{action}" data-item="{iid}" title="{tip}"'
        f"{ON if card.feedback == action else ''}>{icon}</button>"
        for action, icon, tip in (
            ("like", "✔ Like", "more like this"),
            ("dislike", "✕ Not this", "not this one"),
        )
    )
    state = f" fr-{card.feedback}" if card.feedback else ""
    return (
        f'<div class="fr-card{state}" data-item="{iid}" data-rank="{card.rank}">{poster}'
        f'<div class="fr-body"><span class="fr-score">{escape(score_text(card, method))}</span>'
        f'<div class="fr-title"><span class="fr-rank">{card.rank}.</span>{escape(it.title)}</div>'
        f'<div class="fr-meta">{year}{genres}</div>{expl}'
        f'<div class="fr-actions">{buttons}{why_html(card, method)}</div></div></div>'
    )


def render_cards(
    cards: Sequence[Card],
    method: str = "",
    poster_src: Callable[[str], str | None] = poster_data_uri,
    note: str = "",
) -> str:
    """All cards of the current answer (or a placeholder when there is none yet)."""
    if not cards:
        text = note or "Recommendations appear here. Ask for something, or attach a poster, a song or a clip."
        return f'<div class="fr-cards"><div class="fr-empty">{escape(text)}</div></div>'
    head = f'<div class="fr-head">{escape(note)}</div>' if note else ""
    body = "".join(card_html(c, method, poster_src) for c in cards)
    return f'<div class="fr-cards">{head}{body}</div>'
