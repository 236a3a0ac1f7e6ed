"""A small per-file memo: a chat turn encodes an upload once, though retrieval (the query vectors)
and the prompt (soft tokens, transcript, labels) both ask for its features.

Keyed by the resolved path, its size and modification time, and the call's arguments, so an
edited or replaced file is encoded again; holds the last `size` results only.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any


class FileMemo:
    """Results of `compute()` per (file identity, args); least recently used ones are dropped."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._items: OrderedDict[tuple, Any] = OrderedDict()

    def key(self, path: str | Path, args: Hashable = ()) -> tuple | None:
        """The memo key of a file, None when it cannot be stat'ed (the caller then raises its own error)."""
        try:
            p = Path(path).expanduser().resolve()
            st = p.stat()
        except OSError:
            return None
        return (str(p), st.st_size, st.st_mtime_ns, args)

    def get(self, key: tuple | None) -> Any:
        if key is None or key not in self._items:
            return None
        self._items.move_to_end(key)
        return self._items[key]

    def put(self, key: tuple | None, value: Any) -> None:
        if key is None or self.size <= 0:
            return
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def get_or(self, path: str | Path, args: Hashable, compute: Callable[[], Any]) -> Any:
        key = self.key(path, args)
        found = self.get(key)
        if found is None:
            found = compute()
            self.put(key, found)
        return found
