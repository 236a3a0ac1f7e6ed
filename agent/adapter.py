"""Which adapter an Agent loads and the settings it runs with.

`agent.adapter` names a folder, "shipped" (agent/adapters/smollm2-ranker, when it was trained on the
configured LLM) or "" (zero-shot). The adapter's recipe sets the prompt it was trained on
(`effective_config`); `load_adapter` puts its LoRA on a copy of the base model.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fusionrec.agent.checkpoint import adapter_settings, base_model
from fusionrec.config import Config


class AgentError(RuntimeError):
    """The agent cannot be built (bad adapter folder, unknown ranker or template)."""


SHIPPED = "shipped"
SHIPPED_ADAPTER = Path(__file__).resolve().parent / "adapters" / "smollm2-ranker"


def _base_name(source: str) -> str:
    return Path(str(source).rstrip("/")).name.lower()


def resolve_adapter(cfg: Config) -> tuple[Path | None, str]:
    """(adapter folder or None, why): `agent.adapter` as a folder; "shipped" = the adapter in
    agent/adapters/ when it was trained on this config's LLM (else zero-shot, and `why` says so)."""
    name = cfg.agent.adapter
    if not name:
        return None, "agent.adapter is empty: zero-shot"
    if name != SHIPPED:
        return Path(name).expanduser(), f"agent.adapter={name}"
    if not SHIPPED_ADAPTER.is_dir():
        return None, f"no shipped adapter at {SHIPPED_ADAPTER}: zero-shot"
    from fusionrec.models.registry import source

    base = base_model(SHIPPED_ADAPTER)
    mine = source(cfg, "llm")
    if _base_name(base) != _base_name(mine):
        return None, f"the shipped adapter is for {_base_name(base)}, the LLM is {_base_name(mine)}: zero-shot"
    return SHIPPED_ADAPTER, "the shipped adapter"


@dataclass
class AgentSettings:
    """The settings one Agent runs with: the config with its `agent` section replaced by a new one
    holding what the adapter's recipe sets (the caller's config is never changed)."""

    cfg: Config  # a shallow copy: a new `agent` section, the other sections shared with the caller's
    adapter: Path | None
    note: str  # why this adapter (or none)
    from_adapter: dict[str, Any]  # agent.<key> -> the value the adapter's recipe sets, where it differs


def effective_config(cfg: Config) -> AgentSettings:
    """Rank with the prompt the adapter was trained on: its recipe's template, budgets and scoring win."""
    adapter, note = resolve_adapter(cfg)
    sets: dict[str, Any] = {}
    if adapter is not None:
        try:
            trained = adapter_settings(adapter)
        except ValueError as exc:
            raise AgentError(str(exc)) from None
        sets = {k: v for k, v in trained.items() if v != getattr(cfg.agent, k)}
    agent = dataclasses.replace(cfg.agent, **sets)
    return AgentSettings(dataclasses.replace(cfg, agent=agent), adapter, note, sets)


def load_adapter(model: Any, folder: Path) -> Any:
    """A copy of `model` with the LoRA adapter in `folder` (the cached base model stays untouched)."""
    if not (folder / "adapter_config.json").is_file():
        return model
    from peft import PeftModel

    return PeftModel.from_pretrained(copy.deepcopy(model), str(folder)).eval()
