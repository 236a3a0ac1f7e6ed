"""A learned poster -> text-space projector, in place of the zero-shot ImageNet-label bridge.

It maps an image encoder's native poster features (L2-normalised) into the text encoder's space:
a linear map or a one-hidden-layer MLP, trained by ``fusionrec finetune --recipe poster_projector``
(`finetune.poster_projector`) on poster / text pairs. The file is safetensors: the module's
tensors, and metadata naming its shape and the image and text models it was trained with, so a
projector is refused (one line naming the file) by any other pair of encoders. The image encoder
uses it only when ``models.poster_projector`` names the file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

KIND = "poster_projector"


class ProjectorError(ValueError):
    """A projector file is missing, malformed, or made for other encoders."""


class PosterProjector(nn.Module):
    """Native image features (n, in_dim) -> text-space vectors (n, out_dim), L2-normalised."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 0, dropout: float = 0.0) -> None:
        super().__init__()
        self.in_dim, self.out_dim, self.hidden = int(in_dim), int(out_dim), int(hidden)
        if self.hidden > 0:
            layers: list[nn.Module] = [nn.Linear(self.in_dim, self.hidden), nn.GELU(), nn.Dropout(dropout)]
            layers.append(nn.Linear(self.hidden, self.out_dim))
        else:
            layers = [nn.Linear(self.in_dim, self.out_dim)]
        self.net = nn.Sequential(nn.Dropout(dropout), *layers)

    def forward(self, native: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.net(native), dim=-1)


def save_projector(
    module: PosterProjector,
    path: str | Path,
    image_model: str,
    text_model: str,
    info: dict[str, Any] | None = None,
) -> Path:
    """Write the module and its metadata (shape, the encoders it belongs to, `info` as JSON)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "kind": KIND,
        "in_dim": str(module.in_dim),
        "out_dim": str(module.out_dim),
        "hidden": str(module.hidden),
        "image_model": image_model,
        "text_model": text_model,
        "info": json.dumps(info or {}),
    }
    tensors = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    save_file(tensors, str(path), metadata=meta)
    return path


def file_tag(path: str | Path) -> str:
    """A short content hash of the file: it names the projector in encoder ids (a new file re-ingests)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:10]


def load_projector(
    path: str | Path, in_dim: int, out_dim: int, image_model: str, text_model: str, device: Any = "cpu"
) -> PosterProjector:
    """The projector in `path`, in eval mode; ProjectorError unless it fits these encoders."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    p = Path(path).expanduser()
    if not p.is_file():
        raise ProjectorError(
            f"{p}: poster projector not found (train one: fusionrec finetune --recipe poster_projector)"
        )
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(p))
    except (SafetensorError, OSError) as exc:
        raise ProjectorError(f"{p}: not a readable safetensors file ({exc})") from None
    if meta.get("kind") != KIND:
        raise ProjectorError(f"{p}: not a poster projector (metadata kind={meta.get('kind')!r})")
    wanted = {"in_dim": in_dim, "out_dim": out_dim, "image_model": image_model, "text_model": text_model}
    for key, value in wanted.items():
        if str(meta.get(key)) != str(value):
            raise ProjectorError(f"{p}: made for {key}={meta.get(key)!r}, but this encoder has {value!r}")
    module = PosterProjector(in_dim, out_dim, int(meta.get("hidden", 0)))
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise ProjectorError(f"{p}: tensors do not fit the metadata ({str(exc)[:200]})") from None
    return module.to(device).eval()
