"""Image encoders: native image features, the shared image<->text space, and labels.

Two families behind one interface (`ImageEncoder`):

- `TimmImageEncoder`: an ImageNet classifier saved by `fusionrec.models.convert.efficientnet` (timm state dict
  in ``<folder>/model.safetensors`` + ``<folder>/config.json``). Native features are the pooled
  penultimate activations; the text space is the zero-shot bridge
  ``softmax(logits) @ text_encoder(ImageNet class names)``, or, when a projector file is given
  (``models.poster_projector``), a learned map of the native features (`encoders.poster_projector`);
  labels are the top ImageNet classes.
- `ClipImageEncoder`: an open_clip model (`encoders.clip`); native features and the text space are
  both CLIP's image embeddings, text goes through CLIP's text tower, labels are zero-shot over
  ImageNet class names.

`open_image_encoder(source, device, text_encoder, projector)` reads "timm:<folder>",
"open_clip:ARCH/TAG" or "open_clip-local:<folder>" (see `encoders.clip`); the configured one comes
from `fusionrec.encoders.load_image_encoder(cfg)`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusionrec.encoders.clip import is_open_clip, load_open_clip
from fusionrec.encoders.text import ClipTextEncoder, TextEncoder
from fusionrec.media import MediaError, open_image_checked
from fusionrec.models.registry import OPEN_CLIP_LOCAL_PREFIX, TIMM_PREFIX
from fusionrec.vectors import l2_normalise

CLIP_PROMPT = "a photo of a {}."


# --- ImageNet class names (timm ships them) -------------------------------------------------------
@lru_cache(maxsize=1)
def imagenet_descriptions() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class descriptions in index order, e.g. "tabby, tabby cat"."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return tuple(info.index_to_description(i) for i in range(info.num_classes()))


@lru_cache(maxsize=1)
def imagenet_names() -> tuple[str, ...]:
    """Short display names: the first synonym of each description ("tabby", "military uniform")."""
    return tuple(d.split(",")[0].strip() for d in imagenet_descriptions())


# --- images --------------------------------------------------------------------------------------
DECODE_FACTOR = 4  # images are decoded with a short side of at most this many times the model input


def open_image(path: str | Path, min_side: int = 0) -> Any:
    """An RGB PIL image (EXIF rotation applied); MediaError naming the file if it cannot be read.

    Images over the pixel limit (`fusionrec.media.max_image_megapixels`) are refused from the header,
    before any decode. With `min_side`, an image whose short side is longer is decoded at reduced
    size (JPEG DCT scaling, then a bicubic thumbnail) to a short side of about `min_side`, so peak
    memory stays bounded; smaller images are decoded exactly as they are.
    """
    from PIL import ImageOps

    p = Path(path)
    if not p.is_file():
        raise MediaError(p, "file not found")
    with open_image_checked(p) as img:
        w, h = img.size
        if min_side and min(w, h) > min_side:
            scale = min_side / min(w, h)
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            img.draft(None, size)  # JPEG: decode at 1/2, 1/4 or 1/8 scale, still at least `size`
            img.thumbnail(size)
        ImageOps.exif_transpose(img, in_place=True)
        return img.convert("RGB")  # a new image: it outlives the closed file


@dataclass
class ImageFeatures:
    """One forward pass over a batch: native features, text-space vectors, class probabilities.

    `text` / `probs` are None when they were not asked for (they may need the class-name matrix).
    """

    native: np.ndarray  # (n, dim), L2-normalised
    text: np.ndarray | None  # (n, text_dim), L2-normalised
    probs: np.ndarray | None  # (n, n_classes) over `class_names`


class ImageEncoder:
    """Interface shared by the timm and open_clip encoders (see the module docstring)."""

    dim: int
    text_dim: int
    model_id: str
    device: str
    batch_size: int = 32
    class_names: tuple[str, ...] = ()
    input_side: int = 224  # the model's input resolution (images decode at DECODE_FACTOR times it)

    # subclasses implement these two
    def _forward(
        self, batch: torch.Tensor, text: bool, probs: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(native features, text-space vectors or None, class probabilities or None) of a batch."""
        raise NotImplementedError  # pragma: no cover

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError  # pragma: no cover

    def _preprocess(self, image: Any) -> torch.Tensor:
        return self.transform(image)  # type: ignore[attr-defined]

    def features(self, paths: Sequence[str | Path], text: bool = True, probs: bool = True) -> ImageFeatures:
        """Native features (+ text-space vectors, + class probabilities), in batches, in one pass."""
        paths = _check_paths(paths)
        parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
        progress = _progress(len(paths), self.batch_size, f"images ({self.model_id})")
        try:
            with torch.inference_mode():
                for i in range(0, len(paths), self.batch_size):
                    chunk = paths[i : i + self.batch_size]
                    side = DECODE_FACTOR * self.input_side
                    images = [self._preprocess(open_image(p, min_side=side)) for p in chunk]
                    batch = torch.stack(images).to(self.device)
                    for out, value in zip(parts, self._forward(batch, text, probs), strict=True):
                        if value is not None:
                            out.append(value.float().cpu().numpy())
                    progress.update(len(chunk))
        finally:
            progress.close()
        widths = (self.dim, self.text_dim, len(self.class_names))
        native, txt, prob = (
            np.concatenate(p) if p else np.zeros((0, w), np.float32)
            for p, w in zip(parts, widths, strict=True)
        )
        return ImageFeatures(
            native=l2_normalise(native),
            text=l2_normalise(txt) if text else None,
            probs=prob if probs else None,
        )

    def encode(self, paths: Sequence[str | Path]) -> np.ndarray:
        """Native image features (n, dim), L2-normalised: for image-to-image similarity."""
        return self.features(paths, text=False, probs=False).native

    def to_text_space(self, paths: Sequence[str | Path]) -> np.ndarray:
        """Images in the shared image<->text space (n, text_dim), L2-normalised."""
        return self.features(paths, probs=False).text  # type: ignore[return-value]

    def labels(self, paths: Sequence[str | Path], k: int = 5) -> list[list[tuple[str, float]]]:
        """Top-k ImageNet classes per image with their probabilities."""
        return top_labels(self.features(paths, text=False).probs, self.class_names, k)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model_id={self.model_id!r}, dim={self.dim}, text_dim={self.text_dim})"


