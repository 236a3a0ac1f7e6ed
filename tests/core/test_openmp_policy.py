"""OpenMP threads sleep when idle (benchmarks/threads.py: spinning threads ran the LLM ~25x slower
on 2 cores beside any busy process); a value the user set wins."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = "import fusionrec, os; print(os.environ['OMP_WAIT_POLICY'])"


def probe(env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_passive_unless_the_user_says_otherwise():
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert probe(env) == "PASSIVE"
    assert probe({**env, "OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"
