"""Upload checks that run before any model sees a file: type by extension, size, then a real decode.

`check_uploads(paths, max_bytes)` returns the validated attachments and one clear sentence per
refused file ("notes.pdf: unsupported file type .pdf; attach an image (...), audio (...) or video
(...)"). Gradio stores an upload as <tmp>/<hash>/<original name>, so the file name shown is the
name the user picked. Only light imports here; the decode check is `fusionrec.media.validate`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from fusionrec.types import Attachment

EXTENSIONS: dict[str, tuple[str, ...]] = {
    "image": (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp"),
    "audio": (".wav", ".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac"),
    "video": (".mp4", ".webm", ".mkv", ".mov", ".avi", ".m4v", ".mpg", ".mpeg"),
}
EITHER = (".webm", ".mkv", ".ogg")  # containers that hold video or sound only: the streams decide
MAX_FILES = 4  # attachments per message


class UploadError(ValueError):
    """An upload that is refused; the message names the file and says why."""


@dataclass
class UploadCheck:
    attachments: list[Attachment] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def accepted_types() -> str:
    """'image (.jpg, .png, ...), audio (...) or video (...)' for messages and the input placeholder."""
    parts = [f"{kind} ({', '.join(exts)})" for kind, exts in EXTENSIONS.items()]
    return ", ".join(parts[:-1]) + " or " + parts[-1]


def kind_of(path: str | Path) -> str:
    """The attachment kind that a file's extension stands for; UploadError for any other extension."""
    name = Path(path).name
    ext = Path(path).suffix.lower()
    for kind, exts in EXTENSIONS.items():
        if ext in exts:
            return kind
    what = f"file type {ext}" if ext else "file without an extension"
    raise UploadError(f"{name}: unsupported {what}; attach an {accepted_types()}")


def _size_text(n: float) -> str:
    return f"{n / 2**20:.1f} MB"


def check_upload(path: str | Path, max_bytes: int, kind: str | None = None) -> Attachment:
    """Extension, size, then a full decode check (`fusionrec.media.validate`) of one upload."""
    from fusionrec.media import MediaError, guess_kind, validate

    p = Path(path)
    kind = kind or kind_of(p)
    if not p.is_file():
        raise UploadError(f"{p.name}: the upload did not arrive (no such file); please attach it again")
    size = p.stat().st_size
    if size > max_bytes:
        raise UploadError(
            f"{p.name}: file too large ({_size_text(size)}; the limit is {_size_text(max_bytes)})"
        )
    try:
        if p.suffix.lower() in EITHER and kind != "audio":
            kind = guess_kind(p)  # a sound-only .webm/.ogg is audio
        return validate(p, kind, max_bytes=max_bytes)
    except MediaError as exc:
        raise UploadError(f"{p.name}: {exc.reason}") from None


def check_uploads(
    paths: Iterable[str | Path], max_bytes: int, microphone: str | Path | None = None
) -> UploadCheck:
    """Check every uploaded file (and the microphone recording, always audio); collect all problems."""
    out = UploadCheck()
    todo: list[tuple[Path, str | None]] = [(Path(p), None) for p in paths if p]
    if microphone:
        todo.append((Path(microphone), "audio"))
    if len(todo) > MAX_FILES:
        out.errors.append(f"{len(todo)} files attached; at most {MAX_FILES} per message, please send fewer")
        return out
    for path, kind in todo:
        try:
            out.attachments.append(check_upload(path, max_bytes, kind))
        except UploadError as exc:
            out.errors.append(str(exc))
    return out
