"""Catalog-aware correction of what Whisper heard in a spoken request.

Whisper mishears the rare words that identify a film ("GoodFellas" -> "Godfellas", "Pennsylvania" ->
"pencil mania", "Holy Grail" -> "Holy Braille"); the catalog knows those words. `CatalogLexicon` holds
the catalog's distinctive entries: whole titles of up to three words, names (words an overview
capitalises mid-sentence) and content bigrams of the overviews, indexed by a consonant skeleton
(`sound_key`). `TranscriptCorrector.correct` proposes, for every span of one to three transcript
words that holds a rare word (one the catalog never uses and Whisper's tokenizer spells with more than
one token: "Godfellas", "braille", not "scary"), the entries that sound alike (skeletons at most one
edit apart, spellings at most half different, not a mere change of ending) and asks Whisper how well each alternative sentence fits the
audio (teacher-forced log-likelihood, `WhisperScorer`). A span is replaced when

    log p_whisper(corrected | audio) - log p_whisper(heard | audio) + bonus > 0

(best gains first, spans not overlapping): the catalog's entry wins where Whisper found it almost as
likely as what it wrote. A word Whisper heard clearly costs many nats to change and stays. Clips
longer than one Whisper window (30 s) are not corrected.
"""

from __future__ import annotations

import json
import re
from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.encoders.memo import FileMemo

MAX_SPAN = 3  # transcript words one substitution may cover
MAX_CANDIDATES = 24  # alternatives scored by Whisper per transcript (the closest spellings)
MAX_SPELLING_DISTANCE = 0.5  # letters a substitution may change, as a share of the longer spelling
MIN_NGRAM_COUNT = 2  # overview bigrams seen at least this often are entries
STOP_WORDS = 150  # the catalog's most common words: not names, and no part of a content bigram
_ENDINGS = re.compile(r"(?:'s|s|es|ed|d|ing)$")
SCORE_CACHE = 4096  # (clip, text) log-likelihoods kept
_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")
_RULES = (  # spelling -> sound, applied in order on lower-case letters
    ("tch", "x"), ("sch", "sk"), ("ph", "f"), ("ck", "k"), ("sh", "x"), ("ch", "x"), ("th", "0"),
    ("wh", "w"), ("qu", "kw"), ("dg", "j"), ("x", "ks"),
)  # fmt: skip
_VOICELESS = str.maketrans({"b": "p", "d": "t", "g": "k", "v": "f", "z": "s", "j": "x", "q": "k"})


def words(text: str) -> list[str]:
    """Lower-case words (letters/digits, with an inner apostrophe: "jon's")."""
    return [w.lower() for w in _WORD.findall(text)]


def sound_key(text: str) -> str:
    """A consonant skeleton: sound-alike spellings merged, voiced and voiceless pairs merged (b/p,
    d/t, g/k, v/f, z/s), vowels dropped after the first letter, repeats collapsed. "Jaws" -> "xs",
    "Jon's" -> "xns", "Scream" -> "skrm", "cream" -> "krm"."""
    w = re.sub(r"[^a-z]", "", text.lower())
    if w[:2] in ("kn", "gn", "wr", "ps"):
        w = w[1:]
    for a, b in _RULES:
        w = w.replace(a, b)
    w = re.sub(r"c(?=[eiy])", "s", w).replace("c", "k")
    w = re.sub(r"g(?=[eiy])", "j", w)
    w = w.translate(_VOICELESS)
    if not w:
        return ""
    head = "a" if w[0] in "aeiouy" else w[0]
    tail = re.sub(r"[aeiouyhw]", "", w[1:])
    return re.sub(r"(.)\1+", r"\1", head + tail)


def _deletes(key: str) -> set[str]:
    return {key} | {key[:i] + key[i + 1 :] for i in range(len(key))}


def spelling_distance(a: str, b: str) -> float:
    """Letter edits between two spellings over the longer one's length (0 same, 1 nothing alike)."""
    return _edit_distance(a, b) / max(len(a), len(b), 1)


def _edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        diag, row[0] = row[0], i
        for j, cb in enumerate(b, start=1):
            diag, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diag + (ca != cb))
    return row[len(b)]


