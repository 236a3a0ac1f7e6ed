"""One typed loader for every settings file: nested dataclass sections read from TOML or YAML.

The app config (`fusionrec.config.Config`), the training recipes (`finetune.recipe.Recipe`) and the
recipe saved in each checkpoint (``config.yaml``) are all read here, with one coercion, strict
unknown-key errors that name the file and the key, and one override syntax: ``section.key=value``
(``retrieval.k=20``, ``train.max_steps=10``). Values given on the command line are strings and are
converted to the field's declared type; ``[a, b]`` / ``{"k": 1}`` are read as YAML (JSON works too).
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
import types
import typing
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from fusionrec.text import one_line

T = TypeVar("T")
Overrides = Sequence[str] | Mapping[str, Any]

OVERRIDE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+=")  # section.key=value (section.key.entry=value)
_OLD_SET = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+:")  # the retired `--set section.key:value` word
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


class ConfigError(ValueError):
    """A settings file or override names an unknown key or a value of the wrong type."""


def not_a_file_key(default: Any = "") -> Any:
    """A dataclass field filled in by code (e.g. where a recipe was read from), never by a file."""
    return dataclasses.field(default=default, metadata={"file_key": False})


def _fields(cls: Any) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.metadata.get("file_key", True)}


def is_override(word: str) -> bool:
    """Whether a command-line word is a ``section.key=value`` override."""
    return bool(OVERRIDE.match(word))


def reject_old_set(
    words: Sequence[str], error: type[ValueError] = ConfigError, sections: Collection[str] | None = None
) -> None:
    """One clear error for the retired ``--set section.key:value`` form (a ``section.key:value`` word
    counts when its section is among `sections`, or always when `sections` is None)."""
    for word in words:
        old = _OLD_SET.match(word) and (sections is None or word.split(".", 1)[0] in sections)
        if word == "--set" or word.startswith("--set=") or old:
            raise error(
                f"{word!r}: `--set KEY:VALUE` is gone; write overrides as section.key=value "
                "(e.g. train.max_steps=10)"
            )


def read_file(path: str | Path, error: type[ValueError] = ConfigError) -> dict[str, Any]:
    """The top-level mapping of a TOML or YAML file (by suffix); `error` names the file."""
    path = Path(path)
    if not path.is_file():
        raise error(f"file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix in {".yaml", ".yml"}:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise error(f"{path}: not valid YAML ({one_line(str(exc))})") from None
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise error(f"{path}: not valid TOML ({exc})") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping of sections at the top level")
    return data


def _parse_text(value: str, where: str, error: type[ValueError]) -> Any:
    import yaml

    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        raise error(f"{where}: cannot read {value!r} (expected [a, b] or {{key: value}})") from None


def coerce(value: Any, hint: Any, where: str, error: type[ValueError] = ConfigError) -> Any:
    """`value` (parsed from a file, or a command-line string) as the declared type `hint`."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):  # `X | None`: None stays None (a key left unset)
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None or len(inner) != 1:
            if value is None:
                return None
            raise error(f"{where}: unsupported type {hint}")
        return coerce(value, inner[0], where, error)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise error(f"{where}: expected true/false, got {value!r}")
    if hint is int:
        try:
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise ValueError
            number = float(value) if isinstance(value, float) else int(value)
            if number != int(number):
                raise ValueError
            return int(number)
        except (TypeError, ValueError, OverflowError):
            raise error(f"{where}: expected an integer, got {value!r}") from None
    if hint is float:
        try:
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise ValueError
            return float(value)
        except ValueError:
            raise error(f"{where}: expected a number, got {value!r}") from None
    if hint is str:
        if value is None:
            return ""
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise error(f"{where}: expected a string, got {value!r}")
        return str(value)
    if origin is list:
        if isinstance(value, str):
            text = value.strip()
            value = _parse_text(text, where, error) if text.startswith("[") else [
                v.strip() for v in text.split(",") if v.strip()
            ]
        if not isinstance(value, list):
            raise error(f"{where}: expected a list, got {value!r}")
        (etype,) = typing.get_args(hint)
        return [coerce(v, etype, f"{where}[{i}]", error) for i, v in enumerate(value)]
    if origin is dict:
        if isinstance(value, str):
            value = _parse_text(value, where, error)
        if not isinstance(value, dict):
            raise error(f"{where}: expected a mapping, got {value!r}")
        _, vtype = typing.get_args(hint)
        return {str(k): coerce(v, vtype, f"{where}.{k}", error) for k, v in value.items()}
    raise error(f"{where}: unsupported type {hint}")