def top_labels(probs: np.ndarray, names: Sequence[str], k: int = 5) -> list[list[tuple[str, float]]]:
    """The k most probable (name, probability) pairs of each row."""
    k = max(0, min(k, probs.shape[1] if probs.ndim == 2 else 0))
    out = []
    for row in probs:
        idx = np.argsort(-row)[:k]
        out.append([(names[int(i)], float(row[i])) for i in idx])
    return out


def _check_paths(paths: Sequence[str | Path]) -> list[Path]:
    if isinstance(paths, (str, Path)):
        raise TypeError("pass a list of image paths, not a single path")
    return [Path(p) for p in paths]


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, batch: int, desc: str) -> Any:
    if total <= 4 * batch:
        return _NoProgress()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img")


# --- cached class-text matrices ------------------------------------------------------------------
_CLASS_CACHE: dict[str, np.ndarray] = {}
_CLASS_LOCK = threading.Lock()


def class_text_matrix(
    texts: Sequence[str], encode: Any, fingerprint: str, cache_dir: Path | None = None
) -> np.ndarray:
    """`encode(texts)` (n_classes, dim), cached in memory and, if `cache_dir` is writable, on disk.

    The cache key hashes the texts and `fingerprint` (which must change when the encoder does).
    """
    key = hashlib.sha1(("\n".join(texts) + "\0" + fingerprint).encode()).hexdigest()[:16]
    with _CLASS_LOCK:
        if key in _CLASS_CACHE:
            return _CLASS_CACHE[key]
        file = cache_dir / f"class_text.{key}.npy" if cache_dir else None
        matrix = None
        if file is not None and file.is_file():
            try:
                matrix = np.load(file, allow_pickle=False)
            except (OSError, ValueError):
                matrix = None
            if matrix is not None and matrix.shape[0] != len(texts):
                matrix = None
        if matrix is None:
            matrix = l2_normalise(np.asarray(encode(list(texts)), dtype=np.float32))
            if file is not None:
                _save_npy(file, matrix)
        _CLASS_CACHE[key] = matrix
        return matrix


