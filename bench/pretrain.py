"""Our pretraining step against the Hugging Face `Trainer`, side by side (`make bench-pretrain`).

    python -m bench.pretrain [--config FILE] [key=value ...]

Two arms train the same `XLMRobertaForMaskedLM` (same shape, same initial weights, fp32, same
dropout) on the same token blocks, at each vocabulary size in `vocab_sizes`:

* ours: the path `pretrain.train` takes for a step: `pretrain.masking.mask_tokens`,
  `pretrain.model.MaskedLMObjective` (the LM head only on the masked positions),
  `pretrain.optim.build_optimizer` (AdamW + schedule), gradient clipping;
* hf: `transformers.Trainer` with `DataCollatorForLanguageModeling` (full-vocabulary logits at
  every position), the same AdamW settings (`optim=adamw_torch_fused`, the fused kernel like ours),
  the same clipping, linear schedule and warm-up, on CPU with no dataloader workers and no
  logging, saving or evaluation.

Masking: BERT's 15% by default (`mask_probability`; the tiny preset trains at a higher rate, which
gives the full-vocabulary head less to waste), the 80/10/10 split from the tiny preset; optimizer
settings are the tiny preset's too. Both arms set `torch.set_num_threads(threads)`.
Token ids are Zipf-distributed over a generated vocabulary of the requested size (a WordLevel
fast tokenizer with the XLM-R special tokens, so both arms see the same special ids), packed like
our blocks: `<s>` first, documents closed by `</s>`, no padding. A trained tokenizer is not needed
to time a step.

Each arm runs in its own process (`--arm ours|hf`), so its peak RSS is its own. Each one runs
`warmup_steps` untimed steps, then `steps` timed ones; tokens/s counts non-padding tokens.
With `repeats=N` each arm runs N times, the arms alternating, and each arm's fastest run counts.
Prints one JSON object on stdout (the config, then per vocabulary both arms and the ratio
ours/hf of tokens/s); progress goes to stderr.

Goals: ours/hf tokens per second >= 1.5x at an 8k vocabulary and >= 3x at 64k (the full head's
vocabulary projection and its softmax grow with the vocabulary; ours runs them on ~15% of the
positions only).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

from common.cli import Command
from common.config import ConfigError, config_to_dict, load_config, read_yaml_with_inherit
from pretrain.config import ModelConfig, PretrainConfig, TrainConfig, preset_path

# ours/hf tokens per second wanted at these vocabulary sizes (see the module docstring).
GOALS = {8000: 1.5, 64000: 3.0}
# XLM-R layout, as the tokenizer stage writes it: ids 0-3 fixed, <mask> the last id.
SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
MASK = "<mask>"


@dataclass
class PretrainBenchConfig:
    vocab_sizes: list[int] = field(default_factory=lambda: [8000, 64000])  # one pair of runs each
    hidden_size: int = 256  # model width
    num_layers: int = 4  # transformer blocks
    num_heads: int = 4  # attention heads
    ffn_size: int = 1024  # feed-forward inner width
    batch_size: int = 16  # blocks per step
    seq_len: int = 128  # tokens per block
    mask_probability: float = 0.15  # share of tokens masked in both arms (BERT's rate)
    threads: int = 2  # torch.set_num_threads in both arms
    warmup_steps: int = 3  # untimed steps first (also the lr warm-up of both arms)
    steps: int = 20  # timed steps
    seed: int = 0  # data, initial weights, masks
    zipf_exponent: float = 1.0  # token frequency ~ 1 / rank^exponent
    mean_doc_tokens: int = 60  # mean document length: `</s>` ends one about this often
    hf_optim: str = "adamw_torch_fused"  # Trainer's optim: its default on torch >= 2.8, the fused kernel ours uses too
    repeats: int = 1  # runs of each arm, alternating; the fastest counts (steadier on a shared machine)

    def __post_init__(self) -> None:
        if not self.vocab_sizes or min(self.vocab_sizes) < len(SPECIALS) + 2:
            raise ConfigError(f"vocab_sizes needs values >= {len(SPECIALS) + 2}, got {self.vocab_sizes}")
        for name in (
            "hidden_size",
            "num_layers",
            "num_heads",
            "ffn_size",
            "batch_size",
            "threads",
            "warmup_steps",
            "steps",
            "mean_doc_tokens",
            "repeats",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden_size % self.num_heads:
            raise ConfigError(f"num_heads={self.num_heads} must divide hidden_size={self.hidden_size}")
        if self.seq_len < 8:
            raise ConfigError(f"seq_len must be >= 8, got {self.seq_len}")
        if not 0.0 < self.mask_probability < 1.0:
            raise ConfigError(f"mask_probability must be in (0, 1), got {self.mask_probability}")


def progress(message: str) -> None:
    print(f"[bench-pretrain] {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def tiny_preset():
    """The tiny pretraining preset: masking and optimizer settings both arms share."""
    return load_config(PretrainConfig, base=read_yaml_with_inherit(preset_path("tiny")))


def resolved_settings(cfg: PretrainBenchConfig) -> dict:
    """Masking and optimizer settings of both arms, as echoed in the JSON."""
    preset = tiny_preset()
    m, t = preset.masking, preset.train
    return {
        "mask_probability": cfg.mask_probability,
        "mask_fraction": m.mask_fraction,
        "random_fraction": m.random_fraction,
        "lr": t.lr,
        "adam_beta1": t.adam_beta1,
        "adam_beta2": t.adam_beta2,
        "adam_eps": t.adam_eps,
        "weight_decay": t.weight_decay,
        "clip_norm": t.clip_norm,
        "schedule": "linear",
        "lr_warmup_steps": cfg.warmup_steps,
        "dropout": preset.model.dropout,
        "attention_dropout": preset.model.attention_dropout,
        "dtype": "float32",
    }


def build_tokenizer(vocab_size: int):
    """A fast tokenizer of exactly `vocab_size` ids: <s> <pad> </s> <unk>, pieces, <mask> last."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    pieces = [f"\u2581p{i}" for i in range(vocab_size - len(SPECIALS) - 1)]
    vocab = {token: i for i, token in enumerate([*SPECIALS, *pieces, MASK])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        cls_token="<s>",
        pad_token="<pad>",
        eos_token="</s>",
        sep_token="</s>",
        unk_token="<unk>",
        mask_token=MASK,
        model_input_names=["input_ids", "attention_mask"],
    )
    assert len(tokenizer) == vocab_size and tokenizer.mask_token_id == vocab_size - 1
    return tokenizer


