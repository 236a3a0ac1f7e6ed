"""Video encoder: frames sampled with ffmpeg through the image encoder, the sound track through audio.

`VideoEncoder.encode(path, fps=1.0, max_frames=16)`:
1. ffprobe the file (a video stream is required; an audio stream is optional);
2. sample frames at `fps` (lowered so that at most `max_frames` come out; at least the first
   frame) as JPEGs into a cache folder keyed by the file's path, size, mtime and the sampling
   settings, so a second call reuses them (and the UI can show them);
3. run every frame through the image encoder once (native features + text-space vectors),
   pool over time with the mean (default) or an `AttentionPooling` module;
4. extract the audio track to 16 kHz mono WAV in the same folder and encode it with the audio
   encoder, if the file has sound and an audio encoder was given.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from fusionrec.encoders.audio import AudioEncoder, AudioFeatures
from fusionrec.encoders.image import ImageEncoder, top_labels
from fusionrec.encoders.memo import FileMemo
from fusionrec.encoders.pooling import AttentionPooling, mean_pool
from fusionrec.media import MediaError, duration, probe, require_tool, run_ffmpeg, streams

DONE = ".done"


@dataclass
class VideoFeatures:
    path: Path
    frames: list[Path]  # sampled frame images, in time order
    times: list[float]  # seconds of each frame
    image: np.ndarray  # (dim,) pooled native frame features, L2-normalised
    to_text_space: np.ndarray  # (text_dim,) pooled text-space frame vectors, L2-normalised
    frame_vectors: np.ndarray  # (n_frames, dim)
    audio: AudioFeatures | None
    duration: float
    labels: list[tuple[str, float]] = field(
        default_factory=list
    )  # top classes of the mean frame probabilities


class VideoEncoder:
    """Image encoder for frames (+ optional audio encoder for the sound track)."""

    def __init__(
        self,
        image_encoder: ImageEncoder,
        audio_encoder: AudioEncoder | None = None,
        cache_dir: str | Path | None = None,
        pooling: str = "mean",
        attention: AttentionPooling | None = None,
        attention_text: AttentionPooling | None = None,
    ) -> None:
        if pooling not in {"mean", "attention"}:
            raise ValueError(f"unknown pooling {pooling!r} (known: mean, attention)")
        self.image_encoder, self.audio_encoder = image_encoder, audio_encoder
        self.cache_dir = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "fusionrec-frames"
        self.pooling = pooling
        self.memo = FileMemo()
        self.attention = attention or (
            AttentionPooling(image_encoder.dim).eval() if pooling == "attention" else None
        )
        self.attention_text = attention_text or (
            AttentionPooling(image_encoder.text_dim).eval() if pooling == "attention" else None
        )

    def encode(
        self,
        path: str | Path,
        fps: float = 1.0,
        max_frames: int = 16,
        with_audio: bool = True,
        transcribe: bool = True,
    ) -> VideoFeatures:
        """Frames, pooled vectors and sound-track features (transcribed unless told not to) of one video.

        A file encoded by a recent call with the same arguments (and unchanged) is not encoded again.
        """
        args = (fps, max_frames, with_audio, transcribe)
        return self.memo.get_or(path, args, lambda: self._encode(path, *args))

    def _encode(
        self, path: str | Path, fps: float, max_frames: int, with_audio: bool, transcribe: bool
    ) -> VideoFeatures:
        p = Path(path).expanduser()
        if not p.is_file():
            raise MediaError(p, "file not found")
        if fps <= 0 or max_frames < 1:
            raise ValueError(f"fps must be > 0 and max_frames >= 1 (got fps={fps}, max_frames={max_frames})")
        require_tool("ffmpeg", p)
        info = probe(p)
        if not streams(info, "video"):
            raise MediaError(p, "no video stream found (not a video file)")
        length = duration(info)
        folder = self._folder(p, fps, max_frames)
        frames, times = self.sample_frames(p, folder, fps, max_frames, length)

        feats = self.image_encoder.features(frames)
        assert feats.text is not None and feats.probs is not None
        image = self._pool(feats.native, self.attention)
        text = self._pool(feats.text, self.attention_text)
        labels = top_labels(feats.probs.mean(axis=0, keepdims=True), self.image_encoder.class_names, 5)[0]

        audio = None
        if with_audio and self.audio_encoder is not None and streams(info, "audio"):
            wav = folder / "audio.wav"
            if not wav.is_file():
                tmp = folder / "audio.tmp.wav"
                run_ffmpeg(["-i", str(p), "-vn", "-ac", "1", "-ar", "16000", "-f", "wav", str(tmp)], p)
                tmp.replace(wav)
            audio = self.audio_encoder.encode([wav], transcribe=transcribe)[0]
        return VideoFeatures(
            path=p,
            frames=frames,
            times=times,
            image=image,
            to_text_space=text,
            frame_vectors=feats.native,
            audio=audio,
            duration=length,
            labels=labels,
        )

    def sample_frames(
        self, path: Path, folder: Path, fps: float, max_frames: int, length: float
    ) -> tuple[list[Path], list[float]]:
        """JPEG frames at `fps` (capped at `max_frames` over the clip), reused when already sampled."""
        if (folder / DONE).is_file():
            frames = sorted(folder.glob("frame_*.jpg"))
            if frames:
                rate = float((folder / DONE).read_text() or fps)
                return frames, [i / rate for i in range(len(frames))]
        rate = fps if length <= 0 else min(fps, max_frames / length)
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        # the first frame at t=0, then one every 1/rate seconds; scaled down to at most 448 px wide
        step = Fraction(rate).limit_denominator(10_000)  # exact rational: 4/3, not 1.333333
        vf = f"fps={step.numerator}/{step.denominator},scale='min(448,iw)':-2"
        args = ["-i", str(path), "-map", "0:v:0", "-vf", vf, "-frames:v", str(max_frames), "-q:v", "3"]
        run_ffmpeg([*args, str(folder / "frame_%04d.jpg")], path)
        frames = sorted(folder.glob("frame_*.jpg"))
        if not frames:  # a clip shorter than one sampling step: take its first frame
            run_ffmpeg(
                [
                    "-i",
                    str(path),
                    "-map",
                    "0:v:0",
                    "-frames:v",
                    "1",
                    "-q:v",
                    "3",
                    str(folder / "frame_0001.jpg"),
                ],
                path,
            )
            frames = sorted(folder.glob("frame_*.jpg"))
        if not frames:
            raise MediaError(path, "no frame could be decoded from the video")
        (folder / DONE).write_text(f"{rate:.6f}")
        return frames, [i / rate for i in range(len(frames))]

    def _folder(self, path: Path, fps: float, max_frames: int) -> Path:
        st = path.stat()
        key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{fps}|{max_frames}"
        return self.cache_dir / f"{path.stem[:40]}-{hashlib.sha1(key.encode()).hexdigest()[:12]}"

    def _pool(self, vectors: np.ndarray, module: AttentionPooling | None) -> np.ndarray:
        if self.pooling == "attention" and module is not None:
            return module.pool(vectors)
        return mean_pool(vectors)
