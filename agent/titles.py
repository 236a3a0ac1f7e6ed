"""Films a person names in a message ("like Star Wars but funnier", "not Titanic again").

A named film is something the person knows: it is never recommended back to them. Named plainly or
as a model ("like X", "similar to X") it counts as liked (the collaborative prior reads it) and the
first such film anchors the search; named after a refusal ("not X", "anything but X") it counts as
disliked. Titles are matched on normalised text, in the catalog's forms and with a trailing article
moved to the front ("Usual Suspects, The" -> "the usual suspects"). A title that is one word once its
article is set aside ("Heat", "The Game") is matched only when written capitalised and not as the
first word of a longer message, so that ordinary words ("a movie about the game", "Big budget
action") are not read as titles.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from fusionrec.agent.evidence import ARTICLE_SUFFIX

_ARTICLES = ("the", "a", "an")
_PARENS = re.compile(r"\s*\([^)]*\)")
_NOT_WORD = re.compile(r"[^\w'&]+")
_REFUSAL = re.compile(
    r"\b(?:not|no|never|hate[sd]?|dislike[sd]?|except|without|anything but|but not|instead of|other than)"
    r"(?:\W+\w+){0,2}\W*$"
)
_MODEL = re.compile(r"\b(?:like|similar to|such as|reminds? me of|in the vein of|as good as|same as)\W*$")


@dataclass(frozen=True)
class Named:
    """One film named in a message: its catalog ids (duplicate records share a title), its catalog
    title, whether it was refused and whether it was given as a model ("like X")."""

    ids: tuple[str, ...]
    title: str
    refused: bool
    model: bool


def _lower(text: str) -> str:
    """Lower case, one character for one (so that offsets match the original)."""
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


def _normal(text: str) -> str:
    """Words separated by single spaces; letters, digits, apostrophes and & kept; case kept."""
    return _NOT_WORD.sub(" ", text).strip()


def title_variants(title: str) -> set[str]:
    """A catalog title as people write it: "Usual Suspects, The" -> also "The Usual Suspects"."""
    title = re.sub(r"\s*\(\d{4}\)\s*$", "", title).strip()
    out = {title}
    m = ARTICLE_SUFFIX.match(title)
    if m:
        out.add(f"{m.group(2)} {m.group(1)}")
    for t in list(out):
        if t.startswith(("The ", "A ", "An ")):
            out.add(t[0].lower() + t[1:])
    return {t for t in out if t}


def variants(title: str) -> set[str]:
    """The lower-case forms a person may write for a catalog title: its `title_variants` without
    parentheses, and a moved English article left out ("usual suspects")."""
    base = _PARENS.sub("", title).strip()
    moved = {_lower(_normal(f)) for f in title_variants(base)} - {_lower(_normal(base))}
    bare = {f.split(" ", 1)[1] for f in moved if f.split(" ", 1)[0] in _ARTICLES and " " in f}
    return {f for f in {_lower(_normal(base)), *moved, *bare} if f}


def _one_word(form: str) -> bool:
    words = form.split()
    return len([w for w in words if w not in _ARTICLES]) <= 1


class TitleFinder:
    """Finds catalog titles in messages (built once per catalog)."""

    def __init__(self, titles: Iterable[tuple[str, str]]) -> None:
        """`titles`: (item id, catalog title) pairs."""
        self.ids: dict[str, list[str]] = {}
        self.title: dict[str, str] = {}
        for item_id, title in titles:
            for form in variants(title):
                if len(form) < 2 or form in _ARTICLES:
                    continue
                self.ids.setdefault(form, []).append(item_id)
                self.title.setdefault(form, title)
        forms = sorted(self.ids, key=len, reverse=True)  # the longest title wins
        self.pattern = (
            re.compile(r"(?<![\w'&])(?:" + "|".join(map(re.escape, forms)) + r")(?![\w'&])")
            if forms
            else None
        )

    def find(self, message: str) -> list[Named]:
        """The films named in `message`, in order, each once."""
        if self.pattern is None or not message.strip():
            return []
        kept = _normal(message)
        text = _lower(kept)
        out: list[Named] = []
        for m in self.pattern.finditer(text):
            form = m.group(0)
            if _one_word(form) and not self._written_as_title(kept, m.start(), m.end()):
                continue
            before = text[max(0, m.start() - 40) : m.start()]
            named = Named(
                tuple(dict.fromkeys(self.ids[form])),
                self.title[form],
                refused=bool(_REFUSAL.search(before)),
                model=bool(_MODEL.search(before)),
            )
            if all(n.ids != named.ids for n in out):
                out.append(named)
        return out

    @staticmethod
    def _written_as_title(kept: str, start: int, end: int) -> bool:
        """Capitalised (every word but an article), and not the first word of a longer message."""
        words = kept[start:end].split()
        return (
            (start > 0 or end == len(kept))
            and all(w[0].isupper() or w.lower() in _ARTICLES for w in words)
            and words[-1][0].isupper()
        )
