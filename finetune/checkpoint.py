"""Checkpoints: a folder the agent can load, plus what `--resume` needs to continue exactly.

Layout of a checkpoint folder (``<output>/last`` and ``<output>/best``)::

    adapter_config.json, adapter_model.safetensors   peft LoRA adapter (stage 2; absent in stage 1)
    projectors.safetensors, projectors.json           agent.projector.Projectors
    cross_fusion.safetensors                          retrieval.fusion.CrossModalFusion (if trained)
    config.yaml                                       the recipe + the base model it was trained on
    trainer_state.json                                step, data position, best metric, scheduler, RNG (python, numpy)
    optimizer.safetensors, optimizer.json             AdamW moments (tensors) and param groups (JSON)
    rng.safetensors                                   torch RNG states (CPU, CUDA)

Everything is written into a temporary folder that replaces the old one by a rename, so a crash
never leaves a half-written checkpoint. Tensors are safetensors; nothing is pickled.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE_FILE = "trainer_state.json"
CONFIG_FILE = "config.yaml"
OPTIM_TENSORS = "optimizer.safetensors"
OPTIM_JSON = "optimizer.json"
RNG_FILE = "rng.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
FUSION_FILE = "cross_fusion.safetensors"


class CheckpointError(FileNotFoundError):
    """A checkpoint folder is missing or incomplete; the message names the path."""


def require(folder: str | Path, *files: str) -> Path:
    """The folder, or CheckpointError naming what is missing."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint not found: {folder} (no such folder)")
    for name in files:
        if not (folder / name).is_file():
            raise CheckpointError(f"checkpoint {folder} is incomplete: {folder / name} is missing")
    return folder


# --- RNG -------------------------------------------------------------------------------------------
def rng_state() -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(JSON-able python/numpy states, torch states as tensors)."""
    py = random.getstate()
    np_state = np.random.get_state()
    plain = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
    }
    tensors = {"torch_cpu": torch.random.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = s
    return plain, tensors


def set_rng_state(plain: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    py = plain["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = plain["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    torch.random.set_rng_state(tensors["torch_cpu"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("torch_cuda_")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


# --- optimizer -------------------------------------------------------------------------------------
def optimizer_to_files(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split `optimizer.state_dict()` into tensors (safetensors) and plain values (JSON)."""
    tensors: dict[str, torch.Tensor] = {}
    plain_state: dict[str, dict[str, Any]] = {}
    for idx, per_param in state["state"].items():
        for name, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                plain_state.setdefault(str(idx), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "plain_state": plain_state}


def optimizer_from_files(tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        idx, _, name = key.partition(".")
        state.setdefault(int(idx), {})[name] = value
    for idx, values in plain.get("plain_state", {}).items():
        state.setdefault(int(idx), {}).update(values)
    return {"state": state, "param_groups": plain["param_groups"]}


# --- save / load -------------------------------------------------------------------------------------
def save_checkpoint(
    folder: Path,
    *,
    llm: Any,
    projectors: Any,
    fusion: Any,
    config_text: str,
    state: dict[str, Any],
    optimizer: Any = None,
    collab: dict[str, Any] | None = None,
    extras: tuple[Any, ...] = (),
) -> Path:
    """Write a complete checkpoint atomically (see the module docstring); each of `extras` (the
    prior, the residual weights) writes its own files through `.save(folder)`."""
    from safetensors.torch import save_file

    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if hasattr(llm, "peft_config"):
        llm.save_pretrained(str(tmp))
    projectors.save(tmp)
    if fusion is not None:
        from fusionrec.retrieval.fusion import save_cross_fusion

        save_cross_fusion(fusion, tmp / FUSION_FILE)
    if collab:
        from fusionrec.retrieval.collaborative.bpr import TABLE_FILE, save_table

        save_table(collab, tmp / TABLE_FILE)
    for extra in extras:
        extra.save(tmp)
    (tmp / CONFIG_FILE).write_text(config_text, encoding="utf-8")
    plain_rng, torch_rng = rng_state()
    if optimizer is not None:
        tensors, plain = optimizer_to_files(optimizer.state_dict())
        save_file(tensors, str(tmp / OPTIM_TENSORS))
        (tmp / OPTIM_JSON).write_text(json.dumps(plain, indent=1), encoding="utf-8")
    save_file(torch_rng, str(tmp / RNG_FILE))
    (tmp / STATE_FILE).write_text(json.dumps({**state, "rng": plain_rng}, indent=1), encoding="utf-8")
    old = folder.with_name(f".{folder.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def read_state(folder: str | Path) -> dict[str, Any]:
    folder = require(folder, STATE_FILE)
    try:
        return json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{folder / STATE_FILE}: not valid JSON ({exc})") from None


def load_adapter_weights(llm: Any, folder: Path) -> None:
    """Load a saved LoRA adapter into an already peft-wrapped model (same config)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    require(folder, ADAPTER_CONFIG, ADAPTER_WEIGHTS)
    result = set_peft_model_state_dict(llm, load_file(str(folder / ADAPTER_WEIGHTS)))
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise CheckpointError(f"{folder / ADAPTER_WEIGHTS}: keys that do not fit the model: {unexpected[:3]}")


def load_optimizer(optimizer: Any, folder: Path) -> None:
    from safetensors.torch import load_file

    require(folder, OPTIM_TENSORS, OPTIM_JSON)
    plain = json.loads((folder / OPTIM_JSON).read_text(encoding="utf-8"))
    optimizer.load_state_dict(optimizer_from_files(load_file(str(folder / OPTIM_TENSORS)), plain))


def restore_rng(folder: Path, state: dict[str, Any]) -> None:
    from safetensors.torch import load_file

    require(folder, RNG_FILE)
    set_rng_state(state["rng"], load_file(str(folder / RNG_FILE)))
