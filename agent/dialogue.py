"""Dialogue state: constraints parsed from what the user says, feedback, and what the next search excludes.

`parse_turn` reads one message: genres wanted or refused ("a comedy", "no horror", "anything but
westerns"; hint words such as "funny" or "kids" only count when refused: "nothing scary"), years ("from the 90s", "after 2000", "before 1980", "between 1980 and 1990",
"something newer" = above the median year of the items just shown, "something older"), and
references to the items just shown ("not that one", "not the first" -> dislike; "more like the
second" -> like, and that item becomes the query). A message in German, French, Spanish or Chinese
is read with that language's words too (`agent.lexicon`: "keinen Horror", "des années 90",
"不要恐怖片"); a non-English message gets `language` and notes of its language and of the words
that were not understood. `apply_update` folds it into the DialogueState.
Genres refused accumulate; genres asked for replace the previous wish; years replace earlier bounds.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fusionrec.agent import multilingual
from fusionrec.agent.genres import LOOSE, find_genres
from fusionrec.agent.language import ENGLISH, detect_language
from fusionrec.agent.lexicon import LEXICONS, Lexicon
from fusionrec.types import DialogueState

ORDINALS = {
    "first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4,
    "fifth": 5, "5th": 5, "sixth": 6, "6th": 6, "seventh": 7, "7th": 7, "eighth": 8, "8th": 8,
    "ninth": 9, "9th": 9, "tenth": 10, "10th": 10, "last": -1, "top": 1,
}  # fmt: skip
DECADE_WORDS = {
    "twenties": 1920, "thirties": 1930, "forties": 1940, "fifties": 1950, "sixties": 1960,
    "seventies": 1970, "eighties": 1980, "nineties": 1990,
}  # fmt: skip
_ORD = "|".join(sorted(ORDINALS, key=len, reverse=True))
_REF = (
    rf"(?:the\s+)?(?P<ord>{_ORD})(?:\s+(?:one|movie|film|item|pick|suggestion))?"
    r"|(?:number|no\.|#)\s*(?P<num>\d{1,2})"
    r"|(?P<that>that|this)\s+(?:one|movie|film)"
)
_DISLIKE = re.compile(
    rf"\b(?:not|no|don'?t\s+(?:like|want)|didn'?t\s+like|dislike|hate|skip|drop|remove)\s+(?:{_REF})\b",
    re.IGNORECASE,
)
_LIKE = re.compile(
    rf"\b(?:more\s+like|something\s+like|similar\s+to|like|liked|love|loved|enjoyed)\s+(?:{_REF})\b",
    re.IGNORECASE,
)
_NEGATION = re.compile(
    r"\b(?:no|not|without|avoid|except|none|nothing|never|hate|dislike|skip|don'?t|do\s+not|no\s+more|less)\b",
    re.IGNORECASE,
)
_ANYTHING_BUT = re.compile(r"\b(?:anything|everything|something)\s+but\b|\bother\s+than\b", re.IGNORECASE)
_CLAUSE = re.compile(r"[.,;!?]|\bbut\b|\bhowever\b|\binstead\b", re.IGNORECASE)
_YEAR = r"(1[89]\d\d|20\d\d)"
_BETWEEN = re.compile(rf"\bbetween\s+{_YEAR}\s+and\s+{_YEAR}\b", re.IGNORECASE)
_AFTER = re.compile(
    rf"\b(after|since|post-?|newer\s+than|later\s+than|from)\s*{_YEAR}\s*(?:on(?:wards?)?|or\s+later|\+)?",
    re.IGNORECASE,
)
_BEFORE = re.compile(
    rf"\b(before|pre-?|older\s+than|earlier\s+than|prior\s+to|until|up\s+to)\s*{_YEAR}", re.IGNORECASE
)
_IN_YEAR = re.compile(rf"\b(?:in|of)\s+{_YEAR}\b", re.IGNORECASE)
_DECADE = re.compile(r"\b(?:the\s+)?'?((?:19|20)?\d)0'?s\b", re.IGNORECASE)
_DECADE_WORD = re.compile(rf"\b({'|'.join(DECADE_WORDS)})\b", re.IGNORECASE)
# "set in the 50s", "goes back to 1955": when the story happens, not when the film was made
_SETTING = re.compile(
    r"\b(?:set|takes?\s+place|taking\s+place|back|travel(?:s|ed|led|ing|ling)?|during)\s+"
    r"(?:(?:in|to|into)\s+)?(?:the\s+)?$",
    re.IGNORECASE,
)
_NEWER = re.compile(
    r"\b(newer|more\s+recent|recent|latest|modern|less\s+old|not\s+so\s+old)\b", re.IGNORECASE
)
_OLDER = re.compile(r"\b(older|classic|classics|old[- ]school|vintage|less\s+recent)\b", re.IGNORECASE)
_ANY_YEAR = re.compile(r"\bany\s+(?:year|time|era|decade)\b", re.IGNORECASE)
_ANY_GENRE = re.compile(r"\bany\s+genre\b", re.IGNORECASE)


@dataclass
class DialogueUpdate:
    """What one message changes."""

    include_genres: set[str] = field(default_factory=set)
    exclude_genres: set[str] = field(default_factory=set)
    year_min: int | None = None
    year_max: int | None = None
    clear_years: bool = False
    clear_genres: bool = False
    relative_years: bool = False  # "newer"/"older": the other, compatible bound is kept
    like: list[int] = field(default_factory=list)  # 1-based positions in the last answer (-1 = last)
    dislike: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was understood, for the reply and logs
    language: str | None = None  # ISO 639-1 code of a non-English message ("de", "zh"); None: English

    def empty(self) -> bool:
        return not (
            self.include_genres or self.exclude_genres or self.year_min is not None or self.year_max is not None
            or self.clear_years or self.clear_genres or self.like or self.dislike or self.relative_years
        )  # fmt: skip


def _ref_position(m: re.Match[str]) -> int:
    if m.group("ord"):
        return ORDINALS[m.group("ord").lower()]
    if m.group("num"):
        return int(m.group("num"))
    return 1  # "that one" / "this one": the top suggestion


def _genres(text: str, catalog_genres: Iterable[str]) -> tuple[set[str], set[str]]:
    """(wanted, refused) genres; a negation earlier in the same clause refuses the genres after it."""
    text = _ANYTHING_BUT.sub(" not ", text)
    wanted: set[str] = set()
    refused: set[str] = set()
    cuts = [0, *[m.end() for m in _CLAUSE.finditer(text)], len(text)]
    for start, end in zip(cuts, cuts[1:], strict=False):
        clause = text[start:end]
        negs = [m.end() for m in _NEGATION.finditer(clause)]
        for mention in find_genres(clause, catalog_genres):
            if any(n <= mention.start for n in negs):
                refused.add(mention.genre)
            elif mention.word not in LOOSE:
                wanted.add(mention.genre)
    return wanted - refused, refused


def _median_year(years: Sequence[int | None]) -> int | None:
    known = [int(y) for y in years if y]
    return int(statistics.median(known)) if known else None


def parse_turn(
    text: str, catalog_genres: Iterable[str] = (), shown_years: Sequence[int | None] = ()
) -> DialogueUpdate:
    """The constraints and feedback in one user message (`shown_years`: years of the items just shown)."""
    up = DialogueUpdate()
    text = text or ""
    catalog = tuple(catalog_genres)
    lang = detect_language(text)
    lex = LEXICONS.get(lang)
    up.language = None if lang == ENGLISH else lang
    refs = text
    for m in _DISLIKE.finditer(text):
        up.dislike.append(_ref_position(m))
        refs = refs.replace(m.group(0), " ")
    for m in _LIKE.finditer(refs):
        up.like.append(_ref_position(m))
    # genres (reference phrases removed so "not the first" is not read as a refusal of anything)
    if lex is not None:
        wanted, refused = multilingual.genres(refs, catalog, lex, _NEGATION, _CLAUSE)
    else:
        wanted, refused = _genres(refs, catalog)
    ignored: set[str] = set()
    if up.language and lex is None:  # negations in this language are unknown: a wish could be a refusal
        ignored, wanted = wanted, set()
    up.include_genres, up.exclude_genres = wanted, refused
    if _ANY_GENRE.search(text) or (lex is not None and multilingual.any_genre(text, lex)):
        up.clear_genres = True
    _years(text, up, lex)
    median = _median_year(shown_years)
    if up.year_min is None and up.year_max is None and median is not None:
        if _NEWER.search(text):
            direction: str | None = "newer"
        elif _OLDER.search(text):
            direction = "older"
        else:
            direction = multilingual.relative(text, lex) if lex is not None else None
        if direction == "newer":
            up.year_min, up.relative_years = median + 1, True
            up.notes.append(f"newer than {median} (the median year of what I showed)")
        elif direction == "older":
            up.year_max, up.relative_years = median - 1, True
            up.notes.append(f"older than {median} (the median year of what I showed)")
    if up.include_genres:
        up.notes.append("genres: " + ", ".join(sorted(up.include_genres)))
    if up.exclude_genres:
        up.notes.append("no " + ", ".join(sorted(up.exclude_genres)))
    if up.year_min is not None or up.year_max is not None:
        up.notes.append(f"years {up.year_min or '...'}-{up.year_max or '...'}")
    if up.language:
        _language_notes(up, text, catalog, lex, ignored)
    return up


def _release(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    """The first match of a year or decade pattern that is not the story's setting ("set in the 50s")."""
    return next((m for m in pattern.finditer(text) if not _SETTING.search(text[: m.start()])), None)


