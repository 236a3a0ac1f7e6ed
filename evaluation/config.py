"""`fusionrec eval` defaults."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EvalConfig:
    protocol: str = "ml100k-loo"  # ml100k-loo | redial | all
    limit: int = 0  # evaluate at most this many users / ReDial examples, a seeded subset (0 = all)
    seed: int = 0  # candidate sampling, user subsets, random baseline, BPR init and bootstrap seed
    bootstrap: int = 1000  # bootstrap resamples for the 95% confidence intervals (0 = no intervals)
    output_dir: str = ""  # "" = <paths.home>/reports
    name: str = ""  # report folder name under output_dir ("" = a timestamp); same name = resume
    systems: str = ""  # comma list (see `fusionrec eval --help`); "" = every available system
    split: str = "test"  # ml100k-loo target: test (last interaction) | valid (the one before)
    num_negatives: int = 19  # sampled negatives per user (20 candidates with the target)
    example_history: int = 20  # most recent history items kept per example (what the baselines see)
    history_len: int = 10  # watched items shown in the LLM's ranking prompt (LoRA: its recipe's data.history_len)
    llm_limit: int = 0  # LLM systems see at most this many of the examples (seeded subset; 0 = all)
    templates: list[str] = field(default_factory=list)  # prompt variants ([] = every agent/prompts/*.txt)
    ablations: bool = True  # modality x fusion ablations and the modality-contribution report
    llm_ablation_limit: int = 0  # examples for the LLM item-token ablation (0 = off; it costs LLM passes)
    explain_sample: int = 20  # LLM explanations generated and fact-checked per LLM system (0 = off)
    collab_dim: int = 32  # BPR-MF factors (the recipe's data.collab_dim names the same idea)
    bpr_epochs: int = 40  # BPR-MF passes over the training interactions
    bpr_lr: float = 0.05  # BPR-MF learning rate (SGD)
    bpr_reg: float = 0.002  # BPR-MF L2 regularisation
    sasrec_epochs: int = 0  # SASRec baseline epochs (0 = retrieval.collaborative.sasrec.train_sasrec's default)
    redial_splits: list[str] = field(default_factory=lambda: ["test"])  # test | valid
    redial_pool: int = 100  # ReDial: retrieved candidates ranked per turn (0 = the whole catalog)
    redial_context_turns: int = 6  # ReDial: dialogue messages used as the query / LLM history
    redial_zeroshot_limit: int = 100  # ReDial: the zero-shot LLM sees at most this many of the LLM examples (0 = all)
    threads: int = 0  # torch intra-op threads while evaluating (0 = torch default; 1 = best on busy CPUs)
    plots: bool = True  # write PNG plots (matplotlib, Agg backend)
    summary: str = ""  # also write the ML-100k headline into this JSON file (+ plots beside it); "" = no
    progress: bool = True  # tqdm progress bars