def make_blocks(n_blocks: int, seq_len: int, vocab_size: int, cfg: PretrainBenchConfig) -> np.ndarray:
    """(n_blocks, seq_len) int32 packed like our cache: `<s>` first, `</s>` closing documents,
    ordinary pieces Zipf-distributed (rank 1 = the first piece id), no padding."""
    rng = np.random.default_rng(cfg.seed)
    first, n_pieces = len(SPECIALS), vocab_size - len(SPECIALS) - 1
    weights = 1.0 / np.arange(1, n_pieces + 1, dtype=np.float64) ** cfg.zipf_exponent
    blocks = first + rng.choice(n_pieces, size=(n_blocks, seq_len), p=weights / weights.sum())
    blocks[rng.random((n_blocks, seq_len)) < 1.0 / cfg.mean_doc_tokens] = SPECIALS.index("</s>")
    blocks[:, 0] = SPECIALS.index("<s>")
    return blocks.astype(np.int32)


def build_shared(cfg: PretrainBenchConfig, vocab_size: int):
    """Tokenizer, blocks and a freshly initialised model, identical in both arms."""
    import torch

    from pretrain.model import build_model

    settings = resolved_settings(cfg)
    tokenizer = build_tokenizer(vocab_size)
    total = cfg.warmup_steps + cfg.steps
    blocks = make_blocks(total * cfg.batch_size, cfg.seq_len, vocab_size, cfg)
    shape = ModelConfig(
        hidden_size=cfg.hidden_size,
        num_layers=cfg.num_layers,
        num_heads=cfg.num_heads,
        ffn_size=cfg.ffn_size,
        dropout=settings["dropout"],
        attention_dropout=settings["attention_dropout"],
    )
    torch.manual_seed(cfg.seed)  # the same initial weights in both arms
    model = build_model(shape, tokenizer, cfg.seq_len)
    model.train()
    return settings, tokenizer, blocks, model