def _years(text: str, up: DialogueUpdate, lex: Lexicon | None) -> None:
    """Year bounds: the English phrases, else those of the message's language (`lex`)."""
    if _ANY_YEAR.search(text) or (lex is not None and multilingual.any_year(text, lex)):
        up.clear_years = True
    if m := _BETWEEN.search(text):
        lo, hi = sorted((int(m.group(1)), int(m.group(2))))
        up.year_min, up.year_max = lo, hi
        return
    for m in _AFTER.finditer(text):
        word, year = m.group(1).lower(), int(m.group(2))
        inclusive = word.startswith(("since", "from")) or bool(
            re.search(r"on|later|\+", m.group(0)[len(word) :])
        )
        if word == "from" and not re.search(r"on|later|\+", m.group(0)):
            continue  # "from 1995" alone is a single year (below)
        up.year_min = year if inclusive else year + 1
    for m in _BEFORE.finditer(text):
        word, year = m.group(1).lower(), int(m.group(2))
        up.year_max = year if word.startswith(("until", "up")) else year - 1
    if up.year_min is None and up.year_max is None:
        single = _release(_IN_YEAR, text) or re.search(rf"\bfrom\s+{_YEAR}\b", text, re.IGNORECASE)
        if single:
            up.year_min = up.year_max = int(single.group(1))
    if up.year_min is None and up.year_max is None:
        decade = None
        if m := _release(_DECADE, text):
            digits = m.group(1)
            decade = int(digits + "0") if len(digits) == 3 else 1900 + int(digits) * 10
        elif m := _release(_DECADE_WORD, text):
            decade = DECADE_WORDS[m.group(1).lower()]
        if decade is not None:
            up.year_min, up.year_max = decade, decade + 9
    if up.year_min is None and up.year_max is None and lex is not None:
        up.year_min, up.year_max, _ = multilingual.years(text, lex)


