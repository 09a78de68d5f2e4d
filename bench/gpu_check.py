"""One-GPU check (`make gpu-check`): pretraining speed, MFU and memory, then one finetuning run.

    python -m bench.gpu_check [--config FILE] [key=value ...]

On a CUDA machine:
1. Pretrains the `small` preset (pretrain/presets/small.yaml) for `steps` optimizer steps with
   bf16 autocast, fused AdamW (pretrain/optim.py on CUDA) and, with `deterministic=true`,
   `torch.use_deterministic_algorithms(True)` (CUBLAS_WORKSPACE_CONFIG=:4096:8 is set before
   CUDA starts). Reports tokens/s after the first logging window (which holds CUDA start-up,
   the step-0 evaluation and the first selection round), MFU and peak GPU memory.
2. Finetunes the model it just trained on one task (default MasakhaNER 2.0 Hausa, one seed,
   one epoch) on the same GPU and reports its time and test score.

Prints one JSON object on stdout (progress goes to stderr) and writes it to
<out_dir>/gpu_check.json. Without a visible CUDA device it prints
`{"skipped": true, "reason": ...}` and exits 0, so it is safe to run anywhere.

Inputs: a corpus (`make corpus`, out/corpus) and a tokenizer (`make tokenizer PRESET=small`
writes out/tokenizer/default; `make tokenizer` writes the quicker out/tokenizer/tiny, then
pass tokenizer_dir=out/tokenizer/tiny). The finetuning data is read from data_dir.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from common.cli import Command
from common.config import ConfigError, config_to_dict, load_config, read_yaml_with_inherit
from common.io import read_manifest
from finetune.config import FinetuneConfig
from finetune.results import read_results
from pretrain.config import PretrainConfig, TrainConfig, preset_path
from pretrain.runfiles import METRICS, TIMING, read_metrics, read_timing

# Dense (no sparsity) bf16 tensor-core peak of one H100 SXM, which the H200 shares.
H100_BF16_DENSE_FLOPS = 989e12
HOW_TO_INPUTS = (
    "make corpus (writes out/corpus) and make tokenizer PRESET=small (writes "
    "out/tokenizer/default); or make tokenizer (out/tokenizer/tiny) and pass "
    "tokenizer_dir=out/tokenizer/tiny"
)


@dataclass
class GpuCheckConfig:
    corpus_dir: Path = Path("out/corpus")  # corpus stage output (make corpus)
    tokenizer_dir: Path = Path("out/tokenizer/default")  # make tokenizer PRESET=small; or out/tokenizer/tiny
    data_dir: Path = Path("../shared/data")  # evaluation data for the finetuning run
    out_dir: Path = Path("out/gpu-check")  # pretrain/ and finetune/ runs, gpu_check.json
    preset: str = "small"  # pretraining preset (pretrain/presets/)
    steps: int = 300  # pretraining optimizer steps
    deterministic: bool = True  # torch.use_deterministic_algorithms(True) for both runs
    peak_flops: float = H100_BF16_DENSE_FLOPS  # the GPU's peak FLOP/s for MFU (H100/H200 dense bf16)
    pretrain_args: list[str] = field(default_factory=list)  # extra key=value for pretraining
    task: str = "masakhaner2"  # finetuning task (common/eval_sets.yaml)
    lang: str = "hau"  # its language
    seed: int = 1  # one finetuning seed
    epochs: int = 1  # finetuning epochs
    finetune_args: list[str] = field(default_factory=list)  # extra key=value for finetuning

    def __post_init__(self) -> None:
        if self.steps < 10:
            raise ConfigError(f"steps must be >= 10, got {self.steps}")
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if self.peak_flops <= 0:
            raise ConfigError(f"peak_flops must be > 0, got {self.peak_flops}")


def progress(message: str) -> None:
    print(f"[gpu-check] {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


# --- arithmetic (tested on CPU) ----------------------------------------------------------------


def flop_parameters(model, head_share: float) -> float:
    """Parameters that do a multiply-add per trained token, for 6*N.

    Embedding tables are lookups (no matmul) and are left out. The LM head (dense, LayerNorm,
    the vocabulary projection that shares the embedding matrix) runs only on the masked
    positions (pretrain/model.py), so it counts with `head_share` (masking.probability).
    """
    from torch import nn

    tables = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    body = sum(p.numel() for p in model.roberta.parameters() if id(p) not in tables)
    head = sum(p.numel() for p in model.lm_head.parameters())  # the tied projection included
    return body + head_share * head


def flops_per_token(n_params: float, layers: int, hidden: int, seq_len: int) -> float:
    """Training FLOPs per token: 6N for the weights (forward 2N, backward 4N) plus attention
    scores and weighted sums, 2 matmuls x 2 FLOPs x T x H per layer forward, x3 with backward
    (PaLM, appendix B)."""
    return 6.0 * n_params + 12.0 * layers * hidden * seq_len


def mfu(tokens_per_s: float, per_token: float, peak_flops: float) -> float:
    """Model FLOPs utilisation: achieved model FLOP/s over the hardware peak."""
    return tokens_per_s * per_token / peak_flops


def steady_tokens_per_s(timing: list[dict]) -> tuple[float, float]:
    """(tokens/s after the first logging window, tokens/s of the first window).

    The first window holds CUDA start-up, the step-0 evaluation and the first selection
    round; the later ones are weighted by their duration. With one window, that one.
    """
    if not timing:
        raise ValueError("no timing records (timing.jsonl is empty)")
    first = float(timing[0]["tokens_per_s"])
    tokens = seconds = 0.0
    for before, record in zip(timing, timing[1:]):
        dt = float(record["elapsed_s"]) - float(before["elapsed_s"])
        tokens += float(record["tokens_per_s"]) * dt
        seconds += dt
    return (tokens / seconds if seconds > 0 else first), first


# --- the check ---------------------------------------------------------------------------------


def skipped(reason: str) -> dict:
    return {"skipped": True, "reason": reason}


def missing_inputs(cfg: GpuCheckConfig) -> list[str]:
    """What the runs need and is not there, each with the setting that names it."""
    from finetune.run import task_files, task_registry

    missing = []
    if read_manifest(cfg.corpus_dir) is None:
        missing.append(f"corpus_dir={cfg.corpus_dir}: no complete corpus (manifest.json)")
    if not (Path(cfg.tokenizer_dir) / "tokenizer.json").exists():
        missing.append(f"tokenizer_dir={cfg.tokenizer_dir}: no tokenizer.json")
    registry = task_registry(FinetuneConfig(tasks=[cfg.task]))
    if cfg.task not in registry:
        raise ConfigError(f"task: unknown task {cfg.task!r}; known: {sorted(registry)}")
    if cfg.lang not in registry[cfg.task].langs:
        raise ConfigError(f"lang: {cfg.task} has no {cfg.lang!r}; it has {registry[cfg.task].langs}")
    missing += [
        f"data_dir={cfg.data_dir}: no {path}"
        for path in task_files(registry[cfg.task], cfg.lang, Path(cfg.data_dir))
        if not path.exists()
    ]
    return missing


def pretrain_config(cfg: GpuCheckConfig):
    base = read_yaml_with_inherit(preset_path(cfg.preset))
    warmup = int(base.get("train", {}).get("warmup_steps", TrainConfig.warmup_steps))
    overrides = [
        f"corpus_dir={cfg.corpus_dir}",
        f"tokenizer_dir={cfg.tokenizer_dir}",
        f"out_dir={Path(cfg.out_dir) / 'pretrain'}",
        f"train.max_steps={cfg.steps}",
        # The preset's warm-up is longer than a short check.
        f"train.warmup_steps={min(warmup, cfg.steps // 10)}",
        "train.device=cuda",
        "train.bf16=true",
        f"train.log_every={max(1, cfg.steps // 10)}",
        # Evaluate and checkpoint only at the start and end, so they stay out of the speed.
        f"train.eval_every={cfg.steps}",
        f"train.checkpoint_every={cfg.steps}",
        *cfg.pretrain_args,
    ]
    return load_config(PretrainConfig, None, overrides, base=base)


def finetune_config(cfg: GpuCheckConfig, model_dir: Path):
    from finetune.run import PRESETS

    overrides = [
        f"model={model_dir}",
        f"data_dir={cfg.data_dir}",
        f"out_dir={Path(cfg.out_dir) / 'finetune'}",
        f"tasks=[{cfg.task}]",
        f"langs=[{cfg.lang}]",
        f"seeds=[{cfg.seed}]",
        f"train.epochs={cfg.epochs}",
        "train.device=cuda",
        "train.bf16=true",
        "force=true",
        *cfg.finetune_args,
    ]
    return load_config(FinetuneConfig, PRESETS / "default.yaml", overrides)


def fused_adamw(train_cfg) -> bool:
    """Whether pretraining's optimizer factory gives the fused AdamW kernel on the run's device."""
    import torch

    from pretrain.optim import build_optimizer

    device = torch.device("cpu" if train_cfg.device == "cpu" else "cuda")
    optimizer, _ = build_optimizer(torch.nn.Linear(2, 2).to(device), train_cfg)
    return bool(optimizer.defaults.get("fused"))


def run_pretraining(cfg: GpuCheckConfig) -> tuple[dict, Path]:
    import torch

    from pretrain import train as pretrain_train
    from pretrain.model import count_parameters

    pcfg = pretrain_config(cfg)
    progress(f"pretraining preset {cfg.preset}, {cfg.steps} steps -> {pcfg.out_dir}")
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        result = pretrain_train.run(pcfg, fresh=True)
    seconds = time.perf_counter() - started
    if result.final_dir is None:
        raise RuntimeError(f"pretraining stopped before the end (signal {result.stopped_by})")
    timing = read_timing(Path(pcfg.out_dir) / TIMING)
    speed, first = steady_tokens_per_s(timing)
    model, m = result.model, pcfg.model
    n_flop = flop_parameters(model, pcfg.masking.probability)
    per_token = flops_per_token(n_flop, m.num_layers, m.hidden_size, pcfg.data.block_len)
    train_losses = [r["loss"] for r in read_metrics(Path(pcfg.out_dir) / METRICS).train]
    report = {
        "preset": cfg.preset,
        "steps": cfg.steps,
        "tokens_per_step": pcfg.train.batch_size * pcfg.train.grad_accum * pcfg.data.block_len,
        "tokens_per_s": round(speed, 1),
        "tokens_per_s_first_window": round(first, 1),
        "seconds": round(seconds, 1),
        "parameters": count_parameters(model),
        "flop_parameters": round(n_flop),
        "flops_per_token": round(per_token),
        "flops_formula": "6*N + 12*layers*hidden*block_len; N = parameters that multiply per "
        "token: no embedding tables, the LM head at masking.probability",
        "mfu": round(mfu(speed, per_token, cfg.peak_flops), 4),
        "peak_flops": cfg.peak_flops,
        "peak_flops_note": (
            "dense bf16 peak of one H100/H200 (989e12 FLOP/s), the default; set peak_flops for another GPU"
            if cfg.peak_flops == H100_BF16_DENSE_FLOPS
            else "peak_flops as set"
        ),
        "peak_memory_bytes": torch.cuda.max_memory_allocated(),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
        "train_loss_first": train_losses[0] if train_losses else None,
        "train_loss_last": train_losses[-1] if train_losses else None,
        "bf16": pcfg.train.bf16,
        "fused_adamw": fused_adamw(pcfg.train),
        "deterministic": cfg.deterministic,
        "out_dir": str(pcfg.out_dir),
    }
    return report, Path(result.final_dir)


def run_finetuning(cfg: GpuCheckConfig, model_dir: Path) -> dict:
    import torch

    from finetune.run import run as finetune_run

    fcfg = finetune_config(cfg, model_dir)
    progress(f"finetuning {cfg.task}/{cfg.lang}, seed {cfg.seed}, {cfg.epochs} epoch(s) -> {fcfg.out_dir}")
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        code = finetune_run(fcfg)
    seconds = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"finetuning ended with code {code}; see {fcfg.out_dir}/log.txt")
    row = read_results(Path(fcfg.out_dir) / "results.csv")[0]
    result = json.loads(
        next(Path(fcfg.out_dir).glob(f"runs/*/{cfg.task}/{cfg.lang}/seed{cfg.seed}/result.json")).read_text(
            encoding="utf-8"
        )
    )
    return {
        "task": cfg.task,
        "lang": cfg.lang,
        "seed": cfg.seed,
        "epochs": cfg.epochs,
        "metric": row["metric"],
        "test_score": row["test_score"],
        "dev_score": row["dev_score"],
        "n_train": row["n_train"],
        "n_test": row["n_test"],
        "run_seconds": row["seconds"],
        "seconds": round(seconds, 1),
        "device": result.get("device"),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
        "out_dir": str(fcfg.out_dir),
    }


def check(cfg: GpuCheckConfig) -> tuple[dict, int]:
    """The report and the exit code."""
    if cfg.deterministic:
        # cuBLAS reads this when CUDA starts; deterministic matmuls need it.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import torch

    if not torch.cuda.is_available():
        build = (
            f"; this torch ({torch.__version__}) is a CPU-only build, install a CUDA build of the same version"
            if torch.version.cuda is None
            else ""
        )
        return skipped(f"no CUDA device is visible (torch.cuda.is_available() is false){build}; nothing was run"), 0
    missing = missing_inputs(cfg)
    if missing:
        return {"skipped": False, "error": "missing inputs: " + "; ".join(missing), "how_to": HOW_TO_INPUTS}, 2
    torch.use_deterministic_algorithms(cfg.deterministic)
    report = {
        "skipped": False,
        "gpu": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "config": config_to_dict(cfg),
    }
    stage = "pretrain"
    try:
        report["pretrain"], model_dir = run_pretraining(cfg)
        stage = "finetune"
        report["finetune"] = run_finetuning(cfg, model_dir)
    except RuntimeError as err:  # also torch.OutOfMemoryError
        report["error"] = f"{stage}: {type(err).__name__}: {err}"
        if "deterministic" in str(err):
            report["hint"] = "an operation has no deterministic CUDA kernel; rerun with deterministic=false"
        return report, 1
    return report, 0


COMMAND = Command(GpuCheckConfig, "python -m bench.gpu_check", __doc__)


def main(argv: list[str] | None = None) -> int:
    return COMMAND.run(argv, lambda cfg, args: write_report(cfg, *check(cfg)))


def write_report(cfg: GpuCheckConfig, report: dict, code: int) -> int:
    text = json.dumps(report, indent=2)
    print(text, flush=True)
    if not report.get("skipped"):
        out = Path(cfg.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "gpu_check.json").write_text(text + "\n", encoding="utf-8")
    return code


if __name__ == "__main__":
    sys.exit(main())