class CatalogLexicon:
    """The catalog's distinctive entries by sound: whole titles of up to MAX_SPAN words, names, and
    overview bigrams of two content words seen at least MIN_NGRAM_COUNT times; each entry keeps its
    most common spelling."""

    def __init__(self, documents: Iterable[tuple[str, str]]) -> None:
        """`documents`: (title, overview) per item."""
        docs = list(documents)
        counts: Counter[str] = Counter(w for title, text in docs for w in words(f"{title} {text}"))
        common = {w for w, _ in counts.most_common(STOP_WORDS)}
        self.vocabulary = set(counts)
        spellings: dict[tuple[str, ...], Counter[str]] = {}

        def add(found: Sequence[str]) -> None:
            gram = tuple(w.lower() for w in found)
            spellings.setdefault(gram, Counter())[" ".join(found)] += 1

        bigrams: Counter[tuple[str, str]] = Counter()
        for title, text in docs:
            found = _WORD.findall(re.sub(r"\s*\(\d{4}\)\s*$", "", title))
            if 0 < len(found) <= MAX_SPAN and not set(w.lower() for w in found) <= common:
                add(found)
            for sentence in re.split(r"(?<=[.!?;:])\s+", text):
                found = _WORD.findall(sentence)
                low = [w.lower() for w in found]
                for w, lw in zip(found[1:], low[1:], strict=True):  # mid-sentence capitals: names
                    if w[0].isupper() and lw not in common:
                        add([w])
                bigrams.update(g for g in zip(low, low[1:], strict=False) if not set(g) & common)
        for gram, n in bigrams.items():
            if n >= MIN_NGRAM_COUNT:
                spellings.setdefault(gram, Counter())[" ".join(gram)] += n
        self.spelling = {g: c.most_common(1)[0][0] for g, c in spellings.items()}
        self.index: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
        for gram in self.spelling:
            key = sound_key("".join(gram))
            if len(key) >= 2:
                for d in _deletes(key):
                    self.index.setdefault(d, []).append((key, gram))

    @classmethod
    def from_documents(cls, docs: Iterable[str | None]) -> CatalogLexicon:
        """From stored item documents (JSON items, as the Chroma records keep them)."""
        pairs = []
        for doc in docs:
            if doc:
                item = json.loads(doc)
                pairs.append((str(item.get("title", "")), str(item.get("text", ""))))
        return cls(pairs)

    def sound_alikes(self, span: Sequence[str]) -> list[tuple[str, ...]]:
        """Entries whose skeleton is at most one edit from the span's and whose spelling is close
        (`spelling_distance`), not only adding or dropping words or changing an ending; closest first."""
        key, letters = sound_key("".join(span)), "".join(span)
        if len(key) < 2:
            return []
        found = {
            gram
            for d in _deletes(key)
            for other, gram in self.index.get(d, ())
            if abs(len(gram) - len(span)) <= 1
            and not (set(gram) <= set(span) or set(span) <= set(gram))
            and _edit_distance(key, other) <= 1
        }
        stem = _ENDINGS.sub("", letters)
        near = [
            (spelling_distance(letters, "".join(g)), g) for g in found if _ENDINGS.sub("", "".join(g)) != stem
        ]
        return [g for dist, g in sorted(near) if dist <= MAX_SPELLING_DISTANCE]


class WhisperScorer:
    """Teacher-forced log-likelihood of texts given a clip, with the audio encoder's Whisper model.

    Per clip, the encoder runs once and each decoder block's cross-attention keys and values are
    computed once (Whisper's own decoding caches them the same way), then shared by every candidate
    text; a clip's states and its (text -> score) answers are remembered."""

    def __init__(self, audio_encoder: Any, memo_size: int = 8, batch: int = 8) -> None:
        self.audio, self.model, self.batch = audio_encoder, audio_encoder.model, batch
        self.states = FileMemo(memo_size)
        self.scores: OrderedDict[tuple, float] = OrderedDict()
        self._tokenizer: Any = None

    def _cross_cache(self, path: str | Path) -> dict | None:
        """Cross-attention keys/values of the clip per decoder block (None: longer than 30 s)."""
        import torch
        import whisper
        from whisper.audio import N_SAMPLES

        def compute() -> dict | None:
            samples = self.audio.load(path)
            if samples.size > N_SAMPLES:
                return None
            mel = whisper.log_mel_spectrogram(
                whisper.pad_or_trim(torch.from_numpy(samples)), n_mels=self.audio.n_mels
            )
            dtype = next(self.model.parameters()).dtype
            with torch.inference_mode():
                xa = self.model.embed_audio(mel[None].to(self.audio.device, dtype=dtype))
                cache = {}
                for block in self.model.decoder.blocks:
                    att = block.cross_attn
                    cache[att.key], cache[att.value] = att.key(xa), att.value(xa)
            return {"xa": xa, "kv": cache}

        return self.states.get_or(path, "cross", compute)

    def is_common(self, word: str) -> bool:
        """Whether Whisper's tokenizer spells the word (after a space) as one token: a common word."""
        if self._tokenizer is None:
            from whisper.tokenizer import get_tokenizer

            self._tokenizer = get_tokenizer(
                self.model.is_multilingual, num_languages=self.model.num_languages
            )
        return len(self._tokenizer.encode(" " + word)) == 1

    def _logits(self, tokens: Any, clip: dict) -> Any:
        """Whisper's TextDecoder forward with the clip's cross-attention cache broadcast over the batch."""
        dec, n = self.model.decoder, tokens.shape[0]
        kv = {m: t.expand(n, -1, -1) for m, t in clip["kv"].items()}
        xa = clip["xa"].expand(n, -1, -1)
        x = (dec.token_embedding(tokens) + dec.positional_embedding[: tokens.shape[-1]]).to(xa.dtype)
        for block in dec.blocks:
            x = block(x, xa, mask=dec.mask, kv_cache=kv)
        return (dec.ln(x) @ dec.token_embedding.weight.to(x.dtype).T).float()

    def log_likelihoods(self, path: str | Path, language: str, texts: Sequence[str]) -> list[float] | None:
        """log p(text | clip) per text (None when the clip is longer than one Whisper window)."""
        import torch
        from whisper.tokenizer import get_tokenizer

        multilingual = bool(self.model.is_multilingual)
        lang = (language or "en") if multilingual else None
        clip = self.states.key(path, "cross")
        todo = [t for t in dict.fromkeys(texts) if (clip, lang, t) not in self.scores]
        cross = self._cross_cache(path) if todo else {}
        if cross is None:
            return None
        tok = get_tokenizer(
            multilingual, num_languages=self.model.num_languages, language=lang, task="transcribe"
        )
        sot = list(tok.sot_sequence_including_notimestamps)
        for start in range(0, len(todo), self.batch):
            part = todo[start : start + self.batch]
            seqs = [sot + tok.encode(" " + t.strip()) + [tok.eot] for t in part]
            width = max(map(len, seqs))
            tokens = torch.tensor([s + [tok.eot] * (width - len(s)) for s in seqs], device=self.audio.device)
            with torch.inference_mode():
                logp = torch.log_softmax(self._logits(tokens[:, :-1], cross), dim=-1)
                logp = logp.gather(-1, tokens[:, 1:, None])[..., 0].cpu().numpy()
            for t, s, row in zip(part, seqs, logp, strict=True):
                self.scores[(clip, lang, t)] = float(np.sum(row[len(sot) - 1 : len(s) - 1]))
        for t in texts:
            self.scores.move_to_end((clip, lang, t))
        while len(self.scores) > SCORE_CACHE:
            self.scores.popitem(last=False)
        return [self.scores[(clip, lang, t)] for t in texts]


