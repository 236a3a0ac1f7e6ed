"""`fusionrec serve`: the gradio app. Layout and wiring only; cards in ui/cards.py, per-session
state and the turn loop in ui/session.py, upload checks in ui/uploads.py. Only `fusionrec serve`
imports this module, so gradio is imported at the top.

One Agent per process (models load once, before the server starts); every browser tab has its own
`Session` in a `gr.State`. Posters are served through gradio's file route, each poster file
registered as it is first shown (nothing else on disk becomes reachable).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import gradio as gr

from fusionrec import logs
from fusionrec.config import Config
from fusionrec.text import one_line
from fusionrec.ui.cards import CSS, JS_ON_LOAD, render_cards
from fusionrec.ui.config import parse_auth
from fusionrec.ui.session import (
    Session,
    chat_value,
    constraints_markdown,
    feedback,
    filter_values,
    reset,
    run_turn,
    set_filters,
)
from fusionrec.ui.uploads import MAX_FILES, accepted_types

TITLE = "FusionRec"
INTRO = (
    "### FusionRec\nTell me what you'd like to watch, attach a poster, a song or a clip, "
    "or record your voice. Rate the cards (✔ Like / ✕ Not this); open **why this?** for the evidence."
)
_served: set[str] = set()
log = logging.getLogger(__name__)


def poster_url(path: str) -> str | None:
    """A URL for a poster file, registering that one file with gradio's file route."""
    p = Path(path)
    if not p.is_file():
        return None
    key = str(p.resolve())
    if key not in _served:
        gr.set_static_paths([key])
        _served.add(key)
    return f"gradio_api/file={quote(key)}"


def catalog_info(agent: Any) -> tuple[list[str], tuple[int, int]]:
    """(the catalog's genres, (first year, last year)) for the filter panel."""
    genres = list(agent.catalog()[1])
    years = [int(m.get("year", -1)) for m in agent.retriever.metadatas().values()]
    known = [y for y in years if y > 0]
    return genres, (min(known), max(known)) if known else (1900, 2030)


def build_app(cfg: Config, agent: Any) -> Any:
    """The gr.Blocks app around one Agent."""
    genres, bounds = catalog_info(agent)
    lo, hi = bounds

    def cards_html(s: Session) -> str:
        return render_cards(s.cards, s.method, poster_url, s.note)

    def view(s: Session, what: str = "state") -> list[Any]:
        """Outputs for [chat, cards, constraints, genres, exclude, year_from, year_to, status, session]."""
        skip = gr.skip()
        chat = chat_value(s)
        if what == "chat":
            return [chat, skip, skip, skip, skip, skip, skip, skip, s]
        if what == "cards":
            return [chat, cards_html(s), skip, skip, skip, skip, skip, skip, s]
        g_in, g_out, y0, y1 = filter_values(s, bounds)
        return [chat, cards_html(s), constraints_markdown(s), g_in, g_out, y0, y1, s.status, s]

    def respond(msg: dict | None, mic: str | None, s: Session) -> Iterator[list[Any]]:
        msg = msg or {}
        lock = [gr.MultimodalTextbox(value=None, interactive=False), None]
        what = ""
        for what in run_turn(agent, cfg, s, msg.get("text", ""), msg.get("files", []), mic):
            yield [*view(s, what), *lock]
        if not what:  # nothing to send (an empty message)
            yield [*view(s, "chat"), gr.skip(), gr.skip()]

    def unlock() -> Any:
        return gr.MultimodalTextbox(interactive=True)

    def on_feedback(s: Session, evt: gr.EventData) -> list[Any]:
        data = evt._data if isinstance(getattr(evt, "_data", None), dict) else {}
        try:
            gr.Info(feedback(s, str(data.get("item", "")), str(data.get("action", ""))))
        except ValueError as exc:
            gr.Warning(str(exc))
        return [cards_html(s), constraints_markdown(s), s]

    def on_filters(g_in: list[str], g_out: list[str], y0: float, y1: float, s: Session) -> list[Any]:
        set_filters(s, g_in or [], g_out or [], y0, y1, bounds)
        return [constraints_markdown(s), s]

    def on_clear_filters(s: Session) -> list[Any]:
        set_filters(s, [], [], lo, hi, bounds)
        return view(s)

    def on_new_chat(s: Session) -> list[Any]:
        reset(s)
        return [*view(s), gr.MultimodalTextbox(value=None, interactive=True), None]

    with gr.Blocks(title=TITLE, analytics_enabled=False, fill_width=True) as demo:
        session = gr.State(Session())
        with gr.Row(equal_height=False):
            with gr.Column(scale=5, min_width=360):
                gr.Markdown(INTRO)
                chat = gr.Chatbot(
                    elem_id="fr-chat",
                    height=460,
                    show_label=False,
                    feedback_options=None,
                    placeholder="Your conversation appears here.",
                    group_consecutive_messages=False,
                )
                box = gr.MultimodalTextbox(
                    elem_id="fr-input",
                    file_count="multiple",
                    show_label=False,
                    placeholder=f"A request, and up to {MAX_FILES} files: {accepted_types()}",
                    sources=["upload"],
                )
                with gr.Row():
                    mic = gr.Audio(
                        sources=["microphone"], type="filepath", label="Speak (sent when you stop)",
                        elem_id="fr-mic", scale=3,
                    )  # fmt: skip
                    new = gr.Button("New chat", elem_id="fr-new", scale=1)
            with gr.Column(scale=5, min_width=360):
                gr.Markdown("### Recommendations")
                cards = gr.HTML(
                    render_cards([]),
                    elem_id="fr-cards",
                    css_template=CSS,
                    js_on_load=JS_ON_LOAD,
                    max_height=820,
                )
            with gr.Column(scale=3, min_width=240):
                gr.Markdown("### Filters")
                g_in = gr.CheckboxGroup(
                    genres, label="Genres (all must match)", info="Applied from your next message on.",
                    elem_id="fr-genres",
                )  # fmt: skip
                g_out = gr.Dropdown(genres, multiselect=True, label="Not these genres", elem_id="fr-exclude")
                y0 = gr.Slider(lo, hi, value=lo, step=1, label="From year", elem_id="fr-year-from")
                y1 = gr.Slider(lo, hi, value=hi, step=1, label="To year", elem_id="fr-year-to")
                clear = gr.Button("Clear filters", size="sm")
                gr.Markdown("### Active constraints")
                cons = gr.Markdown(constraints_markdown(Session()), elem_id="fr-constraints")
                status = gr.Markdown("", elem_id="fr-status")

        outs = [chat, cards, cons, g_in, g_out, y0, y1, status, session]
        for trigger in (box.submit, mic.stop_recording):
            trigger(
                respond, [box, mic, session], [*outs, box, mic], concurrency_id="turn", show_progress="hidden"
            ).then(unlock, None, box, queue=False)
        cards.feedback(on_feedback, session, [cards, cons, session], concurrency_limit=None)  # type: ignore[attr-defined]
        for comp in (g_in, g_out):
            comp.input(on_filters, [g_in, g_out, y0, y1, session], [cons, session], concurrency_limit=None)
        for comp in (y0, y1):
            comp.release(on_filters, [g_in, g_out, y0, y1, session], [cons, session], concurrency_limit=None)
        clear.click(on_clear_filters, session, outs, concurrency_limit=None)
        new.click(on_new_chat, session, [*outs, box, mic], concurrency_limit=None)
    return demo


