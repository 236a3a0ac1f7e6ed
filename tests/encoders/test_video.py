"""Video encoder (frames via ffmpeg, pooled over time, sound track via Whisper) and the pooling module."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from fusionrec import encoders
from fusionrec.encoders.pooling import AttentionPooling, mean_pool, pool
from fusionrec.encoders.video import VideoEncoder
from fusionrec.media import MediaError

SENTENCE = "Show me a comedy movie for the whole family."


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def clips(tmp_path_factory, shared_data) -> dict[str, Path]:
    """A 3 s clip of a poster with spoken audio, the same without sound, and the speech alone."""
    if shutil.which("ffmpeg") is None or shutil.which("espeak-ng") is None:
        pytest.skip("ffmpeg and espeak-ng are needed (apt-get install ffmpeg espeak-ng)")
    root = tmp_path_factory.mktemp("video")
    poster = shared_data / "movielens-100k-posters" / "posters" / "1.jpg"
    speech = root / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(speech), SENTENCE], check=True, capture_output=True)
    scale = "scale=184:276,format=yuv420p"
    clip = root / "clip.mp4"
    ffmpeg("-loop", "1", "-i", str(poster), "-i", str(speech), "-t", "3", "-vf", scale, "-r", "10",
           "-c:v", "libx264", "-c:a", "aac", str(clip))  # fmt: skip
    mute = root / "mute.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=duration=2:size=160x120:rate=10", "-pix_fmt", "yuv420p", str(mute))
    return {"poster": poster, "speech": speech, "clip": clip, "mute": mute}


@pytest.fixture(scope="module")
def tiny_video(tiny_cfg, tmp_path_factory) -> VideoEncoder:
    image = encoders.load_image_encoder(tiny_cfg)
    return VideoEncoder(image, None, cache_dir=tmp_path_factory.mktemp("frames"))


@pytest.mark.real
def test_real_video_frames_pooled_vector_and_transcript(offline_cfg, clips):
    enc = encoders.load_video_encoder(offline_cfg)
    v = enc.encode(clips["clip"], fps=1.0)
    assert len(v.frames) == 3 and v.times == [0.0, 1.0, 2.0]
    assert all(f.is_file() and f.suffix == ".jpg" for f in v.frames)
    assert v.image.shape == (1280,) and v.to_text_space.shape == (384,)
    assert v.frame_vectors.shape == (3, 1280)
    # every frame shows the same poster, so the pooled vector is that poster's vector
    poster = enc.image_encoder.encode([clips["poster"]])[0]
    assert float(v.image @ poster) > 0.95
    assert v.labels[0][0] == "comic book"
    assert v.audio is not None and "comedy" in v.audio.transcript.lower()
    assert v.audio.text_vector is not None and 2.5 < v.duration < 3.5


def test_frames_are_capped_cached_and_reused(tiny_video, clips):
    first = tiny_video.encode(clips["clip"], fps=10.0, max_frames=4)
    assert len(first.frames) == 4 and first.times[0] == 0.0 and first.times[-1] < 3.0
    assert first.audio is None  # no audio encoder given
    stamps = [f.stat().st_mtime_ns for f in first.frames]
    again = tiny_video.encode(clips["clip"], fps=10.0, max_frames=4)
    assert again.frames == first.frames and [f.stat().st_mtime_ns for f in again.frames] == stamps
    np.testing.assert_allclose(again.image, first.image, atol=1e-6)
    other = tiny_video.encode(clips["clip"], fps=1.0, max_frames=16)
    assert len(other.frames) == 3 and other.frames[0].parent != first.frames[0].parent


def test_video_without_sound_and_audio_track_extraction(tiny_cfg, clips, tmp_path):
    enc = VideoEncoder(
        encoders.load_image_encoder(tiny_cfg), encoders.load_audio_encoder(tiny_cfg), cache_dir=tmp_path
    )
    assert enc.encode(clips["mute"], fps=1.0, with_audio=False).audio is None
    mute = enc.encode(clips["mute"], fps=1.0)
    assert mute.audio is None and len(mute.frames) == 2
    # the sound track is extracted to 16 kHz mono WAV next to the frames and encoded
    sound = enc.encode(clips["clip"], fps=1.0, max_frames=2, transcribe=False)  # random weights: no words
    assert sound.audio is not None and sound.audio.path.name == "audio.wav"
    assert sound.audio.whisper.shape == (enc.audio_encoder.dim,) and 2.0 < sound.audio.duration < 3.5


def test_attention_pooling_untrained_equals_mean(tiny_cfg, clips, tmp_path):
    image = encoders.load_image_encoder(tiny_cfg)
    mean = VideoEncoder(image, None, cache_dir=tmp_path).encode(clips["mute"], fps=2.0)
    att = VideoEncoder(image, None, cache_dir=tmp_path, pooling="attention").encode(clips["mute"], fps=2.0)
    np.testing.assert_allclose(att.image, mean.image, atol=1e-5)
    np.testing.assert_allclose(att.to_text_space, mean.to_text_space, atol=1e-5)
    assert len(mean.frames) == 4 and not np.allclose(mean.frame_vectors[0], mean.frame_vectors[-1])


def test_video_errors(tiny_video, clips, tmp_path, monkeypatch):
    with pytest.raises(MediaError, match="speech.wav: no video stream found"):
        tiny_video.encode(clips["speech"])
    with pytest.raises(MediaError, match="missing.mp4: file not found"):
        tiny_video.encode(tmp_path / "missing.mp4")
    with pytest.raises(ValueError, match="fps must be > 0"):
        tiny_video.encode(clips["clip"], fps=0)
    fresh = tmp_path / "copy.mp4"  # a file not encoded before (an encoded one is remembered)
    fresh.write_bytes(Path(clips["clip"]).read_bytes())
    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg on PATH
    with pytest.raises(MediaError, match=r"install ffmpeg \(apt-get install ffmpeg\)"):
        tiny_video.encode(fresh)


# --- pooling -------------------------------------------------------------------------------------
def test_attention_pooling_module(tmp_path):
    import torch

    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 8)).astype(np.float32)
    module = AttentionPooling(8, hidden=4).eval()
    np.testing.assert_allclose(module.pool(x), mean_pool(x), atol=1e-6)
    np.testing.assert_allclose(pool(x, "attention"), pool(x, "mean"), atol=1e-6)
    with torch.no_grad():
        module.score.weight.normal_()
    w = module.weights(torch.from_numpy(x)[None])
    assert torch.allclose(w.sum(-1), torch.ones(1)) and not torch.allclose(w, torch.full_like(w, 0.2))
    mask = torch.tensor([[True, True, False, False, False]])
    assert torch.all(module.weights(torch.from_numpy(x)[None], mask)[0, 2:] == 0)
    module.save(tmp_path / "pool.safetensors")
    loaded = AttentionPooling.load(tmp_path / "pool.safetensors")
    np.testing.assert_allclose(loaded.pool(x), module.pool(x), atol=1e-6)
    assert not np.allclose(module.pool(x), mean_pool(x), atol=1e-3)


def test_mean_pool_mask_and_errors():
    x = np.array([[1.0, 0.0], [0.0, 1.0], [9.0, 9.0]], dtype=np.float32)
    np.testing.assert_allclose(mean_pool(x, mask=[True, True, False]), [2**-0.5, 2**-0.5], atol=1e-6)
    with pytest.raises(ValueError, match="non-empty"):
        mean_pool(np.zeros((0, 2)))
    with pytest.raises(ValueError, match="unknown pooling 'max'"):
        pool(x, "max")
