"""Text encoders: every one maps a list of strings to L2-normalised float32 rows (n, dim).

- `SentenceEncoder`: a sentence-transformers folder or hub name (all-MiniLM-L6-v2 here); a plain
  transformers folder works too (sentence-transformers adds mean pooling).
- `TfidfEncoder`: a fitted TF-IDF vocabulary saved as JSON (no pickle), for the no-neural baseline.
- `ClipTextEncoder`: the text tower of an open_clip model (`encoders.clip`), for CLIP's shared
  image-text space.

`open_text_encoder(source, device)` picks one from the source string ("tfidf:<file>",
"open_clip:ARCH/TAG", "open_clip-local:<folder>", else sentence-transformers); the configured one
comes from `encoders.encoders.load_text_encoder(cfg)`.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.encoders.clip import embed_dim, is_open_clip, load_open_clip
from fusionrec.vectors import l2_normalise

TFIDF_PREFIX = "tfidf:"


class TextEncoder:
    """Interface: `.dim`, `.model_id`, `.encode(texts) -> (n, dim)` float32, rows L2-normalised."""

    dim: int
    model_id: str

    def encode(self, texts: Sequence[str]) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def _empty(self) -> np.ndarray:
        return np.zeros((0, self.dim), dtype=np.float32)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model_id={self.model_id!r}, dim={self.dim})"


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("encode() takes a list of strings, not a single string")
    out = list(texts)
    bad = [i for i, t in enumerate(out) if not isinstance(t, str)]
    if bad:
        raise TypeError(f"encode(): item {bad[0]} is {type(out[bad[0]]).__name__}, expected str")
    return out


class SentenceEncoder(TextEncoder):
    """A sentence-transformers model (folder or hub name), embeddings normalised."""

    def __init__(self, source: str, device: str = "cpu", batch_size: int = 64) -> None:
        from sentence_transformers import SentenceTransformer

        self.source, self.device, self.batch_size = source, str(device), batch_size
        self.model = SentenceTransformer(source, device=str(device))
        self.model.eval()
        get_dim = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        self.dim = int(get_dim())
        path = Path(source).expanduser()
        if path.exists():  # a folder: its name, or "<parent>/model" for a generic name
            self.model_id = (
                path.name if path.name not in {"model", "models"} else f"{path.parent.name}/{path.name}"
            )
        else:
            self.model_id = source

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = _check_texts(texts)
        if not texts:
            return self._empty()
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,  # the caller's one bar (ingest, eval) shows progress
        )
        return np.asarray(vectors, dtype=np.float32)


# --- TF-IDF --------------------------------------------------------------------------------------
_TOKEN = re.compile(r"(?u)\b\w\w+\b")


def _stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


class TfidfEncoder(TextEncoder):
    """TF-IDF over word unigrams (and bigrams if asked): sublinear tf, smooth idf, L2 rows.

    A text with no known term encodes to the zero vector (there is nothing to normalise).
    Persisted as one JSON file (vocabulary in column order, idf, settings); never pickled.
    """

    FORMAT = "fusionrec-tfidf/1"

    def __init__(
        self,
        max_features: int = 8192,
        ngram_max: int = 1,
        min_df: int = 1,
        stop_words: bool = True,
        name: str = "tfidf",
    ) -> None:
        self.max_features, self.ngram_max, self.min_df = max_features, ngram_max, min_df
        self.stop_words = stop_words
        self.vocabulary: dict[str, int] = {}
        self.idf = np.zeros(0, dtype=np.float32)
        self.model_id = name
        self._stops: frozenset[str] = _stop_words() if stop_words else frozenset()

    @property
    def dim(self) -> int:  # type: ignore[override]
        return len(self.vocabulary)

    def terms(self, text: str) -> list[str]:
        words = [w for w in _TOKEN.findall(text.lower()) if w not in self._stops]
        out = list(words)
        for n in range(2, self.ngram_max + 1):
            out += [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
        return out

    def fit(self, texts: Iterable[str]) -> TfidfEncoder:
        """Learn the vocabulary (the `max_features` most frequent terms by document frequency) and idf."""
        docs = _check_texts(list(texts))
        if not docs:
            raise ValueError("TfidfEncoder.fit: no texts given")
        df: Counter[str] = Counter()
        for doc in docs:
            df.update(set(self.terms(doc)))
        kept = [(t, c) for t, c in df.items() if c >= self.min_df]
        if not kept:
            raise ValueError("TfidfEncoder.fit: the texts contain no terms (after stop words and min_df)")
        kept.sort(key=lambda tc: (-tc[1], tc[0]))
        kept = sorted(kept[: self.max_features])  # column order: alphabetical, stable
        self.vocabulary = {t: i for i, (t, _) in enumerate(kept)}
        n = len(docs)
        self.idf = np.array([math.log((1 + n) / (1 + c)) + 1.0 for _, c in kept], dtype=np.float32)
        return self

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = _check_texts(texts)
        if not self.vocabulary:
            raise RuntimeError("TfidfEncoder is not fitted: call fit(texts) or TfidfEncoder.load(path)")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for col, value in self.weights(text).items():
                out[row, col] = value
        return out

    def weights(self, text: str) -> dict[int, float]:
        """The text's L2-normalised row as {column: weight} (only its known terms; {} when none)."""
        if not self.vocabulary:
            raise RuntimeError("TfidfEncoder is not fitted: call fit(texts) or TfidfEncoder.load(path)")
        counts = Counter(t for t in self.terms(text) if t in self.vocabulary)
        cols = {self.vocabulary[t]: c for t, c in counts.items()}
        row = {col: (1.0 + math.log(c)) * float(self.idf[col]) for col, c in cols.items()}
        norm = math.sqrt(sum(v * v for v in row.values()))
        return {col: v / norm for col, v in row.items()} if norm > 0 else {}

    def save(self, path: str | Path) -> Path:
        """Write the fitted encoder as JSON (atomically); a folder gets `tfidf.json` inside."""
        if not self.vocabulary:
            raise RuntimeError("TfidfEncoder.save: nothing to save, the encoder is not fitted")
        target = _tfidf_file(Path(path), creating=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "format": self.FORMAT,
            "name": self.model_id,
            "max_features": self.max_features,
            "ngram_max": self.ngram_max,
            "min_df": self.min_df,
            "stop_words": self.stop_words,
            "vocabulary": sorted(self.vocabulary, key=self.vocabulary.__getitem__),
            "idf": [float(x) for x in self.idf],
        }
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, ensure_ascii=False)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    @classmethod
    def load(cls, path: str | Path) -> TfidfEncoder:
        """Read an encoder written by `save`; errors name the file and the problem."""
        target = _tfidf_file(Path(path).expanduser())
        if not target.is_file():
            raise FileNotFoundError(f"{target}: TF-IDF model not found (fit one and save it first)")
        try:
            data = json.loads(target.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{target}: not valid JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != cls.FORMAT:
            raise ValueError(f"{target}: not a FusionRec TF-IDF file (expected format {cls.FORMAT!r})")
        vocab, idf = data.get("vocabulary"), data.get("idf")
        if not isinstance(vocab, list) or not isinstance(idf, list) or len(vocab) != len(idf) or not vocab:
            raise ValueError(f"{target}: 'vocabulary' and 'idf' must be non-empty lists of equal length")
        enc = cls(
            max_features=int(data.get("max_features", len(vocab))),
            ngram_max=int(data.get("ngram_max", 1)),
            min_df=int(data.get("min_df", 1)),
            stop_words=bool(data.get("stop_words", True)),
            name=str(data.get("name", "tfidf")),
        )
        enc.vocabulary = {str(t): i for i, t in enumerate(vocab)}
        enc.idf = np.asarray(idf, dtype=np.float32)
        return enc


def _tfidf_file(path: Path, creating: bool = False) -> Path:
    if path.is_dir() or (creating and not path.suffix):
        return path / "tfidf.json"
    return path


# --- CLIP text tower -----------------------------------------------------------------------------
class ClipTextEncoder(TextEncoder):
    """The text tower of an open_clip model: texts into CLIP's joint image-text space."""

    def __init__(self, model: Any, tokenizer: Any, device: str, model_id: str, batch_size: int = 64) -> None:
        self.model, self.tokenizer, self.device = model, tokenizer, str(device)
        self.model_id, self.batch_size = model_id, batch_size
        self.dim = embed_dim(model)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        texts = _check_texts(texts)
        if not texts:
            return self._empty()
        chunks = []
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                tokens = self.tokenizer(texts[i : i + self.batch_size]).to(self.device)
                chunks.append(self.model.encode_text(tokens, normalize=True).float().cpu().numpy())
        return l2_normalise(np.concatenate(chunks))


def open_text_encoder(source: str, device: Any = "cpu") -> TextEncoder:
    """The text encoder a source string names (see the module docstring)."""
    device = str(device)
    if source.startswith(TFIDF_PREFIX):
        return TfidfEncoder.load(source[len(TFIDF_PREFIX) :])
    if is_open_clip(source):
        model, _, tokenizer, model_id = load_open_clip(source, device)
        return ClipTextEncoder(model, tokenizer, device, model_id)
    path = Path(source).expanduser()
    if path.is_file() and path.suffix == ".json":
        return TfidfEncoder.load(path)
    if (path.is_absolute() or source.startswith(".")) and not path.exists():
        raise FileNotFoundError(f"{path}: text encoder folder not found (run `fusionrec models prepare`)")
    return SentenceEncoder(str(path) if path.exists() else source, device)