@dataclass
class Correction:
    """A transcript and what was changed in it: (heard span, catalog spelling, gain in nats)."""

    text: str
    changes: list[tuple[str, str, float]]


class TranscriptCorrector:
    """Moves a transcript toward the catalog's words where Whisper finds the change about as likely."""

    def __init__(self, lexicon: CatalogLexicon, scorer: WhisperScorer | None) -> None:
        self.lexicon, self.scorer = lexicon, scorer

    def correct(self, transcript: str, path: str | Path, language: str, bonus: float) -> Correction:
        """The corrected transcript (`bonus`: nats of Whisper likelihood a catalog entry is worth;
        0 leaves every transcript as it is)."""
        tokens = list(_WORD.finditer(transcript))
        low = [m.group(0).lower() for m in tokens]
        if bonus <= 0 or not low or self.scorer is None:
            return Correction(transcript, [])
        proposals = []  # (spelling distance, start word, end word, entry)
        rare = {
            m.group(0).lower()
            for m in tokens
            if m.group(0).lower() not in self.lexicon.vocabulary
            and not (self.scorer.is_common(m.group(0)) or self.scorer.is_common(m.group(0).lower()))
        }
        for i in range(len(low)):
            for j in range(i + 1, min(len(low), i + MAX_SPAN) + 1):
                if not rare & set(low[i:j]):  # only spans with a word neither the catalog nor English uses
                    continue
                for gram in self.lexicon.sound_alikes(low[i:j]):
                    proposals.append((spelling_distance("".join(low[i:j]), "".join(gram)), i, j, gram))
        proposals = sorted(proposals)[:MAX_CANDIDATES]
        if not proposals:
            return Correction(transcript, [])
        texts = [self._replace(transcript, tokens, [(i, j, g)]) for _, i, j, g in proposals]
        scores = self.scorer.log_likelihoods(path, language, [transcript, *texts])
        if scores is None:
            return Correction(transcript, [])
        ranked = sorted(
            ((s - scores[0] + bonus, i, j, g) for (_, i, j, g), s in zip(proposals, scores[1:], strict=True)),
            reverse=True,
        )
        chosen: list[tuple[int, int, tuple[str, ...]]] = []
        changes = []
        for gain, i, j, gram in ranked:
            if gain > 0 and all(j <= a or i >= b for a, b, _ in chosen):
                chosen.append((i, j, gram))
                heard = transcript[tokens[i].start() : tokens[j - 1].end()]
                changes.append((heard, self.lexicon.spelling[gram], round(gain, 3)))
        return Correction(self._replace(transcript, tokens, chosen), changes)

    def _replace(
        self, text: str, tokens: list[re.Match], spans: list[tuple[int, int, tuple[str, ...]]]
    ) -> str:
        """`text` with each (start word, end word, gram) span spelled as the catalog spells the gram."""
        for i, j, gram in sorted(spans, key=lambda s: -s[0]):
            text = text[: tokens[i].start()] + self.lexicon.spelling[gram] + text[tokens[j - 1].end() :]
        return text
