"""Settings of the finetuning stage: what to evaluate, how to train, where the data is.

Tasks are data, not code: each built-in task (common/eval_sets.yaml, the registry of evaluation
sets shared with the corpus stage's decontamination) is a `TaskSpec`, and a user adds their own
CoNLL or TSV/CSV/JSONL set in a `tasks_file` or under `custom_tasks`, see docs/finetune.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from common.eval_sets import TaskSpec


@dataclass
class TrainConfig:
    """Optimisation. Defaults are the real-run settings (presets/default.yaml)."""

    epochs: int = 5
    lr: float = 5e-5
    batch_size: int = 32
    """Examples per optimizer step, in total: with N data-parallel processes each takes 1/N."""
    eval_batch_size: int = 64
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    max_length: int = 256
    """Sub-tokens per window incl. specials; capped by the model's position table."""
    stride_words: int = 0
    """Most earlier words an NER window carries as unlabelled left context (0 = max_length // 4)."""
    max_train_examples: int = 0
    """Cap on train rows (0 = all); a seeded sample, the same for every model."""
    max_dev_examples: int = 0
    max_test_examples: int = 0
    """Keep 0 for reportable numbers: test scores on a subset are not comparable."""
    threads: int = 0
    """torch CPU threads (0 = torch's default)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where the model and batches live: `auto` = cuda when a CUDA device is visible, else cpu.
    Under `torchrun` each process takes its own GPU and `batch_size` is split between them."""
    bf16: bool = True
    """bf16 autocast for the forward passes on CUDA (ignored on CPU)."""

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_length < 8:
            raise ValueError(f"train.max_length must be >= 8, got {self.max_length}")
        if not 0 < self.lr < 1:
            raise ValueError(f"train.lr must be in (0, 1), got {self.lr}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"train.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        for name in ("max_train_examples", "max_dev_examples", "max_test_examples", "stride_words", "threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"train.{name} must be >= 0, got {getattr(self, name)}")


@dataclass
class FinetuneConfig:
    """`python -m finetune.run model=DIR data_dir=DIR out_dir=DIR [tasks=[...]] ...`"""

    model: str = ""
    """Hugging Face model folder: config.json, weights and tokenizer files (ours or any other)."""
    models: list[str] = field(default_factory=list)
    """More model folders, compared by the same code, data and seeds."""
    data_dir: Path = Path("../shared/data")
    """Root of the evaluation data; task paths are relative to it."""
    out_dir: Path = Path("out/finetune/run")
    """Where tables, per-run results, config.yaml and manifest.json go."""
    tasks: list[str] = field(default_factory=lambda: ["masakhaner1", "hedderich", "yosm"])
    """Task names (the registry common/eval_sets.yaml, tasks_file or custom_tasks)."""
    langs: list[str] = field(default_factory=lambda: ["hau", "yor"])
    """Languages to run, intersected with each task's languages; empty = all of them."""
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    """One finetuning run per seed; tables report mean and std over them."""
    train: TrainConfig = field(default_factory=TrainConfig)
    tasks_file: Path | None = None
    """A YAML file of your own evaluation sets, `name: {kind, langs, files, reader, ...}` as in
    common/eval_sets.yaml; give the same file to the corpus stage so its text is removed from the
    corpus (docs/finetune.md, "Bring your own data")."""
    custom_tasks: list[TaskSpec] = field(default_factory=list)
    """Your own tasks inline, same shape as the entries of common/eval_sets.yaml."""
    skip_bad_rows: bool = False
    """Skip (and count) bad rows (malformed, empty, unknown label; NER: sentences with an unknown
    label) instead of stopping at the first with an error."""
    save_predictions: bool = True
    """Write each run's test predictions (test_predictions.jsonl.gz)."""
    force: bool = False
    """Rerun even when the manifest says nothing changed."""

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ValueError("tasks is empty")
        if not self.seeds:
            raise ValueError("seeds is empty")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds has duplicates: {self.seeds}")

    def model_dirs(self) -> list[str]:
        dirs = ([self.model] if self.model else []) + [m for m in self.models if m != self.model]
        return dirs
