"""What the chat shows about an upload: the transcript of audio, the sampled frames of a video.

Uses the same cached encoders (and the same frame sampling rate) as retrieval, so the frames
shown are the frames used, and the video's frames are sampled once (the encoder keeps them on disk).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusionrec.config import Config
from fusionrec.types import Attachment

log = logging.getLogger(__name__)


@dataclass
class AttachmentView:
    kind: str
    path: Path
    transcript: str = ""  # audio, or a video's sound track
    frames: list[Path] = field(default_factory=list)  # video: the sampled frames, in time order
    labels: list[str] = field(default_factory=list)  # image/video: what the image model sees
    problem: str = ""  # set when describing failed (the turn still goes on)


def describe(cfg: Config, att: Attachment, encoders: Any = None) -> AttachmentView:
    """Transcript (audio), frames (video) or labels (image) of a validated attachment."""
    if encoders is None:
        from fusionrec import encoders
    view = AttachmentView(att.kind, Path(att.path))
    try:
        if att.kind == "audio":
            view.transcript, _ = encoders.load_audio_encoder(cfg).transcribe(att.path)
        elif att.kind == "video":
            from fusionrec.retrieval.ingest import VIDEO_FPS

            feats = encoders.load_video_encoder(cfg).encode(att.path, fps=VIDEO_FPS)
            view.frames = list(feats.frames)
            view.labels = [name for name, _ in feats.labels[:3]]
            if feats.audio is not None:
                view.transcript = feats.audio.transcript
        elif att.kind == "image":
            view.labels = [name for name, _ in encoders.load_image_encoder(cfg).labels([att.path], k=3)[0]]
    except Exception as exc:  # showing details is a courtesy: the agent reports real failures
        log.warning("could not describe %s: %s", att.path, exc)
        view.problem = str(exc)
    view.transcript = view.transcript.strip()
    return view


def summary(view: AttachmentView) -> str:
    """One line for the chat: what was heard or seen in the upload ("" when describing failed)."""
    name = view.path.name
    if view.problem:
        return ""
    if view.kind == "audio":
        return (
            f'♪ Heard in {name}: "{view.transcript}"' if view.transcript else f"♪ No speech heard in {name}."
        )
    if view.kind == "video":
        parts = [f"▶ {len(view.frames)} frames sampled from {name}"]
        if view.labels:
            parts.append("they look like: " + ", ".join(view.labels))
        if view.transcript:
            parts.append(f'its sound says: "{view.transcript}"')
        return "; ".join(parts) + "."
    if view.labels:
        return f"{name} looks like: " + ", ".join(view.labels) + "."
    return ""
