"""The chat shows the user's text without terminal escapes or control characters."""

from __future__ import annotations

from fusionrec.config import load_config
from fusionrec.ui.session import Session, run_turn


def test_user_text_is_stripped_before_it_reaches_the_chat():
    session = Session()
    turn = run_turn(None, load_config(), session, "\x1b[2Ja comedy\x1b]0;pwned\x07 please\x00\u202e")
    assert next(turn) == "chat"  # the user's message is shown first, before the agent is asked
    assert session.messages == [{"role": "user", "content": "a comedy please"}]