def _language_notes(
    up: DialogueUpdate, text: str, catalog: Sequence[str], lex: Lexicon | None, ignored: set[str]
) -> None:
    """Notes for a non-English message: its language first, then what could not be used or read."""
    up.notes.insert(0, f"language: {up.language}")
    if ignored:
        up.notes.append(f"genre words not used (I cannot read negations in {up.language}): "
                        + ", ".join(sorted(ignored)))  # fmt: skip
    spans = [multilingual.Span(m.start, m.end) for m in find_genres(text, catalog)]
    for pattern in (_NEGATION, _DISLIKE, _LIKE, _BETWEEN, _AFTER, _BEFORE, _IN_YEAR, _DECADE, _DECADE_WORD,
                    _NEWER, _OLDER, _ANY_YEAR, _ANY_GENRE):  # fmt: skip
        spans += [multilingual.Span(m.start(), m.end()) for m in pattern.finditer(text)]
    if lex is not None:
        spans += multilingual.read_spans(text, catalog, lex, _NEGATION)
    if unknown := multilingual.unread(text, lex, spans):
        up.notes.append("not understood: " + ", ".join(unknown))


def _resolve(state: DialogueState, position: int) -> str | None:
    """The item id at a 1-based position of the last answer (-1 = last); None when out of range."""
    shown = state.last_ranking
    if not shown:
        return None
    if position == -1:
        return shown[-1]
    return shown[position - 1] if 1 <= position <= len(shown) else None


