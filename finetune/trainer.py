"""The training loop: one readable loop for both stages, on one CPU or many GPUs through accelerate.

Per optimizer step: `grad_accum` micro-batches per process, each of one task drawn with probability
proportional to `tasks.weights` (seeded by step and micro-batch index, so every process agrees on
the plan); examples come from per-task streams reshuffled every epoch with the seed; gradients are
synchronised on the last micro-batch only; AdamW with warmup + cosine decay; gradient clipping.
Every `log_every` steps the losses, learning rate, throughput and curriculum go to
``metrics.csv`` and TensorBoard (``tb/``); every `eval_every` steps the verbalizer ranks the
validation candidates (HR@1, NDCG@10, loss) and the best checkpoint is kept in ``best/``; every
`save_every` steps ``last/`` is written with everything `--resume` needs to continue exactly.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import json
import logging
import math
import random
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from finetune import checkpoint as ckpt
from finetune.data import Datasets, load_datasets, open_retriever
from finetune.encode import ExampleEncoder, curriculum
from finetune.features import feature_dims, item_vectors
from finetune.recipe import Recipe
from finetune.tasks import RecModel, collate, hr_ndcg, ranks_of_targets
from fusionrec.config import Config
from fusionrec.types import Interaction
from retrieval.collaborative import TABLE_FILE, collab_table, load_table, train_bpr, with_collab
from retrieval.loo import LOOExample
from retrieval.splits import id_key

log = logging.getLogger(__name__)

CSV_FIELDS = [
    "step",
    "loss",
    "loss_ranking",
    "loss_dialogue",
    "loss_explanation",
    "loss_alignment",
    "loss_fusion",
    "lr",
    "grad_norm",
    "p_hybrid",
    "examples",
    "tokens",
    "examples_per_s",
    "tokens_per_s",
    "elapsed_s",
    "valid_hr@1",
    "valid_ndcg@10",
    "valid_loss",
    "valid_llm_hr@1",
    "valid_prior_hr@1",
    "llm_weight",
    "prior_weight",
]


class TrainError(RuntimeError):
    """The run cannot start (nothing to train on, bad resume folder, ...); the message says why."""


@dataclass
class TrainResult:
    output_dir: Path
    last_dir: Path
    best_dir: Path | None
    steps: int
    losses: list[float]  # mean training loss of every step run in THIS call
    task_losses: list[dict[str, float]]
    best_metric: float | None
    evals: list[dict[str, Any]] = field(default_factory=list)
    popularity: dict[str, float] = field(default_factory=dict)
    throughput: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)


def output_dir_for(cfg: Config, recipe: Recipe, output: str = "") -> Path:
    if output:
        return Path(output).expanduser().resolve()
    if cfg.finetune.output_dir:
        return Path(cfg.finetune.output_dir).expanduser().resolve()
    return cfg.checkpoints_dir / recipe.name


def apply_recipe_to_config(cfg: Config, recipe: Recipe) -> Config:
    """The recipe's model profile and dtype (when given) override the config's."""
    cfg = copy.deepcopy(cfg)
    if recipe.model.profile:
        cfg.models.profile = recipe.model.profile
    if recipe.model.dtype:
        cfg.models.dtype = recipe.model.dtype
    return cfg


def peak_rss_mb() -> float:
    """Peak resident memory of this process (and finished children), in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024.0


# a train.max_minutes run times its loop's steps 21..50, then fits its schedule (on the H200 the first
# 25 steps ran at 0.56 s, the rest at 0.31 s: new padded shapes and allocator growth come first)
PROBE = (20, 50)


