"""Per-browser session: the DialogueState, the chat as plain data, the cards of the current answer.

A `Session` lives in a `gr.State`, so every browser tab gets its own deep copy and two users never
share items. `run_turn` checks the uploads, shows what was heard/seen, runs one `Agent.respond`
and folds its events into the session, yielding after every visible change (the app turns each
yield into a screen update). Feedback and the filter panel change the same DialogueState that the
agent reads on the next turn. No gradio import here except inside `chat_value`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from fusionrec import logs
from fusionrec.agent import dialogue
from fusionrec.agent.failures import failure_text
from fusionrec.config import Config
from fusionrec.text import printable
from fusionrec.types import Attachment, DialogueState, Turn
from fusionrec.ui.attachments import describe, summary
from fusionrec.ui.cards import Card
from fusionrec.ui.uploads import check_uploads

log = logging.getLogger(__name__)

SEARCHING = "Searching the catalog…"


@dataclass
class Session:
    state: DialogueState = field(default_factory=DialogueState)
    messages: list[dict[str, Any]] = field(default_factory=list)  # {"role", "content"[, "gallery"]}
    cards: list[Card] = field(default_factory=list)  # the current answer
    method: str = ""  # how the current answer was ranked
    note: str = ""  # the line above the cards
    status: str = ""  # timings of the last turn
    titles: dict[str, str] = field(default_factory=dict)  # item id -> title, for the constraints panel


def reset(session: Session) -> None:
    """New chat: forget the dialogue, the chat and the cards."""
    fresh = Session()
    for name in vars(fresh):
        setattr(session, name, getattr(fresh, name))


# --- the chat, as gradio wants it ------------------------------------------------------------------
def chat_value(session: Session) -> list[dict[str, Any]]:
    """The Chatbot value: plain messages, with sampled video frames as a gallery."""
    import gradio as gr

    out = []
    for msg in session.messages:
        if "gallery" in msg:
            frames = [str(p) for p in msg["gallery"]]
            content: Any = gr.Gallery(
                value=frames, columns=6, height=140, object_fit="contain", show_label=False
            )
            out.append({"role": msg["role"], "content": content})
        else:
            out.append({"role": msg["role"], "content": msg["content"]})
    return out


def _say(session: Session, text: str) -> dict[str, Any]:
    msg = {"role": "assistant", "content": text}
    session.messages.append(msg)
    return msg


# --- side panel ------------------------------------------------------------------------------------
def set_filters(
    session: Session,
    genres: Sequence[str],
    exclude: Sequence[str],
    year_from: float | None,
    year_to: float | None,
    bounds: tuple[int, int],
) -> None:
    """The filter panel's values into the DialogueState (a year at the panel's edge means no bound)."""
    st = session.state
    st.include_genres = set(genres)
    st.exclude_genres = set(exclude) - st.include_genres
    lo, hi = bounds
    y0 = int(year_from) if year_from is not None else lo
    y1 = int(year_to) if year_to is not None else hi
    y0, y1 = sorted((y0, y1))
    st.year_min = y0 if y0 > lo else None
    st.year_max = y1 if y1 < hi else None


def filter_values(session: Session, bounds: tuple[int, int]) -> tuple[list[str], list[str], int, int]:
    """(genres, excluded genres, year from, year to) for the panel, from the DialogueState."""
    st = session.state
    lo, hi = bounds
    y0 = lo if st.year_min is None else max(lo, min(hi, st.year_min))
    y1 = hi if st.year_max is None else max(lo, min(hi, st.year_max))
    return sorted(st.include_genres), sorted(st.exclude_genres), y0, y1


def constraints_markdown(session: Session) -> str:
    """The active constraints: genres, years, feedback, what will not be shown again."""
    st = session.state

    def names(ids: Sequence[str]) -> str:
        return ", ".join(session.titles.get(i, f"item {i}") for i in ids)

    years = "any"
    if st.year_min is not None or st.year_max is not None:
        years = f"{st.year_min or '…'}–{st.year_max or '…'}"
    lines = [
        f"- **Genres:** {', '.join(sorted(st.include_genres)) or 'any'}",
        f"- **Not:** {', '.join(sorted(st.exclude_genres)) or '—'}",
        f"- **Years:** {years}",
    ]
    if st.liked:
        lines.append(f"- **Liked:** {names(st.liked)}")
    if st.disliked:
        lines.append(f"- **Not for me:** {names(st.disliked)}")
    if st.shown:
        lines.append(f"- **Already shown:** {len(st.shown)} items (not suggested again)")
    return "\n".join(lines)


def feedback(session: Session, item_id: str, action: str) -> str:
    """Like/dislike (clicking again undoes) an item of the current answer; returns what was noted."""
    if action not in {"like", "dislike"}:
        raise ValueError(f"unknown feedback {action!r} (known: like, dislike)")
    st = session.state
    card = next((c for c in session.cards if c.item.id == item_id), None)
    if card is None or item_id not in st.last_ranking:
        return "That item is no longer in the current answer."
    title = card.item.title
    if card.feedback == action:  # undo
        for ids in (st.liked, st.disliked):
            if item_id in ids:
                ids.remove(item_id)
        card.feedback = ""
        return f"Feedback on {title} removed."
    position = st.last_ranking.index(item_id) + 1
    (dialogue.like if action == "like" else dialogue.dislike)(st, position)
    card.feedback = action
    if action == "like":
        return f"Noted: you like {title}. The next search takes it into account."
    return f"Noted: not {title}. It will not be suggested again."


# --- one turn --------------------------------------------------------------------------------------
def user_messages(session: Session, text: str, files: Sequence[str], mic: str | None) -> None:
    """The user's turn in the chat: the text, then each file (the chat shows images, audio, video)."""
    if text:
        session.messages.append({"role": "user", "content": text})
    for path in [*files, *([mic] if mic else [])]:
        session.messages.append({"role": "user", "content": {"path": str(path)}})


