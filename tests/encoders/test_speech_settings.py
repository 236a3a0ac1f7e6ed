"""The `models.speech_*` decoding settings reach Whisper: beam width, initial prompt, temperature
fallback, language; bad values are one line naming the key.

The real tiny Whisper (random weights, built from its dims) transcribes a real espeak-ng clip: its
transcripts are nonsense but deterministic, so a setting that reaches decoding changes them.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from fusionrec import encoders
from fusionrec.config import ConfigError
from fusionrec.encoders.audio import AudioEncoder
from fusionrec.models import registry
from fusionrec.models.config import SPEECH_PROMPT
from tests.conftest import make_config


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed (apt-get install espeak-ng)")
    path = tmp_path_factory.mktemp("speech") / "request.wav"
    subprocess.run(["espeak-ng", "-w", str(path), "a funny space movie"], check=True, capture_output=True)
    return path


@pytest.fixture(scope="module")
def whisper_model(tiny_cfg):
    return registry.load_whisper(tiny_cfg)


def heard(model, clip: Path, **settings) -> tuple[str, list[int]]:
    """(transcript, decoder batch sizes seen) with greedy decoding and no fallback unless given."""
    batches: list[int] = []
    hook = model.decoder.register_forward_hook(lambda _m, args, _o: batches.append(int(args[0].shape[0])))
    try:
        encoder = AudioEncoder(model, None, **{"temperature": (0.0,), **settings})
        return encoder.transcribe(clip)[0], batches
    finally:
        hook.remove()


def test_beam_size_is_the_decoders_batch(whisper_model, clip):
    _, greedy = heard(whisper_model, clip, beam_size=1)
    _, beam = heard(whisper_model, clip, beam_size=3)
    assert max(greedy) == 1 and max(beam) == 3


def test_initial_prompt_changes_the_transcript(whisper_model, clip):
    plain, _ = heard(whisper_model, clip)
    prompted, _ = heard(whisper_model, clip, prompt=SPEECH_PROMPT)
    assert plain and prompted and plain != prompted


def test_temperature_fallback_redecodes_a_broken_transcript(whisper_model, clip):
    """The random model repeats one word (compression ratio far above 2.4): with a fallback
    temperature Whisper decodes again by sampling, and keeps a different text."""
    torch.manual_seed(0)
    once, first = heard(whisper_model, clip)
    again, both = heard(whisper_model, clip, temperature=(0.0, 1.0))
    assert len(set(once.split())) <= 2  # the broken greedy transcript
    assert again != once and len(both) > len(first)


def test_config_settings_reach_the_audio_encoder(tiny_cfg):
    cfg = make_config("tiny", overrides=["models.speech_beam_size=4", "models.speech_prompt=Films.",
                                         "models.speech_temperatures=0.0,0.5"])  # fmt: skip
    enc = encoders.load_audio_encoder(cfg)
    assert (enc.beam_size, enc.prompt, enc.temperature, enc.language) == (4, "Films.", (0.0, 0.5), "")
    assert encoders.load_audio_encoder(tiny_cfg) is not enc  # other settings, another encoder


def test_a_language_an_english_only_model_cannot_hear_is_one_line(tiny_cfg):
    cfg = make_config("tiny", overrides=["models.speech_language=de"])
    with pytest.raises(registry.ModelError, match=r"models.speech_language='de': .* only hears English"):
        encoders.load_audio_encoder(cfg)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("models.speech_beam_size=0", "models.speech_beam_size=0: expected a number from 1 to 16"),
        ("models.speech_temperatures=0.4,0.2", "models.speech_temperatures=.*increasing numbers from 0 to 1"),
        ("models.speech_temperatures=0.0,1.5", "models.speech_temperatures=.*increasing numbers from 0 to 1"),
        ("models.speech_language=German", "models.speech_language='German': expected"),
        (f"models.speech_prompt={'x' * 201}", "models.speech_prompt: 201 characters"),
    ],
)
def test_bad_speech_settings_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        make_config("tiny", overrides=[override])


def test_the_tiny_checkpoint_is_the_same_finite_weights_every_build(tmp_path):
    """Built twice from the seed, the random checkpoint is identical and finite (no tensor is left
    as uninitialised memory, which made CI transcripts NaN)."""
    from fusionrec.models.tiny import build_whisper

    states = []
    for name in ("a.pt", "b.pt"):
        build_whisper(tmp_path / name)
        states.append(torch.load(tmp_path / name, weights_only=True)["model_state_dict"])
    assert states[0].keys() == states[1].keys()
    for key, value in states[0].items():
        assert torch.isfinite(value).all(), key
        assert torch.equal(value, states[1][key]), key


def test_whisper_encoder_runs_once_per_window_and_changes_nothing(tiny_cfg, clip):
    """Language detection and every decoding attempt share one encoder pass (counted on its first
    layer; the pooled vector, padded in the audio domain, has its own), and the transcript equals plain
    `whisper.transcribe` on an unshared copy of the model. The random model's transcript is broken, so
    the temperature fallback decodes twice."""
    import whisper

    fresh = whisper.load_model(str(registry.source(tiny_cfg, "speech")), device="cpu").eval()
    settings = {"fp16": False, "temperature": (0.0, 1.0), "condition_on_previous_text": False}
    torch.manual_seed(0)
    expected = fresh.transcribe(str(clip), **settings)["text"].strip()
    passes: list[int] = []
    attempts: list[float] = []  # temperature of each decoding attempt
    fresh.encoder.conv1.register_forward_hook(lambda *_: passes.append(1))
    decode = fresh.decode
    fresh.decode = lambda mel, options: attempts.append(options.temperature) or decode(mel, options)
    encoder = AudioEncoder(fresh, None, temperature=(0.0, 1.0))
    torch.manual_seed(0)
    (feats,) = encoder.encode([clip])
    assert feats.transcript == expected
    assert attempts == [0.0, 1.0] and len(passes) == 2


def test_min_word_prob_keeps_the_words_heard_at_least_that_likely(whisper_model, clip):
    from fusionrec.encoders.audio import confident_text

    def encode(min_word_prob: float):
        return AudioEncoder(whisper_model, None, temperature=(0.0,), min_word_prob=min_word_prob).encode([clip])[0]

    full = encode(1e-9)
    assert len(full.words) >= 2 and all(0.0 <= p <= 1.0 for _, p in full.words)
    assert full.confident == "".join(w for w, p in full.words if p >= 1e-9).strip()
    tau = max(p for _, p in full.words)  # only the likeliest word(s) stay
    cut = encode(tau)
    assert cut.transcript == full.transcript  # what was heard is kept; only the searched text is cut
    assert cut.confident == "".join(w for w, p in full.words if p >= tau).strip() != full.transcript
    off = encode(0.0)
    assert off.words == [] and off.confident == off.transcript  # off: the transcript is searched as heard
    assert confident_text([(" spam", 0.1)], 0.5, "heard") == "heard"  # nothing confident: what was heard
