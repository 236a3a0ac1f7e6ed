"""Media files: what kind a file is, whether it decodes, and ffmpeg/ffprobe helpers.

`validate(path, kind)` checks an upload before any model sees it and returns an `Attachment`;
every problem raises `MediaError`, whose message is "<path>: <reason>". Images are checked with
Pillow: the pixel count from the header first (`max_image_megapixels()`, so a small file that
expands to gigabytes is refused before any decode), then verify, then a decode (JPEGs at 1/8
scale, which still reads the whole stream); audio and video with ffprobe (is there a stream of
that kind) and ffmpeg (does it decode without errors). Only light imports at module level.

The pixel limit is process-wide, like Pillow's own `Image.MAX_IMAGE_PIXELS`, which `pillow()`
keeps equal to it (Pillow then refuses more than twice the limit anywhere in the process, and its
DecompressionBombWarning is silenced: every path here refuses over the limit with a MediaError).
"""

from __future__ import annotations

import json
import mimetypes
import re
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fusionrec.types import Attachment

KINDS = ("image", "audio", "video")
DEFAULT_MAX_BYTES = 25 * 2**20
DEFAULT_MAX_MEGAPIXELS = 40.0  # 40 MP = 120 MB decoded as RGB; the default of models.max_image_megapixels
INSTALL_FFMPEG = "install ffmpeg (apt-get install ffmpeg)"

