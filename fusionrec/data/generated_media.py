"""Generated media for items that have none, so every modality path runs on every item.

For an item without audio: an espeak-ng reading of (the start of) its overview, a WAV file.
For an item without video: a short clip made by ffmpeg from its poster with that reading as the
sound track (MP4, H.264 + AAC). Files live under ``cfg.data_dir/<dataset>/generated/`` and are
named by item id plus a hash of what they were made from, so an edited overview or poster makes
new files and an unchanged one reuses the old (resumable; files appear atomically). Items get the
paths in ``Item.media`` and ``metadata["generated_media"]`` lists the generated kinds: they are
clearly marked as generated, never mistaken for real trailers.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

from fusionrec.config import Config
from fusionrec.types import Item

MAX_CHARS = 400  # read at most this much of the overview (cut at a sentence end when possible)
CLIP_SECONDS = 8.0  # length cap of a generated video clip
CLIP_FPS = 2  # frames per second of the (still) clip


class GeneratedMediaError(RuntimeError):
    """espeak-ng or ffmpeg is missing or failed; the message says which and how to install it."""


def generated_dir(cfg: Config, dataset: str) -> Path:
    return cfg.data_dir / dataset / "generated"


def speech_text(text: str, max_chars: int = MAX_CHARS) -> str:
    """The part of an overview that gets read: whole sentences up to ``max_chars``."""
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    end = max(cut.rfind(". "), cut.rfind("! "), cut.rfind("? "))
    return cut[: end + 1] if end > max_chars // 3 else cut.rsplit(" ", 1)[0]


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise GeneratedMediaError(f"{name} not found: install it (apt-get install {name})")
    return found


def _run(cmd: list[str], what: str, stdin: str | None = None) -> None:
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        detail = "; ".join(proc.stderr.strip().splitlines()[:2]) or "no details"
        raise GeneratedMediaError(f"{what} failed: {detail}")


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()[:10]


def speak(text: str, out: Path) -> Path:
    """espeak-ng reading of ``text`` into the WAV file ``out`` (written atomically)."""
    tmp = out.with_name(f".{out.name}.tmp.wav")
    _run([_tool("espeak-ng"), "-s", "170", "-w", str(tmp), "--stdin"], f"espeak-ng for {out}", stdin=text)
    os.replace(tmp, out)
    return out


def clip(poster: Path, audio: Path, out: Path, seconds: float = CLIP_SECONDS) -> Path:
    """A still clip of ``poster`` with ``audio`` as its sound track, at most ``seconds`` long."""
    tmp = out.with_name(f".{out.name}.tmp.mp4")
    cmd = [
        _tool("ffmpeg"), "-nostdin", "-hide_banner", "-v", "error", "-y",
        "-loop", "1", "-framerate", str(CLIP_FPS), "-i", str(poster), "-i", str(audio),
        "-t", f"{seconds:.2f}", "-shortest",
        "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2,format=yuv420p",
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "stillimage", "-r", str(CLIP_FPS),
        "-c:a", "aac", "-b:a", "64k", "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
        "-f", "mp4", str(tmp),
    ]  # fmt: skip
    _run(cmd, f"ffmpeg clip for {out}")
    os.replace(tmp, out)
    return out


def add_generated_media(
    cfg: Config, dataset: str, items: list[Item], progress: bool = True
) -> dict[str, int]:
    """Give items without audio/video generated ones (in place); returns {"audio": n, "video": n} made."""
    from tqdm import tqdm

    folder = generated_dir(cfg, dataset)
    folder.mkdir(parents=True, exist_ok=True)
    made = {"audio": 0, "video": 0}
    todo = [i for i in items if ("audio" not in i.media and i.text.strip()) or "video" not in i.media]
    for item in tqdm(todo, desc="generated media", unit="item", disable=not progress or not todo):
        kinds = list(item.metadata.get("generated_media", []))
        safe_id = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.id)
        if "audio" not in item.media and item.text.strip():
            text = speech_text(item.text)
            wav = folder / f"{safe_id}-{_digest(text.encode())}.wav"
            if not wav.is_file():
                speak(text, wav)
                made["audio"] += 1
            item.media["audio"] = str(wav)
            kinds.append("audio")
        poster, audio = item.media.get("image"), item.media.get("audio")
        if "video" not in item.media and poster and audio and Path(poster).is_file():
            mp4 = folder / f"{safe_id}-{_digest(Path(poster).read_bytes(), Path(audio).read_bytes())}.mp4"
            if not mp4.is_file():
                clip(Path(poster), Path(audio), mp4)
                made["video"] += 1
            item.media["video"] = str(mp4)
            kinds.append("video")
        if kinds:
            item.metadata["generated_media"] = sorted(set(kinds))
    return made
