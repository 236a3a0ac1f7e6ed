"""Constraints in a non-English message: genres wanted or refused, years, and the words left unread.

`agent.dialogue.parse_turn` calls these for a turn in a language of `agent.lexicon.LEXICONS`; English
genre words and negations still count there ("keinen Horror", "una comedia, no horror"). A negation
refuses the genres after it in its clause, the genres before it when it ends the clause ("Horror
bitte nicht", "恐怖片不要"), and those of the clause before when it stands alone ("Horror? Nein
danke"): a negated genre is excluded, never required.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from fusionrec.agent.genres import LOOSE, GenreMention, canonical, find_genres
from fusionrec.agent.language import STOP_WORDS, fold
from fusionrec.agent.lexicon import Lexicon

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+")
_LATIN_WORD = re.compile(r"[^\W\d_]+")
_ZH_DIGITS = str.maketrans("〇零一二三四五六七八九", "00123456789")
_ZH_NUMBER = re.compile(r"[〇零一二三四五六七八九]{2,}")
_A_NOT_A = re.compile(r"(.)[不没]\1")  # "有没有", "要不要": questions, not refusals
_MAX_UNKNOWN = 8


@dataclass(frozen=True, order=True)
class Span:
    start: int
    end: int


def prepared(text: str, lex: Lexicon) -> str:
    """The text as the patterns read it: folded, Chinese digit runs as digits ("一九九五" -> "1995")."""
    folded = fold(text)
    if not lex.spaced:
        folded = _ZH_NUMBER.sub(lambda m: m.group(0).translate(_ZH_DIGITS), folded)
    return folded


def mentions(text: str, catalog: Iterable[str], lex: Lexicon) -> list[GenreMention]:
    """English and `lex` genre words in `text`, in order; overlapping words: the longer one."""
    catalog = tuple(sorted(set(catalog)))
    found = [m for m in find_genres(text, catalog) if m.word not in lex.ignore_english]
    found = [GenreMention(m.genre, m.word, m.start, m.end, m.word in LOOSE) for m in found]
    folded = prepared(text, lex)
    for genre, source, pattern in lex.genre_patterns:
        target = canonical(genre, catalog) if catalog else genre
        if catalog and target not in catalog:
            continue
        for m in pattern.finditer(folded):
            found.append(GenreMention(target, text[m.start() : m.end()].lower(), m.start(), m.end(),
                                      source in lex.loose))  # fmt: skip
    found.sort(key=lambda m: (m.start, m.start - m.end, m.loose))
    kept: list[GenreMention] = []
    for m in found:
        if not kept or m.start >= kept[-1].end:
            kept.append(m)
    return kept


def negations(text: str, lex: Lexicon, english: re.Pattern[str]) -> list[Span]:
    """Negation words (English ones included), without those in phrases that refuse nothing."""
    folded = prepared(text, lex)
    if not lex.spaced:
        folded = _A_NOT_A.sub(lambda m: m.group(1) * 3, folded)
    masked = [Span(m.start(), m.end()) for m in lex.not_negation.finditer(folded)]
    spans = [Span(m.start(), m.end()) for m in (*english.finditer(text), *lex.negation.finditer(folded))]
    return sorted(s for s in spans if not any(k.start <= s.start < k.end for k in masked))


def _only_fillers(piece: str, lex: Lexicon) -> bool:
    """Whether a stretch of text says nothing but politeness and function words."""
    return not unread(piece, lex)


def genres(
    text: str, catalog: Iterable[str], lex: Lexicon, negation: re.Pattern[str], clause: re.Pattern[str]
) -> tuple[set[str], set[str]]:
    """(wanted, refused) genres of a message in `lex`'s language; `negation`/`clause`: the English ones."""
    ms = mentions(text, catalog, lex)
    negs = negations(text, lex, negation)
    breaks = {m.end() for m in clause.finditer(text)} | {
        m.end() for m in lex.clause_break.finditer(fold(text))
    }
    cuts = sorted({0, *breaks, len(text)})
    wanted: set[str] = set()
    refused: set[str] = set()
    previous: list[GenreMention] = []
    for start, end in zip(cuts, cuts[1:], strict=False):
        here = [m for m in ms if start <= m.start < end]
        ends = [n.end for n in negs if start <= n.start < end]
        if not here:
            if ends and _only_fillers(_cut(text, start, end, negs), lex):
                refused.update(m.genre for m in previous)  # "Horror? Nein danke."
            previous = [] if text[start:end].strip() else previous
            continue
        closing = bool(ends) and max(ends) > here[-1].end and _only_fillers(text[max(ends) : end], lex)
        for m in here:
            if closing or any(n <= m.start for n in ends):
                refused.add(m.genre)
            elif not m.loose:
                wanted.add(m.genre)
        previous = here
    return wanted - refused, refused


def _cut(text: str, start: int, end: int, spans: Sequence[Span]) -> str:
    """text[start:end] with the given spans blanked out."""
    chars = list(text[start:end])
    for s in spans:
        for i in range(max(s.start, start), min(s.end, end)):
            chars[i - start] = " "
    return "".join(chars)


