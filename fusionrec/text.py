"""Text that is safe to echo on a terminal or in the chat: no escape sequences, no control characters."""

from __future__ import annotations

import re
import unicodedata

# ESC sequences: CSI (ESC [ ... final), OSC / DCS / SOS / PM / APC strings (up to BEL or ESC \, or the
# end of the text), and the short ESC forms (intermediate bytes, then one final byte); a lone ESC too.
_ESCAPE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\|$)"
    r"|\x1b[ -/]*[0-~]"
    r"|\x1b"
)
_BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")  # can reorder what a line shows


def printable(text: str, newlines: bool = True) -> str:
    """`text` without terminal escape sequences, control characters (C0, DEL, C1) or bidi overrides.

    Tabs stay; newlines stay when `newlines`, else each becomes a space; carriage returns go.
    """
    text = _ESCAPE.sub("", text).replace("\r\n", "\n")
    keep = {"\t", "\n"} if newlines else {"\t"}
    out = []
    for ch in text:
        if ch in keep:
            out.append(ch)
        elif ch == "\n":
            out.append(" ")
        elif ch not in _BIDI and unicodedata.category(ch) != "Cc":
            out.append(ch)
    return "".join(out)


def one_line(text: str, limit: int = 500) -> str:
    """`text` as one printable line: whitespace runs collapsed, cut to `limit` characters with '...'."""
    line = " ".join(printable(text, newlines=False).split())
    return line if len(line) <= limit else line[: limit - 3].rstrip() + "..."
