"""The training loop: one readable loop for both stages, on one CPU or many GPUs through accelerate.

`Trainer.__init__` builds a run in named steps: `_setup_runtime` (accelerator, threads, seeds),
`_setup_data` (examples, item vectors, priors, task mix), `_setup_model` (LLM, LoRA, projectors,
fusion, residual), `_setup_optimizer`, `_setup_scheduler`, `_setup_state` (step counters, or those of
``last/`` when resuming) and `_setup_prompts`. `train()` then runs the loop:

Per optimizer step: `grad_accum` micro-batches per process, each of one task drawn with probability
proportional to `tasks.weights` (seeded by step and micro-batch index, so every process agrees on
the plan); examples come from per-task streams reshuffled every epoch with the seed; gradients are
synchronised on the last micro-batch only; AdamW with warmup + cosine decay; gradient clipping.
Every `log_every` steps the losses, learning rate, throughput and curriculum go to the metric logger
(``metrics.csv``, ``tb/``); every `eval_every` steps the verbalizer ranks the validation candidates
(HR@1, NDCG@10, loss) and the best checkpoint is kept in ``best/``; every `save_every` steps
``last/`` is written with everything `--resume` needs to continue exactly.
"""

from __future__ import annotations

import contextlib
import copy
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

from fusionrec.config import Config
from fusionrec.data.loo import LOOExample
from fusionrec.finetune import checkpoint as ckpt
from fusionrec.finetune.data import DataError, Datasets, load_datasets, open_retriever
from fusionrec.finetune.encode import ExampleEncoder, curriculum
from fusionrec.finetune.features import feature_dims, item_vectors
from fusionrec.finetune.metric_logger import MetricLogger
from fusionrec.finetune.model_parts import adapt_llm, build_projectors, fusion_module, uses_lora
from fusionrec.finetune.prior import fit_priors, initial_residual, item_table, warm_prior
from fusionrec.finetune.recipe import Recipe
from fusionrec.finetune.tasks import RecModel, collate
from fusionrec.finetune.validation import popularity_metrics, validate
from fusionrec.retrieval.collaborative.bpr import with_collab

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
    "valid_dialogue_hr@1",
    "valid_dialogue_hr@10",
    "valid_dialogue_loss",
    "valid_dialogue_llm_hr@1",
    "valid_dialogue_prior_hr@1",
    "dialogue_llm_weight",
    "dialogue_prior_weight",
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