def describe_optimizer(optimizer) -> dict:
    """What makes two AdamW set-ups the same: class, hyper-parameters, kernel, decay groups."""
    inner = getattr(optimizer, "optimizer", optimizer)  # accelerate wraps the Trainer's optimizer
    d = inner.defaults
    groups = sorted((float(g["weight_decay"]), sum(p.numel() for p in g["params"])) for g in inner.param_groups)
    return {
        "class": type(inner).__name__,
        "lr": d["lr"],
        "betas": [float(b) for b in d["betas"]],
        "eps": d["eps"],
        "fused": bool(d.get("fused")),
        "foreach": d.get("foreach"),
        "decay_groups": [[wd, n] for wd, n in groups if n],
    }


def rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def summarize(ends: list[tuple[float, float]], tokens: list[int], targets: list[int], cfg, **extra) -> dict:
    """Timed window = end of the last warm-up step to the end of the last step."""
    import torch

    (w0, c0), (w1, c1) = ends[cfg.warmup_steps - 1], ends[cfg.warmup_steps + cfg.steps - 1]
    walls = np.diff([e[0] for e in ends[cfg.warmup_steps - 1 : cfg.warmup_steps + cfg.steps]])
    timed_tokens = sum(tokens[cfg.warmup_steps : cfg.warmup_steps + cfg.steps])
    per_step = sorted(set(tokens[cfg.warmup_steps : cfg.warmup_steps + cfg.steps]))
    return {
        "tokens_per_s": round(timed_tokens / (w1 - w0), 1),
        "tokens_per_s_median_step": round(timed_tokens / cfg.steps / float(np.median(walls)), 1),
        "tokens_per_cpu_s": round(timed_tokens / max(1e-9, c1 - c0), 1),
        "step_s_median": round(float(np.median(walls)), 4),
        "timed_seconds": round(w1 - w0, 3),
        "timed_steps": cfg.steps,
        "timed_tokens": timed_tokens,
        "tokens_per_step": per_step[0] if len(per_step) == 1 else per_step,
        "targets_per_step_mean": round(float(np.mean(targets[cfg.warmup_steps : cfg.warmup_steps + cfg.steps])), 1),
        "torch_threads": torch.get_num_threads(),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),  # KiB on Linux
        **extra,
    }


def run_ours(cfg: PretrainBenchConfig, vocab_size: int) -> dict:
    """pretrain.train's step: fresh masks per step, objective on masked positions, clip, AdamW."""
    import torch

    from pretrain.masking import IGNORE_INDEX, mask_tokens, special_table
    from pretrain.model import MaskedLMObjective
    from pretrain.optim import build_optimizer
    from pretrain.train import derive_seed

    settings, tokenizer, blocks, model = build_shared(cfg, vocab_size)
    total = cfg.warmup_steps + cfg.steps
    tcfg = TrainConfig(
        max_steps=total,
        batch_size=cfg.batch_size,
        lr=settings["lr"],
        warmup_steps=cfg.warmup_steps,
        schedule="linear",
        weight_decay=settings["weight_decay"],
        adam_beta1=settings["adam_beta1"],
        adam_beta2=settings["adam_beta2"],
        adam_eps=settings["adam_eps"],
        clip_norm=settings["clip_norm"],
        device="cpu",
        seed=cfg.seed,
    )
    objective = MaskedLMObjective(model)
    optimizer, scheduler = build_optimizer(model, tcfg)
    special = special_table(tokenizer)
    setup_rss = rss_mib()
    ends, tokens, targets, losses = [], [], [], []
    for step in range(total):
        torch.manual_seed(derive_seed(tcfg.seed, 1, step, 0))  # dropout, seekable per step as in training
        gen = torch.Generator().manual_seed(derive_seed(tcfg.seed, 2, step, 0))
        chunk = torch.from_numpy(blocks[step * cfg.batch_size : (step + 1) * cfg.batch_size].astype(np.int64))
        inputs, labels = mask_tokens(
            chunk,
            special,
            tokenizer.mask_token_id,
            len(tokenizer),
            gen,
            settings["mask_probability"],
            settings["mask_fraction"],
            settings["random_fraction"],
        )
        attention = chunk != tokenizer.pad_token_id
        n_targets = int((labels != IGNORE_INDEX).sum())
        part, _ = objective(inputs, attention, labels)
        (part / max(1, n_targets)).backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.clip_norm or float("inf"))
        if math.isfinite(float(norm)):
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        ends.append((time.perf_counter(), time.process_time()))
        tokens.append(int(attention.sum()))
        targets.append(n_targets)
        losses.append(float(part.detach()) / max(1, n_targets))
    return summarize(
        ends,
        tokens,
        targets,
        cfg,
        rss_after_setup_mib=round(setup_rss, 1),
        optimizer=describe_optimizer(optimizer),
        max_grad_norm=tcfg.clip_norm,
        loss_first=round(losses[0], 4),
        loss_last=round(losses[-1], 4),
    )


