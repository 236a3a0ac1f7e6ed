"""OpenMP threads spin briefly before they sleep (benchmarks/threads.py: GNU OpenMP's long spin made
the LLM decode ~5x slower on 2 cores beside one busy process); a value the user set wins."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = "import fusionrec, os; print(os.environ['GOMP_SPINCOUNT'])"


def probe(env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_short_spin_unless_the_user_says_otherwise():
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    assert probe(env) == "10000"
    assert probe({**env, "GOMP_SPINCOUNT": "300000"}) == "300000"
