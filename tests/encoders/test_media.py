"""Media validation: good files pass; damaged, mislabelled, oversized and missing files give clear errors."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from fusionrec.media import MediaError, guess_kind, validate
from fusionrec.types import Attachment

pytestmark = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("espeak-ng") is None,
    reason="ffmpeg and espeak-ng are needed (apt-get install ffmpeg espeak-ng)",
)


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def files(tmp_path_factory, shared_data) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    out = {"jpg": d / "poster.jpg", "wav": d / "speech.wav", "mp3": d / "speech.mp3", "mp4": d / "clip.mp4"}
    shutil.copy(shared_data / "movielens-100k-posters" / "posters" / "1.jpg", out["jpg"])
    subprocess.run(["espeak-ng", "-w", str(out["wav"]), "A comedy for the family."], check=True)
    ffmpeg("-i", str(out["wav"]), "-b:a", "64k", str(out["mp3"]))
    ffmpeg("-f", "lavfi", "-i", "testsrc=duration=2:size=160x120:rate=10", "-f", "lavfi", "-i",
           "sine=frequency=440:duration=2", "-shortest", "-pix_fmt", "yuv420p", "-c:a", "aac", str(out["mp4"]))  # fmt: skip
    return out


def damaged(files: dict[str, Path], key: str, name: str, keep: float) -> Path:
    """A copy of a file cut to a fraction of its bytes."""
    data = files[key].read_bytes()
    path = files[key].parent / name
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def test_good_files_pass_and_kinds_are_guessed(files):
    for key, kind in [("jpg", "image"), ("wav", "audio"), ("mp3", "audio"), ("mp4", "video")]:
        att = validate(files[key], kind)
        assert isinstance(att, Attachment) and att.validated and att.kind == kind and att.path.is_absolute()
        assert guess_kind(files[key]) == kind
    assert validate(files["mp4"], "audio").validated  # a video's sound track is audio too


def test_guess_kind_trusts_content_over_extension(files, tmp_path):
    renamed = tmp_path / "really_a_picture.wav"
    shutil.copy(files["jpg"], renamed)
    assert guess_kind(renamed) == "image"
    no_ext = tmp_path / "clip"
    shutil.copy(files["mp4"], no_ext)
    assert guess_kind(no_ext) == "video"
    txt = tmp_path / "notes.wav"
    txt.write_text("hello\n")
    with pytest.raises(MediaError, match=f"^{txt}: not a media file"):
        guess_kind(txt)


def test_corrupt_image(files):
    bad = damaged(files, "jpg", "cut.jpg", 0.4)
    with pytest.raises(MediaError, match=f"^{bad}: corrupt or truncated image"):
        validate(bad, "image")


def test_text_file_given_as_image_or_audio(files, tmp_path):
    txt = tmp_path / "readme.txt"
    txt.write_text("just some words\n" * 10)
    with pytest.raises(MediaError, match=rf"^{txt}: not an image file \(it looks like text\)"):
        validate(txt, "image")
    renamed = tmp_path / "song.wav"
    shutil.copy(txt, renamed)
    with pytest.raises(MediaError, match=rf"^{renamed}: not an audio file \(it looks like text\)"):
        validate(renamed, "audio")
    with pytest.raises(
        MediaError, match=rf"^{files['wav']}: not an image file \(it looks like an audio file\)"
    ):
        validate(files["wav"], "image")


@pytest.mark.parametrize("key,keep", [("wav", 0.3), ("mp3", 0.3)])
def test_truncated_audio(files, key, keep):
    bad = damaged(files, key, f"cut.{key}", keep)
    with pytest.raises(MediaError, match=f"^{bad}: (corrupt or truncated audio|truncated audio)"):
        validate(bad, "audio")


def test_unknown_audio_codec(files, tmp_path):
    data = bytearray(files["wav"].read_bytes())
    at = data.index(b"fmt ") + 8
    data[at : at + 2] = struct.pack("<H", 0x1234)  # a WAVE format tag no decoder knows
    bad = tmp_path / "odd.wav"
    bad.write_bytes(bytes(data))
    with pytest.raises(MediaError, match=f"^{bad}: unknown audio codec"):
        validate(bad, "audio")


def test_video_problems(files):
    with pytest.raises(MediaError, match=f"^{files['mp3']}: no video stream found"):
        validate(files["mp3"], "video")
    cut = damaged(files, "mp4", "cut.mp4", 0.5)
    with pytest.raises(MediaError, match=f"^{cut}: not a video file, or it is corrupt"):
        validate(cut, "video")
    with pytest.raises(MediaError, match=r"not a video file \(it looks like an image file\)"):
        validate(files["jpg"], "video")


def test_size_missing_empty_and_bad_kind(files, tmp_path):
    with pytest.raises(MediaError, match=rf"^{files['jpg']}: file too large \(0\.0 MB > limit 0\.0 MB\)"):
        validate(files["jpg"], "image", max_bytes=100)
    missing = tmp_path / "nothing.png"
    with pytest.raises(MediaError, match=f"^{missing}: file not found"):
        validate(missing, "image")
    empty = tmp_path / "empty.wav"
    empty.touch()
    with pytest.raises(MediaError, match=f"^{empty}: empty file"):
        validate(empty, "audio")
    with pytest.raises(MediaError, match="not a regular file"):
        validate(tmp_path, "image")
    with pytest.raises(ValueError, match="unknown media kind 'text'"):
        validate(files["jpg"], "text")


def test_missing_ffmpeg_says_how_to_install(files, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MediaError, match=r"ffprobe not found: install ffmpeg \(apt-get install ffmpeg\)"):
        validate(files["wav"], "audio")
    assert validate(files["jpg"], "image").validated  # images need no ffmpeg


def test_error_carries_path_and_reason(tmp_path):
    err = MediaError(tmp_path / "x.jpg", "not an image file")
    assert err.path == tmp_path / "x.jpg" and err.reason == "not an image file"
    assert str(err) == f"{tmp_path / 'x.jpg'}: not an image file"