def run_hf(cfg: PretrainBenchConfig, vocab_size: int) -> dict:
    """The standard stack: Trainer + DataCollatorForLanguageModeling on the same model and blocks."""
    import torch
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainerCallback, TrainingArguments

    settings, tokenizer, blocks, model = build_shared(cfg, vocab_size)
    total = cfg.warmup_steps + cfg.steps
    rows = blocks.tolist()  # what a tokenized dataset hands the collator: lists of ids

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return len(rows)

        def __getitem__(self, i):
            return {"input_ids": rows[i]}

    tokens, targets = [], []

    class CountingCollator(DataCollatorForLanguageModeling):
        """The stock collator; records each batch's non-padding tokens and prediction targets."""

        def torch_call(self, examples):
            batch = super().torch_call(examples)
            tokens.append(int(batch["attention_mask"].sum()))
            targets.append(int((batch["labels"] != -100).sum()))
            return batch

    ends = []

    class StepClock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            ends.append((time.perf_counter(), time.process_time()))

    collator = CountingCollator(
        tokenizer,
        mlm=True,
        mlm_probability=settings["mask_probability"],
        mask_replace_prob=settings["mask_fraction"],
        random_replace_prob=settings["random_fraction"],
        seed=cfg.seed,
    )
    with tempfile.TemporaryDirectory(prefix="bench-pretrain-hf-") as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            max_steps=total,
            per_device_train_batch_size=cfg.batch_size,
            gradient_accumulation_steps=1,
            learning_rate=settings["lr"],
            weight_decay=settings["weight_decay"],
            adam_beta1=settings["adam_beta1"],
            adam_beta2=settings["adam_beta2"],
            adam_epsilon=settings["adam_eps"],
            max_grad_norm=settings["clip_norm"],
            lr_scheduler_type="linear",
            warmup_steps=cfg.warmup_steps,
            optim=cfg.hf_optim,
            use_cpu=True,
            bf16=False,
            fp16=False,
            dataloader_num_workers=0,
            dataloader_pin_memory=False,
            logging_strategy="no",
            save_strategy="no",
            eval_strategy="no",
            report_to="none",
            disable_tqdm=True,
            seed=cfg.seed,
            data_seed=cfg.seed,
        )
        trainer = Trainer(model=model, args=args, train_dataset=Rows(), data_collator=collator, callbacks=[StepClock()])
        setup_rss = rss_mib()
        result = trainer.train()
    if len(ends) != total:
        raise RuntimeError(f"the Trainer ran {len(ends)} steps, {total} were asked")
    # The dataloader may collate one batch ahead; batches are consumed in order, one a step.
    return summarize(
        ends,
        tokens[:total],
        targets[:total],
        cfg,
        rss_after_setup_mib=round(setup_rss, 1),
        optimizer=describe_optimizer(trainer.optimizer),
        max_grad_norm=args.max_grad_norm,
        loss_mean=round(result.training_loss, 4),
    )


