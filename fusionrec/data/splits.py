"""Users' interactions in time order: the shared ground of leave-one-out training and evaluation."""

from __future__ import annotations

from collections.abc import Iterable

from fusionrec.types import Interaction


def id_key(item_id: str) -> tuple[int, int | str]:
    """Sort key for ids: numeric ids in numeric order, then the others as text."""
    return (0, int(item_id)) if item_id.isdigit() else (1, item_id)


def user_sequences(interactions: Iterable[Interaction]) -> dict[str, list[str]]:
    """Each user's items in time order (ties by item id; a repeated item keeps its first time)."""
    by_user: dict[str, list[Interaction]] = {}
    for x in interactions:
        by_user.setdefault(str(x.user), []).append(x)
    out = {}
    for user, xs in sorted(by_user.items(), key=lambda kv: id_key(kv[0])):
        xs.sort(key=lambda x: (x.timestamp, id_key(str(x.item))))
        out[user] = list(dict.fromkeys(str(x.item) for x in xs))
    return out
