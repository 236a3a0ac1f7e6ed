"""`fusionrec chat`: a terminal REPL over the same Agent the UI and the evaluation use.

Commands: /image PATH, /audio PATH, /video PATH (attach to the next message; text after the path
sends at once), /why N, /like N, /dislike N, /reset, /help, /quit. `--message/-m TEXT` (repeatable)
sends messages without a prompt and exits; `--prepare` first prepares models, data and the index
when they are missing.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path
from typing import Any, TextIO

from fusionrec import logs
from fusionrec.config import Config
from fusionrec.text import one_line, printable
from fusionrec.types import Attachment, DialogueState, Turn

log = logging.getLogger(__name__)

HELP = """Type what you would like to watch. Commands:
  /image PATH [text]   attach an image (sent with the text, or with your next message)
  /audio PATH [text]   attach an audio file
  /video PATH [text]   attach a video
  /why N               explain item N of the last answer
  /like N, /dislike N  feedback on item N (changes the next search)
  /reset               start a new conversation
  /quit                leave"""


def prepare_all(cfg: Config, out: TextIO = sys.stderr) -> None:
    """Models, the prepared dataset and the Chroma index, each only when missing."""
    from fusionrec.data.prepare import dataset_dir, prepare_dataset
    from fusionrec.models.prepare import prepare_models
    from fusionrec.retrieval.ingest import ingest
    from fusionrec.retrieval.search import ingested

    print(f"preparing models ({cfg.models.profile}) ...", file=out)
    prepare_models(cfg, profile=cfg.models.profile)
    name = cfg.data.dataset
    if not (dataset_dir(cfg, name) / "items.jsonl").is_file():
        print(f"preparing dataset {name} ...", file=out)
        prepare_dataset(cfg, name, source=cfg.data.source)
    if not ingested(cfg):
        print(f"ingesting {name} into Chroma (resumable) ...", file=out)
        report = ingest(cfg, name, modalities=["text", "image"])
        print(report.summary(), file=out)


class Repl:
    """Reads lines, turns them into agent calls, prints the events."""

    def __init__(self, agent: Any, out: TextIO = sys.stdout) -> None:
        self.agent = agent
        self.out = out
        self.state = DialogueState()
        self.pending: list[Attachment] = []

    def say(self, text: str = "", end: str = "\n") -> None:
        """Print `text` with terminal escapes and control characters removed (it may echo the user's)."""
        print(printable(text), end=end, file=self.out, flush=True)

    def handle(self, line: str) -> bool:
        """Process one input line; False when the user quits."""
        line = printable(line).strip()
        if not line.startswith("/"):
            self.send(line)
            return True
        try:
            parts = shlex.split(line)
        except ValueError as exc:
            self.say(f"! could not read that command: {exc}")
            return True
        cmd, args = parts[0].lower(), parts[1:]
        if cmd in {"/quit", "/exit", "/q"}:
            return False
        if cmd == "/help":
            self.say(HELP)
        elif cmd == "/reset":
            from fusionrec.agent.dialogue import reset

            reset(self.state)
            self.pending.clear()
            self.say("(new conversation)")
        elif cmd in {"/image", "/audio", "/video"}:
            if not args:
                self.say(f"! usage: {cmd} PATH [text]")
                return True
            self.pending.append(Attachment(cmd[1:], Path(args[0]).expanduser()))  # type: ignore[arg-type]
            if len(args) > 1:
                self.send(" ".join(args[1:]))
            else:
                self.say(f"(attached {cmd[1:]} {args[0]}; it goes with your next message)")
        elif cmd in {"/why", "/like", "/dislike"}:
            n = _number(args)
            if n is None:
                self.say(f"! usage: {cmd} N (a number from the last answer)")
            elif cmd == "/why":
                self.render(self.agent.why(self.state, n))
            else:
                from fusionrec.agent import dialogue

                fn = dialogue.like if cmd == "/like" else dialogue.dislike
                item_id = fn(self.state, n)
                if item_id is None:
                    self.say(f"! there is no item {n} in the last answer")
                else:
                    title = self.agent.retriever.item(item_id).title
                    self.say(f"(noted: you {cmd[1:]} {title}; the next search takes it into account)")
        else:
            self.say(f"! unknown command {cmd}; /help lists them")
        return True

    def send(self, text: str) -> None:
        turn = Turn("user", text, list(self.pending))
        self.pending.clear()
        self.render(self.agent.respond(self.state, turn))

    def render(self, events: Any) -> None:
        streaming = ranked = False
        for ev in events:
            p = ev.payload
            if ev.kind == "retrieved":
                understood = f" (understood: {'; '.join(p['understood'])})" if p.get("understood") else ""
                self.say(f"[searched: {len(p['candidates'])} candidates{understood}]")
            elif ev.kind == "ranked":
                ranking, ranked = p["ranking"], True
                self.say(f"Ranked by {ranking.method}:")
                for i, cand in enumerate(p["shown"], start=1):
                    it = cand.item
                    year = f" ({it.year})" if it.year else ""
                    genres = f"  [{', '.join(it.genres)}]" if it.genres else ""
                    self.say(f"  {i}. {it.title}{year}{genres}")
                if ranking.invalid:
                    self.say(f"  ({len(ranking.invalid)} invalid answers from the model were ignored)")
            elif ev.kind == "explanation_token":
                if not streaming:
                    self.say(f"  why #{p['rank']}: ", end="")
                    streaming = True
                self.say(p["text"], end="")
            elif ev.kind == "explanation":
                if streaming:
                    self.say()
                    streaming = False
                if p.get("fallback"):
                    problems = "; ".join(p.get("problems", []))
                    self.say(f"  (fact check: {problems}) -> from the facts: {p['explanation'].text}")
            elif ev.kind == "message":
                if not ranked:  # the ranked list already showed the answer
                    self.say(p["text"])
            elif ev.kind == "error":
                if streaming:
                    self.say()
                    streaming = False
                self.say(f"! {p['message']}")


def _number(args: list[str]) -> int | None:
    try:
        return int(args[0])
    except (IndexError, ValueError):
        return None


def run_repl(cfg: Config, args: argparse.Namespace, out: TextIO = sys.stdout, agent: Any = None) -> int:
    """`fusionrec chat`: interactive, or non-interactive with --message."""
    if getattr(args, "prepare", False):
        prepare_all(cfg)
    if agent is None:
        from fusionrec.agent.agent import Agent

        print("loading models ...", file=sys.stderr, flush=True)
        try:
            agent = Agent(cfg)
            agent.retriever  # noqa: B018 - fail early when the index is missing
        except Exception as exc:  # a missing index, model or adapter; an internal error goes up to the CLI
            if not logs.is_user_error(exc):
                raise
            logs.log_traceback(log, "loading the agent failed")
            print(f"error: {one_line(str(exc))}; `fusionrec chat --prepare` prepares models, data and the index",
                  file=sys.stderr)  # fmt: skip
            return 2
    repl = Repl(agent, out)
    messages = list(getattr(args, "message", []) or [])
    if messages:
        for msg in messages:
            repl.say(f"you> {msg}")
            if not repl.handle(msg):
                break
        return 0
    repl.say(HELP)
    while True:
        try:
            line = input("you> ")
        except EOFError:
            repl.say()
            return 0
        if not repl.handle(line):
            return 0
