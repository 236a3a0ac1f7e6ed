"""A spoken request's constraints count like typed ones (real offline Whisper base and SmolLM2)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from fusionrec.types import Attachment, DialogueState, Turn

pytestmark = pytest.mark.real


def test_a_voice_note_sets_genre_decade_and_refusal(real_agent, tmp_path):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed (apt-get install espeak-ng)")
    wav = tmp_path / "ask.wav"
    said = "a comedy from the nineties, no horror please"
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(wav), said], check=True, capture_output=True)
    state = DialogueState()
    events = list(real_agent.respond(state, Turn("user", "", [Attachment("audio", wav)])))
    retrieved = next(e.payload for e in events if e.kind == "retrieved")
    assert "Comedy" in state.include_genres and "Horror" in state.exclude_genres
    assert (state.year_min, state.year_max) == (1990, 1999)
    assert any("Horror" in note for note in retrieved["understood"])
    shown = next(e.payload["shown"] for e in events if e.kind == "ranked")
    assert shown and all(
        "Horror" not in c.item.genres and 1990 <= (c.item.year or 0) <= 1999 for c in shown
    )
