"""Fetch the official MovieLens zips when no local copy exists (never in offline mode)."""

from __future__ import annotations

import os
import shutil
import urllib.request
import zipfile
from pathlib import Path

from fusionrec.data.loaders import DataSourceError

URLS = {
    "movielens-100k": "https://files.grouplens.org/datasets/movielens/ml-100k.zip",
    "ml-latest-small": "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip",
}
ZIP_FOLDERS = {"movielens-100k": "ml-100k", "ml-latest-small": "ml-latest-small"}


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def not_found(name: str, looked: list[Path], hint: str) -> DataSourceError:
    where = ", ".join(str(p) for p in looked) or "(no shared data folder configured)"
    parts = [f"no local copy of {name} found (looked in: {where}).", hint]
    parts.append(
        f"Pass the folder with --source (e.g. `fusionrec data prepare {name} --source /path/to/{name}`) "
        "or set paths.shared_data=/path/to/shared/data (or $FUSIONREC_SHARED_DATA)."
    )
    return DataSourceError(" ".join(p for p in parts if p))


def fetch(name: str, raw_dir: Path, looked: list[Path], timeout: float = 60.0) -> Path:
    """Download and unpack the official zip for `name` under `raw_dir`; return the unpacked folder.

    Refuses in offline mode (HF_HUB_OFFLINE set) with a message naming where it looked.
    """
    if name not in URLS:
        raise not_found(name, looked, "This dataset has no download source.")
    target = raw_dir / ZIP_FOLDERS[name]
    if target.is_dir() and any(target.iterdir()):
        return target
    if offline():
        raise not_found(name, looked, f"Offline mode (HF_HUB_OFFLINE is set): not downloading {URLS[name]}.")
    raw_dir.mkdir(parents=True, exist_ok=True)
    zpath = raw_dir / f"{ZIP_FOLDERS[name]}.zip"
    tmp = zpath.with_suffix(".zip.part")
    print(f"downloading {URLS[name]} -> {zpath}")
    try:
        with urllib.request.urlopen(URLS[name], timeout=timeout) as resp, open(tmp, "wb") as out:
            shutil.copyfileobj(resp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise not_found(name, looked, f"Download of {URLS[name]} failed ({exc}).") from None
    os.replace(tmp, zpath)
    unpack = raw_dir / f".{ZIP_FOLDERS[name]}.unpack"
    shutil.rmtree(unpack, ignore_errors=True)
    with zipfile.ZipFile(zpath) as zf:
        for member in zf.namelist():  # refuse paths escaping the folder
            if member.startswith("/") or ".." in Path(member).parts:
                raise DataSourceError(f"{zpath}: unsafe path in zip: {member}")
        zf.extractall(unpack)
    inner = unpack / ZIP_FOLDERS[name]
    os.replace(inner if inner.is_dir() else unpack, target)
    shutil.rmtree(unpack, ignore_errors=True)
    return target
