"""FusionRec core: shared types, configuration, environment and the `fusionrec` CLI."""

import os

__version__ = "0.1.0"

# OpenMP threads spin briefly, then sleep, while they wait: GNU OpenMP's default spin (300,000) made
# torch on 2 cores decode ~5x slower beside one busy process, sleeping at once (PASSIVE) 1.6x slower
# on idle cores; 10,000 keeps idle speed and halves the loss (benchmarks/threads.py). Set before any
# fusionrec module imports torch; a value the user set is kept.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")
