"""Evidence for one explanation, gathered before the LLM writes a word.

For a shown item and the turn (`TurnContext`), `gather` collects:

- the constraints it matches: genres the user asked for that it has, genres the user refused that
  it lacks, and its year inside the asked-for years;
- the sentence of its overview closest to the request (cosine of the text encoder's vectors; the
  first sentence when there is no encoder or no request text);
- the film the user liked that is closest to it in the collaborative prior (cosine of the prior's
  item vectors: the adapter's BPR factors, else its collaborative table; nothing when there is no
  prior, no liked film, or none is positively related);
- how it matched the user's attachment: its per-modality retrieval score ranked among the turn's
  candidates ("its poster is the closest of the candidates to your image"), only for the top three.

`Evidence.lines()` is what the prompt shows (inside <facts>), `Evidence.allowed()` the names, numbers
and genres the constrained decoder lets the LLM use (`agent.constrained`), `Evidence.text()` what the
fact check accepts besides the item's facts, and `Evidence.cited()` which pieces a text uses.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fusionrec.agent.constrained import Allowed
from fusionrec.agent.genres import genre_words
from fusionrec.types import Candidate, DialogueState, Item

ARTICLE_SUFFIX = re.compile(r"^(.*), (The|A|An|Les|La|Le|Il|Das|Der|Die|El|L')$")
MEDIA = {"image": ("poster", "image"), "video": ("poster", "video"), "audio": ("sound", "audio")}
MEDIA_TOP = 3  # an attachment match is cited only for the candidates ranked this high on that modality
_ORDINAL = {1: "the closest", 2: "the second closest", 3: "the third closest"}
_SENTENCES = re.compile(r"(?<=[.!?])\s+(?=[\"'(]?[A-Z0-9])")
# fmt: off
_STOP = frozenset({
    "a", "an", "the", "and", "or", "but", "of", "in", "on", "at", "to", "for", "with", "from", "by", "as", "is",
    "are", "was", "were", "be", "his", "her", "their", "its", "this", "that", "who", "whom", "which", "when",
    "where", "while", "into", "onto", "than", "then", "they", "them", "he", "she", "it", "you", "your", "our",
    "we", "us", "has", "have", "had", "not", "no", "all", "one", "two", "out", "up", "about", "after", "over",
})  # words too common to show that a text draws on the overview sentence
# fmt: on


def display_title(title: str) -> str:
    """A catalog title as people write it: "Usual Suspects, The (1995)" -> "The Usual Suspects"."""
    title = re.sub(r"\s*\(\d{4}\)\s*$", "", title or "").strip()
    m = ARTICLE_SUFFIX.match(title)
    return f"{m.group(2)} {m.group(1)}" if m else title


@dataclass(frozen=True)
class TurnContext:
    """What the explanations of one turn share: the request, the constraints, liked films, uploads."""

    request: str
    include_genres: tuple[str, ...] = ()
    exclude_genres: tuple[str, ...] = ()
    year_min: int | None = None
    year_max: int | None = None
    liked: tuple[Item, ...] = ()  # films the user liked, oldest first
    attachments: tuple[str, ...] = ()  # kinds of this turn's uploads ("image", "audio", "video")
    candidates: tuple[Candidate, ...] = ()  # the turn's ranked candidates (per-modality scores)

    @classmethod
    def from_state(
        cls,
        request: str,
        state: DialogueState | None,
        liked: Sequence[Item] = (),
        attachments: Sequence[str] = (),
        candidates: Sequence[Candidate] = (),
    ) -> TurnContext:
        s = state or DialogueState()
        return cls(
            request,
            tuple(sorted(s.include_genres)),
            tuple(sorted(s.exclude_genres)),
            s.year_min,
            s.year_max,
            tuple(liked),
            tuple(attachments),
            tuple(candidates),
        )

    @classmethod
    def from_request(cls, request: str, catalog_genres: Sequence[str] = ()) -> TurnContext:
        """The context of a request alone (no dialogue): the constraints it states."""
        from fusionrec.agent.dialogue import apply_update, parse_turn

        state = DialogueState()
        apply_update(state, parse_turn(request, catalog_genres))
        return cls.from_state(request, state)

    def asked(self) -> str:
        """The constraints in words, one line ("" when there are none): shared by the turn's prompts."""
        parts = []
        if self.include_genres:
            parts.append(", ".join(self.include_genres))
        if self.exclude_genres:
            parts.append("no " + ", ".join(self.exclude_genres))
        if self.year_min is not None and self.year_max is not None:
            parts.append(f"years {self.year_min} to {self.year_max}")
        elif self.year_min is not None:
            parts.append(f"from {self.year_min} on")
        elif self.year_max is not None:
            parts.append(f"up to {self.year_max}")
        return "; ".join(parts)


