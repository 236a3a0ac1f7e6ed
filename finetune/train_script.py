"""Entry point for `accelerate launch`: the same recipe on one CPU, two CPU processes or many GPUs.

    accelerate launch --config_file finetune/accelerate/cpu_2proc.yaml finetune/train_script.py \\
        --recipe finetune/recipes/tiny_smoke.yaml models.profile=tiny
    accelerate launch --config_file finetune/accelerate/deepspeed_zero2.yaml finetune/train_script.py --recipe stage2_lora

Arguments: --recipe, --output, --resume, --set SECTION.KEY:VALUE (recipe) and trailing
section.key=value words (FusionRec config), as for `fusionrec finetune`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script by accelerate


def main(argv: list[str] | None = None) -> int:
    from finetune.recipe import load_recipe
    from finetune.run import parse_sets, print_result
    from finetune.trainer import Trainer
    from fusionrec import env
    from fusionrec.config import load_config

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description="FusionRec finetune worker (for accelerate launch)")
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--config", default="")
    parser.add_argument("--output", default="")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--stop-at", type=int, default=0, help="stop after this step (resume later)")
    parser.add_argument("--summary", default="", help="write a JSON summary here (main process)")
    args, overrides = parser.parse_known_args(argv)
    bad = [a for a in overrides if not re.match(r"^[a-z_]+\.[a-z_]+=", a)]
    if bad:
        parser.error(
            f"unrecognized arguments: {' '.join(bad)} (config overrides look like section.key=value)"
        )
    cfg = load_config(args.config or None, overrides)
    env.configure(offline=cfg.models.profile != "online")
    recipe = load_recipe(args.recipe, parse_sets(args.set))
    trainer = Trainer(cfg, recipe, args.output, resume=args.resume)
    result = trainer.train(stop_at=args.stop_at or None)
    if trainer.main:
        print_result(result, recipe)
        if args.summary:
            Path(args.summary).write_text(
                json.dumps(
                    {
                        "world_size": trainer.world,
                        "steps": result.steps,
                        "losses": result.losses,
                        "evals": result.evals,
                        "throughput": result.throughput,
                        "last_dir": str(result.last_dir),
                    },
                    indent=2,
                ),
                encoding="utf-8",
            )
    trainer.end()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
