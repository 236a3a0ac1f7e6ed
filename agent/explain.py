"""Explanations grounded by construction: evidence first, constrained decoding, then the fact check.

For each shown item `GroundedExplainer` gathers the evidence (`agent.evidence`: matched constraints,
the overview sentence closest to the request, the liked film closest in the collaborative prior, the
attachment match), puts it in the prompt between <facts> and </facts> (the template's
`explain_system` / `explain_request` / `explain_prefix` sections) and lets the LLM write one or two
sentences with `agent.constrained.guarded_greedy`: it cannot start a capitalised word or a number that
the evidence does not hold, nor a genre word the evidence does not name. `fact_check` stays the second
line: it flags another catalog title, a name, year or genre not in the item's facts or the evidence;
a failing text is replaced by a sentence built from the facts (`explain_fallback`), and the raw text
and its problems are kept for the record.

Prefix cache: the explanation prompts of one turn share their start (system + what the user asked for,
up to the first line about the item). Its KV cache is computed once (`PrefixCache`) and
each item's prompt continues a copy of it, so only the item's lines are read per item; the copy keeps
concurrent streams apart. The ranking pass is NOT reused: it runs the LoRA-adapted model on another
prompt (ranking rules, candidates, soft tokens), while explanations run the base LLM (`agent.explain_with`
= auto with a ranking-only adapter) - different weights and different tokens, so its keys and values
do not apply. Reused or not, the ids fed to the model are the same (prefix ids + item ids), and
greedy decoding gives the same text (tests/agent/test_grounded.py).
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from fusionrec.agent.constrained import Guard, guarded_greedy
from fusionrec.agent.decode import stop_ids, stream_text
from fusionrec.agent.evidence import Evidence, TurnContext, gather
from fusionrec.agent.genres import find_genres
from fusionrec.agent.prompt import Template, chat_text, data_text, load_template
from fusionrec.agent.titles import title_variants
from fusionrec.types import Explanation, Item

_YEAR = re.compile(r"(?<![\d])(1[89]\d\d|20\d\d)(?![\d]|'?s\b)")  # not "1990s" (a decade)
_DECADE = re.compile(r"(?<![\w'])'?((?:1[89]|20)?\d)0'?s\b", re.IGNORECASE)
_NEGATED = re.compile(r"\b(?:no|not|non|without|nothing)[\s-]+(?:\w+[\s-]+)?$", re.IGNORECASE)
_SENTENCE_START = re.compile(r"(^|[.!?]\s+|\n)$")
_NAME = re.compile(r"(?<![\w'-])([A-Z][a-z]+[A-Za-z]*(?:[-'][A-Za-z]+)*)")  # a capitalised word: a name?
_COMMON_CAPS = {"I", "I'm", "I've", "I'd", "The", "A", "An", "Movie", "Film"}
_ITEM = "\x00item\x00"  # marks where the item's part of the explanation prompt begins


# --- fact check ----------------------------------------------------------------------------------------
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
    evidence: str = "",
) -> list[str]:
    """Problems in an explanation of `item`: other titles, names, years and genres that are neither in
    its facts nor in the `evidence` it was given (e.g. the liked film it names)."""
    problems: list[str] = []
    facts = item.facts() + ("\n" + evidence if evidence else "")
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
    fact_words = set(re.findall(r"[\w'-]+", facts_lower)) | set(re.findall(r"\w+", facts_lower))
    for m in _NAME.finditer(text):
        word = m.group(1)
        known = word.lower() in fact_words or word.lower().removesuffix("'s") in fact_words  # "Clark's"
        if word in _COMMON_CAPS or known or _SENTENCE_START.search(text[: m.start(1)]):
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


@dataclass(frozen=True)
class GroundedPrompt:
    """An explanation prompt split where the item's part begins: the turn's shared prefix, the item's
    ids, and the answer's opening words (the end of the item's part)."""

    prefix: tuple[int, ...]
    item: tuple[int, ...]
    opening: str


def grounded_prompt(
    tokenizer: Any, template: Template | str, evidence: Evidence, ctx: TurnContext, language: str = ""
) -> GroundedPrompt:
    """The explanation prompt for one item: the template's explain sections with the evidence as the facts.
    The request is given as what was understood of it (`TurnContext.asked`), not in the user's words: the
    LLM sees only the evidence (on the tuning half, 23 % of the texts written with the request in the
    prompt retold the request as the film's story). `language` (a code such as "de", "" = English) asks
    for that language and opens the answer with the title only."""
    from fusionrec.agent.language import ENGLISH, NAMES

    tpl = load_template(template) if isinstance(template, str) else template
    title = data_text(evidence.title, tokenizer, 120)
    asked = data_text(ctx.asked(), tokenizer, 300)
    facts = "\n".join(data_text(line, tokenizer, 600) for line in evidence.lines())
    user = tpl.fill(
        "explain_request",
        request=asked or "(told by the facts)",
        facts=_ITEM + facts,
        title=_ITEM + title,
    )
    system, opening = tpl.sections["explain_system"], tpl.fill("explain_prefix", title=title)
    if language and language != ENGLISH:  # the template's opening words are English: open with the title
        system += f" Write the explanation in {NAMES.get(language, language)}."
        opening = f"{title}: "
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    text = chat_text(tokenizer, messages) + opening
    cut = text.index(_ITEM)
    head, rest = text[:cut], text[cut:].replace(_ITEM, "")
    encode = tokenizer.encode
    return GroundedPrompt(
        tuple(encode(head, add_special_tokens=False)), tuple(encode(rest, add_special_tokens=False)), opening
    )


class PrefixCache:
    """The KV cache of a token prefix, computed once; `extend` continues a copy of it."""

    def __init__(self, model: Any, ids: Sequence[int]) -> None:
        self.ids = tuple(ids)
        self.device = model.get_input_embeddings().weight.device
        with torch.no_grad():
            out = model(
                input_ids=torch.tensor([self.ids], device=self.device), use_cache=True, logits_to_keep=1
            )
        self.cache = out.cache

    @torch.no_grad()
    def extend(self, model: Any, ids: Sequence[int]) -> tuple[Any, torch.Tensor]:
        """(cache, next-token logits) after the prefix followed by `ids`."""
        cache = copy.deepcopy(self.cache)
        out = model(input_ids=torch.tensor([list(ids)], device=self.device), cache=cache, use_cache=True,
                    logits_to_keep=1)  # fmt: skip
        return out.cache, out.logits[0, -1]


@dataclass
class Stats:
    """What the last explanation cost: tokens generated, seconds, whether the prefix cache was reused."""

    tokens: int = 0
    seconds: float = 0.0
    prefix_reused: bool = False


class GroundedExplainer:
    """Evidence -> constrained generation -> fact check, with the turn's prompt prefix cached."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        template: Template | str = "default",
        *,
        encoder: Any = None,
        vectors: Mapping[str, np.ndarray] | None = None,
        catalog_titles: Sequence[str] = (),
        catalog_genres: Sequence[str] = (),
        max_new_tokens: int = 60,
        repetition_penalty: float = 1.2,
        reuse_prefix: bool = True,
    ) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.template = load_template(template) if isinstance(template, str) else template
        self.encoder, self.vectors = encoder, vectors or {}
        self.titles, self.genres = list(catalog_titles), list(catalog_genres)
        self.max_new_tokens, self.repetition_penalty = max_new_tokens, repetition_penalty
        self.reuse_prefix = reuse_prefix
        self.stop = stop_ids(tokenizer, model)
        self.stats = Stats()
        self._prefix: PrefixCache | None = None
        self._request: tuple[str, np.ndarray | None] = ("", None)

    def request_vector(self, ctx: TurnContext) -> np.ndarray | None:
        """The request's text vector (encoded once per request text)."""
        if self.encoder is None or not ctx.request.strip():
            return None
        if self._request[0] != ctx.request:
            self._request = (ctx.request, np.asarray(self.encoder.encode([ctx.request])[0], dtype=np.float32))
        return self._request[1]

    def evidence(self, item: Item, ctx: TurnContext) -> Evidence:
        return gather(
            item, ctx, encoder=self.encoder, request_vector=self.request_vector(ctx), vectors=self.vectors
        )

    def _start(self, prompt: GroundedPrompt) -> tuple[Any, torch.Tensor]:
        """(cache, next-token logits) after the whole prompt, reusing the cached prefix when it matches."""
        if not self.reuse_prefix:
            device = self.model.get_input_embeddings().weight.device
            ids = torch.tensor([[*prompt.prefix, *prompt.item]], device=device)
            with torch.no_grad():
                out = self.model(input_ids=ids, use_cache=True, logits_to_keep=1)
            return out.cache, out.logits[0, -1]
        prefix = self._prefix
        self.stats.prefix_reused = prefix is not None and prefix.ids == prompt.prefix
        if prefix is None or not self.stats.prefix_reused:
            prefix = self._prefix = PrefixCache(self.model, prompt.prefix)
        return prefix.extend(self.model, prompt.item)

    def stream(self, evidence: Evidence, ctx: TurnContext, language: str = "") -> Iterator[str]:
        """Text pieces: the opening words (at once: they are fixed), then the constrained generation
        token by token. `stats` describes the last finished stream."""
        t0 = time.perf_counter()
        self.stats = Stats()
        prompt = grounded_prompt(self.tokenizer, self.template, evidence, ctx, language)
        yield prompt.opening
        cache, logits = self._start(prompt)
        guard = Guard(self.tokenizer, evidence.allowed(), names=not language or language == "en")
        ids = guarded_greedy(self.model, logits, cache, guard, prompt.opening, self.max_new_tokens, self.stop,
                             self.repetition_penalty)  # fmt: skip
        yield from stream_text(self.tokenizer, _counted(ids, self.stats))
        self.stats.seconds = time.perf_counter() - t0

    def check(self, raw: str, item: Item, evidence: Evidence) -> ExplainResult:
        """The fact check (second line) with the evidence counting as facts; the fallback on failure."""
        return check_explanation(
            raw, item, self.template, self.titles, self.genres, self.tokenizer, evidence.text()
        )


