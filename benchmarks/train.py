"""Training benchmark: stage 1 (alignment) + stage 2 (LoRA + projectors) on ML-100k with the real LLM.

Runs the shipped recipes `stage1_align` then `stage2_lora` (stage 2 starts from stage 1's
projectors) on a user subset, sized to a time budget, and reports on the SAME validation candidates:

- popularity (training-interaction counts) — the baseline to beat;
- the untrained model (fresh projectors, no LoRA: what the agent does without an adapter);
- after stage 1 (aligned projectors, no LoRA) and after stage 2 (LoRA + projectors);

plus training throughput (examples/s, tokens/s, per stage) and peak memory (ru_maxrss).
Prints a table and writes benchmarks/results/train.json.

Usage: python benchmarks/train.py [--users 200] [--val-users 50] [--stage1-steps 50] [--stage2-steps 32]
       [--home DIR] [--out benchmarks/results/train.json] [section.key=value ...]
Needs the offline models prepared (`fusionrec models prepare --offline`) in the home's models folder;
ML-100k and ReDial are prepared there when missing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run(args: argparse.Namespace, overrides: list[str]) -> dict:
    import torch

    from fusionrec import env
    from fusionrec.config import load_config
    from fusionrec.data.prepare import prepare_dataset
    from fusionrec.finetune.recipe import load_recipe
    from fusionrec.finetune.run import train
    from fusionrec.finetune.trainer import peak_rss_mb

    cfg = load_config(args.config or None, [*(["paths.home=" + args.home] if args.home else []), *overrides])
    env.configure(offline=cfg.models.profile != "online")
    for name in ("movielens-100k", "redial"):
        if not (cfg.data_dir / name / "items.jsonl").is_file():
            prepare_dataset(cfg, name, verbose=False)
    out_root = cfg.checkpoints_dir / "bench-train"
    common = {
        "data.max_users": args.users,
        "data.val_users": args.val_users,
        "train.mixed_precision": args.precision,
        "train.cpu_threads": args.threads,
    }
    t0 = time.perf_counter()
    s1 = load_recipe("stage1_align", {**common, "train.max_steps": args.stage1_steps})
    r1 = train(cfg, s1, str(out_root / "stage1"), progress=True)
    t1 = time.perf_counter()
    s2 = load_recipe(
        "stage2_lora",
        {
            **common,
            "train.max_steps": args.stage2_steps,
            "train.lr": args.stage2_lr,
            "train.projector_lr": args.stage2_lr,
            "train.warmup_steps": max(1, args.stage2_steps // 10),
            "train.eval_every": args.stage2_steps,
            "train.save_every": args.stage2_steps,
            "model.init_from": str(r1.last_dir),
        },
    )
    r2 = train(cfg, s2, str(out_root / "stage2"), progress=True)
    t2 = time.perf_counter()

    def metrics(e: dict) -> dict:
        return {k: round(float(e[k]), 4) for k in ("hr@1", "hr@10", "ndcg@10", "loss") if k in e}

    untrained = r1.evals[0]
    after1 = r2.evals[0]
    after2 = r2.evals[-1]
    return {
        "model": cfg.models.llm or f"{cfg.models.profile} profile default (SmolLM2-135M-Instruct)",
        "dataset": "movielens-100k (leave-one-out by time, 20 candidates: target + 19 random unrated)",
        "validation_examples": int(after2.get("n", 0)),
        "users": args.users,
        "validation": {
            "popularity": metrics(r2.popularity),
            "untrained (fresh projectors, no LoRA)": metrics(untrained),
            "after stage 1 (aligned projectors)": metrics(after1),
            "after stage 2 (LoRA + projectors)": metrics(after2),
        },
        "training": {
            "stage1": {
                **{k: round(v, 3) for k, v in r1.throughput.items()},
                "steps": r1.steps,
                "loss_first": round(r1.losses[0], 4),
                "loss_last": round(r1.losses[-1], 4),
                "wall_s": round(t1 - t0, 1),
                "data": r1.data,
            },
            "stage2": {
                **{k: round(v, 3) for k, v in r2.throughput.items()},
                "steps": r2.steps,
                "loss_first": round(r2.losses[0], 4),
                "loss_last": round(r2.losses[-1], 4),
                "task_losses_first_last": [r2.task_losses[0], r2.task_losses[-1]],
                "wall_s": round(t2 - t1, 1),
                "data": r2.data,
            },
        },
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "checkpoints": {"stage1": str(r1.last_dir), "stage2_best": str(r2.best_dir or r2.last_dir)},
        "settings": {
            **common,
            "stage1_steps": args.stage1_steps,
            "stage2_steps": args.stage2_steps,
            "stage2_lr": args.stage2_lr,
        },
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "device": "cuda" if torch.cuda.is_available() else "cpu",
        },
        "wall_s": round(t2 - t0, 1),
    }


def print_table(res: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(120, Console().width))
    t = Table(title=f"validation on {res['validation_examples']} users (same candidates for every row)")
    for col in ("model", "HR@1", "HR@10", "NDCG@10", "loss"):
        t.add_column(col, justify="left" if col == "model" else "right")
    for name, m in res["validation"].items():
        t.add_row(name, *(f"{m[k]:.3f}" if k in m else "-" for k in ("hr@1", "hr@10", "ndcg@10", "loss")))
    console.print(t)
    t = Table(title=f"training throughput (peak RSS {res['peak_rss_mb']:.0f} MiB)")
    for col in (
        "stage",
        "steps",
        "examples",
        "examples/s",
        "tokens/s",
        "train s",
        "wall s",
        "loss first -> last",
    ):
        t.add_column(col, justify="right")
    for stage, s in res["training"].items():
        t.add_row(
            stage,
            str(s["steps"]),
            str(s["examples"]),
            f"{s['examples_per_s']:.2f}",
            f"{s['tokens_per_s']:.0f}",
            f"{s['train_seconds']:.0f}",
            f"{s['wall_s']:.0f}",
            f"{s['loss_first']:.3f} -> {s['loss_last']:.3f}",
        )
    console.print(t)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    overrides = [a for a in argv if re.match(r"^[a-z_]+\.[a-z_]+=", a)]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="")
    p.add_argument(
        "--home", default="", help="paths.home (its models/ must hold the prepared offline models)"
    )
    p.add_argument("--users", type=int, default=200, help="users sampled for training and validation")
    p.add_argument("--val-users", type=int, default=50, help="validation examples")
    p.add_argument("--stage1-steps", type=int, default=50)
    p.add_argument("--stage2-steps", type=int, default=32)
    p.add_argument("--stage2-lr", type=float, default=1e-3, help="stage 2 LoRA and projector learning rate")
    p.add_argument(
        "--precision", default="bf16", help="train.mixed_precision (bf16 needs AMX/AVX512-BF16 or a GPU)"
    )
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a busy CPU)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "train.json"))
    args = p.parse_args([a for a in argv if a not in overrides])
    res = run(args, overrides)
    print_table(res)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
