"""The poster projector in the image encoder: used only when models.poster_projector names it, and refused
(one line naming the file) when it was made for other encoders."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from fusionrec import encoders
from fusionrec.encoders.image import TimmImageEncoder
from fusionrec.encoders.poster_projector import PosterProjector, ProjectorError, save_projector

pytestmark = pytest.mark.real


def _samples() -> list[Path]:
    spec = importlib.util.find_spec("gradio")
    root = Path(next(iter(spec.submodule_search_locations))) / "media_assets/images" if spec else None
    paths = [root / n for n in ("cheetah1.jpg", "lion.jpg", "tower.jpg")] if root else []
    if not all(p.is_file() for p in paths):
        pytest.skip("gradio sample images not installed")
    return paths


def _with(cfg, **models):
    return dataclasses.replace(cfg, models=dataclasses.replace(cfg.models, **models))


@pytest.fixture(scope="module")
def bridge(offline_cfg) -> TimmImageEncoder:
    enc = encoders.load_image_encoder(offline_cfg)
    assert isinstance(enc, TimmImageEncoder) and enc.projector is None
    return enc


@pytest.fixture(scope="module")
def projector_file(bridge, tmp_path_factory) -> Path:
    torch.manual_seed(0)
    module = PosterProjector(bridge.dim, bridge.text_dim, hidden=16)
    path = tmp_path_factory.mktemp("projector") / "poster_projector.safetensors"
    return save_projector(module, path, bridge.model_id, bridge.text_encoder.model_id, {"test": True})


def test_configured_projector_maps_native_features_into_the_text_space(offline_cfg, bridge, projector_file):
    paths = _samples()
    enc = encoders.load_image_encoder(_with(offline_cfg, poster_projector=str(projector_file)))
    assert enc is not bridge and enc.model_id.startswith(f"{bridge.model_id}+projector-")
    feats = enc.features(paths)
    base = bridge.features(paths)
    np.testing.assert_allclose(feats.native, base.native, atol=1e-5)  # same image model
    np.testing.assert_allclose(feats.probs, base.probs, atol=1e-5)  # labels unchanged
    module = enc.projector
    expected = module(torch.as_tensor(base.native)).detach().numpy()
    np.testing.assert_allclose(feats.text, expected, atol=1e-5)  # text space = projector(unit native)
    assert feats.text.shape == (3, bridge.text_dim)
    np.testing.assert_allclose(np.linalg.norm(feats.text, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(feats.text, base.text, atol=1e-3)  # not the label bridge
    np.testing.assert_allclose(enc.to_text_space(paths), feats.text, atol=1e-5)
    np.testing.assert_allclose(enc.encode_text(["a lion"]), bridge.encode_text(["a lion"]))  # text side


def test_a_projector_in_the_checkpoints_folder_is_not_picked_up(
    offline_cfg, bridge, projector_file, tmp_path
):
    cfg = _with(offline_cfg)
    cfg = dataclasses.replace(cfg, paths=dataclasses.replace(cfg.paths, home=str(tmp_path)))
    (tmp_path / "models").symlink_to(offline_cfg.models_dir, target_is_directory=True)
    saved = cfg.checkpoints_dir / "poster_projector" / "poster_projector.safetensors"
    saved.parent.mkdir(parents=True)
    saved.write_bytes(projector_file.read_bytes())
    enc = encoders.load_image_encoder(cfg)
    assert enc.projector is None and enc.model_id == bridge.model_id
    paths = _samples()[:1]
    np.testing.assert_allclose(enc.to_text_space(paths), bridge.to_text_space(paths), atol=1e-5)


def test_projectors_for_other_encoders_or_missing_files_are_refused(offline_cfg, bridge, tmp_path):
    text_id = bridge.text_encoder.model_id
    cases = {
        "other-dims.safetensors": (PosterProjector(bridge.dim, 8), bridge.model_id, text_id, "out_dim"),
        "other-text.safetensors": (
            PosterProjector(bridge.dim, bridge.text_dim),
            bridge.model_id,
            "e5",
            "text_model",
        ),
        "other-image.safetensors": (
            PosterProjector(bridge.dim, bridge.text_dim),
            "resnet",
            text_id,
            "image_model",
        ),
    }
    for name, (module, image_model, text_model, key) in cases.items():
        path = save_projector(module, tmp_path / name, image_model, text_model)
        with pytest.raises(ProjectorError, match=rf"{name}: made for {key}="):
            encoders.load_image_encoder(_with(offline_cfg, poster_projector=str(path)))
    with pytest.raises(ProjectorError, match=r"missing\.safetensors: poster projector not found"):
        encoders.load_image_encoder(
            _with(offline_cfg, poster_projector=str(tmp_path / "missing.safetensors"))
        )
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(ProjectorError, match="junk.safetensors: not a readable safetensors file"):
        encoders.load_image_encoder(_with(offline_cfg, poster_projector=str(junk)))


def test_open_clip_encoders_take_no_projector(tiny_cfg, projector_file):
    with pytest.raises(ValueError, match=r"models\.poster_projector=.*only a timm image encoder"):
        encoders.load_image_encoder(_with(tiny_cfg, poster_projector=str(projector_file)))
