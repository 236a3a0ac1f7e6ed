"""LLaVA-style projectors: one `Linear -> GELU -> Linear` per modality into the LLM's hidden size.

`Projectors` holds one projector per key ("image", "audio", "video", "item", ...). A projector that
was not loaded from a checkpoint is created on first use with a seed derived from (seed, key), so
a fresh agent is deterministic. Saved as ``projectors.safetensors`` + ``projectors.json`` (dims).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

WEIGHTS_FILE = "projectors.safetensors"
DIMS_FILE = "projectors.json"


class ProjectorError(ValueError):
    """A projector checkpoint is missing, malformed, or does not fit the vectors given to it."""


class Projector(nn.Module):
    """Linear(in_dim, hidden) -> GELU -> Linear(hidden, out_dim)."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int | None = None) -> None:
        super().__init__()
        self.in_dim, self.out_dim, self.hidden = in_dim, out_dim, hidden or out_dim
        self.net = nn.Sequential(nn.Linear(in_dim, self.hidden), nn.GELU(), nn.Linear(self.hidden, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@torch.no_grad()
def _match_norm(proj: Projector, target: float, samples: int = 256) -> None:
    """Scale the last layer so unit-norm inputs map to vectors of norm `target` on average.

    Encoders give L2-normalised vectors, whose projections would otherwise be far smaller than
    the LLM's token embeddings and barely move its output before training.
    """
    x = torch.nn.functional.normalize(torch.randn(samples, proj.in_dim), dim=-1)
    norm = float(proj(x).norm(dim=-1).mean())
    if norm > 0:
        proj.net[-1].weight.mul_(target / norm)
        proj.net[-1].bias.mul_(target / norm)


class Projectors(nn.Module):
    """Projectors keyed by modality, all mapping into one LLM hidden size."""

    def __init__(
        self, out_dim: int, seed: int = 0, hidden: int | None = None, init_norm: float = 0.0
    ) -> None:
        super().__init__()
        self.out_dim, self.seed, self.hidden = out_dim, seed, hidden or out_dim
        self.init_norm = float(
            init_norm
        )  # >0: fresh projectors start at this output norm (the LLM's token norm)
        self.by_key = nn.ModuleDict()

    def __contains__(self, key: str) -> bool:
        return key in self.by_key

    def keys(self) -> list[str]:
        return list(self.by_key.keys())

    def dims(self) -> dict[str, int]:
        return {k: p.in_dim for k, p in self.by_key.items()}

    def add(self, key: str, in_dim: int) -> Projector:
        """Create the projector of `key` with a seed derived from (seed, key); deterministic."""
        gen_state = torch.random.get_rng_state()
        try:
            torch.manual_seed(self.seed * 1_000_003 + zlib.crc32(key.encode()))
            proj = Projector(in_dim, self.out_dim, self.hidden)
            if self.init_norm > 0:
                _match_norm(proj, self.init_norm)
        finally:
            torch.random.set_rng_state(gen_state)
        ref = next(iter(self.parameters()), None)
        if ref is not None:
            proj.to(device=ref.device, dtype=ref.dtype)
        self.by_key[key] = proj
        return proj

    def get(self, key: str, in_dim: int) -> Projector:
        """The projector of `key`, created if missing; ProjectorError if its input size differs."""
        if key not in self.by_key:
            return self.add(key, in_dim)
        proj = self.by_key[key]
        if proj.in_dim != in_dim:
            raise ProjectorError(
                f"projector '{key}' expects {proj.in_dim}-d vectors but got {in_dim}-d "
                "(was the checkpoint trained with another encoder?)"
            )
        return proj

    def project(
        self, key: str, vectors: np.ndarray | torch.Tensor, like: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Project (n, in_dim) or (in_dim,) vectors to (n, out_dim); on `like`'s device/dtype if given."""
        x = (
            torch.as_tensor(np.asarray(vectors, dtype=np.float32))
            if isinstance(vectors, np.ndarray)
            else vectors
        )
        if x.dim() == 1:
            x = x.unsqueeze(0)
        proj = self.get(key, int(x.shape[-1]))
        p = next(proj.parameters())
        out = proj(x.to(device=p.device, dtype=p.dtype))
        return out if like is None else out.to(device=like.device, dtype=like.dtype)

    # --- persistence ----------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write projectors.safetensors and projectors.json into `folder`; returns the folder."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(folder / WEIGHTS_FILE))
        meta = {
            "out_dim": self.out_dim,
            "hidden": self.hidden,
            "seed": self.seed,
            "init_norm": self.init_norm,
            "in_dims": self.dims(),
        }
        (folder / DIMS_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: str | Path, expect_out_dim: int | None = None) -> Projectors:
        """Read a folder written by `save`; ProjectorError naming the file on any mismatch."""
        from safetensors.torch import load_file

        folder = Path(folder)
        meta_path, weights_path = folder / DIMS_FILE, folder / WEIGHTS_FILE
        for path in (meta_path, weights_path):
            if not path.is_file():
                raise ProjectorError(f"{path}: missing (expected a projectors checkpoint folder)")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            out_dim, in_dims = int(meta["out_dim"]), {str(k): int(v) for k, v in meta["in_dims"].items()}
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ProjectorError(f"{meta_path}: malformed ({exc})") from None
        if expect_out_dim is not None and out_dim != expect_out_dim:
            raise ProjectorError(
                f"{meta_path}: out_dim {out_dim} but the LLM hidden size is {expect_out_dim}"
            )
        proj = cls(
            out_dim,
            seed=int(meta.get("seed", 0)),
            hidden=int(meta.get("hidden", out_dim)),
            init_norm=float(meta.get("init_norm", 0.0)),
        )
        for key, dim in in_dims.items():
            proj.add(key, dim)
        try:
            proj.load_state_dict(load_file(str(weights_path)), strict=True)
        except RuntimeError as exc:
            raise ProjectorError(f"{weights_path}: does not match {meta_path} ({exc})") from None
        return proj
