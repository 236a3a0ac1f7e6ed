"""What the chat shows about uploads, with the real offline encoders: a transcript, sampled frames."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from fusionrec.types import Attachment
from fusionrec.ui.attachments import describe, summary

pytestmark = [
    pytest.mark.real,
    pytest.mark.skipif(
        not (shutil.which("ffmpeg") and shutil.which("espeak-ng")), reason="needs ffmpeg, espeak-ng"
    ),
]


def test_spoken_request_shows_its_transcript(ui_offline_cfg, tmp_path):
    wav = tmp_path / "request.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), "Show me a comedy movie for the whole family."], check=True)
    view = describe(ui_offline_cfg, Attachment("audio", wav, validated=True))
    assert not view.problem and "comedy" in view.transcript.lower()
    assert summary(view).startswith('♪ Heard in request.wav: "') and view.transcript in summary(view)


def test_video_shows_the_sampled_frames(ui_offline_cfg, tmp_path):
    clip = tmp_path / "clip.mp4"
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=duration=3:size=160x120:rate=10"]
    subprocess.run([*cmd, "-pix_fmt", "yuv420p", str(clip)], check=True)
    view = describe(ui_offline_cfg, Attachment("video", clip, validated=True))
    assert not view.problem and len(view.frames) == 3  # one per second, as retrieval samples them
    assert all(f.is_file() and f.suffix == ".jpg" for f in view.frames)
    assert (ui_offline_cfg.home / "cache" / "frames") in view.frames[0].parents  # served via allowed_paths
    assert summary(view).startswith("▶ 3 frames sampled from clip.mp4")