def _year(value: str) -> int:
    year = int(value)
    if year < 100:  # "95年"
        year += 1900 if year >= 30 else 2000
    return year


def years(text: str, lex: Lexicon) -> tuple[int | None, int | None, list[Span]]:
    """(year_min, year_max, spans read) from the years and decades `lex` knows; (None, None, []) if none."""
    folded = prepared(text, lex)

    def first(patterns: Iterable[str]) -> re.Match[str] | None:
        return next((m for p in patterns if (m := re.search(p, folded))), None)

    if m := first(lex.between):
        lo, hi = sorted((_year(m.group(1)), _year(m.group(2))))
        return lo, hi, [Span(m.start(), m.end())]
    lo = hi = None
    spans = []
    if m := first(lex.after) or first(lex.since):
        lo = _year(m.group(1)) + (1 if m.re.pattern in lex.after else 0)
        spans.append(Span(m.start(), m.end()))
    if m := first(lex.before) or first(lex.until):
        hi = _year(m.group(1)) - (1 if m.re.pattern in lex.before else 0)
        spans.append(Span(m.start(), m.end()))
    if lo is not None or hi is not None:
        return lo, hi, spans
    if m := first(lex.single):
        year = _year(m.group(1))
        return year, year, [Span(m.start(), m.end())]
    bound = r"\b" if lex.spaced else ""
    for pattern, decade in lex.decades.items():
        if m := re.search(bound + pattern, folded):
            return decade, decade + 9, [Span(m.start(), m.end())]
    if m := re.search(lex.decade_digits, folded):
        digits = m.group(1)
        decade = int(digits + "0") if len(digits) == 3 else 1900 + int(digits) * 10
        return decade, decade + 9, [Span(m.start(), m.end())]
    if m := re.search(r"(?<!\d)(1[89]\d\d|20\d\d)(?!\d)", folded):  # a bare year
        year = int(m.group(1))
        return year, year, [Span(m.start(), m.end())]
    return None, None, []


def relative(text: str, lex: Lexicon) -> str | None:
    """ "newer" / "older" when the message asks for newer or older items than those shown."""
    folded = prepared(text, lex)
    if re.search(lex.newer, folded):
        return "newer"
    if re.search(lex.older, folded):
        return "older"
    return None


def any_year(text: str, lex: Lexicon) -> bool:
    return bool(re.search(lex.any_year, prepared(text, lex)))


def any_genre(text: str, lex: Lexicon) -> bool:
    return bool(re.search(lex.any_genre, prepared(text, lex)))


def read_spans(text: str, catalog: Iterable[str], lex: Lexicon, negation: re.Pattern[str]) -> list[Span]:
    """Everything the parser reads in `text`: genre words, negations, years, relative and "any" words."""
    folded = prepared(text, lex)
    spans = [Span(m.start, m.end) for m in mentions(text, catalog, lex)]
    spans += negations(text, lex, negation)
    spans += [Span(m.start(), m.end()) for m in lex.not_negation.finditer(folded)]
    if not lex.spaced:
        spans += [Span(m.start(), m.end()) for m in _A_NOT_A.finditer(folded)]
    spans += years(text, lex)[2]
    spans += [Span(m.start(), m.end()) for m in lex.clause_break.finditer(folded)]
    for pattern in (lex.newer, lex.older, lex.any_year, lex.any_genre, lex.decade_digits, *lex.decades):
        spans += [Span(m.start(), m.end()) for m in re.finditer(pattern, folded)]
    return spans


def unread(text: str, lex: Lexicon | None, spans: Sequence[Span] = ()) -> list[str]:
    """Words of `text` that are neither in `spans` nor filler words of its language (nor English ones)."""
    fillers = STOP_WORDS["en"] | (lex.fillers | STOP_WORDS.get(lex.code, frozenset()) if lex else frozenset())
    if lex is None:
        fillers = fillers.union(*STOP_WORDS.values())

    def read(start: int, end: int) -> bool:
        return any(s.start < end and start < s.end for s in spans)

    found: list[str] = []
    for m in _LATIN_WORD.finditer(text):
        if _CJK.fullmatch(m.group(0)):
            continue
        if not read(m.start(), m.end()) and fold(m.group(0)) not in fillers:
            found.append(m.group(0))
    for m in _CJK.finditer(text):
        found += _cjk_unread(m.start(), m.group(0), fillers, read)
    return list(dict.fromkeys(found))[:_MAX_UNKNOWN]


def _cjk_unread(
    offset: int, run: str, fillers: frozenset[str], read: Callable[[int, int], bool]
) -> list[str]:
    """The pieces of a CJK run that are neither read nor filler words (longest filler first)."""
    longest = max((len(w) for w in fillers), default=1)
    pieces: list[str] = []
    piece = ""
    i = 0
    while i < len(run):
        skip = 1 if read(offset + i, offset + i + 1) else 0
        if not skip:
            sizes = range(min(longest, len(run) - i), 0, -1)
            skip = next((n for n in sizes if run[i : i + n] in fillers), 0)
        if skip:
            if piece:
                pieces.append(piece)
            piece, i = "", i + skip
        else:
            piece, i = piece + run[i], i + 1
    return [*pieces, piece] if piece else pieces
