"""Fusion math: early concatenation, RRF and weighted sums, the cross-modal attention module."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from fusionrec.retrieval.fusion import (
    UNTRAINED_WARNING,
    CrossModalFusion,
    early_fuse,
    load_cross_fusion,
    modality_scores,
    rrf,
    save_cross_fusion,
    split_blocks,
    weighted_sum,
)
from tests.conftest import make_config

LAYOUT = [("text", 4), ("image", 3), ("audio", 2)]


def test_early_fuse_is_unit_length_weighted_and_splits_back():
    rng = np.random.default_rng(0)
    text, image = rng.normal(size=4), rng.normal(size=3)
    fused = early_fuse(LAYOUT, {"text": text, "image": image, "audio": None}, {"text": 1.0, "image": 0.5})
    assert fused.shape == (9,) and np.linalg.norm(fused) == pytest.approx(1.0, abs=1e-6)
    assert not fused[7:].any()  # missing audio = zeros
    # the weight ratio survives: |text block| / |image block| = 1 / 0.5
    assert np.linalg.norm(fused[:4]) / np.linalg.norm(fused[4:7]) == pytest.approx(2.0, rel=1e-5)
    parts = split_blocks(fused, LAYOUT)
    assert set(parts) == {"text", "image"}
    assert parts["text"] @ (text / np.linalg.norm(text)) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="block 'audio'"):
        early_fuse(LAYOUT, {"audio": np.ones(5)}, {})


def test_early_fused_cosine_equals_weighted_block_cosines():
    rng = np.random.default_rng(1)
    q = {"text": rng.normal(size=4)}
    item = {"text": rng.normal(size=4), "image": rng.normal(size=3)}
    w = {"text": 1.0, "image": 1.0}
    cos = float(early_fuse(LAYOUT, q, w) @ early_fuse(LAYOUT, item, w))
    text_cos = float(q["text"] @ item["text"] / np.linalg.norm(q["text"]) / np.linalg.norm(item["text"]))
    assert cos == pytest.approx(text_cos / np.sqrt(2), abs=1e-5)  # item has two unit blocks


def test_rrf_rewards_agreement():
    scores = rrf([["a", "b", "c"], ["b", "a", "d"], ["b"]])
    assert max(scores, key=scores.get) == "b"
    assert scores["a"] == pytest.approx(1 / 61 + 1 / 62)
    weighted = rrf([["a"], ["b"]], weights=[2.0, 1.0])
    assert weighted["a"] == pytest.approx(2 * weighted["b"])


def test_weighted_sum_and_modality_scores():
    assert weighted_sum({"text": 0.8, "image": 0.2}, {"text": 3.0, "image": 1.0}) == pytest.approx(0.65)
    assert weighted_sum({"image": 0.4}, {"text": 3.0, "image": 1.0}) == pytest.approx(0.4)
    assert modality_scores({"image": 0.9, "image_text": 0.3, "text": 0.5}) == pytest.approx(
        {"image": 0.6, "text": 0.5}
    )


def _inputs(n: int = 5):
    g = torch.Generator().manual_seed(0)
    dims = {"text": 4, "image": 3, "audio": 2}
    items = {b: torch.randn(1, n, d, generator=g) for b, d in dims.items()}
    sims = torch.rand(1, n, 3, generator=g)
    mask = torch.ones(1, n, 3, dtype=torch.bool)
    mask[0, 0, 2] = False  # item 0 has no audio
    return dims, torch.randn(1, 4, generator=g), items, sims, mask


def test_untrained_cross_fusion_gives_equal_weights_and_says_so(tmp_path, caplog):
    dims, query, items, sims, mask = _inputs()
    with caplog.at_level(logging.WARNING):
        module, trained = load_cross_fusion(make_config("offline", home=tmp_path), dims, 4)
    assert not trained and UNTRAINED_WARNING in caplog.text
    scores, w = module(query, items, sims, mask)
    assert torch.allclose(w[0, 0], torch.tensor([0.5, 0.5, 0.0]))
    assert torch.allclose(w[0, 1:], torch.full((4, 3), 1 / 3))
    assert torch.allclose(scores[0, 1:], sims[0, 1:].mean(-1))
    # two blocks of one modality (the poster and its text-space bridge) share that modality's weight
    bridge = CrossModalFusion({"text": 4, "image": 3, "image_text": 4}, 4)
    w = bridge.weights(query, {**items, "image_text": items["text"]}, torch.ones(1, 5, 3, dtype=torch.bool))
    assert torch.allclose(w[0, 0], torch.tensor([0.5, 0.25, 0.25]))


def test_trained_cross_fusion_roundtrips_through_safetensors(tmp_path, caplog):
    path = tmp_path / "run" / "last" / "cross_fusion.safetensors"
    cfg = make_config("offline", home=tmp_path, overrides=[f"retrieval.cross_weights={path}"])
    dims, query, items, sims, mask = _inputs()
    module = CrossModalFusion(dims, 4, hidden=8)
    opt = torch.optim.Adam(module.parameters(), lr=0.1)
    for _ in range(30):  # learn to trust the image block
        scores, w = module(query, items, sims, mask)
        loss = -w[..., 1].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    save_cross_fusion(module, path)
    # the file is used only where the config names it
    _, trained = load_cross_fusion(make_config("offline", home=tmp_path), dims, 4)
    assert not trained
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        loaded, trained = load_cross_fusion(cfg, dims, 4)
    assert trained and UNTRAINED_WARNING not in caplog.text
    _, w = loaded(query, items, sims, mask)
    assert (w[0, :, 1] > 0.5).all()
    assert torch.allclose(loaded(query, items, sims, mask)[0], module(query, items, sims, mask)[0])
    # another block layout cannot use these weights: refused with a warning naming the key
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        other, trained = load_cross_fusion(cfg, {"text": 4, "image": 5}, 4)
    assert not trained and other.dims == {"text": 4, "image": 5}
    assert f"retrieval.cross_weights={path}: trained for blocks" in caplog.text
    assert UNTRAINED_WARNING in caplog.text


def test_a_bad_cross_weights_file_is_a_one_line_error(tmp_path):
    missing = tmp_path / "nowhere.safetensors"
    cfg = make_config("offline", home=tmp_path, overrides=[f"retrieval.cross_weights={missing}"])
    with pytest.raises(ValueError, match=f"^retrieval.cross_weights={missing}: no such file") as err:
        load_cross_fusion(cfg, {"text": 4}, 4)
    assert "\n" not in str(err.value)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not safetensors")
    cfg.retrieval.cross_weights = str(junk)
    with pytest.raises(ValueError, match=f"^retrieval.cross_weights={junk}: not a cross-modal fusion module"):
        load_cross_fusion(cfg, {"text": 4}, 4)