_IMAGE_EXT = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
_AUDIO_EXT = {".wav", ".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".wma", ".aiff", ".aif"}
_VIDEO_EXT = {".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp"}
_ARTICLE = {"image": "an image", "audio": "an audio", "video": "a video"}


class MediaError(ValueError):
    """A media file is missing, too large, of the wrong kind, corrupt, or cannot be decoded."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


# --- image pixel limit ---------------------------------------------------------------------------
_max_megapixels = DEFAULT_MAX_MEGAPIXELS


def set_max_image_megapixels(megapixels: float) -> None:
    """Set the process-wide image pixel limit (`models.max_image_megapixels`), Pillow's included."""
    global _max_megapixels
    value = float(megapixels)
    if not value > 0:
        raise ValueError(f"max_image_megapixels must be > 0 (got {megapixels!r})")
    _max_megapixels = value
    if "PIL.Image" in sys.modules:  # else `pillow()` applies it on first use: no import here
        pillow()


def max_image_megapixels() -> float:
    """The process-wide image pixel limit in megapixels (default `DEFAULT_MAX_MEGAPIXELS`)."""
    return _max_megapixels


def pillow() -> Any:
    """`PIL.Image`, with MAX_IMAGE_PIXELS equal to the pixel limit and its bomb warning silenced."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = int(_max_megapixels * 1e6)
    bomb = Image.DecompressionBombWarning
    if not any(f[0] == "ignore" and f[2] is bomb for f in warnings.filters):
        warnings.filterwarnings("ignore", category=bomb)  # over the limit is a MediaError here
    return Image


def _too_many_pixels(p: Path, pixels: int, size: tuple[int, int] | None = None) -> MediaError:
    dims = f"{size[0]}x{size[1]} = " if size else ""
    return MediaError(
        p, f"image too large ({dims}{pixels / 1e6:.1f} megapixels > limit {_max_megapixels:g} megapixels)"
    )


def _bomb(p: Path, exc: Exception) -> MediaError:
    """A MediaError for Pillow's own DecompressionBombError/Warning (its message has the pixel count)."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    if found:
        return _too_many_pixels(p, int(found.group(1)))
    return MediaError(p, f"image too large (over the limit of {_max_megapixels:g} megapixels)")


@contextmanager
def open_image_checked(path: str | Path) -> Iterator[Any]:
    """`Image.open` (header only) after the pixel limit; Pillow's errors become MediaError.

    Inside the block, decoding errors (truncation, corruption, pixel bombs in later frames) are
    converted too. The image is closed on leaving.
    """
    from PIL import UnidentifiedImageError

    Image = pillow()
    p = Path(path)
    try:
        with Image.open(p) as img:
            w, h = img.size
            if w * h > _max_megapixels * 1e6:
                raise _too_many_pixels(p, w * h, (w, h))
            yield img
    except UnidentifiedImageError:
        raise _wrong_kind(p, "image") if p.is_file() else MediaError(p, "file not found") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _bomb(p, exc) from None
    except FileNotFoundError:
        raise MediaError(p, "file not found") from None
    except (OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, MediaError):
            raise
        raise MediaError(p, f"corrupt or truncated image ({exc})") from None


# --- ffmpeg / ffprobe ----------------------------------------------------------------------------
def require_tool(name: str, path: str | Path = "") -> str:
    """The absolute path of ffmpeg/ffprobe, or a MediaError saying how to install it."""
    found = shutil.which(name)
    if found is None:
        raise MediaError(path or name, f"{name} not found: {INSTALL_FFMPEG}")
    return found


def run_ffmpeg(args: list[str], path: str | Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ffmpeg quietly (errors only) with the given arguments; raise MediaError when it fails."""
    cmd = [require_tool("ffmpeg", path), "-nostdin", "-hide_banner", "-v", "error", "-y", *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MediaError(path, f"ffmpeg took longer than {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise MediaError(path, f"ffmpeg failed: {_first_lines(proc.stderr, path=path)}")
    return proc


def probe(path: str | Path) -> dict[str, Any]:
    """ffprobe's view of a file: {"format": {...}, "streams": [...]}; MediaError if it is no media file."""
    cmd = [
        require_tool("ffprobe", path),
        "-v",
        "error",
        "-show_format",
        "-show_streams",
        "-of",
        "json",
        str(path),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise MediaError(path, "ffprobe took longer than 60 s") from None
    if proc.returncode != 0:
        raise MediaError(
            path, f"not a media file that ffmpeg can read ({_first_lines(proc.stderr, path=path)})"
        )
    try:
        info = json.loads(proc.stdout or "{}")
    except json.JSONDecodeError:
        raise MediaError(path, "ffprobe returned unreadable output") from None
    info.setdefault("streams", [])
    info.setdefault("format", {})
    return info


def streams(info: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The audio or video streams of a probe result (cover art in audio files is not video)."""
    out = []
    for s in info.get("streams", []):
        if s.get("codec_type") != kind:
            continue
        if kind == "video" and s.get("disposition", {}).get("attached_pic"):
            continue
        out.append(s)
    return out


def duration(info: dict[str, Any]) -> float:
    """Duration in seconds from a probe result (format first, then the longest stream), 0 if unknown."""
    values = [info.get("format", {}).get("duration")]
    values += [s.get("duration") for s in info.get("streams", [])]
    parsed = []
    for v in values:
        try:
            parsed.append(float(v))
        except (TypeError, ValueError):
            continue
    return max(parsed, default=0.0)


def _clean(line: str, path: str | Path = "") -> str:
    """An ffmpeg log line without its "[demuxer @ 0x...]" prefix or a repeat of the file name."""
    line = re.sub(r"^\[[^\]]*@ 0x[0-9a-f]+\]\s*", "", line.strip())
    if path and line.startswith(f"{path}: "):
        line = line[len(f"{path}: ") :]
    return line.rstrip(".")


def _first_lines(text: str, n: int = 2, path: str | Path = "") -> str:
    lines = [_clean(ln, path) for ln in (text or "").strip().splitlines() if ln.strip()]
    return "; ".join(lines[:n]) or "no details"


# --- kind detection ------------------------------------------------------------------------------
def _sniff(head: bytes) -> str | None:
    """The kind that a file's first bytes announce, or None (also for containers of either kind)."""
    if head.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")):
        return "image"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video"
    if head.startswith((b"ID3", b"fLaC", b"FORM")) or (
        len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0
    ):
        return "audio"
    return None


def _looks_like_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def guess_kind(path: str | Path) -> str:
    """ "image", "audio" or "video", from the file's first bytes, then ffprobe, then its extension.

    Raises MediaError when the file is missing or is no media file of a known kind.
    """
    p = Path(path)
    if not p.is_file():
        raise MediaError(p, "file not found")
    with p.open("rb") as fh:
        head = fh.read(64)
    kind = _sniff(head)
    if kind is not None:
        return kind
    if _looks_like_text(head):
        raise MediaError(p, "not a media file (it contains text)")
    ext = p.suffix.lower()
    if shutil.which("ffprobe"):
        try:
            info = probe(p)
        except MediaError:
            info = None
        if info is not None:
            if streams(info, "video"):
                return "video"
            if streams(info, "audio"):
                return "audio"
    if ext in _IMAGE_EXT:
        return "image"
    if ext in _AUDIO_EXT:
        return "audio"
    if ext in _VIDEO_EXT:
        return "video"
    mime = mimetypes.guess_type(p.name)[0] or ""
    major = mime.split("/")[0]
    if major in KINDS:
        return major
    raise MediaError(p, "not a media file (unknown type)")


# --- validation ----------------------------------------------------------------------------------
def validate(path: str | Path, kind: str, max_bytes: int = DEFAULT_MAX_BYTES) -> Attachment:
    """Check that `path` is a readable, decodable file of `kind` no larger than `max_bytes`."""
    if kind not in KINDS:
        raise ValueError(f"unknown media kind {kind!r} (known: {', '.join(KINDS)})")
    p = Path(path).expanduser()
    if not p.exists():
        raise MediaError(p, "file not found")
    if not p.is_file():
        raise MediaError(p, "not a regular file")
    size = p.stat().st_size
    if size == 0:
        raise MediaError(p, "empty file")
    if size > max_bytes:
        raise MediaError(p, f"file too large ({_mb(size)} > limit {_mb(max_bytes)})")
    if kind == "image":
        _check_image(p)
    else:
        _check_stream(p, kind)
    return Attachment(kind=kind, path=p.resolve(), validated=True)  # type: ignore[arg-type]


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB"


def _wrong_kind(p: Path, kind: str) -> MediaError:
    """'not an image file', with what the file seems to be when that is known."""
    with p.open("rb") as fh:
        head = fh.read(64)
    seen = _sniff(head)
    if seen is None and _looks_like_text(head):
        seen = "text"
    hint = f" (it looks like {'text' if seen == 'text' else _ARTICLE[seen] + ' file'})" if seen else ""
    return MediaError(p, f"not {_ARTICLE[kind]} file{hint}")


def _check_image(p: Path) -> None:
    """Pixel limit (header), structure (verify), then a decode; JPEGs decode at 1/8 scale."""
    with open_image_checked(p) as img:
        img.verify()
    with open_image_checked(p) as img:
        if img.format == "JPEG":  # DCT scaling: the whole stream is still read, 1/64 of the memory
            img.draft(None, (max(1, img.width // 8), max(1, img.height // 8)))
        img.load()


def _check_stream(p: Path, kind: str) -> None:
    with p.open("rb") as fh:
        head = fh.read(64)
    seen = _sniff(head)
    if seen == "image" or (seen is None and _looks_like_text(head)):
        raise _wrong_kind(p, kind)
    try:
        info = probe(p)
    except MediaError as exc:
        if "not found" in exc.reason and "ffprobe" in exc.reason:
            raise
        detail = exc.reason.removeprefix("not a media file that ffmpeg can read ")
        raise MediaError(p, f"not {_ARTICLE[kind]} file, or it is corrupt {detail}") from None
    found = streams(info, kind)
    if not found:
        others = [s.get("codec_type", "?") for s in info["streams"]]
        what = f"; it has {', '.join(others)} streams" if others else ""
        raise MediaError(p, f"no {kind} stream found (not {_ARTICLE[kind]} file{what})")
    codec = found[0].get("codec_name") or "none"
    if codec in {"none", "unknown"}:
        tag = found[0].get("codec_tag_string", "?")
        raise MediaError(p, f"unknown {kind} codec (tag {tag!r}); ffmpeg cannot decode it")
    index = found[0].get("index", 0)
    decoded, problems = _decode(p, kind, index)
    if any("Decoder" in ln and "not found" in ln for ln in problems):
        raise MediaError(p, f"unknown {kind} codec {codec!r}: ffmpeg has no decoder for it")
    if problems:
        raise MediaError(p, f"corrupt or truncated {kind} ({'; '.join(problems[:2])})")
    if kind == "audio":
        declared = duration(info)
        if decoded <= 0:
            raise MediaError(p, "audio has no samples")
        if declared > 0 and decoded < 0.9 * declared - 0.1:
            raise MediaError(p, f"truncated audio: {decoded:.2f} s decode of {declared:.2f} s declared")


# ffmpeg warnings that say nothing about the file being damaged.
_BENIGN = ("Guessed Channel Layout", "Estimating duration from bitrate", "deprecated pixel format")


def _decode(p: Path, kind: str, index: int) -> tuple[float, list[str]]:
    """Decode one stream to nowhere: (seconds decoded, warning/error lines that signal damage).

    Video decodes key frames only, which is fast and still finds truncated or damaged files.
    """
    args = ["-skip_frame", "nokey"] if kind == "video" else []
    cmd = [require_tool("ffmpeg", p), "-nostdin", "-hide_banner", "-nostats", "-v", "warning", *args]
    cmd += ["-i", str(p), "-map", f"0:{index}", "-f", "null", "-progress", "pipe:1", "-"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        raise MediaError(p, f"decoding the {kind} took longer than 300 s") from None
    times = re.findall(r"^out_time_us=(\d+)", proc.stdout, flags=re.M)
    decoded = int(times[-1]) / 1e6 if times else 0.0
    lines = [_clean(ln, p) for ln in proc.stderr.splitlines() if ln.strip()]
    problems = [ln for ln in lines if not any(b in ln for b in _BENIGN)]
    if proc.returncode != 0 and not problems:
        problems = [f"ffmpeg exited with status {proc.returncode}"]
    return decoded, problems
