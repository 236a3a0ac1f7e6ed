"""FusionRec core: shared types, configuration, environment and the `fusionrec` CLI."""

import os

__version__ = "0.1.0"

# OpenMP threads that sleep when idle instead of spinning: with spinning threads, torch on 2 cores ran
# the LLM ~25x slower as soon as another process was busy (benchmarks/threads.py). Set before any
# fusionrec module imports torch; a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
