"""CTranslate2 Whisper -> openai-whisper: the binary reader and real transcription of real speech."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from fusionrec.models.convert import ct2_whisper
from fusionrec.models.registry import ModelPackageError, offline_paths

SENTENCE = "Show me a comedy movie for the whole family."


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: word-level edit distance / reference length (case and punctuation ignored)."""

    def words(text: str) -> list[str]:
        return "".join(c.lower() if c.isalnum() or c.isspace() else " " for c in text).split()

    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(len(ref), 1)


def test_wer():
    assert wer("show me a movie", "Show me a movie.") == 0
    assert wer("show me a movie", "show a movie") == 0.25
    assert wer("a b", "c d e") == 1.5


@pytest.fixture(scope="module")
def tiny_en_bytes() -> bytes:
    try:
        parts, _ = ct2_whisper.tiny_en_source()
    except ModelPackageError as exc:
        pytest.skip(str(exc))
    return parts[0].read_bytes()


def test_reader_parses_the_real_tiny_en(tiny_en_bytes):
    spec, revision, tensors = ct2_whisper.read_ct2(tiny_en_bytes)
    assert (spec, revision) == ("WhisperSpec", 3)
    assert tensors["decoder/projection/weight"] is tensors["decoder/embeddings/weight"]  # the alias
    dims = ct2_whisper.dims_from(tensors, vocabulary_size=51864)
    assert dims == {
        "n_mels": 80,
        "n_audio_ctx": 1500,
        "n_audio_state": 384,
        "n_audio_head": 6,
        "n_audio_layer": 4,
        "n_vocab": 51864,
        "n_text_ctx": 448,
        "n_text_state": 384,
        "n_text_head": 6,
        "n_text_layer": 4,
    }
    state = ct2_whisper.to_whisper_state(tensors, dims)
    assert "encoder.blocks.0.attn.key.bias" not in state  # the zero key bias is dropped
    assert state["decoder.blocks.0.cross_attn.key.weight"].shape == (384, 384)
    assert sum(v.numel() for v in state.values()) == pytest.approx(37.8e6, rel=0.01)


def test_reader_rejects_truncated_and_foreign_files(tiny_en_bytes):
    with pytest.raises(ct2_whisper.CT2FormatError, match="truncated|past the end"):
        ct2_whisper.read_ct2(tiny_en_bytes[: len(tiny_en_bytes) // 2], "half.bin")
    with pytest.raises(ct2_whisper.CT2FormatError, match="binary version 5"):
        ct2_whisper.read_ct2(struct.pack("<I", 5) + tiny_en_bytes[4:], "old.bin")
    with pytest.raises(ct2_whisper.CT2FormatError, match="trailing bytes"):
        ct2_whisper.read_ct2(tiny_en_bytes + b"\0\0", "long.bin")
    with pytest.raises(ct2_whisper.CT2FormatError, match="vocabulary has 100 tokens"):
        ct2_whisper.dims_from(ct2_whisper.read_ct2(tiny_en_bytes)[2], vocabulary_size=100)


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    path = tmp_path_factory.mktemp("speech") / "family.wav"
    subprocess.run(["espeak-ng", "-w", str(path), SENTENCE], check=True, capture_output=True)
    return path


@pytest.mark.real
def test_converted_default_whisper_transcribes_speech(offline_cfg, speech_wav):
    from fusionrec.models.registry import load_whisper

    model = load_whisper(offline_cfg)  # the offline default: Whisper base (docs/results/requests.md)
    assert model.is_multilingual and model.dims.n_audio_layer == 6
    text = model.transcribe(str(speech_wav), fp16=False, language="en", temperature=0.0)["text"]
    assert wer(SENTENCE, text) < 0.2, text


@pytest.mark.real
def test_converted_base_transcribes_and_detects_english(offline_cfg, speech_wav):
    import whisper

    model = whisper.load_model(str(offline_paths(offline_cfg.models_dir)["speech_base"]), device="cpu")
    assert model.is_multilingual and model.dims.n_text_layer == 6
    audio = whisper.pad_or_trim(whisper.load_audio(str(speech_wav)))
    _, probs = model.detect_language(whisper.log_mel_spectrogram(audio, model.dims.n_mels))
    assert max(probs, key=probs.get) == "en"
    text = model.transcribe(str(speech_wav), fp16=False, temperature=0.0)["text"]
    assert wer(SENTENCE, text) < 0.2, text