def _counted(ids: Iterator[int], stats: Stats) -> Iterator[int]:
    for tid in ids:
        stats.tokens += 1
        yield tid


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
    """Explain `item` for a request alone (no dialogue, no encoder: the overview's first sentence),
    streaming pieces to `on_token`; fact-checked, with the grounded fallback."""
    explainer = GroundedExplainer(
        model, tokenizer, template, catalog_titles=catalog_titles, catalog_genres=catalog_genres,
        max_new_tokens=max_new_tokens, repetition_penalty=repetition_penalty,
    )  # fmt: skip
    ctx = TurnContext.from_request(request, catalog_genres)
    evidence = explainer.evidence(item, ctx)
    pieces = []
    for piece in explainer.stream(evidence, ctx):
        pieces.append(piece)
        if on_token is not None:
            on_token(piece)
    return explainer.check("".join(pieces), item, evidence)


def check_explanation(
    raw: str,
    item: Item,
    template: Template | str = "default",
    catalog_titles: Sequence[str] = (),
    catalog_genres: Sequence[str] = (),
    tokenizer: Any = None,
    evidence: str = "",
) -> ExplainResult:
    """Fact-check a generated text (the `evidence` text counts as facts); keep it when clean, else
    replace it with the grounded fallback."""
    text = _tidy(raw)
    problems = fact_check(text, item, catalog_titles, catalog_genres, evidence)
    problems += quality_problems(text)
    if not problems:
        return ExplainResult(Explanation(item.id, text, True, []), raw, [], False)
    grounded = fallback_explanation(item, template, tokenizer)
    left = fact_check(grounded, item, catalog_titles, catalog_genres)
    return ExplainResult(Explanation(item.id, grounded, not left, problems), raw, problems, True)
