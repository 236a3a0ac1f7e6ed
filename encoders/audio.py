"""Audio encoder: Whisper (transcript, language, pooled encoder states) plus classic features.

For each file (decoded to 16 kHz mono with ffmpeg through `whisper.load_audio`):

- `whisper`: Whisper's encoder states averaged over the frames that hold audio (each 30 s window is
  padded to 30 s as Whisper expects, but the padding frames are left out of the mean); windows of a
  longer file are pooled together. Shape (n_audio_state,), L2-normalised.
- `classic`: statistics of the log-mel spectrogram (80 bands) and of its MFCCs (type-II DCT, 20
  coefficients): [log-mel mean, log-mel std, MFCC mean, MFCC std], shape (200,), not normalised.
- `transcript` and `language` from `whisper.transcribe` (fp16 off; beam width, temperature fallback,
  initial prompt and language from `models.speech_*`), and `text_vector`, the transcript through the
  text encoder (None when nothing was recognised).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusionrec.encoders.memo import FileMemo
from fusionrec.encoders.text import TextEncoder
from fusionrec.media import MediaError, require_tool
from fusionrec.vectors import l2_normalise

N_MELS_CLASSIC = 80
N_MFCC = 20
CLASSIC_DIM = 2 * N_MELS_CLASSIC + 2 * N_MFCC
MIN_SAMPLES = 400  # one STFT window (25 ms)


@dataclass
class AudioFeatures:
    path: Path
    duration: float  # seconds
    whisper: np.ndarray  # (n_audio_state,) pooled encoder states, L2-normalised
    classic: np.ndarray  # (CLASSIC_DIM,) log-mel + MFCC statistics
    transcript: str
    language: str
    text_vector: np.ndarray | None  # text_encoder(transcript), None if the transcript is empty
    confident: str = ""  # the transcript without the words Whisper heard with probability < min_word_prob
    words: list[tuple[str, float]] = field(default_factory=list)  # (word, probability) when min_word_prob > 0


class AudioEncoder:
    """Whisper model + text encoder -> `AudioFeatures` per file; `embed_query` for spoken queries."""

    def __init__(
        self,
        whisper_model: Any,
        text_encoder: TextEncoder | None,
        model_id: str = "",
        max_seconds: float = 600.0,
        batch_windows: int = 8,
        temperature: float | tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
        beam_size: int = 1,
        prompt: str = "",
        language: str = "",
        min_word_prob: float = 0.0,
    ) -> None:
        """`min_word_prob` > 0: words Whisper heard with a lower probability are left out of each clip's
        `confident` text (one more decoder pass per clip: word timings give the probabilities)."""
        self.model = whisper_model.eval()
        self.text_encoder = text_encoder
        dims = whisper_model.dims
        self.dim = int(dims.n_audio_state)
        self.n_mels, self.n_ctx = int(dims.n_mels), int(dims.n_audio_ctx)
        lang = "" if whisper_model.is_multilingual else ".en"
        self.model_id = model_id or f"whisper-d{dims.n_audio_state}-l{dims.n_audio_layer}{lang}"
        self.max_seconds, self.batch_windows, self.temperature = max_seconds, batch_windows, temperature
        if language and not whisper_model.is_multilingual and language != "en":
            raise ValueError(f"models.speech_language={language!r}: {self.model_id} only hears English")
        self.beam_size, self.prompt, self.language = beam_size, prompt, language
        self.min_word_prob = min_word_prob
        self.memo = FileMemo()
        encoder = whisper_model.encoder
        if not isinstance(encoder.forward, WindowMemo):  # the model may be shared by several encoders
            encoder.forward = WindowMemo(encoder.forward)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # --- public API ------------------------------------------------------------------------------
    def load(self, path: str | Path) -> np.ndarray:
        """16 kHz mono float32 samples (at most `max_seconds`); MediaError naming the file on failure."""
        import whisper

        p = Path(path)
        if not p.is_file():
            raise MediaError(p, "file not found")
        require_tool("ffmpeg", p)
        try:
            audio = whisper.load_audio(str(p))
        except RuntimeError as exc:
            detail = str(exc).strip().splitlines()
            raise MediaError(
                p, f"cannot decode audio ({detail[-1] if detail else 'ffmpeg failed'})"
            ) from None
        if audio.size < MIN_SAMPLES:
            raise MediaError(p, f"audio too short ({audio.size / 16000:.3f} s, no usable samples)")
        return audio[: int(self.max_seconds * 16000)]

    def encode(self, paths: Sequence[str | Path], transcribe: bool = True) -> list[AudioFeatures]:
        """Features of each file; `transcribe=False` skips Whisper decoding (transcript "").

        A file encoded by a recent call (same path, size, mtime and `transcribe`) is not encoded again.
        """
        if isinstance(paths, (str, Path)):
            raise TypeError("pass a list of audio paths, not a single path")
        keys = [self.memo.key(p, transcribe) for p in paths]
        found = [self.memo.get(k) for k in keys]
        todo = [p for p, f in zip(paths, found, strict=True) if f is None]
        fresh = iter(self._encode(todo, transcribe) if todo else [])
        out = [f if f is not None else next(fresh) for f in found]
        for k, f in zip(keys, out, strict=True):
            self.memo.put(k, f)
        return out

    def _encode(self, paths: Sequence[str | Path], transcribe: bool) -> list[AudioFeatures]:
        audios = [self.load(p) for p in paths]
        pooled = self._pooled_states(audios)
        out = []
        for p, audio, vec in zip(paths, audios, pooled, strict=True):
            text, language, words = self._transcribe(audio) if transcribe else ("", "", [])
            out.append(
                AudioFeatures(
                    path=Path(p),
                    duration=audio.size / 16000,
                    whisper=vec,
                    classic=classic_features(audio),
                    transcript=text,
                    language=language,
                    text_vector=None,
                    confident=confident_text(words, self.min_word_prob, text),
                    words=words,
                )
            )
        if self.text_encoder is not None:
            spoken = [f for f in out if f.transcript]
            if spoken:
                vectors = self.text_encoder.encode([f.transcript for f in spoken])
                for f, v in zip(spoken, vectors, strict=True):
                    f.text_vector = v
        return out

    def transcribe(self, path: str | Path) -> tuple[str, str]:
        """(transcript, language code) of one file."""
        return self._transcribe(self.load(path))[:2]

    def embed_query(self, path: str | Path) -> np.ndarray:
        """A spoken query as a text vector: the transcript through the text encoder."""
        if self.text_encoder is None:
            raise RuntimeError("AudioEncoder has no text encoder, so it cannot embed a spoken query")
        text, _ = self.transcribe(path)
        if not text:
            raise MediaError(path, "no speech was recognised in the audio")
        return self.text_encoder.encode([text])[0]

    # --- internals -------------------------------------------------------------------------------
    def _pooled_states(self, audios: list[np.ndarray]) -> list[np.ndarray]:
        """Mean encoder state over the audio-bearing frames of every 30 s window of each clip."""
        import whisper
        from whisper.audio import N_SAMPLES, N_SAMPLES_PER_TOKEN

        windows: list[tuple[int, torch.Tensor, int]] = []  # (clip index, mel, valid positions)
        for i, audio in enumerate(audios):
            for start in range(0, max(audio.size, 1), N_SAMPLES):
                chunk = audio[start : start + N_SAMPLES]
                if chunk.size < MIN_SAMPLES and start > 0:
                    continue
                mel = whisper.log_mel_spectrogram(
                    whisper.pad_or_trim(torch.from_numpy(chunk)), n_mels=self.n_mels
                )
                valid = min(self.n_ctx, max(1, math.ceil(chunk.size / N_SAMPLES_PER_TOKEN)))
                windows.append((i, mel, valid))
        sums = [np.zeros(self.dim, dtype=np.float64) for _ in audios]
        counts = [0] * len(audios)
        dtype = next(self.model.parameters()).dtype
        with torch.inference_mode():
            for b in range(0, len(windows), self.batch_windows):
                part = windows[b : b + self.batch_windows]
                mels = torch.stack([m for _, m, _ in part]).to(self.device, dtype=dtype)
                states = self.model.embed_audio(mels).float().cpu().numpy()
                for (i, _, valid), s in zip(part, states, strict=True):
                    sums[i] += s[:valid].sum(axis=0)
                    counts[i] += valid
        return [l2_normalise(s / max(c, 1)) for s, c in zip(sums, counts, strict=True)]

    def _transcribe(self, audio: np.ndarray) -> tuple[str, str, list[tuple[str, float]]]:
        """(transcript, language, its (word, probability) pairs when min_word_prob > 0, else [])."""
        words = self.min_word_prob > 0
        result = self.model.transcribe(
            audio,
            fp16=False,
            verbose=None,
            temperature=self.temperature,
            condition_on_previous_text=False,
            beam_size=self.beam_size if self.beam_size > 1 else None,
            initial_prompt=self.prompt or None,
            language=self.language or None,
            word_timestamps=words,
        )
        language = result.get("language") or ("" if self.model.is_multilingual else "en")
        pairs = [(str(w["word"]), float(w.get("probability", 0.0)))
                 for seg in result.get("segments", []) for w in seg.get("words", [])] if words else []  # fmt: skip
        return str(result.get("text", "")).strip(), str(language), pairs


def confident_text(words: Sequence[tuple[str, float]], min_prob: float, heard: str) -> str:
    """The words heard with probability >= `min_prob`, as Whisper wrote them; `heard` when none is (or
    without word probabilities)."""
    return "".join(w for w, p in words if p >= min_prob).strip() or heard


class WindowMemo:
    """Whisper's encoder with a memory of its last windows: the pooled vector, language detection and
    every decoding attempt (temperature fallback) of a clip read the same 30 s windows, so the encoder
    runs once per window instead of three or more times. Identical input rows give the stored states."""

    def __init__(self, forward: Any, size: int = 8) -> None:
        self.forward, self.size = forward, size
        self.entries: list[tuple[torch.Tensor, torch.Tensor]] = []  # (mel window, encoder states)
        self.lock = threading.Lock()

    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        with self.lock:
            found = [self._find(row) for row in mel]
        if all(f is not None for f in found):
            return torch.stack(found)  # type: ignore[arg-type]
        states = self.forward(mel)
        with self.lock:
            for row, state in zip(mel, states, strict=True):
                self.entries.append((row.detach().clone(), state.detach().clone()))
            del self.entries[: -self.size]
        return states

    def _find(self, row: torch.Tensor) -> torch.Tensor | None:
        for key, state in reversed(self.entries):
            if key.dtype == row.dtype and key.device == row.device and torch.equal(key, row):
                return state.clone()
        return None


def classic_features(audio: np.ndarray) -> np.ndarray:
    """[log-mel mean, log-mel std, MFCC mean, MFCC std] over frames; (CLASSIC_DIM,) float32."""
    from scipy.fft import dct
    from whisper.audio import HOP_LENGTH, N_FFT, mel_filters

    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    window = torch.hann_window(N_FFT)
    spec = torch.stft(x, N_FFT, HOP_LENGTH, window=window, return_complex=True).abs() ** 2
    mel = mel_filters("cpu", N_MELS_CLASSIC) @ spec  # (80, frames)
    log_mel = torch.clamp(mel, min=1e-10).log10().numpy()
    mfcc = dct(log_mel, type=2, axis=0, norm="ortho")[:N_MFCC]
    feats = [log_mel.mean(axis=1), log_mel.std(axis=1), mfcc.mean(axis=1), mfcc.std(axis=1)]
    return np.concatenate(feats).astype(np.float32)
