"""Genre words: the words and phrases people use for each catalog genre, and a finder for them.

Used by the dialogue parser ("no horror", "a comedy") and the fact check (a genre word in an
explanation that the item does not have). Canonical names follow MovieLens ("Sci-Fi",
"Children's", "Film-Noir"); a catalog with other names is matched case-insensitively.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

# canonical genre -> words/phrases (lower case) that name it
SYNONYMS: dict[str, tuple[str, ...]] = {
    "Action": ("action",),
    "Adventure": ("adventure", "adventures"),
    "Animation": ("animation", "animated", "cartoon", "cartoons", "anime"),
    "Children's": ("children's", "childrens", "kids", "kid's", "children"),
    "Comedy": ("comedy", "comedies", "comedic", "funny", "rom-com", "romcom"),
    "Crime": ("crime", "gangster", "heist"),
    "Documentary": ("documentary", "documentaries"),
    "Drama": ("drama", "dramas", "dramatic"),
    "Fantasy": ("fantasy", "fantasies"),
    "Film-Noir": ("film-noir", "film noir", "noir"),
    "Horror": ("horror", "horrors", "scary", "slasher"),
    "Musical": ("musical", "musicals"),
    "Mystery": ("mystery", "mysteries", "whodunit"),
    "Romance": ("romance", "romances", "romantic", "love story"),
    "Sci-Fi": ("sci-fi", "scifi", "science fiction", "science-fiction", "sf"),
    "Thriller": ("thriller", "thrillers", "suspense"),
    "War": ("war",),
    "Western": ("western", "westerns"),
}
# words that hint at a genre ("funny", "kids"): a refusal ("nothing scary") excludes the genre, but a
# wish is left to the query text (no hard filter), and explanations may use them freely
LOOSE = {"funny", "scary", "kids", "children", "love story", "suspense", "sf", "anime", "heist", "gangster"}


@dataclass(frozen=True)
class GenreMention:
    genre: str  # canonical catalog name
    word: str  # the word as found (lower case)
    start: int
    end: int
    loose: bool = False  # a hint word ("lustig" is not, "gruselig" is): see LOOSE and agent.lexicon


def canonical(genre: str, catalog_genres: Iterable[str] = ()) -> str:
    """The catalog's spelling of a genre name (case-insensitive match), else the name itself."""
    by_lower = {g.lower(): g for g in catalog_genres}
    return by_lower.get(genre.lower(), genre)


@lru_cache(maxsize=32)
def _pattern(catalog: tuple[str, ...], strict: bool) -> tuple[re.Pattern[str], dict[str, str]]:
    table: dict[str, str] = {}
    names = set(catalog) or set(SYNONYMS)
    for genre in names:
        table.setdefault(genre.lower(), genre)
    for genre, words in SYNONYMS.items():
        target = canonical(genre, catalog) if catalog else genre
        if catalog and target not in names:
            continue
        for word in words:
            if strict and word in LOOSE:
                continue
            table.setdefault(word, target)
    words = sorted(table, key=len, reverse=True)
    alt = "|".join(re.escape(w).replace(r"\ ", r"[\s-]+").replace(r"\-", r"[\s-]?") for w in words)
    return re.compile(rf"(?<![\w-])({alt})(?![\w-])", re.IGNORECASE), table


def find_genres(text: str, catalog_genres: Iterable[str] = (), strict: bool = False) -> list[GenreMention]:
    """Genre mentions in `text`, in order. `strict` skips loose words ("funny", "scary") for fact checks."""
    pattern, table = _pattern(tuple(sorted(set(catalog_genres))), strict)
    found = []
    for m in pattern.finditer(text or ""):
        word = m.group(1).lower()
        key = re.sub(r"[\s-]+", " ", word)
        genre = table.get(word) or next(
            (g for w, g in table.items() if re.sub(r"[\s-]+", " ", w) == key), None
        )
        if genre:
            found.append(GenreMention(genre, word, m.start(1), m.end(1)))
    return found


def genre_words(genre: str) -> tuple[str, ...]:
    """The words that name `genre` (its own name first)."""
    for name, words in SYNONYMS.items():
        if name.lower() == genre.lower():
            return (genre.lower(), *words)
    return (genre.lower(),)