def _save_npy(file: Path, array: np.ndarray) -> None:
    """Write atomically; a read-only model folder just means no disk cache."""
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
        os.replace(tmp, file)
    except OSError:
        pass


def text_fingerprint(encoder: TextEncoder) -> str:
    """Identifies a text encoder's behaviour: its id, dim and the start of one probe vector."""
    probe = encoder.encode(["fusionrec class cache probe"])[0][:8]
    return f"{encoder.model_id}|{encoder.dim}|" + ",".join(f"{x:.4f}" for x in probe)


# --- timm (EfficientNet-Lite0) -------------------------------------------------------------------
class TimmImageEncoder(ImageEncoder):
    """An ImageNet classifier from a timm state dict; the text space is the zero-shot bridge, or a
    learned poster projector when `projector` names its file."""

    def __init__(
        self,
        folder: str | Path,
        device: Any,
        text_encoder: TextEncoder | None,
        batch_size: int = 32,
        projector: str | Path = "",
    ) -> None:
        import timm
        from safetensors.torch import load_file

        self.folder = Path(folder).expanduser()
        cfg_file, weights = self.folder / "config.json", self.folder / "model.safetensors"
        for f in (cfg_file, weights):
            if not f.is_file():
                raise FileNotFoundError(f"{f}: missing (run `fusionrec models prepare`)")
        self.config = json.loads(cfg_file.read_text(encoding="utf-8"))
        arch = self.config.get("architecture")
        if not arch:
            raise ValueError(f"{cfg_file}: no 'architecture' key")
        num_classes = int(self.config.get("num_classes", 1000))
        self.device, self.batch_size = str(device), batch_size
        self.model = timm.create_model(arch, pretrained=False, num_classes=num_classes)
        state = load_file(str(weights))
        try:
            self.model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ValueError(f"{weights}: weights do not fit {arch} ({str(exc)[:300]})") from None
        self.model.to(self.device).eval()
        names = self.config.get("class_names")
        if names is None and num_classes == 1000:
            self.class_names = imagenet_names()
            self.class_texts: tuple[str, ...] = imagenet_descriptions()
        elif names is not None and len(names) == num_classes:
            self.class_names = self.class_texts = tuple(names)
        else:
            raise ValueError(f"{cfg_file}: {num_classes} classes need a 'class_names' list of that length")
        self.transform, self.input_side = _timm_transform(self.config, self.model)
        self.dim = int(self.model.num_features)
        self.text_encoder = text_encoder
        self.text_dim = text_encoder.dim if text_encoder is not None else num_classes
        self.model_id = self.base_id = self.config.get("name") or self.folder.name  # base: without projector
        self._class_matrix: np.ndarray | None = None
        self.projector = self._load_projector(projector) if projector else None

    def _load_projector(self, path: str | Path) -> Any:
        """The poster projector for this encoder pair; the model id then names it (a new file re-ingests)."""
        from fusionrec.encoders.poster_projector import file_tag, load_projector

        if self.text_encoder is None:
            raise ValueError(f"{path}: a poster projector needs a text encoder (its target space)")
        module = load_projector(
            path, self.dim, self.text_dim, self.model_id, self.text_encoder.model_id, self.device
        )
        self.model_id = f"{self.model_id}+projector-{file_tag(path)}"
        return module

    def class_matrix(self) -> np.ndarray:
        """text_encoder(class descriptions), (n_classes, text_dim); computed once, cached on disk."""
        if self.text_encoder is None:
            raise RuntimeError(f"{self.model_id}: no text encoder given, so there is no text space")
        if self._class_matrix is None:
            self._class_matrix = class_text_matrix(
                self.class_texts,
                self.text_encoder.encode,
                f"{self.base_id}|{text_fingerprint(self.text_encoder)}",
                self.folder / "cache",
            )
        return self._class_matrix

    def _forward(
        self, batch: torch.Tensor, text: bool, probs: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        pooled = self.model.forward_head(self.model.forward_features(batch), pre_logits=True)
        p = None
        if probs or (text and self.projector is None):
            p = self.model.get_classifier()(pooled).float().softmax(-1)
        bridged = None
        if text and self.projector is not None:  # the learned poster projector, on unit native features
            bridged = self.projector(torch.nn.functional.normalize(pooled.float(), dim=-1))
        elif text:  # the zero-shot bridge (class probabilities themselves without a text encoder)
            bridged = (
                p if self.text_encoder is None else p @ torch.as_tensor(self.class_matrix(), device=p.device)
            )
        return pooled, bridged, p if probs else None

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """Text queries into the bridge's space: simply the text encoder."""
        if self.text_encoder is None:
            raise RuntimeError(f"{self.model_id}: no text encoder given, so there is no text space")
        return self.text_encoder.encode(list(texts))


def _timm_transform(config: dict[str, Any], model: Any) -> tuple[Any, int]:
    """The eval transform and the input side (the larger of height and width)."""
    import timm.data

    wanted = {
        k: config[k]
        for k in ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")
        if k in config
    }
    data_cfg = timm.data.resolve_data_config(wanted, model=model)
    side = max(int(x) for x in data_cfg["input_size"][-2:])
    return timm.data.create_transform(**data_cfg, is_training=False), side


# --- open_clip -----------------------------------------------------------------------------------
class ClipImageEncoder(ImageEncoder):
    """An open_clip model: images and texts in CLIP's joint space; zero-shot ImageNet labels."""

    def __init__(
        self, model: Any, preprocess: Any, tokenizer: Any, device: Any, model_id: str, batch_size: int = 32
    ) -> None:
        self.model, self.transform, self.tokenizer = model, preprocess, tokenizer
        self.device, self.batch_size, self.model_id = str(device), batch_size, model_id
        self.text_tower = ClipTextEncoder(model, tokenizer, self.device, model_id)
        self.dim = self.text_dim = self.text_tower.dim
        size = getattr(getattr(model, "visual", None), "image_size", 224)
        self.input_side = max(size) if isinstance(size, (tuple, list)) else int(size)
        self.class_names = imagenet_names()
        self._class_matrix: np.ndarray | None = None

    def class_matrix(self) -> np.ndarray:
        """CLIP text embeddings of "a photo of a {class}." for the ImageNet classes (cached)."""
        if self._class_matrix is None:
            prompts = [CLIP_PROMPT.format(n) for n in self.class_names]
            self._class_matrix = class_text_matrix(
                prompts, self.text_tower.encode, text_fingerprint(self.text_tower)
            )
        return self._class_matrix

    def _forward(
        self, batch: torch.Tensor, text: bool, probs: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        emb = self.model.encode_image(batch, normalize=True).float()
        if not probs:
            return emb, emb if text else None, None
        scale = float(self.model.logit_scale.exp()) if hasattr(self.model, "logit_scale") else 100.0
        p = (scale * emb @ torch.as_tensor(self.class_matrix(), device=emb.device).T).softmax(-1)
        return emb, emb if text else None, p

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """Texts through CLIP's text tower (the same space as `to_text_space`)."""
        return self.text_tower.encode(list(texts))


def open_image_encoder(
    source: str, device: Any = "cpu", text_encoder: TextEncoder | None = None, projector: str | Path = ""
) -> ImageEncoder:
    """The image encoder a source string names (see the module docstring); `projector`: a poster
    projector file for a timm encoder's text space ("" = the zero-shot bridge)."""
    device = str(device)
    if source.startswith(TIMM_PREFIX):
        return TimmImageEncoder(source[len(TIMM_PREFIX) :], device, text_encoder, projector=projector)
    if projector and is_open_clip(source):
        raise ValueError(
            f"models.poster_projector={str(projector)!r}: only a timm image encoder takes a poster "
            f"projector ({source} has its own image-text space)"
        )
    if is_open_clip(source):
        model, preprocess, tokenizer, model_id = load_open_clip(source, device)
        return ClipImageEncoder(model, preprocess, tokenizer, device, model_id)
    folder = Path(source).expanduser()
    if (folder / "open_clip_config.json").is_file():
        return open_image_encoder(OPEN_CLIP_LOCAL_PREFIX + str(folder), device, text_encoder, projector)
    if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
        return TimmImageEncoder(folder, device, text_encoder, projector=projector)
    raise ValueError(
        f"image encoder source {source!r}: expected timm:<folder>, open_clip:ARCH/TAG or open_clip-local:<folder>"
    )
