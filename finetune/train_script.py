"""Entry point for `accelerate launch`: the same recipe on one CPU, two CPU processes or many GPUs.

    accelerate launch --config_file finetune/accelerate/cpu_2proc.yaml finetune/train_script.py \\
        --recipe finetune/recipes/tiny_smoke.yaml models.profile=tiny
    accelerate launch --config_file finetune/accelerate/deepspeed_zero2.yaml finetune/train_script.py --recipe stage2_lora

Arguments: --recipe, --output, --resume and section.key=value words, as for `fusionrec finetune`:
words of a recipe section (train.max_steps=10) override the recipe, the others the FusionRec config.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# Run as a script by accelerate: import the installed fusionrec package, not this folder's modules by bare name.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def main(argv: list[str] | None = None) -> int:
    from fusionrec import env, settings
    from fusionrec.config import load_config
    from fusionrec.finetune.recipe import OVERRIDE_SECTIONS, RecipeError, load_recipe
    from fusionrec.finetune.run import print_result
    from fusionrec.finetune.trainer import Trainer

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description="FusionRec finetune worker (for accelerate launch)")
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--config", default="")
    parser.add_argument("--output", default="")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--stop-at", type=int, default=0, help="stop after this step (resume later)")
    parser.add_argument("--summary", default="", help="write a JSON summary here (main process)")
    try:
        settings.reject_old_set(argv, RecipeError)
    except RecipeError as exc:
        parser.error(str(exc))
    args, words = parser.parse_known_args(argv)
    bad = [a for a in words if not settings.is_override(a)]
    if bad:
        parser.error(f"unrecognized arguments: {' '.join(bad)} (overrides look like section.key=value)")
    mine = [a for a in words if a.split(".", 1)[0] in OVERRIDE_SECTIONS]  # the recipe's (train.lr=...)
    cfg = load_config(args.config or None, [a for a in words if a not in mine])
    env.configure(offline=cfg.models.profile != "online")
    recipe = load_recipe(args.recipe, mine)
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
