"""Explanations: generated from the item's facts and the user's request, fact-checked, streamed.

The prompt gives only `Item.facts()` and forbids anything else. `fact_check` flags an explanation
that names another catalog title, a year that is not in the item's facts, or a genre word that is
neither one of the item's genres nor a word of its facts. When the generated text fails, the
explainer falls back to a grounded sentence built from the facts by the template's
`explain_fallback` section (the raw text and its problems are kept for the record).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import torch

from agent.genres import find_genres
from agent.prompt import Template, data_text, explain_prompt, load_template
from agent.rank import greedy_ids, stop_ids, stream_text
from fusionrec.types import Explanation, Item

_YEAR = re.compile(r"(?<![\d])(1[89]\d\d|20\d\d)(?![\d]|'?s\b)")  # not "1990s" (a decade)
_DECADE = re.compile(r"(?<![\w'])'?((?:1[89]|20)?\d)0'?s\b", re.IGNORECASE)
_NEGATED = re.compile(r"\b(?:no|not|non|without|nothing)[\s-]+(?:\w+[\s-]+)?$", re.IGNORECASE)
_ARTICLE_SUFFIX = re.compile(r"^(.*), (The|A|An|Les|La|Le|Il|Das|Der|Die|El|L')$")
_SENTENCE_START = re.compile(r"(^|[.!?]\s+|\n)$")
_NAME = re.compile(r"(?<![\w'-])([A-Z][a-z]+(?:[-'][A-Za-z]+)*)")  # a capitalised word: a name?
_COMMON_CAPS = {"I", "I'm", "I've", "I'd", "The", "A", "An", "Movie", "Film"}


# --- fact check ----------------------------------------------------------------------------------------
def title_variants(title: str) -> set[str]:
    """A catalog title as people write it: "Usual Suspects, The" -> also "The Usual Suspects"."""
    title = re.sub(r"\s*\(\d{4}\)\s*$", "", title).strip()
    out = {title}
    m = _ARTICLE_SUFFIX.match(title)
    if m:
        out.add(f"{m.group(2)} {m.group(1)}")
    for t in list(out):
        if t.startswith(("The ", "A ", "An ")):
            out.add(t[0].lower() + t[1:])
    return {t for t in out if t}


@lru_cache(maxsize=8)
def _title_index(titles: tuple[str, ...]) -> tuple[re.Pattern[str] | None, dict[str, str]]:
    """One regex over every checkable title variant -> the catalog title it belongs to."""
    owner: dict[str, str] = {}
    for title in titles:
        for v in title_variants(title):
            single = " " not in v
            if len(v) < 4 or (single and len(v) < 5) or not any(ch.isalpha() for ch in v):
                continue  # too short to tell a title from an ordinary word
            owner.setdefault(v, title)
    if not owner:
        return None, owner
    alt = "|".join(re.escape(v) for v in sorted(owner, key=len, reverse=True))
    return re.compile(rf"(?<![\w'])({alt})(?![\w'])"), owner


def fact_check(
    text: str,
    item: Item,
    catalog_titles: Iterable[str] = (),
    catalog_genres: Iterable[str] = (),
) -> list[str]:
    """Problems in an explanation of `item`: other titles, names, years and genres not in its facts."""
    problems: list[str] = []
    facts = item.facts()
    facts_lower = facts.lower()
    own = {v.lower() for v in title_variants(item.title)}
    pattern, owner = _title_index(tuple(sorted(set(catalog_titles))))
    if pattern is not None:
        for m in pattern.finditer(text):
            variant = m.group(1)
            low = variant.lower()
            if low in own or any(low in o for o in own) or low in facts_lower:
                continue
            if " " not in variant and _SENTENCE_START.search(text[: m.start(1)]):
                continue  # a one-word title at a sentence start is most likely just a word
            problems.append(f"names another title: {owner[variant]}")
    fact_words = set(re.findall(r"[\w'-]+", facts_lower))
    for m in _NAME.finditer(text):
        word = m.group(1)
        if word in _COMMON_CAPS or word.lower() in fact_words or _SENTENCE_START.search(text[: m.start(1)]):
            continue
        problems.append(f"name not in the facts: {word}")  # e.g. a character or actor the model made up
    fact_years = set(_YEAR.findall(facts))
    for year in _YEAR.findall(text):
        if year not in fact_years:
            problems.append(f"year not in the facts: {year}")
    for m in _DECADE.finditer(text):
        digits = m.group(1)
        start = int(digits + "0") if len(digits) == 3 else 1900 + int(digits) * 10
        if m.group(0).lower() in facts_lower or any(start <= int(y) < start + 10 for y in fact_years):
            continue
        problems.append(f"decade not in the facts: {m.group(0)}")
    own_genres = {g.lower() for g in item.genres}
    for mention in find_genres(text, catalog_genres, strict=True):
        if mention.genre.lower() in own_genres:
            continue
        if re.search(rf"(?<![\w-]){re.escape(mention.word)}(?![\w-])", facts_lower):
            continue
        if _NEGATED.search(text[: mention.start]):
            continue  # "no horror" echoes the request; it claims nothing about the item
        problems.append(f"genre not in the facts: {mention.word} ({mention.genre})")
    return list(dict.fromkeys(problems))


def quality_problems(text: str) -> list[str]:
    """Degenerate output: too short, or looping on the same words."""
    words = re.findall(r"[\w']+", text.lower())
    if len(words) < 6:
        return ["too short to explain anything"]
    if len(set(words)) < 0.5 * len(words):
        return ["repetitive text"]
    trigrams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
    if len(trigrams) >= 6 and len(set(trigrams)) < 0.8 * len(trigrams):
        return ["repeats itself"]
    return []


# --- fallback --------------------------------------------------------------------------------------------
def first_sentence(text: str, max_chars: int = 220, cut_mark: str = " ...") -> str:
    """The first sentence of `text`, cut at a word boundary (then `cut_mark`) if longer than max_chars."""
    text = re.sub(r"\s+", " ", text or "").strip()
    if not text:
        return ""
    m = re.match(r"(.+?[.!?])(\s|$)", text)
    sentence = m.group(1) if m else text
    if len(sentence) > max_chars:
        sentence = sentence[:max_chars].rsplit(" ", 1)[0] + cut_mark
    return sentence


def fallback_explanation(item: Item, template: Template | str = "default", tokenizer: Any = None) -> str:
    """A grounded sentence built only from the item's facts (title, year, genres, overview)."""
    tpl = load_template(template) if isinstance(template, str) else template
    genres = [g for g in item.genres if g]
    if genres:
        joined = genres[0] if len(genres) == 1 else ", ".join(genres[:-1]) + " and " + genres[-1]
        phrase = f"{'an' if joined[0].lower() in 'aeiou' else 'a'} {joined} film"
    else:
        phrase = "a film in the catalog"
    overview = first_sentence(data_text(item.text, tokenizer, 0))
    return tpl.fill(
        "explain_fallback",
        title=data_text(item.title, tokenizer, 120),
        year=f" ({item.year})" if item.year else "",
        genres_phrase=phrase,
        overview_sentence=f" {overview}" if overview else "",
    ).strip()