def _unknown(cls: Any, source: str, prefix: str, key: str, error: type[ValueError]) -> ValueError:
    known = _fields(cls)
    if not prefix and all(dataclasses.is_dataclass(h) for h in known.values()):
        return error(f"{source}: unknown section [{key}] (known: {', '.join(known)})")
    return error(f"{source}: {prefix}{key}: unknown key (known: {', '.join(known)})")


def build(
    cls: type[T],
    values: Any,
    source: str,
    error: type[ValueError] = ConfigError,
    partial: bool = False,
    section: str = "",
) -> T:
    """A `cls` with its defaults, then `values` (a mapping, nested for nested dataclass fields).

    `source` names the file; errors read "FILE: section.key: ...". An unknown key is an error, unless
    `partial`: a typed view of part of a file (the keys `cls` declares are still checked).
    """
    prefix = f"{section}." if section else ""
    if not isinstance(values, dict):
        raise error(f"{source}: `{section or 'the top level'}` must be a mapping, got {values!r}")
    hints = _fields(cls)
    obj = cls()
    for key, value in values.items():
        key = str(key)
        if key not in hints:
            if partial:
                continue
            raise _unknown(cls, source, prefix, key, error)
        hint = hints[key]
        here = f"{source}: {prefix}{key}"
        if dataclasses.is_dataclass(hint):
            value = build(hint, value, source, error, partial, f"{prefix}{key}")
        else:
            value = coerce(value, hint, here, error)
        setattr(obj, key, value)
    return obj


def set_key(obj: Any, dotted: str, value: Any, source: str, error: type[ValueError] = ConfigError) -> None:
    """Set ``section.key`` (or ``section.key.entry`` of a mapping field) on `obj`, coerced."""
    parts = dotted.split(".")
    target, path, hint = obj, [], None
    for i, part in enumerate(parts):
        if isinstance(target, dict):  # an entry of a mapping field: section.weights.text=0.5
            if i != len(parts) - 1:
                raise error(f"{source}: {dotted}: too many parts")
            _, vtype = typing.get_args(hint)
            target[part] = coerce(value, vtype, f"{source}: {dotted}", error)
            return
        hints = _fields(type(target))
        if part not in hints:
            raise _unknown(type(target), source, "".join(f"{p}." for p in path), part, error)
        hint, path = hints[part], [*path, part]
        if i == len(parts) - 1:
            if dataclasses.is_dataclass(hint):
                raise error(f"{source}: {dotted}: is a section; set one of its keys ({dotted}.KEY=value)")
            setattr(target, part, coerce(value, hint, f"{source}: {dotted}", error))
            return
        if not (dataclasses.is_dataclass(hint) or typing.get_origin(hint) is dict):
            raise error(f"{source}: {dotted}: {'.'.join(path)} is a value, not a section")
        target = getattr(target, part)


def override_pairs(overrides: Overrides | None, error: type[ValueError] = ConfigError) -> list[tuple[str, Any]]:
    """``["train.lr=1e-4"]`` or ``{"train.lr": 1e-4}`` -> [("train.lr", value)]."""
    if not overrides:
        return []
    if isinstance(overrides, Mapping):
        return [(str(k), v) for k, v in overrides.items()]
    reject_old_set(overrides, error)
    pairs = []
    for word in overrides:
        if not is_override(word):
            raise error(f"override {word!r}: expected section.key=value")
        name, _, value = word.partition("=")
        pairs.append((name, value))
    return pairs


def as_words(overrides: Mapping[str, Any]) -> list[str]:
    """``{"train.lr": 0.01, "lora.target_modules": ["q_proj"]}`` -> ``["train.lr=0.01",
    'lora.target_modules=["q_proj"]']``: the command-line words that set the same values."""
    import json

    def text(v: Any) -> str:
        return json.dumps(v) if isinstance(v, list | dict) else str(v).lower() if isinstance(v, bool) else str(v)

    return [f"{k}={text(v)}" for k, v in overrides.items()]


def load(
    cls: type[T],
    path: str | Path | None = None,
    overrides: Overrides | None = None,
    error: type[ValueError] = ConfigError,
    partial: bool = False,
) -> T:
    """Defaults, then the file (TOML or YAML), then ``section.key=value`` overrides, in that order."""
    obj = build(cls, read_file(path, error), str(path), error, partial) if path else cls()
    for dotted, value in override_pairs(overrides, error):
        set_key(obj, dotted, value, "override", error)
    return obj


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """``{"section.key": value}`` of a (nested) dataclass, in field order."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        if not f.metadata.get("file_key", True):
            continue
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            out.update(flatten(value, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = value
    return out


def check_range(key: str, value: float, low: float, high: float) -> None:
    """ValueError "key=value: expected a number from low to high" unless low <= value <= high."""
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{key}={value!r}: expected a number from {low:g} to {high:g}")