@dataclass(frozen=True)
class Evidence:
    """The exact strings an explanation of one item may draw on."""

    item_id: str
    title: str  # display title ("The Usual Suspects")
    year: int | None = None
    genres: tuple[str, ...] = ()
    matched: tuple[str, ...] = ()  # constraints it meets, in words ("Comedy, as you asked")
    refused: tuple[str, ...] = ()  # genres the user refused that it does not have
    sentence: str = ""  # the overview sentence closest to the request
    liked: str = ""  # display title of the liked film closest to it in the prior
    media: tuple[str, ...] = ()  # how it matched the user's attachment, in words

    def lines(self) -> list[str]:
        """The evidence as the prompt shows it."""
        out = [f"Title: {self.title}"]
        if self.year:
            out.append(f"Year: {self.year}")
        if self.genres:
            out.append("Genres: " + ", ".join(self.genres))
        said = [*self.matched, *(f"not {g}, as you asked" for g in self.refused)]
        if said:
            out.append("Matches your request: " + "; ".join(said))
        if self.sentence:
            out.append(f"Story: {self.sentence}")
        if self.liked:
            out.append(f"Viewers who liked {self.liked}, as you did, often like this film too")
        out += [f"Your attachment: {m}" for m in self.media]
        return out

    def text(self) -> str:
        return "\n".join(self.lines())

    def allowed(self) -> Allowed:
        """Names, numbers and genres the decoder may use: those of the evidence's values (the refused
        genres only after a negation)."""
        values = [self.title, str(self.year or ""), *self.genres, *self.matched, self.sentence, self.liked]
        return Allowed.from_texts([*values, *self.media], self.genres, self.refused)

    def cited(self, text: str) -> list[str]:
        """The concrete pieces `text` uses: "year", "genre", "constraint", "story", "liked", "media"."""
        low = text.lower()
        words = set(re.findall(r"[\w']+", low))
        title_words = set(re.findall(r"[\w']+", self.title.lower()))
        out = []
        if self.year and str(self.year) in text:
            out.append("year")
        if any(w in words for g in self.genres for w in genre_words(g)):
            out.append("genre")
        if self.refused and any(g.lower() in low for g in self.refused):
            out.append("constraint")
        story = {w for w in re.findall(r"[\w']+", self.sentence.lower()) if w not in _STOP and len(w) > 3}
        if len((story - title_words) & words) >= 2:
            out.append("story")
        if self.liked and self.liked.lower() in low:
            out.append("liked")
        if self.media and any(w in words for kind in MEDIA.values() for w in kind):
            out.append("media")
        return out


