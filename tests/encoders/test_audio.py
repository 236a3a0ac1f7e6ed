"""Audio encoder: Whisper transcripts of real espeak-ng speech, pooled states, classic features, errors."""

from __future__ import annotations

import math
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from fusionrec import encoders
from fusionrec.encoders.audio import CLASSIC_DIM, N_MELS_CLASSIC, AudioEncoder, classic_features
from fusionrec.media import MediaError

SENTENCE = "Show me a comedy movie for the whole family."


def write_tone(path: Path, freq: float, seconds: float = 1.0, rate: int = 16000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.5 * np.sin(2 * math.pi * freq * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed (apt-get install espeak-ng)")
    path = tmp_path_factory.mktemp("audio") / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(path), SENTENCE], check=True, capture_output=True)
    return path


@pytest.fixture(scope="module")
def real_audio(offline_cfg) -> AudioEncoder:
    return encoders.load_audio_encoder(offline_cfg)


@pytest.fixture(scope="module")
def tiny_audio(tiny_cfg) -> AudioEncoder:
    return encoders.load_audio_encoder(tiny_cfg)


@pytest.mark.real
def test_real_whisper_transcribes_espeak_speech(real_audio, speech):
    (f,) = real_audio.encode([speech])
    words = f.transcript.lower()
    assert "comedy" in words and "movie" in words and "family" in words, f.transcript
    assert f.language == "en"
    assert f.whisper.shape == (real_audio.dim,) == (512,) and f.classic.shape == (CLASSIC_DIM,)
    assert abs(float(np.linalg.norm(f.whisper)) - 1) < 1e-5
    assert 1.5 < f.duration < 4.0
    text = real_audio.text_encoder
    related, unrelated = text.encode(["a funny film for kids and parents", "a tax form for small businesses"])
    assert f.text_vector is not None and f.text_vector @ related > f.text_vector @ unrelated + 0.1
    q = real_audio.embed_query(speech)
    np.testing.assert_allclose(q, f.text_vector, atol=1e-5)


@pytest.mark.real
def test_silence_has_no_transcript_and_no_text_vector(real_audio, tmp_path):
    silent = write_tone(tmp_path / "silence.wav", freq=0.0, seconds=1.0)
    (f,) = real_audio.encode([silent])
    assert f.transcript == "" and f.text_vector is None
    with pytest.raises(MediaError, match="no speech was recognised"):
        real_audio.embed_query(silent)


def test_pooling_leaves_out_the_30s_padding(tiny_audio, speech):
    """The pooled vector is the mean over the frames that hold audio, not over all 1500."""
    import torch
    import whisper

    (f,) = tiny_audio.encode([speech], transcribe=False)
    audio = whisper.load_audio(str(speech))
    mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(audio)), n_mels=tiny_audio.n_mels)
    with torch.inference_mode():
        states = tiny_audio.model.embed_audio(mel[None])[0].numpy()
    n = math.ceil(audio.size / 320)
    assert 0 < n < states.shape[0]
    manual = states[:n].mean(0)
    np.testing.assert_allclose(f.whisper, manual / np.linalg.norm(manual), atol=1e-4)
    everything = states.mean(0)
    assert float(f.whisper @ (everything / np.linalg.norm(everything))) < 0.999
    assert f.transcript == "" and f.language == ""


def test_long_audio_is_pooled_over_all_windows(tiny_audio, tmp_path):
    long = write_tone(tmp_path / "long.wav", freq=300.0, seconds=31.0)
    (f,) = tiny_audio.encode([long], transcribe=False)
    assert f.whisper.shape == (tiny_audio.dim,) and 30.9 < f.duration < 31.1


def test_a_file_is_encoded_once_until_it_changes(tiny_audio, tmp_path):
    """Retrieval and the prompt both encode an upload in one turn: the second call reuses the first."""
    import os

    path = write_tone(tmp_path / "memo.wav", freq=440.0)
    (first,) = tiny_audio.encode([path], transcribe=False)
    (again,) = tiny_audio.encode([path], transcribe=False)
    assert again is first
    other = write_tone(tmp_path / "other.wav", freq=220.0)
    both = tiny_audio.encode([other, path], transcribe=False)
    assert both[1] is first and both[0] is not first
    write_tone(path, freq=880.0, seconds=2.0)  # replaced: same name, new content
    os.utime(path, ns=(first_ns := os.stat(path).st_mtime_ns + 10**9, first_ns))
    (changed,) = tiny_audio.encode([path], transcribe=False)
    assert changed is not first and 1.9 < changed.duration < 2.1


def test_classic_features_follow_pitch(tmp_path):
    low = classic_features(np.asarray(_read(write_tone(tmp_path / "low.wav", 300.0))))
    high = classic_features(np.asarray(_read(write_tone(tmp_path / "high.wav", 3000.0))))
    assert low.shape == high.shape == (CLASSIC_DIM,)
    assert np.isfinite(low).all() and np.isfinite(high).all()
    band_low, band_high = np.argmax(low[:N_MELS_CLASSIC]), np.argmax(high[:N_MELS_CLASSIC])
    assert band_high > band_low + 20  # the loudest mel band moves up with the pitch


def _read(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768


def test_audio_errors_name_the_file(tiny_audio, tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio at all\n" * 20)
    with pytest.raises(MediaError, match=f"{text}: cannot decode audio"):
        tiny_audio.encode([text], transcribe=False)
    with pytest.raises(MediaError, match="missing.wav: file not found"):
        tiny_audio.encode([tmp_path / "missing.wav"])
    short = write_tone(tmp_path / "short.wav", 440.0, seconds=0.01)
    with pytest.raises(MediaError, match="short.wav: audio too short"):
        tiny_audio.encode([short])
    with pytest.raises(TypeError, match="list of audio paths"):
        tiny_audio.encode(str(short))