def like(state: DialogueState, position: int) -> str | None:
    """Mark the item at `position` of the last answer as liked; returns its id (None if no such item)."""
    item_id = _resolve(state, position)
    if item_id is not None:
        if item_id in state.disliked:
            state.disliked.remove(item_id)
        if item_id not in state.liked:
            state.liked.append(item_id)
    return item_id


def dislike(state: DialogueState, position: int) -> str | None:
    """Mark the item at `position` of the last answer as disliked; returns its id."""
    item_id = _resolve(state, position)
    if item_id is not None:
        if item_id in state.liked:
            state.liked.remove(item_id)
        if item_id not in state.disliked:
            state.disliked.append(item_id)
    return item_id


def apply_update(state: DialogueState, up: DialogueUpdate) -> dict[str, Any]:
    """Fold an update into the state; returns {"liked": [ids], "disliked": [ids], "query_item": id|None}."""
    if up.clear_genres:
        state.include_genres.clear()
        state.exclude_genres.clear()
    if up.include_genres:
        state.include_genres = set(up.include_genres)
        state.exclude_genres -= up.include_genres
    if up.exclude_genres:
        state.exclude_genres |= up.exclude_genres
        state.include_genres -= up.exclude_genres
    if up.clear_years:
        state.year_min = state.year_max = None
    if up.relative_years and up.year_min is not None:
        keep = state.year_max is not None and state.year_max >= up.year_min
        state.year_min, state.year_max = up.year_min, state.year_max if keep else None
    elif up.relative_years and up.year_max is not None:
        keep = state.year_min is not None and state.year_min <= up.year_max
        state.year_min, state.year_max = state.year_min if keep else None, up.year_max
    elif up.year_min is not None or up.year_max is not None:
        state.year_min, state.year_max = up.year_min, up.year_max
    liked = [i for i in (like(state, p) for p in up.like) if i]
    disliked = [i for i in (dislike(state, p) for p in up.dislike) if i]
    return {"liked": liked, "disliked": disliked, "query_item": liked[-1] if liked else None}


def reset(state: DialogueState) -> None:
    """Forget everything: turns, constraints, feedback, what was shown."""
    fresh = DialogueState()
    for name in vars(fresh):
        setattr(state, name, getattr(fresh, name))


def retrieval_filters(state: DialogueState) -> dict[str, Any] | None:
    """The Chroma filters for the state's constraints (None when there are none)."""
    filters: dict[str, Any] = {}
    if state.include_genres:
        filters["genres"] = sorted(state.include_genres)
    if state.exclude_genres:
        filters["exclude_genres"] = sorted(state.exclude_genres)
    if state.year_min is not None:
        filters["year_min"] = state.year_min
    if state.year_max is not None:
        filters["year_max"] = state.year_max
    return filters or None


def excluded_ids(state: DialogueState) -> list[str]:
    """Items the next search must not return: everything shown, liked or disliked so far."""
    return list(dict.fromkeys([*state.shown, *state.liked, *state.disliked]))