# --- serving ----------------------------------------------------------------------------------------
def free_port(host: str) -> int:
    """A port that is free on `host` right now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def serving_threads(cfg: Config, cores: int | None = None) -> int:
    """Torch threads for serving: `agent.torch_threads`, or else the cores shared among the turns
    served at once (two turns with two threads each on two cores decode 2-3x slower than with one
    thread each: benchmarks/threads.py, docs/results/latency.md)."""
    if cfg.agent.torch_threads > 0:
        return cfg.agent.torch_threads
    return max(1, (cores or os.cpu_count() or 1) // cfg.ui.concurrency)


def load_agent(cfg: Config) -> Any:
    """The process's one Agent (torch threads set for serving), with its index opened and catalog
    read (fails early and clearly)."""
    import torch

    from fusionrec.agent.agent import Agent

    torch.set_num_threads(serving_threads(cfg))
    agent = Agent(cfg)
    agent.catalog()  # opens the store: no ingested catalog -> a clear error now, not at the first turn
    return agent


def launch(cfg: Config, agent: Any, host: str, port: int, auth: tuple[str, str] | None) -> Any:
    """Build the app and start serving it in the background; returns the running gr.Blocks."""
    demo = build_app(cfg, agent)
    demo.queue(default_concurrency_limit=cfg.ui.concurrency)
    limit_mb = cfg.ui.max_upload_mb
    demo.launch(
        server_name=host,
        server_port=port,
        auth=auth,
        max_file_size=f"{int(2 * limit_mb) + 1}mb",  # hard stop; the chat explains the real limit
        allowed_paths=[str(cfg.home / "cache" / "frames")],  # sampled video frames shown in the chat
        prevent_thread_lock=True,
        show_error=False,
        quiet=True,
        ssr_mode=False,
        mcp_server=False,
        css=".gradio-container {max-width: 100% !important}",
    )
    return demo


def serve(cfg: Config, args: argparse.Namespace) -> int:
    """Load the models once, build the app, serve until interrupted."""
    host = args.host or cfg.ui.host
    port = cfg.ui.port if args.port is None else int(args.port)
    try:
        auth = parse_auth(cfg.ui.auth) if args.auth is None else parse_auth(args.auth, "--auth")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if port == 0:
        port = free_port(host)
    print(f"loading models ({cfg.models.profile}) and the catalog index ...", file=sys.stderr, flush=True)
    try:
        agent = load_agent(cfg)
    except Exception as exc:  # no index, missing models: say what to run; an internal error goes up
        if not logs.is_user_error(exc):
            raise
        logs.log_traceback(log, "loading the agent failed")
        print(f"error: {one_line(str(exc))}; `fusionrec chat --prepare` (or `make prepare`) prepares "
              "models, data and the index", file=sys.stderr)  # fmt: skip
        return 2
    demo = launch(cfg, agent, host, port, auth)
    print(f"FusionRec is serving at http://{host}:{port} (Ctrl+C stops it)", flush=True)
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        demo.close()
    return 0
