"""Projectors: shapes, determinism, safetensors round trip, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fusionrec.agent.projector import DIMS_FILE, WEIGHTS_FILE, Projector, ProjectorError, Projectors


def test_projector_is_linear_gelu_linear():
    p = Projector(12, 8, hidden=16)
    layers = [type(m).__name__ for m in p.net]
    assert layers == ["Linear", "GELU", "Linear"]
    assert p(torch.zeros(3, 12)).shape == (3, 8)


def test_fresh_projectors_are_deterministic_per_key():
    a, b = Projectors(32, seed=5), Projectors(32, seed=5)
    x = np.random.default_rng(0).standard_normal(20).astype(np.float32)
    assert torch.equal(a.project("image", x), b.project("image", x))
    assert not torch.allclose(a.project("audio", x), a.project("image", x))
    assert not torch.allclose(Projectors(32, seed=6).project("image", x), a.project("image", x))


def test_save_load_round_trip(tmp_path):
    proj = Projectors(32, seed=1)
    x_img, x_item = np.ones(20, np.float32), np.ones(7, np.float32)
    before = proj.project("image", x_img), proj.project("item", x_item)
    proj.save(tmp_path)
    meta = json.loads((tmp_path / DIMS_FILE).read_text())
    assert meta["in_dims"] == {"image": 20, "item": 7} and meta["out_dim"] == 32
    back = Projectors.load(tmp_path, expect_out_dim=32)
    assert torch.equal(back.project("image", x_img), before[0])
    assert torch.equal(back.project("item", x_item), before[1])


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(ProjectorError, match=DIMS_FILE):
        Projectors.load(tmp_path)
    Projectors(16).save(tmp_path)
    with pytest.raises(ProjectorError, match="hidden size is 32"):
        Projectors.load(tmp_path, expect_out_dim=32)
    (tmp_path / DIMS_FILE).write_text("{not json")
    with pytest.raises(ProjectorError, match="malformed"):
        Projectors.load(tmp_path)
    assert (tmp_path / WEIGHTS_FILE).is_file()


def test_wrong_input_size_is_refused():
    proj = Projectors(16)
    proj.project("image", np.zeros(10, np.float32))
    with pytest.raises(ProjectorError, match="expects 10-d vectors but got 12-d"):
        proj.project("image", np.zeros(12, np.float32))
