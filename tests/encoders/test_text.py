"""Text encoders: MiniLM (real weights), TF-IDF (JSON persistence), the tiny profile and CLIP's text tower."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fusionrec import encoders
from fusionrec.encoders.text import ClipTextEncoder, SentenceEncoder, TfidfEncoder, open_text_encoder
from fusionrec.models import registry

PLOTS = [
    "A young farm boy joins a rebellion against a galactic empire with the help of a jedi knight.",
    "Two friends drive across the country to a wedding and everything goes wrong; a road-trip comedy.",
    "A detective hunts a serial killer through the rainy streets of a dark city.",
    "Toys come to life when their owner leaves the room, and a cowboy doll fears being replaced.",
]


def _unit_rows(v: np.ndarray) -> bool:
    return bool(np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5))


@pytest.fixture(scope="module")
def minilm(offline_cfg):
    return encoders.load_text_encoder(offline_cfg)


@pytest.mark.real
def test_minilm_ranks_related_sentence_above_unrelated(minilm):
    assert isinstance(minilm, SentenceEncoder) and minilm.dim == 384
    q = minilm.encode(["space adventure with lightsabers and starships"])
    docs = minilm.encode(PLOTS)
    assert docs.shape == (4, 384) and docs.dtype == np.float32 and _unit_rows(docs)
    sims = (q @ docs.T)[0]
    assert int(np.argmax(sims)) == 0
    assert sims[0] > max(sims[1:]) + 0.08
    toy = minilm.encode(["animated movie about toys"])[0] @ docs.T
    assert int(np.argmax(toy)) == 3


@pytest.mark.real
def test_minilm_empty_and_bad_input(minilm):
    assert minilm.encode([]).shape == (0, 384)
    with pytest.raises(TypeError, match="list of strings"):
        minilm.encode("a single string")
    with pytest.raises(TypeError, match="item 1 is int"):
        minilm.encode(["ok", 3])


def test_tfidf_fit_save_load_roundtrip(tmp_path):
    enc = TfidfEncoder(max_features=100).fit(PLOTS)
    vecs = enc.encode(PLOTS)
    assert vecs.shape == (4, enc.dim) and _unit_rows(vecs)
    path = enc.save(tmp_path / "tfidf")
    assert path == tmp_path / "tfidf" / "tfidf.json"
    data = json.loads(path.read_text())  # plain JSON, no pickle
    assert data["format"] == "fusionrec-tfidf/1" and len(data["vocabulary"]) == enc.dim
    again = open_text_encoder(f"tfidf:{path}")
    assert isinstance(again, TfidfEncoder)
    np.testing.assert_allclose(again.encode(PLOTS), vecs, atol=1e-6)
    q = again.encode(["serial killer detective"])
    assert int(np.argmax(q @ vecs.T)) == 2


def test_tfidf_unknown_words_give_zero_vector_and_stop_words_are_dropped():
    enc = TfidfEncoder().fit(PLOTS)
    assert "the" not in enc.vocabulary and "jedi" in enc.vocabulary
    v = enc.encode(["zzzz qqqq", ""])
    assert not v.any()


def test_tfidf_bigrams_and_max_features():
    enc = TfidfEncoder(max_features=5, ngram_max=2).fit(PLOTS + ["road trip comedy", "road trip"])
    assert enc.dim == 5 and "road trip" in enc.vocabulary


def test_tfidf_errors_name_the_file(tmp_path):
    with pytest.raises(RuntimeError, match="not fitted"):
        TfidfEncoder().encode(["x"])
    with pytest.raises(ValueError, match="no texts"):
        TfidfEncoder().fit([])
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match=f"{bad}: not a FusionRec TF-IDF file"):
        TfidfEncoder.load(bad)
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=f"{bad}: not valid JSON"):
        TfidfEncoder.load(bad)
    with pytest.raises(FileNotFoundError, match="missing.json: TF-IDF model not found"):
        open_text_encoder(f"tfidf:{tmp_path / 'missing.json'}")


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="text encoder folder not found"):
        open_text_encoder(str(tmp_path / "nope"))


def test_tiny_text_encoder_through_registry(tiny_cfg):
    enc = encoders.load_text_encoder(tiny_cfg)
    v = enc.encode(["hello world", "another sentence", ""])
    assert v.shape == (3, enc.dim) and enc.dim == 32 and _unit_rows(v)
    assert enc.model_id == "text"


def test_clip_text_tower_from_tiny_clip(tiny_cfg):
    src = registry.source(tiny_cfg, "image_encoder")
    enc = open_text_encoder(src, "cpu")
    assert isinstance(enc, ClipTextEncoder) and enc.dim == 32
    v = enc.encode(["a photo of a cat", "a photo of a dog"])
    assert v.shape == (2, 32) and _unit_rows(v)
    assert not np.allclose(v[0], v[1])


def test_the_text_module_does_not_import_the_image_module():
    """No import circle: the open_clip pieces live in encoders.clip, the normaliser in fusionrec.vectors."""
    import subprocess
    import sys
    from pathlib import Path

    code = "import sys, fusionrec.encoders.text; print('fusionrec.encoders.image' in sys.modules, 'torch' in sys.modules)"
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.split() == ["False", "False"]
