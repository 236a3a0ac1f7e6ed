"""Upload checks before encoding: extension, size, a real decode (Pillow / ffmpeg), clear messages."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from fusionrec.ui.uploads import MAX_FILES, UploadError, accepted_types, check_upload, check_uploads, kind_of

MB = 2**20
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")


@pytest.fixture(scope="module")
def media(tmp_path_factory, posters) -> dict[str, Path]:
    """A real poster, a truncated poster, text named .jpg, a tone .wav, a short .mp4 and a text file."""
    d = tmp_path_factory.mktemp("uploads")
    out = {"poster": d / "poster.jpg", "truncated": d / "truncated.jpg", "fake": d / "fake.jpg"}
    shutil.copy(posters / "50.jpg", out["poster"])
    out["truncated"].write_bytes((posters / "50.jpg").read_bytes()[:3000])
    out["fake"].write_text("this is not an image")
    out["notes"] = d / "notes.txt"
    out["notes"].write_text("hello")
    if shutil.which("ffmpeg"):
        out["tone"], out["clip"] = d / "tone.wav", d / "clip.mp4"
        ff = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi"]
        subprocess.run([*ff, "-i", "sine=frequency=440:duration=1", str(out["tone"])], check=True)
        subprocess.run(
            [*ff, "-i", "testsrc=duration=1:size=64x48:rate=5", "-pix_fmt", "yuv420p", str(out["clip"])],
            check=True,
        )
    return out


@pytest.mark.parametrize(
    ("name", "kind"),
    [("a.JPG", "image"), ("b.png", "image"), ("c.wav", "audio"), ("d.mp3", "audio"), ("e.mp4", "video")],
)
def test_kind_by_extension(name, kind):
    assert kind_of(name) == kind


@pytest.mark.parametrize("name", ["report.pdf", "notes.txt", "archive.tar.gz", "README"])
def test_unsupported_extension_names_the_file_and_the_accepted_types(name):
    with pytest.raises(UploadError) as err:
        kind_of(f"/tmp/gradio/abc/{name}")
    msg = str(err.value)
    assert msg.startswith(f"{name}: unsupported") and "/tmp/gradio" not in msg
    assert ".jpg" in msg and ".wav" in msg and ".mp4" in msg
    assert accepted_types() in msg


def test_a_real_poster_passes(media):
    att = check_upload(media["poster"], 25 * MB)
    assert att.kind == "image" and att.validated and att.path == media["poster"].resolve()


def test_corrupt_and_fake_images_are_refused_with_the_reason(media):
    with pytest.raises(UploadError, match=r"^truncated\.jpg: corrupt or truncated image"):
        check_upload(media["truncated"], 25 * MB)
    with pytest.raises(UploadError, match=r"^fake\.jpg: not an image file \(it looks like text\)"):
        check_upload(media["fake"], 25 * MB)


def test_size_limit_is_checked_before_decoding(media):
    size = media["poster"].stat().st_size
    with pytest.raises(UploadError, match=r"^poster\.jpg: file too large \(0\.0 MB; the limit is 0\.0 MB\)"):
        check_upload(media["poster"], size - 1)


def test_a_vanished_upload_is_reported(tmp_path):
    with pytest.raises(UploadError, match="gone.png: the upload did not arrive"):
        check_upload(tmp_path / "gone.png", MB)


@needs_ffmpeg
def test_audio_and_video_are_decoded(media):
    assert check_upload(media["tone"], MB).kind == "audio"
    assert check_upload(media["clip"], MB).kind == "video"


@needs_ffmpeg
def test_a_text_file_renamed_to_wav_is_refused(media, tmp_path):
    fake = tmp_path / "song.wav"
    fake.write_text("la la la")
    with pytest.raises(UploadError, match=r"^song\.wav: not an audio file"):
        check_upload(fake, MB)


@needs_ffmpeg
def test_check_uploads_collects_every_problem_and_keeps_the_good_files(media):
    got = check_uploads([media["poster"], media["notes"], media["fake"]], 25 * MB, microphone=media["tone"])
    assert [a.kind for a in got.attachments] == ["image", "audio"]  # the recording is always audio
    assert len(got.errors) == 2
    assert got.errors[0].startswith("notes.txt: unsupported file type .txt")
    assert got.errors[1].startswith("fake.jpg: not an image file")


def test_too_many_files_are_refused_at_once(media):
    got = check_uploads([media["poster"]] * (MAX_FILES + 1), 25 * MB)
    assert not got.attachments and "at most 4 per message" in got.errors[0]


def test_attachment_summaries(tmp_path):
    from fusionrec.ui.attachments import AttachmentView, summary

    audio = AttachmentView("audio", tmp_path / "ask.wav", transcript="A comedy please")
    assert summary(audio) == '♪ Heard in ask.wav: "A comedy please"'
    assert summary(AttachmentView("audio", tmp_path / "hum.wav")) == "♪ No speech heard in hum.wav."
    video = AttachmentView("video", tmp_path / "c.mp4", frames=[tmp_path / "1.jpg"] * 3, labels=["dog"])
    assert summary(video) == "▶ 3 frames sampled from c.mp4; they look like: dog."
    assert summary(AttachmentView("audio", tmp_path / "x.wav", problem="decoder failed")) == ""
