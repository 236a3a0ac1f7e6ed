"""Image pixel limit: pixel bombs refused from the header, big images decoded at reduced size.

Memory is measured in a fresh child process (its own peak RSS before and after the step), since
the test process's high-water mark says nothing about one step. Images are made here with Pillow
(or, for the 12000x12000 PNG, streamed through zlib so that the test never holds its pixels).
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest

from fusionrec.config import REPO_ROOT, load_config
from fusionrec.media import (
    DEFAULT_MAX_MEGAPIXELS,
    MediaError,
    max_image_megapixels,
    set_max_image_megapixels,
    validate,
)
from fusionrec.models.config import ModelsConfig

BOMB_REASON = "image too large (144.0 megapixels > limit 40 megapixels)"


def blank_png(path: Path, width: int, height: int) -> Path:
    """A black RGB PNG of any size, written row by row (a few hundred KB for 12000x12000)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    z = zlib.compressobj(6)
    row = bytes(1 + 3 * width)  # filter byte + RGB pixels
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


def photo_jpeg(path: Path, width: int, height: int) -> Path:
    """A noisy colour JPEG (smooth noise, so that it compresses like a photo)."""
    from PIL import Image

    planes = [Image.effect_noise((width // 10, height // 10), 60).resize((width, height)) for _ in range(3)]
    Image.merge("RGB", planes).save(path, quality=90)
    return path


def run_child(code: str, *args: str, timeout: float = 120) -> tuple[dict, subprocess.CompletedProcess]:
    """Run `code` in a fresh Python (repo root, argv = args); its last stdout line is JSON."""
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc


PEAK = "import resource\npeak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MB\n"


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    path = blank_png(tmp_path_factory.mktemp("bomb") / "bomb.png", 12000, 12000)
    assert path.stat().st_size < 1_000_000  # small on disk, far inside the 25 MB byte limit
    return path


@pytest.fixture(scope="module")
def big_jpeg(tmp_path_factory) -> Path:
    path = photo_jpeg(tmp_path_factory.mktemp("big") / "big.jpg", 6000, 4000)
    assert path.stat().st_size < 25 * 2**20
    return path


@pytest.fixture
def limit():
    """Restores the process-wide pixel limit after a test that changes it."""
    before = max_image_megapixels()
    yield set_max_image_megapixels
    set_max_image_megapixels(before)


# --- refusal -------------------------------------------------------------------------------------
def test_bomb_is_refused_from_the_header_quickly_with_bounded_memory(bomb):
    code = PEAK + (
        "import json, sys, time\n"
        "from fusionrec.media import MediaError, validate\n"
        "from fusionrec.encoders.image import open_image\n"
        "import PIL.Image\n"
        "base, t0, errors = peak(), time.perf_counter(), []\n"
        "for check in (lambda p: validate(p, 'image'), open_image, lambda p: open_image(p, 896)):\n"
        "    try:\n"
        "        check(sys.argv[1])\n"
        "        errors.append(None)\n"
        "    except MediaError as exc:\n"
        "        errors.append(str(exc))\n"
        "print(json.dumps({'errors': errors, 'seconds': time.perf_counter() - t0, 'mb': peak() - base}))\n"
    )
    out, proc = run_child(code, str(bomb))
    assert out["errors"] == [f"{bomb}: {BOMB_REASON}"] * 3
    assert out["seconds"] < 5
    assert out["mb"] < 100, f"peak RSS grew by {out['mb']:.0f} MB"  # a full decode needs > 500 MB
    assert proc.stderr == ""  # no DecompressionBombWarning, no traceback


def test_just_over_the_limit_names_the_size_and_prints_no_warning(tmp_path):
    png = blank_png(tmp_path / "wide.png", 9000, 6000)  # 54 MP: over 40, under Pillow's 2x error
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(MediaError) as err:
            validate(png, "image")
    assert str(err.value) == f"{png}: image too large (9000x6000 = 54.0 megapixels > limit 40 megapixels)"
    assert not [w for w in seen if "DecompressionBomb" in type(w.message).__name__]


def test_limit_is_configurable_and_pillow_follows_it(tmp_path, limit):
    from PIL import Image

    from fusionrec.encoders.image import open_image

    assert ModelsConfig().max_image_megapixels == DEFAULT_MAX_MEGAPIXELS == 40
    assert load_config(None, ["models.max_image_megapixels=2.5"]).models.max_image_megapixels == 2.5
    jpg = photo_jpeg(tmp_path / "photo.jpg", 1200, 1000)
    assert validate(jpg, "image").validated
    limit(1)
    assert Image.MAX_IMAGE_PIXELS == 1_000_000
    reason = "image too large (1200x1000 = 1.2 megapixels > limit 1 megapixels)"
    for check in (lambda p: validate(p, "image"), open_image):
        with pytest.raises(MediaError) as err:
            check(jpg)
        assert str(err.value) == f"{jpg}: {reason}"
    limit(0.5)  # 2.4x the limit: Pillow's own DecompressionBombError, converted
    with pytest.raises(MediaError) as err:
        validate(jpg, "image")
    assert str(err.value) == f"{jpg}: image too large (1.2 megapixels > limit 0.5 megapixels)"
    with pytest.raises(ValueError):
        limit(0)


def test_scaled_validation_still_finds_a_truncated_jpeg(big_jpeg, tmp_path):
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(big_jpeg.read_bytes()[: big_jpeg.stat().st_size // 2])
    with pytest.raises(MediaError, match="corrupt or truncated image"):
        validate(cut, "image")


# --- reduced decoding ----------------------------------------------------------------------------
def test_open_image_decodes_big_images_at_reduced_size(big_jpeg, tmp_path):
    from PIL import Image

    from fusionrec.encoders.image import open_image

    small = open_image(big_jpeg, min_side=896)
    assert small.mode == "RGB" and min(small.size) in (895, 896) and small.size[0] > small.size[1]
    png = tmp_path / "poster.png"
    Image.new("RGB", (1000, 1500), (200, 30, 30)).save(png)
    assert open_image(png, min_side=896).size in {(896, 1344), (896, 1343), (895, 1344)}
    assert open_image(png, min_side=1000).size == (1000, 1500)  # within `min_side`: untouched


def test_big_jpeg_is_validated_and_encoded_with_bounded_memory(tiny_cfg, big_jpeg, tmp_path):
    code = PEAK + (
        "import json, sys\n"
        "import numpy as np, torch\n"
        "from fusionrec.config import load_config\n"
        "from fusionrec import encoders\n"
        "from fusionrec.encoders.image import open_image\n"
        "from fusionrec.media import validate\n"
        "cfg = load_config(None, ['models.profile=tiny', 'models.device=cpu'])\n"
        "cfg.paths.home = sys.argv[1]\n"
        "enc = encoders.load_image_encoder(cfg)\n"
        "enc.encode([sys.argv[3]])  # warm up: first-call allocations are not the image's\n"
        "base = peak()\n"
        "validate(sys.argv[2], 'image')\n"
        "after_validate = peak() - base\n"
        "vec = enc.encode([sys.argv[2]])[0]\n"
        "after_encode = peak() - base\n"
        "with torch.inference_mode():  # the old path: a full decode\n"
        "    full = enc._forward(enc._preprocess(open_image(sys.argv[2]))[None], False, False)[0]\n"
        "full = full[0].float().numpy()\n"
        "cos = float(vec @ full / np.linalg.norm(full))\n"
        "print(json.dumps({'validate': after_validate, 'encode': after_encode, 'cos': cos}))\n"
    )
    warm = photo_jpeg(tmp_path / "warm.jpg", 92, 138)
    out, _ = run_child(code, str(tiny_cfg.home), str(big_jpeg), str(warm), timeout=300)
    # a full decode of 6000x4000 costs ~180 MB (96 MB decoded + the RGB copy)
    assert out["validate"] < 60, f"validation grew peak RSS by {out['validate']:.0f} MB"
    assert out["encode"] < 80, f"encoding grew peak RSS by {out['encode']:.0f} MB"
    assert out["cos"] > 0.995


def test_normal_poster_gives_the_same_vector_as_a_full_decode(tiny_cfg, shared_data):
    from PIL import Image, ImageOps

    from fusionrec import encoders

    enc = encoders.load_image_encoder(tiny_cfg)
    posters = sorted((shared_data / "movielens-100k-posters" / "posters").glob("*.jpg"))[:3]
    if not posters:
        pytest.skip("no posters in the shared data")
    got = enc.encode(posters)
    import torch

    with torch.inference_mode():
        ref = []
        for p in posters:
            with Image.open(p) as img:  # the decode before the pixel limit existed
                rgb = ImageOps.exif_transpose(img).convert("RGB")
            ref.append(enc._forward(enc._preprocess(rgb)[None], False, False)[0][0].float().numpy())
    ref = np.stack(ref)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    np.testing.assert_allclose(got, ref, atol=1e-6)