# --- gathering -------------------------------------------------------------------------------------
def matched_constraints(item: Item, ctx: TurnContext) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(constraints `item` meets in words, refused genres it lacks)."""
    own = {g.lower() for g in item.genres}
    matched = [f"{g}, as you asked" for g in ctx.include_genres if g.lower() in own]
    refused = tuple(g for g in ctx.exclude_genres if g.lower() not in own)
    lo, hi = ctx.year_min, ctx.year_max
    bounded = lo is not None or hi is not None
    if item.year and bounded and (lo is None or item.year >= lo) and (hi is None or item.year <= hi):
        matched.append(f"from {item.year}, within the years you asked for")
    return tuple(matched), refused


def sentences(text: str, max_chars: int = 220) -> list[str]:
    """The overview's sentences, each cut at a word boundary to `max_chars`."""
    out = []
    for s in _SENTENCES.split(re.sub(r"\s+", " ", text or "").strip()):
        s = s.strip()
        if len(s) > max_chars:
            s = s[:max_chars].rsplit(" ", 1)[0].rstrip(" ,;:") + "."
        if s:
            out.append(s)
    return out


def closest_sentence(text: str, request_vector: np.ndarray | None, encoder: Any = None) -> str:
    """The overview sentence whose text vector is closest to the request's (the first one without a
    request vector or an encoder)."""
    parts = sentences(text)
    if len(parts) <= 1 or encoder is None or request_vector is None or not np.any(request_vector):
        return parts[0] if parts else ""
    vecs = np.asarray(encoder.encode(parts), dtype=np.float32)
    return parts[int(np.argmax(vecs @ np.asarray(request_vector, dtype=np.float32)))]


def prior_vectors(prior: Any = None, table: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Item id -> collaborative vector: the prior's BPR item factors, else the adapter's table ({} if none)."""
    bpr = getattr(prior, "bpr", None)
    if bpr is not None:
        return {item: np.asarray(bpr.item_factors[j], dtype=np.float32) for item, j in bpr.items.items()}
    return {k: np.asarray(v, dtype=np.float32) for k, v in (table or {}).items()}


def closest_liked(item_id: str, liked: Sequence[Item], vectors: Mapping[str, np.ndarray]) -> Item | None:
    """The liked film (not the item itself) with the highest positive cosine to `item_id`; None if none."""
    mine = vectors.get(item_id)
    if mine is None or not np.any(mine):
        return None
    best, best_cos = None, 0.0
    for film in liked:
        other = vectors.get(film.id)
        if film.id == item_id or other is None or not np.any(other):
            continue
        cos = float(mine @ other) / float(np.linalg.norm(mine) * np.linalg.norm(other))
        if cos > best_cos:
            best, best_cos = film, cos
    return best


def media_matches(item_id: str, ctx: TurnContext) -> tuple[str, ...]:
    """How the item matched each attachment kind, in words, when it is among the top MEDIA_TOP candidates
    on that modality's retrieval score."""
    out = []
    for kind in dict.fromkeys(ctx.attachments):
        modality = "image" if kind == "video" else kind
        scored = [
            (c.modality_scores[modality], c.item.id) for c in ctx.candidates if modality in c.modality_scores
        ]
        ranked = [rid for _, rid in sorted(scored, key=lambda s: -s[0])]
        if item_id in ranked[:MEDIA_TOP]:
            what, yours = MEDIA.get(kind, (kind, kind))
            out.append(
                f"its {what} is {_ORDINAL[ranked.index(item_id) + 1]} of the candidates to your {yours}"
            )
    return tuple(out)


def gather(
    item: Item,
    ctx: TurnContext,
    *,
    encoder: Any = None,
    request_vector: np.ndarray | None = None,
    vectors: Mapping[str, np.ndarray] | None = None,
) -> Evidence:
    """The evidence for explaining `item` in this turn (see the module docstring)."""
    matched, refused = matched_constraints(item, ctx)
    liked = closest_liked(item.id, ctx.liked, vectors or {})
    return Evidence(
        item.id,
        display_title(item.title),
        item.year,
        tuple(g for g in item.genres if g),
        matched,
        refused,
        closest_sentence(item.text, request_vector, encoder),
        display_title(liked.title) if liked is not None else "",
        media_matches(item.id, ctx),
    )
