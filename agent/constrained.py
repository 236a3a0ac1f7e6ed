"""Constrained greedy decoding: the LLM cannot introduce a name, number or genre that is not in the evidence.

A `Guard` holds what the evidence allows (`agent.evidence.Evidence.allowed`) and judges each candidate
token by the text it would produce (the token's own string, leading space included, so every
tokenizer variant of a word - " Wood"+"y", "T"+"oy", " 1"+"9"+"9"+"5" - is handled the same way):

- a word with a capital letter (anywhere in it) or a digit must be one of the evidence's such
  words (while it is being written: a prefix of one; the set of all prefixes is the prefix tree).
  At a sentence start the small list `SENTENCE_STARTS` ("It", "This", "The", "You" ...) is allowed
  too. With `names=False` (an answer in a language that capitalises nouns, such as German) only the
  digit rule applies;
- a genre word (`agent.genres.SYNONYMS`, hint words included) of a genre the evidence does not name
  is refused; a genre the user refused may appear only right after a negation ("not", "no");
- newlines, markup ("<", ">") and special tokens other than the stop tokens are refused, and a stop
  token only ends the text when the word being written is complete and allowed.

`guarded_greedy` is the decoder: greedy (with the usual repetition penalty) over the allowed tokens
only - the highest-scoring token the guard accepts, i.e. argmax of the masked logits - and it stops
after `max_sentences` sentences. The fact check (`agent.explain.fact_check`) stays the second line.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from fusionrec.agent.genres import SYNONYMS

# fmt: off
SENTENCE_STARTS = frozenset({
    "It", "Its", "This", "These", "They", "There", "Here", "A", "An", "The", "You", "Your", "If", "In",
    "And", "But", "So", "With", "Like", "As", "For", "Both",
})  # capitalised words any sentence may start with (function words: they name nothing)
# fmt: on
NEGATIONS = frozenset({"no", "not", "non", "without", "nothing", "never"})
_WORD = re.compile(r"[^\W_]+")  # letters and digits: "Andy's" -> Andy, s; "Sci-Fi" -> Sci, Fi
_SENTENCE_START = re.compile(r"(?:^|[.!?][\"')]?\s+)[\"'(]*$")
_BAD_PIECE = re.compile(r"[\n\r<>]")
_COMMON_PARTS = {"film", "science", "fiction"}  # parts of hyphenated genre names that are ordinary words
_SCAN = 48  # top-scoring tokens judged first; the whole vocabulary only when none of them is allowed
_TOKEN_TEXTS: weakref.WeakKeyDictionary[Any, list[str]] = weakref.WeakKeyDictionary()


def restricted(word: str) -> bool:
    """A word the evidence must hold: one with a capital letter (anywhere: "becauseParis") or a digit."""
    return any(ch.isupper() or ch.isdigit() for ch in word)


def genre_vocabulary() -> dict[str, str]:
    """Every single genre word (lower case) -> its genre ("horror" -> Horror, "sci" -> Sci-Fi); phrases
    of several words ("love story", "science fiction") are left to the fact check."""
    out: dict[str, str] = {}
    for genre, words in SYNONYMS.items():
        for phrase in (genre.lower(), *words):
            if " " in phrase:
                continue
            parts = _WORD.findall(phrase)
            for part in parts if "-" in phrase else parts[:1]:
                if len(part) > 2 and part not in _COMMON_PARTS:
                    out.setdefault(part, genre)
    return out


@dataclass(frozen=True)
class Allowed:
    """What the evidence allows: its capitalised words and numbers, its lower-case words, and the genres
    it names (claimed) or that the user refused (only after a negation)."""

    names: frozenset[str]
    words: frozenset[str]
    genres: frozenset[str]
    refused: frozenset[str] = frozenset()

    @classmethod
    def from_texts(
        cls, texts: Iterable[str], genres: Iterable[str] = (), refused: Iterable[str] = ()
    ) -> Allowed:
        found = [w for t in texts for w in _WORD.findall(t)]
        return cls(
            frozenset(w for w in found if restricted(w)),
            frozenset(w.lower() for w in found),
            frozenset(g.lower() for g in genres),
            frozenset(g.lower() for g in refused),
        )


class Guard:
    """Judges candidate tokens against `Allowed` (see the module docstring)."""

    def __init__(self, tokenizer: Any, allowed: Allowed, names: bool = True) -> None:
        self.tokenizer = tokenizer
        self.texts = token_texts(tokenizer)
        self.allowed = allowed
        self.check_names = names
        self.specials = {int(i) for i in getattr(tokenizer, "all_special_ids", [])}
        self.specials |= {int(i) for i in getattr(tokenizer, "added_tokens_decoder", {})}
        self.names = set(allowed.names)
        self.starts = self.names | SENTENCE_STARTS
        self.name_prefixes = {w[:k] for w in self.names for k in range(1, len(w) + 1)}
        self.start_prefixes = self.name_prefixes | {
            w[:k] for w in SENTENCE_STARTS for k in range(1, len(w) + 1)
        }
        vocab = genre_vocabulary()
        self.blocked = {
            w: g.lower()
            for w, g in vocab.items()
            if g.lower() not in allowed.genres and w not in allowed.words
        }

    # --- words ------------------------------------------------------------------------------------
    def word_ok(self, word: str, before: str, complete: bool) -> bool:
        """May `word` (written after `before`) stand here? An unfinished word need only be a prefix."""
        digits = any(ch.isdigit() for ch in word)
        if restricted(word) and (self.check_names or digits):
            at_start = self.check_names and _SENTENCE_START.search(before) is not None
            pool, prefixes = (
                (self.starts, self.start_prefixes) if at_start else (self.names, self.name_prefixes)
            )
            if word not in (pool if complete else prefixes):
                return False
        genre = self.blocked.get(word.lower())
        if genre is None:
            return True
        if not complete and any(w.startswith(word.lower()) and w != word.lower() for w in self.allowed.words):
            return True  # " war" on its way to "warrior" (a word of the evidence)
        if genre in self.allowed.refused:
            previous = _WORD.findall(before[-24:])
            return bool(previous) and previous[-1].lower() in NEGATIONS
        return False

    def text_ok(self, text: str, start: int, final: bool = False) -> bool:
        """Are the words of `text` from `start` on allowed (the last one may be unfinished unless `final`)?"""
        for m in _WORD.finditer(text, start):
            complete = final or m.end() < len(text)
            if not self.word_ok(m.group(0), text[: m.start()], complete):
                return False
        return True

    # --- tokens -----------------------------------------------------------------------------------
    def accepts(self, text: str, token: int, stop: set[int]) -> bool:
        """May `token` follow `text` (what was written so far, opening words included)?"""
        start = _last_word_start(text)
        if token in stop:
            return self.text_ok(text, start, final=True)
        if token in self.specials or not 0 <= token < len(self.texts):
            return False
        piece = self.texts[token]
        if not piece or _BAD_PIECE.search(piece):
            return False
        return self.text_ok(text + piece, start)

    def choose(self, logits: torch.Tensor, text: str, stop: set[int]) -> int | None:
        """The highest-scoring allowed token (argmax of the masked logits); None if none is allowed."""
        top = torch.topk(logits, min(_SCAN, logits.shape[-1])).indices.tolist()
        for tid in top:
            if self.accepts(text, tid, stop):
                return tid
        for tid in torch.argsort(logits, descending=True)[len(top) :].tolist():
            if self.accepts(text, tid, stop):
                return tid
        return None


def _last_word_start(text: str) -> int:
    """Where the word at the end of `text` starts (len(text) when it ends with a non-word character)."""
    i = len(text)
    while i > 0 and _WORD.fullmatch(text[i - 1]):
        i -= 1
    return i


def token_texts(tokenizer: Any) -> list[str]:
    """The text of every token id on its own (leading space included), computed once per tokenizer."""
    texts = _TOKEN_TEXTS.get(tokenizer)
    if texts is None:
        texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
        _TOKEN_TEXTS[tokenizer] = texts
    return texts


def sentences_in(text: str) -> int:
    """Complete sentences in `text` (each ends with . ! or ? followed by a space or the end)."""
    return len(re.findall(r"[.!?](?=\s|$)", text))


@torch.no_grad()
def guarded_greedy(
    model: Any,
    logits: torch.Tensor,
    cache: Any,
    guard: Guard,
    opening: str,
    max_new_tokens: int,
    stop: set[int],
    repetition_penalty: float = 1.0,
    max_sentences: int = 2,
) -> Iterator[int]:
    """Greedy decoding over the tokens `guard` accepts, one id at a time; `logits` are the next-token
    logits after the prompt (whose KV cache is `cache`), `opening` the answer's words already in it."""
    device = logits.device
    seen: list[int] = []
    text = opening
    done_before = sentences_in(opening)
    for _ in range(max_new_tokens):
        logits = logits.float()
        if repetition_penalty != 1.0 and seen:
            idx = torch.tensor(sorted(set(seen)), device=device)
            vals = logits[idx]
            logits[idx] = torch.where(vals > 0, vals / repetition_penalty, vals * repetition_penalty)
        nxt = guard.choose(logits, text, stop)
        if nxt is None or nxt in stop:
            return
        seen.append(nxt)
        yield nxt
        text = opening + guard.tokenizer.decode(seen, skip_special_tokens=True)
        if sentences_in(text) - done_before >= max_sentences and text.rstrip()[-1:] in ".!?":
            return
        out = model(
            input_ids=torch.tensor([[nxt]], device=device), cache=cache, use_cache=True, logits_to_keep=1
        )
        cache, logits = out.cache, out.logits[0, -1]
