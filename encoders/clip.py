"""open_clip models: loading one from a source string, cached per process; its embedding width.

Sources: ``open_clip:ARCH/TAG`` (a built-in config; TAG may be empty: random weights) and
``open_clip-local:<folder>`` (an open_clip ``local-dir`` folder: ``open_clip_config.json`` with a
``model_cfg`` key and ``open_clip_model.safetensors``, or a bare model config registered under the
folder's name next to ``model.safetensors``). Both the text tower (`encoders.text.ClipTextEncoder`)
and the image encoder (`encoders.image.ClipImageEncoder`) are built on what `load_open_clip` returns.
This module imports nothing heavy at import time.
"""

from __future__ import annotations

import json
import tempfile
import threading
from pathlib import Path
from typing import Any

from fusionrec.models.registry import OPEN_CLIP_LOCAL_PREFIX, OPEN_CLIP_PREFIX

_CACHE: dict[tuple[str, str], tuple[Any, Any, Any, str]] = {}
_LOCK = threading.Lock()


def is_open_clip(source: str) -> bool:
    """Whether a source string names an open_clip model."""
    return source.startswith((OPEN_CLIP_PREFIX, OPEN_CLIP_LOCAL_PREFIX))


def load_open_clip(source: str, device: Any = "cpu") -> tuple[Any, Any, Any, str]:
    """(model in eval mode, eval preprocess, tokenizer, model id) for an open_clip source; cached."""
    key = (source, str(device))
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = _load_open_clip(source, str(device))
        return _CACHE[key]


def _load_open_clip(source: str, device: str) -> tuple[Any, Any, Any, str]:
    import open_clip

    if source.startswith(OPEN_CLIP_LOCAL_PREFIX):
        folder = Path(source[len(OPEN_CLIP_LOCAL_PREFIX) :]).expanduser().resolve()
        cfg_file = folder / "open_clip_config.json"
        if not cfg_file.is_file():
            raise FileNotFoundError(f"{cfg_file}: missing (an open_clip folder needs open_clip_config.json)")
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
        if "model_cfg" in cfg:
            name = f"local-dir:{folder}"
            model, _, preprocess = open_clip.create_model_and_transforms(name, device=device)
            tokenizer = open_clip.get_tokenizer(name)
        else:  # a bare model config: register it under the folder's name
            weights = next(
                (
                    folder / n
                    for n in ("model.safetensors", "open_clip_model.safetensors")
                    if (folder / n).is_file()
                ),
                None,
            )
            if weights is None:
                raise FileNotFoundError(f"{folder}: no model.safetensors next to open_clip_config.json")
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / f"{folder.name}.json").write_text(json.dumps(cfg), encoding="utf-8")
                open_clip.add_model_config(Path(tmp) / f"{folder.name}.json")
            model, _, preprocess = open_clip.create_model_and_transforms(
                folder.name, pretrained=str(weights), device=device
            )
            tokenizer = open_clip.get_tokenizer(folder.name)
        model_id = folder.name
    elif source.startswith(OPEN_CLIP_PREFIX):
        arch, _, tag = source[len(OPEN_CLIP_PREFIX) :].partition("/")
        model, _, preprocess = open_clip.create_model_and_transforms(
            arch, pretrained=tag or None, device=device
        )
        tokenizer = open_clip.get_tokenizer(arch)
        model_id = f"{arch}/{tag}" if tag else f"{arch}/random"
    else:
        raise ValueError(f"not an open_clip source: {source!r}")
    model.eval()
    return model, preprocess, tokenizer, model_id


def embed_dim(model: Any) -> int:
    """The width of an open_clip model's joint image-text space."""
    dim = getattr(model, "embed_dim", None)
    if dim is None:
        proj = getattr(model, "text_projection", None)
        dim = proj.shape[1] if proj is not None and hasattr(proj, "shape") else model.visual.output_dim
    return int(dim)
