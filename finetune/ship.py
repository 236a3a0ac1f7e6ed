"""`fusionrec finetune ship`: copy what the agent needs from a checkpoint into a small adapter folder.

Kept: the LoRA adapter, the projectors, the collaborative item table, the prior (BPR / SASRec /
popularity) and the residual weights, the recipe (config.yaml) and the run's metrics.csv. Left out:
the optimizer and RNG state (resume only). The folder must stay under `MAX_BYTES` (the one binary the
repository allows); its model card (README.md) is written by hand beside the files.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from fusionrec.finetune import checkpoint as ckpt

MAX_BYTES = 10 * 2**20
KEEP = (
    ckpt.ADAPTER_CONFIG,
    ckpt.ADAPTER_WEIGHTS,
    "projectors.safetensors",
    "projectors.json",
    "collab.safetensors",
    "prior.json",
    "bpr.safetensors",
    "bpr.json",
    "sasrec.safetensors",
    "sasrec.json",
    "residual.json",
    "residual_dialogue.json",
    "conversation_prior.json",
    ckpt.CONFIG_FILE,
)


class ShipError(ValueError):
    """The checkpoint cannot be shipped (missing files, too large); the message says which."""


def ship(checkpoint: str | Path, output: str | Path, max_bytes: int = MAX_BYTES) -> Path:
    """Copy the inference files of `checkpoint` (and its run's metrics.csv) into `output`."""
    src = ckpt.require(checkpoint, ckpt.CONFIG_FILE, "projectors.safetensors")
    out = Path(output).expanduser()
    files = [src / name for name in KEEP if (src / name).is_file()]
    metrics = src.parent / "metrics.csv"
    if metrics.is_file():
        files.append(metrics)
    size = sum(f.stat().st_size for f in files)
    if size > max_bytes:
        raise ShipError(
            f"{src}: the adapter files take {size / 2**20:.1f} MiB, over {max_bytes / 2**20:.0f} MiB"
        )
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():
        if old.is_file() and old.name != "README.md":
            old.unlink()
    for f in files:
        shutil.copy2(f, out / f.name)
    recipe = out / ckpt.CONFIG_FILE  # name the base model, not its folder on the training machine
    recipe.write_text(
        re.sub(
            r"(?m)^(\s*base_model:\s*)(\S+)$",
            lambda m: m.group(1) + Path(m.group(2)).name,
            recipe.read_text(),
        ),
        encoding="utf-8",
    )
    cfg_path = out / ckpt.ADAPTER_CONFIG
    if cfg_path.is_file():
        data = json.loads(cfg_path.read_text(encoding="utf-8"))
        data["base_model_name_or_path"] = Path(str(data.get("base_model_name_or_path") or "")).name
        cfg_path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out
