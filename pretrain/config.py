"""Settings of a pretraining run, as typed dataclasses (see common/config.py).

`python -m pretrain.train --help` prints every field below with its doc. Presets in
`pretrain/presets/*.yaml` are small deltas on these defaults; `selection.*` are the settings
of `pretrain/selection.py` (self-active data selection). No torch here: importing the settings
(for --help, the study, the report) stays cheap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from common.cli import settings_rows as field_docs  # noqa: F401  (pretrain.study's --help)
from common.config import ConfigError
from common.config import preset_path as common_preset_path
from pretrain.strategies import STRATEGIES

PRESETS_DIR = Path(__file__).resolve().parent / "presets"


@dataclass
class ModelConfig:
    """XLM-R masked-LM shape. The vocabulary size comes from the tokenizer."""

    hidden_size: int = 64  # width of every layer
    num_layers: int = 2  # transformer blocks
    num_heads: int = 2  # attention heads; must divide hidden_size
    ffn_size: int = 256  # feed-forward inner width
    dropout: float = 0.1  # hidden dropout
    attention_dropout: float = 0.1  # attention-probability dropout
    unigram_output_bias: bool = False  # LM-head bias starts at the log piece frequencies of the training mix
    tie_embeddings: bool = True  # the LM head's decoder shares the input embedding matrix (as XLM-R)
    neighbour_heads: bool = (
        False  # first layer's heads start attending to a fixed neighbour (-1, +1, -2, ...) through sinusoidal positions
    )

    def __post_init__(self) -> None:
        for name in ("hidden_size", "num_layers", "num_heads", "ffn_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden_size % self.num_heads:
            raise ConfigError(f"model.num_heads={self.num_heads} must divide model.hidden_size={self.hidden_size}")
        for name in ("dropout", "attention_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"model.{name} must be in [0, 1), got {getattr(self, name)}")


@dataclass
class DataConfig:
    """How corpus text becomes packed token blocks (cached per tokenizer and corpus hash)."""

    block_len: int = 64  # tokens per block, `<s>` included; also the model's max length
    langs: list[str] = field(default_factory=list)  # languages to train on; [] = every corpus language
    cache_dir: Path | None = None  # token-block cache; default <out_dir>/../cache
    tokenize_batch: int = 1000  # texts per tokenizer call while building the cache
    noise_share: float = 0.0  # positive control: share of each language's pool made of noise blocks (shuffled, other-language, unigram; pretrain/noise.py); 0 = none

    def __post_init__(self) -> None:
        if self.block_len < 8:
            raise ConfigError(f"data.block_len must be >= 8, got {self.block_len}")
        if self.tokenize_batch < 1:
            raise ConfigError(f"data.tokenize_batch must be >= 1, got {self.tokenize_batch}")
        if not 0.0 <= self.noise_share <= 0.9:
            raise ConfigError(f"data.noise_share must be in [0, 0.9], got {self.noise_share}")


@dataclass
class EvalConfig:
    """Exact validation (pretrain/validation.py): fixed positions of the valid split, all `<mask>`,
    the same for every run sharing a tokenizer and corpus; scored beside a unigram baseline."""

    mask_probability: float = 0.15  # share of a block's positions masked in one validation row
    targets_per_lang: int = 10000  # target tokens per language (fewer where the valid split is small)
    batch_size: int = 64  # validation rows per forward pass
    at_start: bool = True  # also evaluate the untrained model at step 0 (the unigram baseline is always there)

    def __post_init__(self) -> None:
        if not 0.0 < self.mask_probability <= 0.5:
            raise ConfigError(f"eval.mask_probability must be in (0, 0.5], got {self.mask_probability}")
        for name in ("targets_per_lang", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"eval.{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class MaskingConfig:
    """Dynamic MLM masking (BERT/XLM-R: 15% of tokens, of which 80% <mask>, 10% random, 10% kept)."""

    probability: float = 0.15  # share of (non-special) tokens to predict
    mask_fraction: float = 0.8  # of those: replaced by <mask>
    random_fraction: float = 0.1  # of those: replaced by a random piece (rest kept as is)
    whole_word: bool = False  # mask every piece of a chosen word (word starts: pieces with U+2581)

    def __post_init__(self) -> None:
        if not 0.0 < self.probability < 1.0:
            raise ConfigError(f"masking.probability must be in (0, 1), got {self.probability}")
        if self.mask_fraction < 0 or self.random_fraction < 0 or self.mask_fraction + self.random_fraction > 1:
            raise ConfigError(
                "masking.mask_fraction and masking.random_fraction must be >= 0 and sum to <= 1, "
                f"got {self.mask_fraction} + {self.random_fraction}"
            )


@dataclass
class TrainConfig:
    """Optimisation, evaluation and checkpointing."""

    max_steps: int = 200  # optimizer steps in the whole run
    batch_size: int = 16  # blocks per micro-batch per process
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 1e-3  # peak learning rate
    min_lr_ratio: float = 0.0  # final lr as a share of the peak
    warmup_steps: int = 20  # linear warm-up from 0 to lr
    schedule: Literal["linear", "cosine", "wsd"] = "linear"  # decay after warm-up; wsd = hold, then decay at the end
    decay_fraction: float = 0.2  # wsd: share of the steps, at the end, over which the lr decays
    weight_decay: float = 0.01  # AdamW decoupled decay (not on biases or LayerNorm)
    adam_beta1: float = 0.9  # AdamW beta1
    adam_beta2: float = 0.98  # RoBERTa's value, steadier with large batches
    adam_eps: float = 1e-6  # AdamW epsilon
    clip_norm: float = 1.0  # gradient-norm clipping; 0 turns it off
    bf16: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    cpu_bf16: bool = False  # bf16 autocast of CPU training steps where the CPU has bf16 instructions (AVX512-BF16 or AMX); ignored elsewhere, validation stays fp32
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto = cuda when visible, else cpu
    cpu_threads: int = 0  # torch intra-op threads on CPU; 0 = torch's default (one per core)
    seed: int = 0  # seeds initialisation, masking and dropout
    eval_every: int = 50  # steps between per-language validation
    log_every: int = 10  # steps between progress lines
    checkpoint_every: int = 50  # steps between checkpoints (also at the end and on SIGTERM)
    keep_checkpoints: int = 2  # newest complete checkpoints kept (>= 1)
    max_bad_steps: int = 5  # consecutive non-finite losses/gradients before the run stops

    def __post_init__(self) -> None:
        for name in (
            "max_steps",
            "batch_size",
            "grad_accum",
            "eval_every",
            "log_every",
            "checkpoint_every",
            "keep_checkpoints",
            "max_bad_steps",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"train.lr must be > 0, got {self.lr}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"train.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if not 0 <= self.warmup_steps <= self.max_steps:
            raise ConfigError(
                f"train.warmup_steps must be in [0, train.max_steps={self.max_steps}], got {self.warmup_steps}"
            )
        if not 0.0 < self.decay_fraction <= 1.0:
            raise ConfigError(f"train.decay_fraction must be in (0, 1], got {self.decay_fraction}")
        if self.cpu_threads < 0:
            raise ConfigError(f"train.cpu_threads must be >= 0, got {self.cpu_threads}")
        if self.clip_norm < 0:
            raise ConfigError(f"train.clip_norm must be >= 0, got {self.clip_norm}")


@dataclass
class VocabConfig:
    """Vocabulary changes to the `init_from` checkpoint before training (pretrain/vocab.py)."""

    reduce: bool = (
        False  # keep only the checkpoint's pieces seen in the training text (AfroXLMR), special and byte pieces always
    )
    min_count: int = 1  # reduce: times a piece must occur in the train split of the run's languages to be kept
    extend: bool = (
        False  # add tokenizer_dir's pieces that the checkpoint lacks, each starting at the mean of its old segmentation
    )

    def __post_init__(self) -> None:
        if self.min_count < 1:
            raise ConfigError(f"vocab.min_count must be >= 1, got {self.min_count}")


SAMPLINGS = ("gumbel", "topk")
STRATEGY_HELP = "selection strategy (pretrain/strategies): " + "; ".join(
    f"{name} = {s.summary}" for name, s in STRATEGIES.items()
)


@dataclass
class SelectionConfig:
    """Self-active selection settings (`selection.*`); the comments are the --help text."""

    strategy: str = field(default="loss", metadata={"help": STRATEGY_HELP})  # a registered strategy
    select_every: int = 50  # optimizer steps per selection round
    blocks_per_round: int = 256  # blocks the next round trains on (kept)
    kept_share: float = 1 / 3  # kept / candidates, when candidates_per_round is 0: the selection pressure
    candidates_per_round: int = (
        0  # blocks drawn and scored per round (> blocks_per_round); 0 = blocks_per_round / kept_share
    )
    sampling: str = (
        "gumbel"  # gumbel = sampling without replacement P ∝ exp(score/temperature); topk = the highest scores
    )
    alpha: float = 0.3  # language temperature: quota_i ∝ n_i^alpha (1 proportional, 0 uniform)
    exploration: float = 0.1  # share of each language's quota drawn uniformly at random
    gumbel_temperature: float = 1.0  # P(chosen) ∝ exp(score / this); lower is greedier
    junk_zscore: float = 3.0  # robust z (median/MAD per language) above which a block is junk
    junk_min_distinct: float = 0.1  # junk if distinct tokens < this share of its tokens
    junk_max_byte_share: float = 0.3  # junk if byte-fallback/<unk> tokens > this share
    junk_min_script_share: float = 0.5  # junk if letters in its language's main script < this
    mask_prob: float = 0.15  # share of ordinary tokens masked (all as <mask>) when scoring; fixed per block
    score_batch_size: int = 32  # blocks per forward pass when scoring and generating
    score_tokens: int = (
        0  # tokens of each candidate scored, its first N (0 = the whole block): cost falls in proportion
    )
    seed: int = 0  # seeds the held-out slice, candidates, masks, choice, order, prompts (with the round index)
    warmup_rounds: int = 1  # first rounds chosen at random (an untrained model's scores are noise)
    holdout_share: float = (
        0.05  # share of each language's training blocks held out of every arm (rho/mix's reference data)
    )
    rho_reference_steps: int = 200  # rho/mix: AdamW steps of the irreducible-loss model on the held-out slice
    rho_reference_batch: int = 16  # rho/mix: blocks per step of the irreducible-loss model
    rho_reference_lr: float = 1e-3  # rho/mix: learning rate of the irreducible-loss model
    mix_step_size: float = 1.0  # mix: exponentiated-gradient step on a language's excess loss (nats)
    mix_floor: float = 0.25  # mix: share spread uniformly over languages, so each keeps >= mix_floor / languages
    afrolm_generated_share: float = 0.1  # afrolm: share of each language's kept blocks that are generated
    afrolm_prompts_per_round: int = 1024  # afrolm: most training sentences rewritten per round
    afrolm_fill_fraction: float = 0.15  # afrolm: share of a prompt's last words filled in
    afrolm_min_words: int = 4  # afrolm: minimum words of a prompt and of a kept sentence
    afrolm_temperature: float = 0.0  # afrolm: 0 = greedy top-1 (as AfroLM); > 0 samples
    afrolm_top_k: int = 50  # afrolm: sample among the k likeliest tokens (0 = all)

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                raise ValueError(f"selection.{name} = {getattr(self, name)!r}: {what}")

        need(self.strategy in STRATEGIES, "strategy", f"unknown strategy; known: {', '.join(STRATEGIES)}")
        for name in (
            "select_every",
            "blocks_per_round",
            "score_batch_size",
            "afrolm_prompts_per_round",
            "rho_reference_batch",
        ):
            need(getattr(self, name) >= 1, name, "must be at least 1")
        need(0.0 < self.kept_share < 1.0, "kept_share", "must be in (0, 1): kept fewer than candidates")
        need(
            self.candidates_per_round == 0 or self.candidates_per_round > self.blocks_per_round,
            "candidates_per_round",
            f"must be 0 (from kept_share) or more than blocks_per_round ({self.blocks_per_round})",
        )
        need(self.sampling in SAMPLINGS, "sampling", f"must be one of {', '.join(SAMPLINGS)}")
        need(0.0 <= self.alpha <= 1.0, "alpha", "must be in [0, 1]")
        need(0.0 <= self.exploration <= 1.0, "exploration", "must be in [0, 1]")
        need(self.gumbel_temperature > 0, "gumbel_temperature", "must be > 0")
        need(self.junk_zscore > 0, "junk_zscore", "must be > 0 (.inf turns the guard off)")
        for name in ("junk_min_distinct", "junk_max_byte_share", "junk_min_script_share"):
            need(0.0 <= getattr(self, name) <= 1.0, name, "must be in [0, 1]")
        need(0.0 < self.mask_prob < 1.0, "mask_prob", "must be in (0, 1)")
        need(self.score_tokens == 0 or self.score_tokens >= 8, "score_tokens", "must be 0 (whole block) or >= 8")
        need(self.warmup_rounds >= 0, "warmup_rounds", "must be >= 0")
        need(0.0 <= self.holdout_share < 0.5, "holdout_share", "must be in [0, 0.5)")
        needs_reference = "ref_loss" in STRATEGIES[self.strategy].measures
        need(
            self.holdout_share > 0 or not needs_reference,
            "holdout_share",
            f"must be > 0 for strategy {self.strategy}: its irreducible-loss model trains on the held-out slice",
        )
        need(self.rho_reference_steps >= 1, "rho_reference_steps", "must be at least 1")
        need(self.rho_reference_lr > 0, "rho_reference_lr", "must be > 0")
        need(self.mix_step_size >= 0, "mix_step_size", "must be >= 0")
        need(0.0 < self.mix_floor <= 1.0, "mix_floor", "must be in (0, 1]")
        need(0.0 <= self.afrolm_generated_share < 1.0, "afrolm_generated_share", "must be in [0, 1)")
        need(0.0 < self.afrolm_fill_fraction < 1.0, "afrolm_fill_fraction", "must be in (0, 1)")
        need(self.afrolm_min_words >= 2, "afrolm_min_words", "must be at least 2")
        need(self.afrolm_temperature >= 0, "afrolm_temperature", "must be >= 0")
        need(self.afrolm_top_k >= 0, "afrolm_top_k", "must be >= 0")

    @property
    def candidates(self) -> int:
        """Candidates drawn per round: candidates_per_round, else blocks_per_round / kept_share."""
        return self.candidates_per_round or math.ceil(self.blocks_per_round / self.kept_share)


@dataclass
class PretrainConfig:
    """One pretraining run: inputs, outputs and every group of settings."""

    corpus_dir: Path = Path("out/corpus")  # corpus stage output (docs/interfaces.md)
    tokenizer_dir: Path = Path(
        "out/tokenizer/tiny"
    )  # Hugging Face fast tokenizer folder (with init_from: only for vocab.extend)
    out_dir: Path = Path("out/pretrain/tiny-loss")  # run folder
    init_from: str = ""  # XLM-R/RoBERTa masked-LM checkpoint folder (or Hub id) to continue from, its tokenizer and shape with it; "" = random init
    model: ModelConfig = field(default_factory=ModelConfig)
    vocab: VocabConfig = field(default_factory=VocabConfig)
    data: DataConfig = field(default_factory=DataConfig)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)

    def __post_init__(self) -> None:
        for name in ("reduce", "extend"):
            if getattr(self.vocab, name) and not self.init_from:
                raise ConfigError(f"vocab.{name}=true changes a checkpoint's vocabulary; set init_from to one")


# Settings that change nothing in the trained weights, metrics or selection files: they
# may differ between a run and its resumption (resuming refuses every other change).
# Input folders are compared by their content hashes (corpus_hash, tokenizer_hash, init_hash), not paths.
RESUME_SAFE_SETTINGS = frozenset(
    {
        "corpus_dir",
        "tokenizer_dir",
        "out_dir",
        "init_from",
        "data.cache_dir",
        "data.tokenize_batch",
        "train.log_every",
        "train.checkpoint_every",
        "train.keep_checkpoints",
        "train.device",
        "train.bf16",
        "train.cpu_threads",
        "eval.batch_size",
    }
)


def flatten(data: dict, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    flat = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def preset_path(name: str) -> Path:
    return common_preset_path(PRESETS_DIR, name)