def run_turn(
    agent: Any,
    cfg: Config,
    session: Session,
    text: str,
    files: Sequence[str] = (),
    mic: str | None = None,
    describe_fn: Callable[[Config, Attachment], Any] = describe,
) -> Iterator[str]:
    """Answer one message, updating `session`; yields a word for each visible change.

    Yields "chat" (only the chat changed), "cards" (cards and chat) or "state" (the constraints
    changed too). Bad uploads get one chat message naming each file and the reason; nothing else
    changes and the session goes on.
    """
    text = printable(text or "").strip()  # no terminal escapes or control characters reach the chat
    files = [str(f) for f in files if f]
    if not text and not files and not mic:
        return
    user_messages(session, text, files, mic)
    yield "chat"
    check = check_uploads(files, int(cfg.ui.max_upload_mb * 2**20), mic)
    if check.errors:
        problems = "\n".join(f"- {e}" for e in check.errors)
        _say(
            session,
            f"⚠ I could not use your upload:\n{problems}\n\nPlease attach another file and send again.",
        )
        yield "chat"
        return
    for att in check.attachments:
        if att.kind == "image" and text:
            continue  # a poster with a request speaks for itself; labels help when it comes alone
        view = describe_fn(cfg, att)
        line = summary(view)
        if line:
            _say(session, line)
        if view.frames:
            session.messages.append({"role": "assistant", "content": "", "gallery": list(view.frames)})
        if line or view.frames:
            yield "chat"
    reply = _say(session, SEARCHING)
    yield "chat"
    yield from _agent_events(agent, cfg, session, text, check.attachments, reply)


def _agent_events(
    agent: Any, cfg: Config, session: Session, text: str, attachments: list[Attachment], reply: dict[str, Any]
) -> Iterator[str]:
    retrieved: dict[str, tuple[int, Any]] = {}
    new_cards: list[Card] | None = None
    t0 = time.perf_counter()
    try:
        for ev in agent.respond(session.state, Turn("user", text, attachments)):
            p = ev.payload
            if ev.kind == "retrieved":
                cands = p.get("candidates", [])
                retrieved = {c.item.id: (i, c) for i, c in enumerate(cands, start=1)}
                understood = f" (understood: {'; '.join(p['understood'])})" if p.get("understood") else ""
                reply["content"] = f"Found {len(cands)} candidates{understood}; ranking them…"
                yield "chat"
            elif ev.kind == "ranked":
                new_cards = _cards(p["ranking"], p["shown"], retrieved, agent)
                session.cards = new_cards
                session.method = p["ranking"].method
                session.note = (
                    f"Ranked by the LLM ({session.method}) from {len(p['ranking'].candidates)} candidates"
                )
                session.titles.update({c.item.id: c.item.title for c in new_cards})
                # films the person named (or whose poster they sent) are liked without a card
                st = session.state
                named = [i for i in (*st.liked, *st.disliked) if i not in session.titles]
                session.titles.update({i: agent.retriever.item(i).title for i in named})
                reply["content"] = "Explaining the top picks…"
                yield "state"
            elif ev.kind == "explanation_token":
                card = _card_at(session.cards, p.get("item_id"))
                if card is not None:
                    card.streaming = True
                    card.explanation += p.get("text", "")
                    yield "cards"
            elif ev.kind == "explanation":
                card = _card_at(session.cards, p.get("item_id"))
                if card is not None:
                    expl = p["explanation"]
                    card.explanation = expl.text
                    card.fallback = bool(p.get("fallback"))
                    card.problems = list(p.get("problems") or expl.problems)
                    card.streaming = False
                    card.explained = True
                    yield "cards"
            elif ev.kind == "message":
                reply["content"] = p.get("text", "")
                yield "state"
            elif ev.kind == "error":
                reply["content"] = "⚠ " + p.get("message", "something went wrong")
                yield "state"
            elif ev.kind == "done":
                secs = p.get("seconds", time.perf_counter() - t0)
                timings = p.get("timings") or {}
                parts = [f"{k.removesuffix('_s')} {v:.2f} s" for k, v in timings.items()]
                session.status = f"Last turn: {secs:.2f} s" + (f" ({', '.join(parts)})" if parts else "")
    except Exception as exc:  # the agent reports its own failures; this is the last resort
        logs.log_traceback(log, "turn failed")
        reply["content"] = f"⚠ Sorry, I could not answer that: {failure_text(exc, cfg)}"
    finally:
        for card in session.cards:
            card.streaming = False
    if reply["content"] == SEARCHING:
        reply["content"] = "⚠ No answer came back; please try again."
    yield "state"


def _card_at(cards: Sequence[Card], item_id: str | None) -> Card | None:
    return next((c for c in cards if c.item.id == item_id), None)


def _cards(
    ranking: Any, shown: Sequence[Any], retrieved: dict[str, tuple[int, Any]], agent: Any
) -> list[Card]:
    explain = int(getattr(getattr(getattr(agent, "cfg", None), "agent", None), "explain_top_k", 0) or 0)
    cards = []
    for i, cand in enumerate(shown):
        rank_in, _ = retrieved.get(cand.item.id, (None, None))
        score = ranking.scores[i] if i < len(ranking.scores) else None
        cards.append(
            Card(
                rank=i + 1,
                item=cand.item,
                llm_score=None if ranking.method == "retrieval" else score,
                retrieval_score=float(cand.score),
                retrieval_rank=rank_in,
                modality_scores=dict(cand.modality_scores),
                streaming=i < explain,
            )
        )
    return cards
