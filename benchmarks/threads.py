"""Torch threads on this machine: the LLM's prompt read and per-token decode, alone and two at once.

For each OpenMP waiting setting (GNU OpenMP's default: waiting threads spin 300,000 times before they
sleep; FusionRec's GOMP_SPINCOUNT=10000, set by `import fusionrec` unless the variable is set; and
OMP_WAIT_POLICY=PASSIVE: they sleep at once) and each thread count (1 .. cores) it runs `--sessions` worker processes at the same time (1 = one chat; 2 = two turns served at
once, `ui.concurrency = 2`, or a chat beside any other busy program), each reading a `--prompt`-token
prompt and decoding `--tokens` tokens with the KV cache, with the configured LLM (SmolLM2-135M
offline). The ratio column compares each row with one thread, same policy and sessions. Decides the
defaults: the spin count, and `agent.torch_threads = 0` = all cores for one chat, cores / ui.concurrency
when serving (`ui.app.serving_threads`).

Usage: python benchmarks/threads.py [--sessions 1 2] [--prompt 600] [--tokens 30]
       [--out benchmarks/results/threads.json] [section.key=value ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# this folder holds retrieval.py too: import the library from the install, not from here
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


POLICIES = {  # name -> OpenMP environment of the workers ("" = unset: the library's default)
    "gomp": {"OMP_WAIT_POLICY": "", "GOMP_SPINCOUNT": ""},
    "spin10k": {"OMP_WAIT_POLICY": "", "GOMP_SPINCOUNT": "10000"},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": ""},
}


def worker(threads: int, prompt: int, tokens: int, overrides: list[str]) -> dict[str, float]:
    """Load the LLM, then time one prompt read and `tokens` cached decode steps."""
    import torch

    from fusionrec import env
    from fusionrec.cli import resolve_config
    from fusionrec.models import registry

    cfg = resolve_config("", overrides)
    env.configure(offline=cfg.models.profile != "online")
    torch.set_num_threads(threads)
    model, _ = registry.load_llm(cfg)
    ids = torch.randint(100, 1000, (1, prompt), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model(input_ids=ids[:, :16])  # warm-up
        t0 = time.perf_counter()
        out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
        read = time.perf_counter() - t0
        cache, nxt = out.cache, out.logits[:, -1].argmax(-1, keepdim=True)
        t0 = time.perf_counter()
        for _ in range(tokens):
            out = model(input_ids=nxt, cache=cache, use_cache=True, logits_to_keep=1)
            cache, nxt = out.cache, out.logits[:, -1].argmax(-1, keepdim=True)
        decode = (time.perf_counter() - t0) / tokens
    return {"prompt_s": read, "decode_ms_per_token": 1000 * decode}


def run(policy: str, threads: int, sessions: int, args: argparse.Namespace, overrides: list[str]) -> dict:
    """`sessions` workers started at once (the model loads take a second, the timed work ~5 s)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(threads),
           "--prompt", str(args.prompt), "--tokens", str(args.tokens), *overrides]  # fmt: skip
    env = {**os.environ, **POLICIES[policy]}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env) for _ in range(sessions)]
    rows = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    return {
        "policy": policy,
        "threads": threads,
        "sessions": sessions,
        "prompt_s": max(r["prompt_s"] for r in rows),
        "decode_ms_per_token": max(r["decode_ms_per_token"] for r in rows),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--prompt", type=int, default=600, help="prompt tokens (a ranking prompt is ~450-700)")
    parser.add_argument("--tokens", type=int, default=30, help="decode steps (an explanation is ~20-40)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "threads.json"))
    parser.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    args, overrides = parser.parse_known_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.prompt, args.tokens, overrides)))
        return 0
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0]
    rows = [
        run(p, t, s, args, overrides) for p in POLICIES for s in args.sessions for t in range(1, cores + 1)
    ]
    print(f"{'policy':>8s} {'sessions':>8s} {'threads':>8s} {'prompt s':>9s} {'ms/token':>9s} {'vs 1 thread':>12s}")
    for r in rows:
        one = next(x for x in rows if (x["policy"], x["sessions"], x["threads"]) == (r["policy"], r["sessions"], 1))
        r["decode_vs_one_thread"] = r["decode_ms_per_token"] / one["decode_ms_per_token"]
        print(f"{r['policy']:>8s} {r['sessions']:8d} {r['threads']:8d} {r['prompt_s']:9.2f} "
              f"{r['decode_ms_per_token']:9.1f} {r['decode_vs_one_thread']:11.2f}x")  # fmt: skip
    result = {
        "command": " ".join(["python benchmarks/threads.py", *(argv if argv is not None else sys.argv[1:])]),
        "cpu_count": cores,
        "load_before": load,
        "load_after": os.getloadavg()[0],
        "rows": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"load average {load:.2f} -> {result['load_after']:.2f}; results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
