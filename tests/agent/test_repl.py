"""`fusionrec chat`: the REPL over the tiny agent, driven with --message."""

from __future__ import annotations

import argparse
import io

from fusionrec.agent.repl import run_repl


def chat(agent, *messages: str) -> str:
    out = io.StringIO()
    args = argparse.Namespace(message=list(messages), prepare=False)
    assert run_repl(agent.cfg, args, out=out, agent=agent) == 0
    return out.getvalue()


def test_messages_and_commands(tiny_agent, tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    text = chat(
        tiny_agent,
        "a comedy",
        "/why 2",
        "/like 1",
        "/dislike 9",
        f"/image {bad} like this",
        "",
        "/frobnicate",
        "/reset",
        "/quit",
        "never sent",
    )
    assert "you> a comedy" in text and "Ranked by verbalizer:" in text
    assert "  1. " in text and "  5. " in text and "why #1: " in text and "why #2: " in text
    assert "(noted: you like " in text
    assert "! there is no item 9 in the last answer" in text
    assert f"! I could not use the image you attached: {bad}" in text
    assert "! Your message is empty" in text
    assert "! unknown command /frobnicate" in text
    assert "(new conversation)" in text
    assert "never sent" not in text.split("you> /quit")[1]


def test_cli_registers_chat():
    from fusionrec.cli import build_parser

    args = build_parser().parse_args(["chat", "-m", "hi", "--message", "there", "--prepare"])
    assert args.message == ["hi", "there"] and args.prepare
