"""Image pixel bombs within the byte limit: refused with one line, quickly, with bounded memory.

The probe of the issue: a 12000x12000 PNG of a few hundred KB (far inside the 25 MB byte limit)
used to cost 3 GB per search and print Pillow's DecompressionBombWarning. It goes through the real
entry points: the agent's turn check and the UI's upload check (both `fusionrec.media.validate`),
and `fusionrec search --image FILE`, which validates before it opens any catalog.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from types import SimpleNamespace

import pytest

from fusionrec.config import REPO_ROOT, load_config
from fusionrec.types import Attachment, Turn
from tests.reliability.conftest import cli, error_line

REASON = "image too large (144.0 megapixels > limit 40 megapixels)"


def blank_png(path: Path, width: int, height: int) -> Path:
    """A black RGB PNG of any size, streamed row by row (the test never holds its pixels)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    z = zlib.compressobj(6)
    row = bytes(1 + 3 * width)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    path = blank_png(tmp_path_factory.mktemp("bomb") / "bomb.png", 12000, 12000)
    assert path.stat().st_size < 1_000_000
    return path


@pytest.fixture(scope="module")
def poster(tmp_path_factory) -> Path:
    from PIL import Image

    path = tmp_path_factory.mktemp("poster") / "poster.jpg"
    Image.radial_gradient("L").resize((300, 450)).convert("RGB").save(path)
    return path


def test_agent_and_ui_refuse_the_bomb_in_one_line(bomb, poster):
    from fusionrec.agent.agent import Agent
    from fusionrec.ui.uploads import check_uploads

    cfg = load_config(None, ["models.profile=tiny"])
    agent = SimpleNamespace(cfg=cfg)  # check_turn reads only the config: no models needed
    attached, reply = Agent.check_turn(agent, Turn("user", "like this", [Attachment("image", bomb)]))
    assert attached == []
    assert reply == f"I could not use the image you attached: {bomb}: {REASON}. Please attach another file."
    attached, reply = Agent.check_turn(agent, Turn("user", "like this", [Attachment("image", poster)]))
    assert reply is None and attached[0].validated

    checked = check_uploads([bomb, poster], max_bytes=cfg.agent.max_attachment_mb * 2**20)
    assert checked.errors == [f"bomb.png: {REASON}"]
    assert [a.path.name for a in checked.attachments] == ["poster.jpg"]


def test_the_entry_points_stay_fast_and_small_in_memory(bomb):
    """Agent check, two UI uploads and the CLI in one fresh process: its peak RSS barely moves."""
    code = (
        "import json, resource, sys, time\n"
        "from pathlib import Path\n"
        "from types import SimpleNamespace\n"
        "from fusionrec.agent.agent import Agent\n"
        "from fusionrec.cli import main\n"
        "from fusionrec.config import load_config\n"
        "from fusionrec.types import Attachment, Turn\n"
        "from fusionrec.ui.uploads import check_uploads\n"
        "peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "bomb, home = Path(sys.argv[1]), sys.argv[2]\n"
        "cfg = load_config(None, ['models.profile=tiny'])\n"
        "base, t0 = peak(), time.perf_counter()\n"
        "_, reply = Agent.check_turn(SimpleNamespace(cfg=cfg), Turn('user', 'x', [Attachment('image', bomb)]))\n"
        "errors = check_uploads([bomb, bomb], max_bytes=25 * 2**20).errors\n"
        "rc = main(['search', '--image', str(bomb), 'models.profile=tiny', f'paths.home={home}'])\n"
        "out = {'mb': peak() - base, 'seconds': time.perf_counter() - t0, 'rc': rc, 'errors': errors}\n"
        "print(json.dumps({**out, 'reply': reply}))\n"
    )
    home = bomb.parent / "home"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(bomb), str(home)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["rc"] == 2 and out["errors"] == [f"bomb.png: {REASON}"] * 2
    assert REASON in out["reply"]
    assert out["seconds"] < 10
    # before the limit: about 3 GB for one search, 6 GB for two uploads
    assert out["mb"] < 100, f"peak RSS grew by {out['mb']:.0f} MB"
    assert "DecompressionBomb" not in proc.stderr and "Traceback" not in proc.stderr


def test_cli_search_refuses_the_bomb_with_one_error_line(bomb, home):
    result = cli(home, "search", "--image", str(bomb))
    line = error_line(result)
    assert line.strip() == f"error: {bomb}: {REASON}"
    assert "DecompressionBomb" not in result.err
    assert result.seconds < 30  # a Python start and the header read: no catalog, no model