def lr_lambda(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warmup to 1, then cosine decay to `min_ratio`."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class Trainer:
    """Builds everything a recipe needs, then `train()` runs (or resumes) it."""

    def __init__(
        self,
        cfg: Config,
        recipe: Recipe,
        output_dir: str | Path = "",
        resume: bool = False,
        progress: bool = True,
    ) -> None:
        self.recipe = recipe
        self.cfg = apply_recipe_to_config(cfg, recipe)
        self.out = output_dir_for(self.cfg, recipe, str(output_dir))
        self.resume = resume
        self.progress = progress
        self._setup()

    # --- setup ------------------------------------------------------------------------------------
    def _setup(self) -> None:
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        from encoders import registry

        r, cfg = self.recipe, self.cfg
        resume_dir = self.out / "last"
        if self.resume:
            ckpt.require(resume_dir, ckpt.STATE_FILE, ckpt.CONFIG_FILE)
        use_cpu = registry.torch_device(cfg) == "cpu"
        if use_cpu and r.train.cpu_threads > 0:
            torch.set_num_threads(r.train.cpu_threads)
        self.acc = Accelerator(
            cpu=use_cpu,
            mixed_precision=r.train.mixed_precision,
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        )
        self.main = self.acc.is_main_process
        self.world, self.rank = self.acc.num_processes, self.acc.process_index
        torch.manual_seed(r.seed)
        random.seed(r.seed)
        np.random.seed(r.seed)

        base, self.tokenizer = registry.load_llm(cfg)
        self.base_source = registry.source(cfg, "llm")
        llm = copy.deepcopy(base)
        hidden = int(llm.get_input_embeddings().weight.shape[-1])
        self.retriever = (
            open_retriever(cfg) if (r.data.negatives == "retrieval" or r.tasks.fusion_weight > 0) else None
        )
        self.data: Datasets = load_datasets(cfg, r, self.retriever)
        if not self.data.valid:
            raise TrainError(
                f"no validation examples for dataset {r.data.dataset} (data.max_users={r.data.max_users})"
            )

        # item vectors (soft tokens): the catalog vector of every item in a prompt, other modalities for alignment
        prompt_ids = {i for e in [*self.data.train, *self.data.valid] for i in [*e.history, *e.candidates]}
        prompt_ids |= {i for d in self.data.dialogues for i in d.candidates}
        modalities = list(dict.fromkeys(["item", *r.augment.modalities]))
        self.vectors: dict[str, dict[str, np.ndarray]] = {}
        for m in modalities:
            ids = prompt_ids | set(self.data.align) if m == "item" else set(self.data.align)
            items = [self.data.items[i] for i in sorted(ids)]
            self.vectors[m] = item_vectors(
                cfg, r.data.dataset, items, m, self.retriever, progress=self.progress and self.main
            )
        self.prior, prior_fit = self._priors()
        self.collab = self._collab_table(resume_dir, prior_fit)
        self.vectors["item"] = with_collab(self.vectors["item"], self.collab)
        self.data.align = [
            i for i in self.data.align if any(i in self.vectors.get(m, {}) for m in r.augment.modalities)
        ]
        self.weights = self._task_weights()

        # projectors: resumed, or from the stage-1 checkpoint, or fresh (seeded)
        from agent.projector import Projectors

        if self.resume:
            projectors = Projectors.load(resume_dir, expect_out_dim=hidden)
        elif r.model.init_from:
            init = ckpt.require(self._init_path(), "projectors.safetensors")
            projectors = Projectors.load(init, expect_out_dim=hidden)
        else:
            projectors = Projectors(hidden, seed=r.seed, hidden=r.model.projector_hidden or None)
        for m, dim in feature_dims(self.vectors).items():
            projectors.get(m, dim)
        projectors.float()

        # LLM: frozen (stage 1, or LoRA disabled) or LoRA-wrapped (stage 2)
        llm.requires_grad_(False)
        self.lora = r.stage == 2 and r.lora.enabled
        if self.lora:
            from peft import LoraConfig, get_peft_model

            lcfg = LoraConfig(
                r=r.lora.r,
                lora_alpha=r.lora.alpha,
                lora_dropout=r.lora.dropout,
                target_modules=list(r.lora.target_modules),
                task_type="CAUSAL_LM",
            )
            if r.lora.top_layers > 0:  # adapters on the last layers only: backward stops below them
                n_layers = int(llm.config.num_hidden_layers)
                lcfg.layers_to_transform = list(range(max(0, n_layers - r.lora.top_layers), n_layers))
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(r.seed)
                llm = get_peft_model(llm, lcfg)
            if r.model.init_from and (self._init_path() / ckpt.ADAPTER_CONFIG).is_file():
                ckpt.load_adapter_weights(llm, self._init_path())
        if r.model.gradient_checkpointing:
            llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            llm.config.use_cache = False

        fusion = self._fusion_module(resume_dir) if r.stage == 2 else None
        residual = self._residual(resume_dir) if self.prior is not None else None
        if r.train.freeze_projectors:
            projectors.requires_grad_(False)
        self.model = RecModel(
            llm, projectors, fusion, r.tasks.fusion_weight, r.tasks.fusion_temperature, residual,
            r.tasks.llm_loss_weight,
        )  # fmt: skip
        if self.lora and self.resume:
            ckpt.load_adapter_weights(self.model.llm, resume_dir)

        def by_name(module: torch.nn.Module) -> list[torch.nn.Parameter]:
            # sorted by name: a resumed run (projectors loaded in file order) maps optimizer state identically
            return [p for _, p in sorted(module.named_parameters()) if p.requires_grad]

        groups = [
            {"params": by_name(self.model.llm), "lr": r.train.lr},
            {"params": by_name(self.model.projectors), "lr": r.train.projector_lr},
        ]
        if fusion is not None:
            groups.append({"params": by_name(fusion), "lr": r.train.projector_lr})
        if residual is not None:
            groups.append({"params": by_name(residual), "lr": r.train.residual_lr})
        groups = [g for g in groups if g["params"]]  # stage 1: the frozen LLM has none
        self.params = [p for g in groups for p in g["params"]]
        self.optimizer = torch.optim.AdamW(groups, weight_decay=r.train.weight_decay)
        self.schedule_steps = r.train.max_steps  # shortened by train.max_minutes (see `_fit_budget`)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda s: lr_lambda(s, r.train.warmup_steps, self.schedule_steps, r.train.min_lr_ratio),
        )
        self.step = 0
        self.counters = {t: 0 for t in self.weights}
        self.best: float | None = None
        self.evals: list[dict[str, Any]] = []
        if self.resume:
            state = ckpt.read_state(resume_dir)
            ckpt.load_optimizer(self.optimizer, resume_dir)
            sched = state["scheduler"]
            self.scheduler.load_state_dict({**self.scheduler.state_dict(), **sched})
            self.step = int(state["step"])
            self.schedule_steps = int(state.get("schedule_steps", r.train.max_steps))
            self.counters = {t: int(state["counters"].get(t, 0)) for t in self.weights}
            self.best = state.get("best")
            self.evals = state.get("evals", [])
            ckpt.restore_rng(resume_dir, state)
        self.model, self.optimizer = self.acc.prepare(self.model, self.optimizer)
        self.unwrapped: RecModel = self.acc.unwrap_model(self.model)

        self.placeholder = self._placeholder()
        self.encoder = ExampleEncoder(
            self.tokenizer,
            r,
            self.data,
            self.vectors,
            self.placeholder,
            self._fusion_inputs if fusion is not None else None,
        )
        self._fusion_cache: dict[tuple[str, int], dict[str, Any] | None] = {}
        self._perms: dict[tuple[str, int], list[int]] = {}
        self.popularity = self._popularity_metrics()

    def _priors(self) -> tuple[Any, Any]:
        """(prior, prior_fit) for residual scoring, or (None, None) when the recipe has no prior.

        `prior` is trained on every training interaction, its component weights chosen on ALL users'
        validation targets; it scores validation (and, in the agent and the evaluation, test) examples.
        `prior_fit` is the same recipe trained without each user's training positions that the LLM
        learns from, so a training example's prior score is as out-of-sample as a test example's.
        """
        from retrieval.prior import PriorExample, choose_weights, fit_prior

        d, seed = self.recipe.data, self.recipe.seed
        if not d.prior:
            return None, None
        comps = ("bpr", "sasrec", "popularity") if d.prior == "auto" else (d.prior,)
        ids = sorted(self.data.items, key=id_key)
        splits = self.data.splits
        full = fit_prior({u: s.train for u, s in splits.items()}, ids, seed=seed, components=comps,
                         bpr_dim=max(d.collab_dim, 8), progress=self.progress and self.main)  # fmt: skip
        valid = [PriorExample(e.user, splits[e.user].train, e.candidates, e.target) for e in self.data.valid_all]
        weights, table = choose_weights(full, valid) if d.prior == "auto" else ({d.prior: 1.0}, [])
        full.weights = weights
        if self.main and table:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "prior_selection.json").write_text(json.dumps(table, indent=1), encoding="utf-8")
        first = {}
        for e in self.data.train:
            first[e.user] = min(first.get(e.user, e.position), e.position)
        cut = {u: s.train[: first.get(u, len(s.train))] for u, s in splits.items()}
        fit = fit_prior(cut, ids, seed=seed, components=comps, bpr_dim=max(d.collab_dim, 8))
        fit.weights = dict(weights)
        for e in self.data.train:
            e.prior = fit.scores(e.user, splits[e.user].train[: e.position], e.candidates).tolist()
        for e in self.data.valid:
            e.prior = full.scores(e.user, splits[e.user].train, e.candidates).tolist()
        log.info("prior %s: validation %s (fit without %d training positions)", full.name,
                 full.metrics.get("valid"), len(self.data.train))  # fmt: skip
        return full, fit

    def _collab_table(self, resume_dir: Path, prior_fit: Any = None) -> dict[str, np.ndarray]:
        """The collaborative item table: the resumed run's, stage 1's, the leakage-free prior's BPR,
        or BPR on the training split."""
        d = self.recipe.data
        if d.collab_dim <= 0:
            return {}
        if prior_fit is not None and prior_fit.bpr is not None:
            return collab_table(prior_fit.bpr)
        for folder in [
            resume_dir if self.resume else None,
            self._init_path() if self.recipe.model.init_from else None,
        ]:
            table = load_table(folder / TABLE_FILE) if folder is not None else {}
            if table:
                return table
        seen = [Interaction(u, i, 1.0, t) for u, s in self.data.splits.items() for t, i in enumerate(s.train)]
        model = train_bpr(seen, sorted(self.data.items, key=id_key), dim=d.collab_dim, seed=self.recipe.seed)
        log.info(
            "collaborative vectors: BPR dim %d on %d training interactions (%.1f s)",
            d.collab_dim,
            len(seen),
            model.seconds,
        )
        return collab_table(model)

    def _init_path(self) -> Path:
        p = Path(self.recipe.model.init_from).expanduser()
        if not p.is_absolute() and not p.exists():
            p = self.cfg.checkpoints_dir / self.recipe.model.init_from
        return p

    def _placeholder(self) -> int:
        from agent.softtokens import placeholder_id

        return placeholder_id(self.tokenizer, self.cfg.agent.placeholder_token)

    def _task_weights(self) -> dict[str, float]:
        pools = {
            "ranking": self.data.train,
            "dialogue": self.data.dialogues,
            "explanation": self.data.explain,
            "alignment": self.data.align,
        }
        weights = {t: w for t, w in self.recipe.tasks.weights.items() if w > 0 and pools.get(t)}
        empty = [t for t, w in self.recipe.tasks.weights.items() if w > 0 and not pools.get(t)]
        if empty:
            log.warning("tasks with no examples are skipped: %s", ", ".join(empty))
        if not weights:
            raise TrainError(f"{self.recipe.path}: no task with weight > 0 has examples")
        return weights

    def _residual(self, resume_dir: Path) -> Any:
        """The residual mix: resumed, else prior weight fitted to the training examples, LLM weight 0."""
        from agent.residual import Residual

        if self.resume:
            loaded = Residual.load(resume_dir)
            if loaded is not None:
                return loaded
        rows = [torch.tensor(e.prior) for e in self.data.train if e.prior]
        targets = torch.tensor([e.candidates.index(e.target) for e in self.data.train if e.prior])
        best, best_loss = 1.0, float("inf")
        for w in (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0):  # the prior's temperature, by training loss
            loss = float(torch.nn.functional.cross_entropy(w * torch.stack(rows), targets)) if rows else 0.0
            if loss < best_loss:
                best, best_loss = w, loss
        log.info("residual: prior weight %.2f (training loss %.4f), LLM weight 0", best, best_loss)
        return Residual(prior_weight=best, llm_weight=0.0)

    def _fusion_module(self, resume_dir: Path) -> Any:
        r = self.recipe
        if r.tasks.fusion_weight <= 0 or self.retriever is None:
            return None
        module = copy.deepcopy(self.retriever.cross_module()).train()
        path = resume_dir / ckpt.FUSION_FILE
        if self.resume and path.is_file():
            from safetensors.torch import load_file

            module.load_state_dict(load_file(str(path)))
        module.requires_grad_(True)
        return module

    def _fusion_inputs(self, ex: LOOExample) -> dict[str, Any] | None:
        key = (ex.user, ex.position)
        if key not in self._fusion_cache:
            titles = [self.data.items[i].title for i in ex.history[-5:]]
            # the cross module learns what each text-space channel is worth, the posters' bridge too
            query = self.retriever.query_vectors("; ".join(titles), text_blocks=("text", "tfidf", "image_text"))
            inputs = self.retriever.cross_inputs(query, ex.candidates)
            target = ex.candidates.index(ex.target)
            self._fusion_cache[key] = inputs if bool(inputs["mask"][0, target].any()) else None
        return self._fusion_cache[key]

    # --- data order --------------------------------------------------------------------------------
    def _stream(self, task: str, k: int) -> Any:
        pool = self.encoder.pool(task)
        epoch, idx = divmod(k, len(pool))
        key = (task, epoch)
        if key not in self._perms:
            order = list(range(len(pool)))
            random.Random(f"{self.recipe.seed}:{task}:epoch{epoch}").shuffle(order)
            self._perms = {kk: v for kk, v in self._perms.items() if kk[0] != task or kk[1] >= epoch - 1}
            self._perms[key] = order
        return pool[self._perms[key][idx]]

    def plan(self, step: int) -> list[tuple[int, str, list[Any]]]:
        """This process's micro-batches of `step`: (global index, task, examples); advances the counters."""
        tasks, weights = list(self.weights), list(self.weights.values())
        mine = []
        mbs = self.recipe.train.micro_batch_size
        for g in range(self.recipe.train.grad_accum * self.world):
            task = random.Random(f"{self.recipe.seed}:task:{step}:{g}").choices(tasks, weights)[0]
            examples = [self._stream(task, self.counters[task] + j) for j in range(mbs)]
            self.counters[task] += mbs
            if g % self.world == self.rank:
                mine.append((g, task, examples))
        return mine

    # --- evaluation ----------------------------------------------------------------------------------
    def _popularity_metrics(self) -> dict[str, float]:
        ranks = []
        for ex in self.data.valid:
            scores = torch.tensor([[float(self.data.popularity.get(i, 0)) for i in ex.candidates]])
            ranks += ranks_of_targets(scores, torch.tensor([ex.candidates.index(ex.target)]))
        return hr_ndcg(ranks)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Verbalizer ranking of the validation candidates (every item hybrid): HR@1, NDCG@10, loss."""
        from accelerate.utils import gather_object

        model = self.unwrapped
        was_training = model.training
        model.eval()
        mine = self.data.valid[self.rank :: self.world]
        rows: list[tuple[int, float, int, int]] = []  # (rank, loss, LLM-alone rank, prior-alone rank)
        bs = self.recipe.train.micro_batch_size
        for start in range(0, len(mine), bs):
            batch = collate([self.encoder.evaluation(e) for e in mine[start : start + bs]], self._pad_id())
            batch.to(self.acc.device)
            with self.acc.autocast():
                llm = model.label_logits(batch)
            logits = llm if model.residual is None or batch.prior is None else model.residual(llm, batch.prior)
            prior = batch.prior.masked_fill(torch.isinf(llm), float("-inf")) if batch.prior is not None else llm
            losses = torch.nn.functional.cross_entropy(logits, batch.targets, reduction="none")
            ranks = [ranks_of_targets(x, batch.targets) for x in (logits, llm, prior)]
            rows += list(zip(ranks[0], losses.tolist(), ranks[1], ranks[2], strict=True))
        if self.world > 1:
            rows = gather_object(rows)
        model.train(was_training)
        metrics = hr_ndcg([r[0] for r in rows])
        metrics["loss"] = float(np.mean([r[1] for r in rows])) if rows else float("nan")
        metrics["n"] = len(rows)
        if model.residual is not None:
            metrics["llm_hr@1"] = hr_ndcg([r[2] for r in rows])["hr@1"]
            metrics["prior_hr@1"] = hr_ndcg([r[3] for r in rows])["hr@1"]
            metrics.update(model.residual.weights())
        return metrics

    def _pad_id(self) -> int:
        t = self.tokenizer
        return int(t.pad_token_id if t.pad_token_id is not None else (t.eos_token_id or 0))

    # --- checkpoints ---------------------------------------------------------------------------------
    def config_text(self) -> str:
        import yaml

        info = {
            "base_model": self.base_source,
            "profile": self.cfg.models.profile,
            "dtype": self.cfg.models.dtype,
            "placeholder_token_id": self.placeholder,
            "template": self.recipe.data.template,
        }
        return (
            "# FusionRec finetune checkpoint: the recipe it was trained with and its base model\n"
            + yaml.safe_dump({"trained_on": info, **self.recipe.to_dict()}, sort_keys=False)
        )

    def state(self) -> dict[str, Any]:
        sched = {k: v for k, v in self.scheduler.state_dict().items() if k != "lr_lambdas"}
        return {
            "step": self.step,
            "counters": self.counters,
            "best": self.best,
            "metric": self.recipe.train.metric,
            "evals": self.evals,
            "scheduler": sched,
            "schedule_steps": self.schedule_steps,
            "world_size": self.world,
            "data": self.data.summary(),
        }

    def save(self, name: str, with_optimizer: bool = True) -> Path:
        folder = self.out / name
        if self.main:
            ckpt.save_checkpoint(
                folder,
                llm=self.unwrapped.llm,
                projectors=self.unwrapped.projectors,
                fusion=self.unwrapped.fusion,
                config_text=self.config_text(),
                state=self.state(),
                optimizer=self.optimizer if with_optimizer else None,
                collab=self.collab,
                extras=(self.prior, self.unwrapped.residual) if self.prior is not None else (),
            )
        self.acc.wait_for_everyone()
        return folder

    def _better(self, metrics: dict[str, float]) -> bool:
        key = self.recipe.train.metric
        value = metrics["loss"] if key == "loss" else metrics[key]
        if self.best is None or (value < self.best if key == "loss" else value > self.best):
            self.best = float(value)
            return True
        return False

    # --- logging -------------------------------------------------------------------------------------
    def _open_logs(self) -> tuple[Any, Any]:
        path = self.out / "metrics.csv"
        rows = []
        if self.resume and path.is_file():
            with open(path, newline="", encoding="utf-8") as fh:
                rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= self.step]
        fh = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115 (closed in train())
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
        fh.flush()
        tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            tb = SummaryWriter(str(self.out / "tb"), purge_step=self.step + 1 if self.resume else None)
        except ImportError:  # tensorboard is optional at run time
            log.warning("tensorboard is not installed: logging to metrics.csv only")
        return (fh, writer), tb

    # --- the loop -------------------------------------------------------------------------------------
    def train(self, stop_at: int | None = None) -> TrainResult:
        """Run (or continue) the recipe up to `train.max_steps`, or only up to step `stop_at`
        (the schedule stays the one of max_steps; `last/` is saved there, ready for `--resume`)."""
        from tqdm import tqdm

        r = self.recipe
        end = min(self.schedule_steps, stop_at) if stop_at else self.schedule_steps
        budget = r.train.max_minutes * 60.0  # wall-clock budget of the loop (0 = none)
        eval_s = 0.0  # seconds of the last validation
        probe: dict[str, float] = {}  # a budgeted run times steps PROBE[0]..PROBE[1] of this loop
        self.out.mkdir(parents=True, exist_ok=True)
        if self.main:
            (self.out / "recipe.yaml").write_text(self.config_text(), encoding="utf-8")
            (self.out / "data.json").write_text(
                json.dumps({**self.data.summary(), "popularity_valid": self.popularity}, indent=2),
                encoding="utf-8",
            )
        (fh, writer), tb = self._open_logs() if self.main else ((None, None), None)
        losses: list[float] = []
        task_losses: list[dict[str, float]] = []
        t_train = 0.0
        n_examples = n_tokens = 0
        window = {"examples": 0, "tokens": 0, "seconds": 0.0}
        t_start = time.perf_counter()
        if r.train.eval_at_start and self.step == 0 and not any(e["step"] == 0 for e in self.evals):
            metrics = self.evaluate()
            eval_s = time.perf_counter() - t_start
            self.evals.append({"step": 0, **metrics})
            self._log_eval(writer, tb, 0, metrics, t_start)
        bar = tqdm(
            total=r.train.max_steps,
            initial=self.step,
            desc=f"{r.name} (stage {r.stage})",
            disable=not (self.progress and self.main),
            dynamic_ncols=True,
        )
        self.model.train()
        while self.step < end:
            t0 = time.perf_counter()
            p_hybrid = curriculum(r, self.step)
            plan = self.plan(self.step)
            step_loss: dict[str, list[float]] = {}
            total = 0.0
            ex_count = tok_count = 0
            for i, (g, task, examples) in enumerate(plan):
                batch = collate(
                    [
                        self.encoder.encode(
                            task, ex, p_hybrid, random.Random(f"{r.seed}:enc:{self.step}:{g}:{j}")
                        )
                        for j, ex in enumerate(examples)
                    ],
                    self._pad_id(),
                ).to(self.acc.device)
                sync = i == len(plan) - 1
                ctx = contextlib.nullcontext() if sync or self.world == 1 else self.acc.no_sync(self.model)
                with ctx:
                    with self.acc.autocast():
                        out = self.model(batch)
                    self.acc.backward(out["loss"] / len(plan))
                total += float(out["loss"].detach()) / len(plan)
                step_loss.setdefault(task, []).append(float(out["task"]))
                if "fusion" in out:
                    step_loss.setdefault("fusion", []).append(float(out["fusion"]))
                ex_count += batch.n_examples
                tok_count += batch.n_tokens
            grad_norm = self.acc.clip_grad_norm_(self.params, r.train.max_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            stats = torch.tensor([total, ex_count, tok_count], dtype=torch.float64, device=self.acc.device)
            if self.world > 1:
                stats = self.acc.reduce(stats, reduction="sum")
                stats[0] /= self.world
            dt = time.perf_counter() - t0
            t_train += dt
            n_examples += int(stats[1])
            n_tokens += int(stats[2])
            for k, v in (("examples", int(stats[1])), ("tokens", int(stats[2])), ("seconds", dt)):
                window[k] += v
            losses.append(float(stats[0]))
            task_losses.append({t: float(np.mean(v)) for t, v in step_loss.items()})
            bar.update(1)
            if budget > 0 and not stop_at:
                new_end = self._fit_budget(probe, dt, budget - (time.perf_counter() - t_start), eval_s)
                if new_end is not None and new_end < end:
                    log.warning("train.max_minutes=%g: the schedule ends at step %d instead of %d",
                                r.train.max_minutes, new_end, end)  # fmt: skip
                    end = self.schedule_steps = new_end
                    bar.total = end
            bar.set_postfix(loss=f"{losses[-1]:.4f}", lr=f"{self.scheduler.get_last_lr()[0]:.2e}")

            out_of_time = budget > 0 and time.perf_counter() - t_start >= budget
            if out_of_time and self.step < end:
                log.warning("train.max_minutes=%g reached at step %d of %d: validating and saving there",
                            r.train.max_minutes, self.step, end)  # fmt: skip
                end = self.step
            last = self.step == end
            if self.main and (self.step % r.train.log_every == 0 or last):
                row = {
                    "step": self.step,
                    "loss": round(losses[-1], 6),
                    "lr": self.scheduler.get_last_lr()[0],
                    "grad_norm": round(float(grad_norm), 6),
                    "p_hybrid": round(p_hybrid, 4),
                    "examples": window["examples"],
                    "tokens": window["tokens"],
                    "examples_per_s": round(window["examples"] / max(window["seconds"], 1e-9), 3),
                    "tokens_per_s": round(window["tokens"] / max(window["seconds"], 1e-9), 1),
                    "elapsed_s": round(time.perf_counter() - t_start, 2),
                }
                for t, v in task_losses[-1].items():
                    row[f"loss_{t}"] = round(v, 6)
                writer.writerow(row)
                fh.flush()
                if tb is not None:
                    for k, v in row.items():
                        if k != "step":
                            tb.add_scalar(f"train/{k}", float(v), self.step)
                window = {"examples": 0, "tokens": 0, "seconds": 0.0}
            if r.train.eval_every > 0 and (self.step % r.train.eval_every == 0 or last):
                t_eval = time.perf_counter()
                metrics = self.evaluate()
                eval_s = time.perf_counter() - t_eval
                self.evals.append({"step": self.step, **metrics})
                self._log_eval(writer, tb, self.step, metrics, t_start)
                if self._better(metrics):
                    self.save("best", with_optimizer=False)
            if self.step % r.train.save_every == 0 or last:
                self.save("last")
        bar.close()
        if self.main:
            fh.close()
            if tb is not None:
                tb.close()
        best_dir = self.out / "best"
        return TrainResult(
            output_dir=self.out,
            last_dir=self.out / "last",
            best_dir=best_dir if best_dir.is_dir() else None,
            steps=self.step,
            losses=losses,
            task_losses=task_losses,
            best_metric=self.best,
            evals=self.evals,
            popularity=self.popularity,
            throughput={
                "examples_per_s": n_examples / t_train if t_train else 0.0,
                "tokens_per_s": n_tokens / t_train if t_train else 0.0,
                "train_seconds": t_train,
                "examples": n_examples,
                "tokens": n_tokens,
            },
            peak_rss_mb=peak_rss_mb(),
            data=self.data.summary(),
        )

    def _fit_budget(self, probe: dict[str, float], dt: float, remaining: float, eval_s: float) -> int | None:
        """The last step a `train.max_minutes` run can reach, once it has timed PROBE steps of its loop
        (validations excluded), else None. The cosine schedule is then laid over that many steps, so a
        budgeted run decays its learning rate fully instead of being cut off mid-schedule."""
        probe["steps"] = probe.get("steps", 0) + 1
        if probe["steps"] <= PROBE[0]:  # the first steps warm up kernels and caches
            return None
        probe["seconds"] = probe.get("seconds", 0.0) + dt
        if probe["steps"] != PROBE[1]:
            return None
        per_step = probe["seconds"] / (PROBE[1] - PROBE[0])
        every = self.recipe.train.eval_every
        per_step += eval_s / every if every > 0 else 0.0
        return self.step + max(0, int(0.9 * (remaining - eval_s) / per_step))  # 0.9: saves and jitter

    def _log_eval(self, writer: Any, tb: Any, step: int, metrics: dict[str, float], t_start: float) -> None:
        if not self.main:
            return
        writer.writerow(
            {
                "step": step,
                "valid_hr@1": round(metrics["hr@1"], 6),
                "valid_ndcg@10": round(metrics["ndcg@10"], 6),
                "valid_loss": round(metrics["loss"], 6),
                **{
                    f"valid_{k}" if "hr" in k else k: round(float(metrics[k]), 6)
                    for k in ("llm_hr@1", "prior_hr@1", "llm_weight", "prior_weight")
                    if k in metrics
                },
                "elapsed_s": round(time.perf_counter() - t_start, 2),
            }
        )
        if tb is not None:
            for k in ("hr@1", "ndcg@10", "loss"):
                tb.add_scalar(f"valid/{k}", metrics[k], step)
        log.info("step %d: valid %s", step, {k: round(v, 4) for k, v in metrics.items()})

    def end(self) -> None:
        self.acc.wait_for_everyone()
        self.acc.end_training()