def run_arm(cfg: PretrainBenchConfig, arm: str, vocab_size: int) -> dict:
    import torch

    torch.set_num_threads(cfg.threads)
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the JSON
        return (run_ours if arm == "ours" else run_hf)(cfg, vocab_size)


def child(args: argparse.Namespace, arm: str, vocab_size: int) -> dict:
    """One arm in a process of its own, so its peak RSS is its own."""
    command = [sys.executable, "-m", "bench.pretrain", "--arm", arm, "--vocab-size", str(vocab_size)]
    if args.config:
        command += ["--config", str(args.config)]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(command + list(args.overrides), stdout=subprocess.PIPE, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"arm {arm} at vocabulary {vocab_size} failed (exit {done.returncode}); see stderr")
    return json.loads(done.stdout)


def compare(cfg: PretrainBenchConfig, args: argparse.Namespace) -> dict:
    import torch
    import transformers

    load_before = os.getloadavg()[0]
    results = {}
    for vocab_size in cfg.vocab_sizes:
        arms = {}
        runs = {"ours": [], "hf": []}
        for repeat in range(cfg.repeats):
            # Alternating the arms spreads a busy spell of the machine over both.
            for arm in runs:
                progress(
                    f"vocabulary {vocab_size:,}: {arm} ({cfg.warmup_steps} + {cfg.steps} steps, "
                    f"run {repeat + 1}/{cfg.repeats}) ..."
                )
                runs[arm].append(child(args, arm, vocab_size))
                progress(
                    f"vocabulary {vocab_size:,}: {arm} {runs[arm][-1]['tokens_per_s']:,.0f} tokens/s, "
                    f"peak RSS {runs[arm][-1]['peak_rss_mib']:,.0f} MiB"
                )
        for arm, done in runs.items():
            arms[arm] = {
                **max(done, key=lambda r: r["tokens_per_s"]),
                "runs_tokens_per_s": [r["tokens_per_s"] for r in done],
                "peak_rss_mib": max(r["peak_rss_mib"] for r in done),
            }
        ratio = arms["ours"]["tokens_per_s"] / arms["hf"]["tokens_per_s"]
        goal = GOALS.get(vocab_size)
        results[str(vocab_size)] = {
            "ours": arms["ours"],
            "hf": arms["hf"],
            "ratio_tokens_per_s": round(ratio, 3),
            "ratio_tokens_per_s_median_step": round(
                arms["ours"]["tokens_per_s_median_step"] / arms["hf"]["tokens_per_s_median_step"], 3
            ),
            "ratio_tokens_per_cpu_s": round(arms["ours"]["tokens_per_cpu_s"] / arms["hf"]["tokens_per_cpu_s"], 3),
            "ratio_peak_rss": round(arms["ours"]["peak_rss_mib"] / arms["hf"]["peak_rss_mib"], 3),
            "same_tokens_per_step": arms["ours"]["tokens_per_step"] == arms["hf"]["tokens_per_step"],
            "same_optimizer": arms["ours"]["optimizer"] == arms["hf"]["optimizer"],
            "goal_ratio": goal,
            "meets_goal": None if goal is None else ratio >= goal,
        }
    return {
        "config": config_to_dict(cfg),
        "settings": resolved_settings(cfg),
        "vocab": results,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cores": len(os.sched_getaffinity(0)),
        "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
    }


def _child_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arm", choices=("ours", "hf"), help=argparse.SUPPRESS)  # one child process
    parser.add_argument("--vocab-size", type=int, help=argparse.SUPPRESS)


COMMAND = Command(PretrainBenchConfig, "python -m bench.pretrain", __doc__, flags=_child_flags)


def main(argv: list[str] | None = None) -> int:
    return COMMAND.run(argv, bench)


def bench(cfg: PretrainBenchConfig, args: argparse.Namespace) -> None:
    if args.arm:
        print(json.dumps(run_arm(cfg, args.arm, args.vocab_size)))
    else:
        print(json.dumps(compare(cfg, args), indent=2))


if __name__ == "__main__":
    sys.exit(main())