def lr_lambda(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warmup to 1, then cosine decay to `min_ratio`."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


# a train.max_minutes run times its loop's steps 21..50, then fits its schedule (on the H200 the first
# 25 steps ran at 0.56 s, the rest at 0.31 s: new padded shapes and allocator growth come first)
PROBE = (20, 50)


class Budget:
    """The wall-clock budget of one `train()` loop (`train.max_minutes`; 0 = none), timed from creation."""

    def __init__(self, minutes: float) -> None:
        self.seconds = minutes * 60.0
        self.start = time.perf_counter()
        self.eval_s = 0.0  # seconds of the last validation
        self._steps = 0
        self._timed = 0.0

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def spent(self) -> bool:
        return self.seconds > 0 and self.elapsed() >= self.seconds

    def fit(self, step: int, dt: float, eval_every: int) -> int | None:
        """The last step the run can reach, once it has timed PROBE steps of its loop (`dt`: this step's
        seconds, validations excluded), else None. The cosine schedule is then laid over that many steps,
        so a budgeted run decays its learning rate fully instead of being cut off mid-schedule."""
        self._steps += 1
        if self._steps <= PROBE[0]:  # the first steps warm up kernels and caches
            return None
        self._timed += dt
        if self._steps != PROBE[1]:
            return None
        per_step = self._timed / (PROBE[1] - PROBE[0])
        per_step += self.eval_s / eval_every if eval_every > 0 else 0.0
        remaining = self.seconds - self.elapsed()
        return step + max(0, int(0.9 * (remaining - self.eval_s) / per_step))  # 0.9: saves and jitter


@dataclass
class StepResult:
    """One optimizer step, summed (loss: averaged) over every process."""

    loss: float
    tasks: dict[str, float]  # mean loss of each task drawn in the step (and "fusion")
    examples: int
    tokens: int
    grad_norm: float


@dataclass
class Meter:
    """Examples, tokens and seconds of training steps (validations and saves excluded)."""

    examples: int = 0
    tokens: int = 0
    seconds: float = 0.0

    def add(self, step: StepResult, seconds: float) -> None:
        self.examples += step.examples
        self.tokens += step.tokens
        self.seconds += seconds


class Trainer:
    """Builds everything a recipe needs in named setup steps, then `train()` runs (or resumes) it."""

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
        self.resume_dir = self.out / "last"
        self.progress = progress
        self.logger: MetricLogger | None = None  # the main process's, while train() runs
        if resume:
            ckpt.require(self.resume_dir, ckpt.STATE_FILE, ckpt.CONFIG_FILE)
        self._setup_runtime()
        self._setup_data()
        self._setup_model()
        self._setup_optimizer()
        self._setup_scheduler()
        self._setup_state()
        self.model, self.optimizer = self.acc.prepare(self.model, self.optimizer)
        self.unwrapped: RecModel = self.acc.unwrap_model(self.model)
        self._setup_prompts()

    # --- setup steps ---------------------------------------------------------------------------------
    def _setup_runtime(self) -> None:
        """The accelerator (CPU or GPUs, mixed precision), CPU threads, and every global seed."""
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        from fusionrec.models import registry

        r = self.recipe
        use_cpu = registry.torch_device(self.cfg) == "cpu"
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

    def _setup_data(self) -> None:
        """The examples of every task, the item vectors their prompts show, the priors and the task mix."""
        r = self.recipe
        self.retriever = self._open_retriever()
        self.data: Datasets = load_datasets(self.cfg, r, self.retriever)
        if not self.data.valid:
            raise TrainError(
                f"no validation examples for dataset {r.data.dataset} (data.max_users={r.data.max_users})"
            )
        self.vectors = self._item_vectors()
        self.prior, prior_fit = (
            fit_priors(self.data, r, self.out if self.main else None, self.progress and self.main)
            if r.data.prior
            else (None, None)
        )
        saved = [self.resume_dir] if self.resume else []
        if r.model.init_from:
            saved.append(self._init_path())
            self.prior = warm_prior(self.data, self.prior, self._init_path())
        self.collab = item_table(self.data, r, saved, prior_fit)
        self.vectors["item"] = with_collab(self.vectors["item"], self.collab)
        self.dialogue_vectors = self._dialogue_vectors()
        self.data.align = [
            i for i in self.data.align if any(i in self.vectors.get(m, {}) for m in r.augment.modalities)
        ]
        self.weights = self._task_weights()
        self.popularity = popularity_metrics(self.data.valid, self.data.popularity)

    def _setup_model(self) -> None:
        """The trainable whole (`RecModel`): the LLM (frozen, or LoRA-wrapped in stage 2), the projectors,
        in stage 2 with a store the cross-modal fusion module, and with a prior the residual mix."""
        from fusionrec.agent.residual import DIALOGUE_RESIDUAL_FILE, RESIDUAL_FILE, Residual
        from fusionrec.models import registry

        r = self.recipe
        resumed = self.resume_dir if self.resume else None
        init = self._init_path() if r.model.init_from else None
        base, self.tokenizer = registry.load_llm(self.cfg)
        self.base_source = registry.source(self.cfg, "llm")
        llm = copy.deepcopy(base)
        hidden = int(llm.get_input_embeddings().weight.shape[-1])
        projectors = build_projectors(r, hidden, feature_dims(self.vectors), resumed, init)
        llm = adapt_llm(llm, r, init)
        fusion = None
        if r.stage == 2 and r.tasks.fusion_weight > 0 and self.retriever is not None:
            fusion = fusion_module(self.retriever, resumed)
        residual = None  # the residual mix of a run with a prior: resumed (last/ must hold it), the
        # warm start's (model.init_from, with its LoRA), or fitted
        if self.prior is not None and resumed is not None:
            residual = Residual.load(ckpt.require(resumed, RESIDUAL_FILE))
        elif self.prior is not None and init is not None and (init / RESIDUAL_FILE).is_file():
            residual = Residual.load(init)
        elif self.prior is not None:
            residual = initial_residual(self.data.train)
        dialogue_residual = None  # the ReDial task's mix, the same way
        if self.data.dialogues:
            saved = next(
                (f for f in (resumed, init) if f is not None and (f / DIALOGUE_RESIDUAL_FILE).is_file()), None
            )
            if resumed is not None and saved is None:
                ckpt.require(resumed, DIALOGUE_RESIDUAL_FILE)
            dialogue_residual = (
                Residual.load(saved, DIALOGUE_RESIDUAL_FILE)
                if saved is not None
                else initial_residual(self.data.dialogues, DIALOGUE_RESIDUAL_FILE)
            )
        self.model = RecModel(
            llm, projectors, fusion, r.tasks.fusion_weight, r.tasks.fusion_temperature, residual,
            r.tasks.llm_loss_weight, dialogue_residual,
        )  # fmt: skip
        if uses_lora(r) and resumed is not None:
            ckpt.load_adapter_weights(self.model.llm, resumed)

    def _setup_optimizer(self) -> None:
        """AdamW with one parameter group per trainable part, each at its recipe learning rate."""
        t, m = self.recipe.train, self.model

        def by_name(module: torch.nn.Module) -> list[torch.nn.Parameter]:
            # sorted by name: a resumed run (projectors loaded in file order) maps optimizer state identically
            return [p for _, p in sorted(module.named_parameters()) if p.requires_grad]

        parts = [
            (m.llm, t.lr),
            (m.projectors, t.projector_lr),
            (m.fusion, t.projector_lr),
            (m.residual, t.residual_lr),
            (m.dialogue_residual, t.residual_lr),
        ]
        groups = [{"params": by_name(part), "lr": lr} for part, lr in parts if part is not None]
        groups = [g for g in groups if g["params"]]  # stage 1: the frozen LLM has none
        self.params = [p for g in groups for p in g["params"]]
        self.optimizer = torch.optim.AdamW(groups, weight_decay=t.weight_decay)

    def _setup_scheduler(self) -> None:
        """Linear warmup, then cosine decay over `schedule_steps` (shortened by `train.max_minutes`)."""
        t = self.recipe.train
        self.schedule_steps = t.max_steps
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_lambda(s, t.warmup_steps, self.schedule_steps, t.min_lr_ratio)
        )

    def _setup_state(self) -> None:
        """Step, task counters, best metric and validations: new, or those of ``last/`` (optimizer,
        scheduler and every RNG included) when resuming."""
        self.step = 0
        self.counters = {t: 0 for t in self.weights}
        self.best: float | None = None
        self.evals: list[dict[str, Any]] = []
        if not self.resume:
            return
        state = ckpt.read_state(self.resume_dir)
        ckpt.load_optimizer(self.optimizer, self.resume_dir)
        self.scheduler.load_state_dict({**self.scheduler.state_dict(), **state["scheduler"]})
        self.step = int(state["step"])
        self.schedule_steps = int(state.get("schedule_steps", self.recipe.train.max_steps))
        self.counters = {t: int(state["counters"].get(t, 0)) for t in self.weights}
        self.best = state.get("best")
        self.evals = state.get("evals", [])
        ckpt.restore_rng(self.resume_dir, state)

    def _setup_prompts(self) -> None:
        """The example encoder (prompts of every task) and the per-task example streams."""
        from fusionrec.agent.softtokens import placeholder_id

        self.placeholder = placeholder_id(self.tokenizer, self.cfg.agent.placeholder_token)
        self.encoder = ExampleEncoder(
            self.tokenizer,
            self.recipe,
            self.data,
            self.vectors,
            self.placeholder,
            self._fusion_inputs if self.unwrapped.fusion is not None else None,
            self.dialogue_vectors,
        )
        self._fusion_cache: dict[tuple[str, int], dict[str, Any] | None] = {}
        self._perms: dict[tuple[str, int], list[int]] = {}

    # --- setup helpers -------------------------------------------------------------------------------
    def _open_retriever(self) -> Any:
        """The Retriever when the recipe uses the store: required by `data.negatives=retrieval`; with
        `tasks.fusion_weight` > 0 and no store, stage 2 trains without the fusion loss (a warning says so)."""
        r = self.recipe
        if r.data.negatives == "retrieval":
            return open_retriever(self.cfg, "data.negatives=retrieval")
        if r.tasks.fusion_weight <= 0:
            return None
        try:
            return open_retriever(self.cfg, f"tasks.fusion_weight={r.tasks.fusion_weight:g}")
        except DataError as exc:
            if r.stage == 2:
                log.warning("%s; training without the fusion loss", exc)
            return None

    def _item_vectors(self) -> dict[str, dict[str, np.ndarray]]:
        """Per modality, the vector of every item a prompt shows (the catalog vector) or that alignment
        uses (other modalities)."""
        r, data = self.recipe, self.data
        prompt_ids = {i for e in [*data.train, *data.valid] for i in [*e.history, *e.candidates]}
        vectors: dict[str, dict[str, np.ndarray]] = {}
        for m in dict.fromkeys(["item", *r.augment.modalities]):
            ids = prompt_ids | set(data.align) if m == "item" else set(data.align)
            items = [data.items[i] for i in sorted(ids)]
            vectors[m] = item_vectors(
                self.cfg, r.data.dataset, items, m, self.retriever, progress=self.progress and self.main
            )
        return vectors

    def _dialogue_vectors(self) -> dict[str, np.ndarray]:
        """The ReDial catalog vectors of the dialogue task's candidates: the text vector (cached per
        dataset) + zeros where ML items carry their collaborative part (ReDial items have none)."""
        data = self.data
        ids = sorted({i for d in [*data.dialogues, *data.dialogue_valid] for i in d.candidates})
        if not ids:
            return {}
        items = [data.dialogue_items[i] for i in ids]
        vecs = item_vectors(self.cfg, "redial", items, "item", None, progress=self.progress and self.main)
        return with_collab(vecs, self.collab, lookup=False)

    def _init_path(self) -> Path:
        from fusionrec.agent.checkpoint import warm_start

        return warm_start(self.recipe.model.init_from, self.cfg.checkpoints_dir)

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

    def _fusion_inputs(self, ex: LOOExample) -> dict[str, Any] | None:
        key = (ex.user, ex.position)
        if key not in self._fusion_cache:
            titles = [self.data.items[i].title for i in ex.history[-5:]]
            # the cross module learns what each text-space channel is worth, the posters' bridge too
            query = self.retriever.query_vectors(
                "; ".join(titles), text_blocks=("text", "tfidf", "image_text")
            )
            inputs = self.retriever.cross_inputs(query, ex.candidates)
            target = ex.candidates.index(ex.target)
            self._fusion_cache[key] = inputs if bool(inputs["mask"][0, target].any()) else None
        return self._fusion_cache[key]

    # --- data order ----------------------------------------------------------------------------------
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

    def _pad_id(self) -> int:
        t = self.tokenizer
        return int(t.pad_token_id if t.pad_token_id is not None else (t.eos_token_id or 0))

    # --- the loop ------------------------------------------------------------------------------------
    def train(self, stop_at: int | None = None) -> TrainResult:
        """Run (or continue) the recipe up to `train.max_steps`, or only up to step `stop_at`
        (the schedule stays the one of max_steps; `last/` is saved there, ready for `--resume`)."""
        from tqdm import tqdm

        r = self.recipe
        end = min(self.schedule_steps, stop_at) if stop_at else self.schedule_steps
        self._write_run_files()
        self.logger = (
            MetricLogger(self.out, CSV_FIELDS, self.step if self.resume else None) if self.main else None
        )
        losses: list[float] = []
        task_losses: list[dict[str, float]] = []
        total, window = Meter(), Meter()  # the whole call; since the last log row
        budget = Budget(r.train.max_minutes)
        if r.train.eval_at_start and self.step == 0 and not any(e["step"] == 0 for e in self.evals):
            self._validate(budget)
        bar = tqdm(
            total=self.schedule_steps,
            initial=self.step,
            desc=f"{r.name} (stage {r.stage})",
            disable=not (self.progress and self.main),
            dynamic_ncols=True,
        )
        self.model.train()
        while self.step < end:
            t0 = time.perf_counter()
            p_hybrid = curriculum(r, self.step)
            step = self._train_step(p_hybrid)
            dt = time.perf_counter() - t0
            total.add(step, dt)
            window.add(step, dt)
            losses.append(step.loss)
            task_losses.append(step.tasks)
            bar.update(1)
            end = self._budgeted_end(budget, end, dt, fit=not stop_at)
            bar.total = self.schedule_steps
            bar.set_postfix(loss=f"{step.loss:.4f}", lr=f"{self.scheduler.get_last_lr()[0]:.2e}")

            last = self.step == end
            if self.logger is not None and (self.step % r.train.log_every == 0 or last):
                self._log_step(self.logger, step, p_hybrid, window, budget)
                window = Meter()
            if r.train.eval_every > 0 and (self.step % r.train.eval_every == 0 or last):
                metrics = self._validate(budget)
                if self._better(metrics):
                    self.save("best", with_optimizer=False)
            if self.step % r.train.save_every == 0 or last:
                self.save("last")
        bar.close()
        if self.logger is not None:
            self.logger.close()
        return self._result(losses, task_losses, total)

    def _train_step(self, p_hybrid: float) -> StepResult:
        """One optimizer step over this process's micro-batches of the plan (gradients synchronised on the
        last one), clipped; then the scheduler steps and the step count advances."""
        r = self.recipe
        plan = self.plan(self.step)
        per_task: dict[str, list[float]] = {}
        loss = 0.0
        examples = tokens = 0
        for i, (g, task, exs) in enumerate(plan):
            batch = collate(
                [
                    self.encoder.encode(
                        task, ex, p_hybrid, random.Random(f"{r.seed}:enc:{self.step}:{g}:{j}")
                    )
                    for j, ex in enumerate(exs)
                ],
                self._pad_id(),
            ).to(self.acc.device)
            sync = i == len(plan) - 1
            ctx = contextlib.nullcontext() if sync or self.world == 1 else self.acc.no_sync(self.model)
            with ctx:
                with self.acc.autocast():
                    out = self.model(batch)
                self.acc.backward(out["loss"] / len(plan))
            loss += float(out["loss"].detach()) / len(plan)
            per_task.setdefault(task, []).append(float(out["task"]))
            if "fusion" in out:
                per_task.setdefault("fusion", []).append(float(out["fusion"]))
            examples += batch.n_examples
            tokens += batch.n_tokens
        grad_norm = self.acc.clip_grad_norm_(self.params, r.train.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        stats = torch.tensor([loss, examples, tokens], dtype=torch.float64, device=self.acc.device)
        if self.world > 1:
            stats = self.acc.reduce(stats, reduction="sum")
            stats[0] /= self.world
        return StepResult(
            loss=float(stats[0]),
            tasks={t: float(np.mean(v)) for t, v in per_task.items()},
            examples=int(stats[1]),
            tokens=int(stats[2]),
            grad_norm=float(grad_norm),
        )

    def _budgeted_end(self, budget: Budget, end: int, dt: float, fit: bool) -> int:
        """The loop's last step under `train.max_minutes`: the schedule fitted to the budget once its
        steps are timed (`fit`), or this step when the time is up."""
        minutes = self.recipe.train.max_minutes
        if budget.seconds > 0 and fit:
            new_end = budget.fit(self.step, dt, self.recipe.train.eval_every)
            if new_end is not None and new_end < end:
                log.warning(
                    "train.max_minutes=%g: the schedule ends at step %d instead of %d", minutes, new_end, end
                )
                end = self.schedule_steps = new_end
        if budget.spent() and self.step < end:
            log.warning("train.max_minutes=%g reached at step %d of %d: validating and saving there",
                        minutes, self.step, end)  # fmt: skip
            end = self.step
        return end

    def _validate(self, budget: Budget) -> dict[str, float]:
        """Validate at the current step: recorded in `evals`, logged, timed for the budget."""
        t0 = time.perf_counter()
        metrics = self.evaluate()
        budget.eval_s = time.perf_counter() - t0
        self.evals.append({"step": self.step, **metrics})
        if self.logger is not None:
            extra = ("llm_hr@1", "prior_hr@1", "llm_weight", "prior_weight", "dialogue_hr@1", "dialogue_hr@10",
                     "dialogue_llm_hr@1", "dialogue_prior_hr@1", "dialogue_llm_weight", "dialogue_prior_weight")  # fmt: skip
            row = {
                "valid_hr@1": round(metrics["hr@1"], 6),
                "valid_ndcg@10": round(metrics["ndcg@10"], 6),
                "valid_loss": round(metrics["loss"], 6),
                **(
                    {"valid_dialogue_loss": round(metrics["dialogue_loss"], 6)}
                    if "dialogue_loss" in metrics
                    else {}
                ),
                **{
                    f"valid_{k}" if "hr" in k else k: round(float(metrics[k]), 6)
                    for k in extra
                    if k in metrics
                },
                "elapsed_s": round(budget.elapsed(), 2),
            }
            self.logger.log(self.step, row, group="valid")
            log.info("step %d: valid %s", self.step, {k: round(v, 4) for k, v in metrics.items()})
        return metrics

    def _log_step(
        self, logger: MetricLogger, step: StepResult, p_hybrid: float, window: Meter, budget: Budget
    ) -> None:
        seconds = max(window.seconds, 1e-9)
        row = {
            "loss": round(step.loss, 6),
            "lr": self.scheduler.get_last_lr()[0],
            "grad_norm": round(step.grad_norm, 6),
            "p_hybrid": round(p_hybrid, 4),
            "examples": window.examples,
            "tokens": window.tokens,
            "examples_per_s": round(window.examples / seconds, 3),
            "tokens_per_s": round(window.tokens / seconds, 1),
            "elapsed_s": round(budget.elapsed(), 2),
            **{f"loss_{t}": round(v, 6) for t, v in step.tasks.items()},
        }
        logger.log(self.step, row, group="train")

    def evaluate(self) -> dict[str, float]:
        """Verbalizer ranking of the validation candidates (`finetune.validation.validate`); with ReDial
        turns also theirs (keys "dialogue_*"), and "loss" is then the mean of the two tasks' losses."""
        args = (self.acc, self.recipe.train.micro_batch_size, self._pad_id())
        metrics = validate(self.unwrapped, self.encoder, self.data.valid, *args)
        if self.data.dialogue_valid and self.unwrapped.dialogue_residual is not None:
            d = validate(self.unwrapped, self.encoder, self.data.dialogue_valid, *args, dialogue=True)
            metrics.update({f"dialogue_{k}": v for k, v in d.items()})
            metrics["sequential_loss"] = metrics["loss"]
            metrics["loss"] = (metrics["loss"] + d["loss"]) / 2
        return metrics

    def _result(self, losses: list[float], task_losses: list[dict[str, float]], total: Meter) -> TrainResult:
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
                "examples_per_s": total.examples / total.seconds if total.seconds else 0.0,
                "tokens_per_s": total.tokens / total.seconds if total.seconds else 0.0,
                "train_seconds": total.seconds,
                "examples": total.examples,
                "tokens": total.tokens,
            },
            peak_rss_mb=peak_rss_mb(),
            data=self.data.summary(),
        )

    # --- checkpoints ---------------------------------------------------------------------------------
    def _write_run_files(self) -> None:
        """The run folder's recipe.yaml and data.json (main process)."""
        self.out.mkdir(parents=True, exist_ok=True)
        if self.main:
            (self.out / "recipe.yaml").write_text(self.config_text(), encoding="utf-8")
            (self.out / "data.json").write_text(
                json.dumps({**self.data.summary(), "popularity_valid": self.popularity}, indent=2),
                encoding="utf-8",
            )

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
                extras=self._extras(),
            )
        self.acc.wait_for_everyone()
        return folder

    def _extras(self) -> tuple[Any, ...]:
        """What a checkpoint saves beside the weights: the priors and the residual mixes."""
        m, out = self.unwrapped, []
        if self.prior is not None:
            out += [self.prior, m.residual]
        if m.dialogue_residual is not None and self.data.conversation is not None:
            out += [self.data.conversation, m.dialogue_residual]
        return tuple(out)

    def _better(self, metrics: dict[str, float]) -> bool:
        key = self.recipe.train.metric
        value = metrics["loss"] if key == "loss" else metrics[key]
        if self.best is None or (value < self.best if key == "loss" else value > self.best):
            self.best = float(value)
            return True
        return False

    def end(self) -> None:
        self.acc.wait_for_everyone()
        self.acc.end_training()
