"""A chat turn sends each upload through its encoder once: the prompt reuses the query's features."""

from __future__ import annotations

import subprocess

from fusionrec.types import Attachment, DialogueState, Turn


def counted(monkeypatch, obj, name: str) -> list[int]:
    """Count calls of obj.name (the real method still runs)."""
    calls: list[int] = []
    real = getattr(obj, name)

    def wrapper(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(obj, name, wrapper)
    return calls


def turn(agent, text, attachments):
    events = list(agent.respond(DialogueState(), Turn("user", text, attachments)))
    assert events[-1].payload["ok"], [e.payload for e in events if e.kind == "error"]
    return next(e.payload for e in events if e.kind == "ranked")


def test_an_image_goes_through_the_image_network_once(tiny_agent, ml100k, monkeypatch):
    monkeypatch.setattr(tiny_agent.cfg.agent, "attachment_tokens", "always")  # its vector reaches the prompt
    poster = next(i.media["image"] for i in ml100k if "image" in i.media)
    image = tiny_agent.retriever._encoder("image")
    forwards = counted(monkeypatch, image, "_forward")
    ranked = turn(tiny_agent, "something like this", [Attachment("image", poster)])
    assert len(forwards) == 1
    assert "image:0" in ranked["soft_tokens"]


def test_a_voice_note_is_transcribed_once(tiny_agent, tmp_path, monkeypatch):
    monkeypatch.setattr(tiny_agent.cfg.agent, "attachment_tokens", "always")
    wav = tmp_path / "ask.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), "a funny film"], check=True, capture_output=True)
    audio = tiny_agent.retriever._encoder("audio")
    audio.memo.size = 0  # no memo: count what one turn really asks of the speech model
    encodes = counted(monkeypatch, audio, "_encode")
    ranked = turn(tiny_agent, "", [Attachment("audio", wav)])
    assert len(encodes) == 1
    assert "audio:0" in ranked["soft_tokens"]


def test_the_prompt_gets_the_query_labels(tiny_agent, ml100k):
    poster = next(i.media["image"] for i in ml100k if "image" in i.media)
    vectors = tiny_agent.retriever.query_vectors("", [Attachment("image", poster)])
    (upload,) = vectors.uploads
    (inp,) = tiny_agent.attachment_inputs(vectors.uploads)
    assert upload.kind == inp.kind == "image" and len(upload.labels) == 3
    assert inp.details == "looks like: " + ", ".join(upload.labels)
    assert inp.vector is None  # no trained image projector: the labels carry the image