# --- generation ------------------------------------------------------------------------------------------
@dataclass
class ExplainResult:
    """The explanation shown (grounded text) plus what the model wrote and what was wrong with it."""

    explanation: Explanation
    raw: str
    raw_problems: list[str] = field(default_factory=list)
    fallback: bool = False


def _tidy(text: str) -> str:
    """The generated text cut after its last complete sentence (when it has one)."""
    text = re.sub(r"\s+", " ", text).strip()
    m = re.match(r"^(.*[.!?])(?:\s[^.!?]*)?$", text)
    return m.group(1) if m and len(m.group(1)) > 20 else text


def stream_explanation(
    model: Any,
    tokenizer: Any,
    item: Item,
    request: str,
    template: Template | str = "default",
    max_new_tokens: int = 60,
    repetition_penalty: float = 1.2,
    language: str = "",
) -> Iterator[str]:
    """Text pieces of a generated explanation: first the template's opening words, then token by token
    (in `language` when given: see `agent.prompt.explain_prompt`)."""
    text, prefix = explain_prompt(tokenizer, template, item, request, language)
    ids = tokenizer.encode(text, add_special_tokens=False)
    table = model.get_input_embeddings()
    embeds = table(torch.tensor([ids], device=table.weight.device))
    yield prefix
    stops = stop_ids(tokenizer, model)
    yield from stream_text(tokenizer, greedy_ids(model, embeds, max_new_tokens, stops, repetition_penalty))


def explain(
    model: Any,
    tokenizer: Any,
    item: Item,
    request: str,
    *,
    template: Template | str = "default",
    catalog_titles: Sequence[str] = (),
    catalog_genres: Sequence[str] = (),
    max_new_tokens: int = 60,
    repetition_penalty: float = 1.2,
    on_token: Callable[[str], None] | None = None,
) -> ExplainResult:
    """Generate (streaming pieces to `on_token`), fact-check, and fall back to the grounded template."""
    pieces = []
    for piece in stream_explanation(
        model, tokenizer, item, request, template, max_new_tokens, repetition_penalty
    ):
        pieces.append(piece)
        if on_token is not None:
            on_token(piece)
    return check_explanation("".join(pieces), item, template, catalog_titles, catalog_genres, tokenizer)


def check_explanation(
    raw: str,
    item: Item,
    template: Template | str = "default",
    catalog_titles: Sequence[str] = (),
    catalog_genres: Sequence[str] = (),
    tokenizer: Any = None,
) -> ExplainResult:
    """Fact-check a generated text; keep it when clean, else replace it with the grounded fallback."""
    text = _tidy(raw)
    problems = fact_check(text, item, catalog_titles, catalog_genres)
    problems += quality_problems(text)
    if not problems:
        return ExplainResult(Explanation(item.id, text, True, []), raw, [], False)
    grounded = fallback_explanation(item, template, tokenizer)
    left = fact_check(grounded, item, catalog_titles, catalog_genres)
    return ExplainResult(Explanation(item.id, grounded, not left, problems), raw, problems, True)
