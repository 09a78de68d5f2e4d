"""MLM pretraining with self-active data selection.

    python -m pretrain.train --preset tiny corpus_dir=out/corpus tokenizer_dir=out/tokenizer/tiny \\
        out_dir=out/pretrain/tiny-loss selection.strategy=loss
    torchrun --nproc_per_node=2 -m pretrain.train --preset small ...   # data parallel

Training proceeds in rounds of `selection.select_every` steps. At the start of each round
`pretrain.selection.run_round` scores candidate blocks with the current model and returns the
blocks the round trains on, in order (AfroLM's self-active learning, warm-started: the model is
never retrained from scratch). Checkpoints hold everything needed to continue bit for bit.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml

from common import corpus
from common.cli import Command, fail
from common.config import ConfigError, config_to_dict
from common.io import atomic_write, manifest_is_current, write_manifest
from pretrain import checkpoint as ckpt
from pretrain import distributed as ddp_util
from pretrain import init_from, validation
from pretrain.config import PRESETS_DIR, PretrainConfig
from pretrain.data import PackedBlockPool, load_valid_blocks, read_index, run_block_cache
from pretrain.masking import IGNORE_INDEX, mask_tokens, special_table, word_start_table
from pretrain.model import MaskedLMObjective, build_model, count_parameters, init_neighbour_heads, set_output_bias
from pretrain.optim import build_optimizer
from pretrain.runfiles import METRICS, TIMING, MetricsLog, TimingLog, read_metrics
from pretrain.runlog import check_same_run, clear_run, record_run, result_settings
from pretrain.selection import SelectionState, check_pressure, run_round
from tokenizer.artifacts import make_portable, tokenizer_hash

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss stayed non-finite)."""


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers; the same parts give the same seed on every platform."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> 1)


def step_block_ids(chosen: np.ndarray, position: int, global_batch: int) -> np.ndarray:
    """Blocks of the `position`-th step of a round: consecutive slices of the chosen order,
    wrapping around when the round chose fewer blocks than its steps consume."""
    idx = (position * global_batch + np.arange(global_batch)) % len(chosen)
    return chosen[idx]


def rank_share(ids: np.ndarray, rank: int, world: int) -> np.ndarray:
    """Rank `rank`'s contiguous share of one step's blocks (ranks never share a block)."""
    per = len(ids) // world
    return ids[rank * per : (rank + 1) * per]


class StopFlag:
    """Set by SIGTERM/SIGINT; the loop checkpoints at the next step boundary and exits."""

    def __init__(self):
        self.signum: int | None = None
        self._previous = {}

    def install(self) -> None:
        for sig in STOP_SIGNALS:
            with contextlib.suppress(ValueError):  # not the main thread
                self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:  # a second signal: stop now
            signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
            raise KeyboardInterrupt
        self.signum = signum
        print(
            f"\n[train] got {signal.Signals(signum).name}: saving a checkpoint at the next step boundary",
            file=sys.stderr,
            flush=True,
        )

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)


@dataclass
class Progress:
    """Everything the loop carries between steps that a checkpoint must restore."""

    step: int = 0  # optimizer steps done
    round_index: int = -1  # round whose blocks `chosen` are
    chosen: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    tokens: int = 0  # non-padding tokens trained on (all ranks)
    bad_steps: int = 0  # consecutive non-finite steps
    skipped_steps: int = 0  # all skipped steps
    window_loss: float = 0.0  # loss sum / count since the last metrics line
    window_count: int = 0
    metrics_bytes: int = 0  # size of metrics.jsonl when checkpointed
    scoring_seconds: float = 0.0  # time spent in selection rounds (all sessions)
    train_seconds: float = 0.0  # wall time of the run (all sessions)
    world: int = 1  # processes that trained (the data order depends on it)

    def to_json(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "chosen"}


class Trainer:
    def __init__(
        self,
        cfg: PretrainConfig,
        info: ddp_util.DistInfo,
        device: torch.device,
        log,
        start_dir: Path | None = None,
        where: str = "this config",
    ):
        """`start_dir`: the checkpoint folder to continue from (init_from, after any vocab.* changes);
        its model and tokenizer replace model.* and tokenizer_dir. None: random weights.
        `where`: how errors name the settings' origin (e.g. "preset tiny")."""
        from transformers import AutoTokenizer

        self.cfg, self.info, self.device, self.log = cfg, info, device, log
        self.out_dir = Path(cfg.out_dir)
        tcfg = cfg.train
        self.tokenizer_dir = Path(start_dir or cfg.tokenizer_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.tokenizer_dir))
        self.tokenizer.model_max_length = cfg.data.block_len  # what the model's positions allow

        def block_cache(log_to):
            return run_block_cache(cfg, self.tokenizer, self.tokenizer_dir, log_to)

        if info.main:  # rank 0 builds the cache; the others find it complete after the barrier
            self.cache = block_cache(log)
        ddp_util.barrier(info)
        if not info.main:
            self.cache = block_cache(lambda *_: None)
        self.warnings: list[str] = []
        self.metrics: MetricsLog | None = None  # set once the run's metrics log is open (rank 0)
        self.progress = Progress()
        self.langs = self._choose_languages()
        self.pool = PackedBlockPool(
            self.cache,
            self.langs,
            self.tokenizer,
            cfg.corpus_dir,
            cfg.data.tokenize_batch,
            noise_share=cfg.data.noise_share,
        )
        noise = {lang: len(self.pool.noise_ids(lang)) for lang in self.langs}
        if self.pool.n_noise:
            kinds = Counter(self.pool.noise_kind(np.arange(self.pool.n_real, self.pool.n_base)))
            log(
                f"[data] data.noise_share={cfg.data.noise_share}: {self.pool.n_noise:,} noise blocks in the pool "
                f"({', '.join(f'{kind} {n:,}' for kind, n in sorted(kinds.items()))})"
            )
        # Before any weights exist: a selection that cannot select is a config error.
        check_pressure(
            cfg.selection, {lang: len(self.pool.ids(lang)) - noise[lang] for lang in self.langs}, where, noise
        )
        self.special = special_table(self.tokenizer)
        self.valid, self.baseline = self._validation_sets()
        torch.manual_seed(tcfg.seed)  # same initial weights on every rank
        if start_dir is not None:
            self.model = init_from.load_model(start_dir)  # its config.json gives shape, dropout and tying
        else:
            self.model = build_model(cfg.model, self.tokenizer, cfg.data.block_len)
            if cfg.model.neighbour_heads:
                init_neighbour_heads(self.model, cfg.data.block_len)
        if cfg.model.unigram_output_bias and start_dir is None:
            # The mix training draws from: languages weighted as the selection quotas weight them.
            sizes = {lang: len(validation.load_train_blocks(self.cache, lang)) for lang in self.langs}
            weights = {lang: n**cfg.selection.alpha for lang, n in sizes.items()}
            set_output_bias(self.model, validation.mixture_log_probs(self.unigram, weights))
        self.model = self.model.to(device)
        self.objective = MaskedLMObjective(self.model)
        self.ddp = None
        if info.active:
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                self.objective, device_ids=[info.local_rank] if device.type == "cuda" else None
            )
        self.optimizer, self.scheduler = build_optimizer(self.model, tcfg)
        self.word_start = word_start_table(self.tokenizer) if cfg.masking.whole_word else None
        self.selection_state = SelectionState()
        self.global_batch = tcfg.batch_size * tcfg.grad_accum * info.world
        self.progress.world = info.world
        wants_cpu_bf16 = device.type == "cpu" and tcfg.cpu_bf16
        self.cpu_bf16 = wants_cpu_bf16 and cpu_has_bf16()
        if wants_cpu_bf16 and not self.cpu_bf16:
            log("[train] train.cpu_bf16: this CPU has no bf16 instructions (AVX512-BF16 or AMX); training in fp32")
        self.stop = StopFlag()

    # ---- set-up -------------------------------------------------------------------------
    def _warn(self, message: str) -> None:
        """Print on rank 0 and record in metrics.jsonl (warnings of set-up are written at step 0)."""
        self.warnings.append(message)
        if self.metrics is not None:
            self.metrics.warning(self.progress.step, message)
        if self.info.main:
            print(f"[train] warning: {message}", file=sys.stderr, flush=True)

    def _choose_languages(self) -> list[str]:
        """Languages with at least one training block."""
        index = read_index(self.cache)
        block_len = self.cfg.data.block_len
        asked = list(self.cfg.data.langs)
        for lang in asked:
            if lang not in index["langs"]:
                raise ConfigError(
                    f"data.langs: {lang!r} has no text in {self.cfg.corpus_dir} "
                    f"(languages there: {', '.join(sorted(index['langs']))})"
                )
            if index["langs"][lang]["train"]["blocks"] == 0:
                raise ConfigError(
                    f"data.langs: {lang!r} has less training text than one block of "
                    f"{block_len} tokens in {self.cfg.corpus_dir}"
                )
        langs = []
        for lang in asked or sorted(index["langs"]):
            if index["langs"][lang]["train"]["blocks"] == 0:
                self._warn(f"{lang}: less training text than one block of {block_len} tokens; skipped")
            else:
                langs.append(lang)
        if not langs:
            raise ConfigError(
                f"no language in {self.cfg.corpus_dir} has a full block of data.block_len={block_len} tokens"
            )
        return langs

    def _validation_sets(self) -> tuple[dict, dict]:
        """Fixed masked validation rows per language and the unigram (and bigram) baselines on their targets."""
        ecfg, tok = self.cfg.eval, self.tokenizer
        chars = validation.piece_chars(tok)
        special = self.special.numpy()
        sets, baseline, self.unigram = {}, {}, {}
        for lang in self.langs:
            train_blocks = validation.load_train_blocks(self.cache, lang)
            self.unigram[lang] = validation.unigram_log_probs(train_blocks, special)
            blocks = load_valid_blocks(self.cache, lang)
            if not len(blocks):
                self._warn(f"{lang}: no validation text in {self.cfg.corpus_dir}/{lang}/valid-*; not evaluated")
                continue
            vset = validation.build_validation_set(
                blocks,
                self.special,
                tok.mask_token_id,
                tok.pad_token_id,
                chars,
                lang,
                ecfg.mask_probability,
                ecfg.targets_per_lang,
            )
            if not vset.targets:
                self._warn(f"{lang}: its validation text has no maskable token; not evaluated")
                continue
            if not vset.complete:
                self.log(
                    f"[eval] {lang}: the valid split gives {vset.targets:,} targets "
                    f"(eval.targets_per_lang={ecfg.targets_per_lang:,}); every valid position is used"
                )
            sets[lang] = vset
            baseline[lang] = validation.unigram_baseline(vset, self.unigram[lang])
            baseline[lang]["bigram"] = validation.bigram_baseline(
                vset, train_blocks, self.unigram[lang], tok.mask_token_id
            )
        return sets, baseline

    # ---- checkpoints --------------------------------------------------------------------
    def checkpoint_files(self) -> dict[str, bytes]:
        p = self.progress
        state = {
            "rng": {
                "python": random.getstate(),
                "numpy": np.random.get_state(),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            },
            "pool": self.pool.state_dict(),
            "selection": self.selection_state.state_dict(),
            "chosen": p.chosen.copy(),
        }
        return {
            "model.pt": ckpt.torch_bytes(self.model.state_dict()),
            "optimizer.pt": ckpt.torch_bytes(
                {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}
            ),
            "state.pt": ckpt.torch_bytes(state),
            "progress.json": json.dumps(p.to_json(), indent=1, sort_keys=True).encode(),
        }

    def save(self, metrics: MetricsLog | None) -> None:
        """Checkpoint on rank 0 (all ranks hold the same weights); other ranks wait."""
        if self.info.main:
            for param in self.model.parameters():
                if not torch.isfinite(param).all():
                    raise TrainingError("refusing to save a checkpoint with non-finite weights")
            self.progress.metrics_bytes = metrics.size()
            root = self.out_dir / "checkpoints"
            folder = ckpt.save_checkpoint(root, self.progress.step, self.checkpoint_files())
            ckpt.prune(root, self.cfg.train.keep_checkpoints, folder)
        ddp_util.barrier(self.info)

    def restore(self, folder: Path) -> None:
        self.model.load_state_dict(ckpt.read_torch(folder, "model.pt"))
        opt = ckpt.read_torch(folder, "optimizer.pt")
        self.optimizer.load_state_dict(opt["optimizer"])
        self.scheduler.load_state_dict(opt["scheduler"])
        state = ckpt.read_torch(folder, "state.pt")
        random.setstate(state["rng"]["python"])
        np.random.set_state(state["rng"]["numpy"])
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.pool.load_state_dict(state["pool"])
        self.selection_state = SelectionState.from_state_dict(state["selection"])
        saved = json.loads((Path(folder) / "progress.json").read_text())
        if saved.get("world", 1) != self.info.world:  # each step's blocks are split by world size
            raise ConfigError(
                f"{folder} was written by {saved.get('world', 1)} processes, this run has "
                f"{self.info.world}; resume with the same world size (torchrun --nproc_per_node)"
            )
        self.progress = Progress(**saved, chosen=np.asarray(state["chosen"], dtype=np.int64))

    # ---- one step -----------------------------------------------------------------------
    def _masked_batches(self, ids: np.ndarray, step: int):
        m, tcfg = self.cfg.masking, self.cfg.train
        gen = torch.Generator().manual_seed(derive_seed(tcfg.seed, 2, step, self.info.rank))
        for start in range(0, len(ids), tcfg.batch_size):
            blocks = torch.from_numpy(self.pool.blocks(ids[start : start + tcfg.batch_size]))
            inputs, labels = mask_tokens(
                blocks,
                self.special,
                self.tokenizer.mask_token_id,
                len(self.tokenizer),
                gen,
                m.probability,
                m.mask_fraction,
                m.random_fraction,
                self.word_start,
            )
            yield inputs, blocks != self.tokenizer.pad_token_id, labels

    def _autocast(self, cpu_too: bool = False):
        """bf16 autocast: on CUDA when train.bf16; on CPU (train.cpu_bf16) for training steps and
        scoring only (`cpu_too`), so validation, what runs are compared by, stays fp32 there."""
        if self.device.type == "cuda" and self.cfg.train.bf16:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        if cpu_too and self.cpu_bf16:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train_step(self, ids: np.ndarray) -> tuple[float, int, float, int]:
        """One optimizer step on this rank's `ids`; returns (loss sum, targets, grad norm, tokens)."""
        tcfg, step = self.cfg.train, self.progress.step
        torch.manual_seed(derive_seed(tcfg.seed, 1, step, self.info.rank))  # dropout: seekable per step
        batches = list(self._masked_batches(ids, step))
        n_targets = int(sum((labels != IGNORE_INDEX).sum() for _, _, labels in batches))
        tokens = int(sum(att.sum() for _, att, _ in batches))
        module = self.ddp or self.objective
        loss_sum = 0.0
        for i, (inputs, attention, labels) in enumerate(batches):
            last = i == len(batches) - 1
            sync = contextlib.nullcontext() if (self.ddp is None or last) else self.ddp.no_sync()
            with sync:
                with self._autocast(cpu_too=True):
                    part, _ = module(inputs.to(self.device), attention.to(self.device), labels.to(self.device))
                # Mean over this rank's masked tokens of the whole step, whatever grad_accum is.
                (part / max(1, n_targets)).backward()
            loss_sum += float(part.detach())
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), tcfg.clip_norm or float("inf"))
        return loss_sum, n_targets, float(norm), tokens

    def apply_or_skip(self, grad_norm: float) -> bool:
        """Optimizer step if the gradients are finite; else skip and count."""
        ok = math.isfinite(grad_norm)  # identical on every rank: gradients are all-reduced
        if ok:
            self.optimizer.step()
            self.progress.bad_steps = 0
        else:
            self.progress.bad_steps += 1
            self.progress.skipped_steps += 1
            self._warn(
                f"step {self.progress.step + 1}: non-finite loss or gradient; step skipped "
                f"({self.progress.bad_steps} in a row, limit train.max_bad_steps="
                f"{self.cfg.train.max_bad_steps})"
            )
        self.optimizer.zero_grad(set_to_none=True)
        with warnings.catch_warnings():  # torch warns when a skipped step leaves optimizer.step uncalled
            warnings.simplefilter("ignore", UserWarning)
            self.scheduler.step()
        if self.progress.bad_steps >= self.cfg.train.max_bad_steps:
            raise TrainingError(
                f"loss or gradients non-finite for {self.progress.bad_steps} steps in a row (at step "
                f"{self.progress.step + 1}); lower train.lr={self.cfg.train.lr} or check the data. "
                "No checkpoint with non-finite weights was saved."
            )
        return ok

    # ---- evaluation ---------------------------------------------------------------------
    @torch.inference_mode()
    def evaluate(self) -> dict:
        """Per-language loss (nats), perplexity and bits per character on the fixed validation rows."""
        self.model.eval()
        results = {}
        batch = self.cfg.eval.batch_size
        for lang, vset in self.valid.items():
            total = 0.0
            for start in range(0, len(vset.inputs), batch):
                rows = slice(start, start + batch)
                with self._autocast():
                    loss, _ = self.objective(
                        vset.inputs[rows].to(self.device),
                        vset.attention[rows].to(self.device),
                        vset.labels[rows].to(self.device),
                    )
                total += float(loss)
            mean = total / vset.targets
            results[lang] = {
                "loss": round(mean, 6),
                "ppl": round(math.exp(min(mean, 50.0)), 4),
                "bpc": validation.bits_per_char(total, vset.chars),
                "targets": vset.targets,
            }
        self.model.train()
        return results

    # ---- selection ----------------------------------------------------------------------
    def select(self, round_index: int, metrics: MetricsLog | None) -> None:
        """Rank 0 runs the round; every rank gets its chosen ids (and any generated blocks)."""
        started = time.perf_counter()
        payload = None
        if self.info.main:
            with self._autocast(cpu_too=True):
                result = run_round(
                    self.model,
                    self.pool,
                    self.cfg.selection,
                    self.selection_state,
                    round_index,
                    self.out_dir,
                    self.device,
                )
            payload = (
                np.asarray(result.chosen_ids, dtype=np.int64),
                dict(result.summary),
                float(result.scoring_seconds),
                self.pool.state_dict(),
            )
        chosen, summary, _, pool_state = ddp_util.broadcast(self.info, payload)
        if not self.info.main:
            self.pool.load_state_dict(pool_state)
        self.model.train()
        if len(chosen) == 0:
            raise TrainingError(
                f"selection round {round_index} chose no blocks (strategy {self.cfg.selection.strategy})"
            )
        needed = self.cfg.selection.select_every * self.global_batch
        self.progress.chosen, self.progress.round_index = chosen, round_index
        self.progress.scoring_seconds += time.perf_counter() - started
        if metrics is not None:  # without the wall-clock figures, so metrics.jsonl stays reproducible
            metrics.selection(round_index, self.progress.step, len(chosen), needed, summary)
        if len(chosen) < needed:
            self.log(
                f"[select] round {round_index}: {len(chosen)} blocks chosen for {needed} block-steps; "
                "the round cycles through them"
            )


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device=cuda but no CUDA device is visible")
    return torch.device(name)


def eval_line(step: int, results: dict, baseline: dict) -> str:
    """`[eval] step 600: 5.31 nats vs unigram 5.82 (margin 0.51), below it in 38/38 | yor 5.90 vs 6.08, ...`"""
    vs = validation.compare(results, baseline)
    mean = np.mean([r["loss"] for r in results.values()])
    base = np.mean([baseline[lang]["loss"] for lang in results if lang in baseline]) if baseline else float("nan")
    head = (
        f"[eval] step {step}: mean {mean:.3f} nats vs unigram {base:.3f} (margin {vs['mean_margin'] or 0:+.3f}), "
        f"below unigram in {vs['below']}/{vs['langs']}"
    )
    bigrams = [baseline[lang]["bigram"]["loss"] for lang in results if "bigram" in baseline.get(lang, {})]
    if bigrams:
        head += f"; bigram counts {np.mean(bigrams):.3f}"
    langs = ", ".join(
        f"{lang} {r['loss']:.2f} vs {baseline[lang]['loss']:.2f}" if lang in baseline else f"{lang} {r['loss']:.2f}"
        for lang, r in results.items()
    )
    return f"{head} | {langs}"


def _format_eta(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"
    )


def write_final(trainer: Trainer, out_dir: Path) -> Path:
    """`<out_dir>/final/`: a plain Hugging Face folder (safetensors + tokenizer), swapped in whole."""
    final = out_dir / "final"
    tmp = Path(tempfile.mkdtemp(dir=out_dir, prefix=".final."))
    try:
        trainer.model.save_pretrained(tmp, safe_serialization=True)
        trainer.tokenizer.save_pretrained(tmp)
        make_portable(tmp)  # loads in transformers 4.x too
        spm = trainer.tokenizer_dir / "sentencepiece.model"
        if spm.exists():  # the tokenizer stage's original model, for users of sentencepiece itself
            shutil.copyfile(spm, tmp / spm.name)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the folder is meant to be shared
        for item in tmp.iterdir():
            os.chmod(item, 0o644)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def cpu_has_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU computes bf16 natively (AVX512-BF16 or AMX). Elsewhere bf16 autocast is
    emulated and slower than fp32; where /proc/cpuinfo cannot be read we say no."""
    try:
        flags = set(cpuinfo.read_text(encoding="utf-8", errors="replace").split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


@dataclass
class RunResult:
    out_dir: Path
    final_dir: Path | None
    skipped: bool = False
    stopped_by: int | None = None  # signal number when stopped by SIGTERM/SIGINT
    model: torch.nn.Module | None = None
    trained_ids: list = field(default_factory=list)  # (step's ids, this rank's share) per step


def run(cfg: PretrainConfig, fresh: bool = False, record_ids: bool = False, where: str = "this config") -> RunResult:
    """Train (or resume, or skip) the run described by `cfg`; `where` names the settings' origin
    in errors (e.g. "preset tiny")."""
    device = _device(cfg.train.device)
    if cfg.train.cpu_threads:
        torch.set_num_threads(cfg.train.cpu_threads)
    info = ddp_util.setup(device.type)
    if device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    log = (lambda *a: print(*a, flush=True)) if info.main else (lambda *a: None)
    try:
        return _run(cfg, fresh, record_ids, info, device, log, where)
    finally:
        ddp_util.teardown(info)


def _run(cfg, fresh, record_ids, info, device, log, where) -> RunResult:
    out_dir = Path(cfg.out_dir)
    full_config = config_to_dict(cfg)
    settings = result_settings(full_config)
    inputs = {"corpus_hash": corpus.corpus_hash(cfg.corpus_dir)}
    source = None
    if cfg.init_from:  # checked before anything is written
        source = init_from.resolve(cfg.init_from)
        checkpoint = init_from.check_checkpoint(source, cfg)
        inputs["init_hash"] = init_from.checkpoint_hash(source)
    if source is None or cfg.vocab.extend:
        inputs["tokenizer_hash"] = tokenizer_hash(cfg.tokenizer_dir)
    if fresh and info.main:
        clear_run(out_dir)
    ddp_util.barrier(info)
    if manifest_is_current(out_dir, settings, inputs):
        log(f"[train] {out_dir} is complete and its config and inputs are unchanged; skipped (pass --fresh to retrain)")
        return RunResult(out_dir, out_dir / "final", skipped=True)
    resuming = check_same_run(out_dir, settings, inputs)  # refuses changed settings
    ddp_util.barrier(info)
    if info.main:
        out_dir.mkdir(parents=True, exist_ok=True)
        record_run(out_dir, settings, inputs)
        with atomic_write(out_dir / "config.yaml") as handle:
            yaml.safe_dump(full_config, handle, sort_keys=False, allow_unicode=True)

    start = None
    if source is not None:
        if info.main:
            start = init_from.prepare_start(cfg, source, inputs, log)
        ddp_util.barrier(info)
        if not info.main:
            start = init_from.prepare_start(cfg, source, inputs, log=lambda *_: None)
        log(
            f"[init] continuing from {source} ({checkpoint.model_type}, {checkpoint.vocab_size:,} pieces); "
            "model.* settings are not used: its config.json gives the model"
        )
    trainer = Trainer(cfg, info, device, log, start_dir=start, where=where)
    latest = None
    if resuming:
        latest = ckpt.find_latest(out_dir / "checkpoints", warn=trainer._warn) if info.main else None
        latest = ddp_util.broadcast(info, str(latest) if latest else None)
    if latest:
        trainer.restore(Path(latest))
        log(f"[train] resuming from {latest} (step {trainer.progress.step})")
    p, tcfg = trainer.progress, cfg.train
    metrics = MetricsLog(out_dir / METRICS, truncate_to=p.metrics_bytes) if info.main else None
    timing = TimingLog(out_dir / TIMING) if info.main else None
    if metrics is not None and p.step == 0:
        for message in trainer.warnings:
            metrics.warning(0, message)
    trainer.metrics = metrics
    n_params = count_parameters(trainer.model)
    log(
        f"[train] {n_params:,} parameters; languages: {', '.join(trainer.langs)}; pool {len(trainer.pool):,} "
        f"blocks of {cfg.data.block_len}; {trainer.global_batch} blocks/step "
        f"({trainer.global_batch * cfg.data.block_len:,} tokens) x {tcfg.max_steps} steps; world {info.world}; "
        f"device {device}"
    )

    trainer.stop.install()
    session_start = time.perf_counter()
    base_seconds = p.train_seconds
    last_log_time, last_log_tokens, start_step = session_start, p.tokens, p.step
    trained_ids = []
    try:
        if p.step == 0 and metrics is not None and trainer.valid:
            metrics.baseline(trainer.baseline)
            if cfg.eval.at_start:
                metrics.eval(0, trainer.evaluate())
        while p.step < tcfg.max_steps:
            round_index = p.step // cfg.selection.select_every
            if round_index != p.round_index:
                trainer.select(round_index, metrics)
            position = p.step - round_index * cfg.selection.select_every
            step_ids = step_block_ids(p.chosen, position, trainer.global_batch)
            ids = rank_share(step_ids, info.rank, info.world)
            if record_ids:
                trained_ids.append((step_ids.copy(), ids.copy()))
            loss_sum, targets, norm, tokens = trainer.train_step(ids)
            loss_sum, targets, tokens = ddp_util.sum_all(info, [loss_sum, float(targets), float(tokens)])
            lr = trainer.scheduler.get_last_lr()[0]
            applied = trainer.apply_or_skip(norm)
            p.step += 1
            p.tokens += int(tokens)
            if applied:
                p.window_loss += loss_sum
                p.window_count += int(targets)
            p.train_seconds = base_seconds + time.perf_counter() - session_start
            if metrics is not None and (p.step % tcfg.log_every == 0 or p.step == tcfg.max_steps):
                loss = p.window_loss / max(1, p.window_count)
                metrics.train(p.step, loss, lr, norm, p.tokens, p.skipped_steps)
                p.window_loss, p.window_count = 0.0, 0
                now = time.perf_counter()
                speed = (p.tokens - last_log_tokens) / max(1e-9, now - last_log_time)
                eta = (now - session_start) / max(1, p.step - start_step) * (tcfg.max_steps - p.step)
                share = p.scoring_seconds / max(1e-9, p.train_seconds)
                log(
                    f"step {p.step}/{tcfg.max_steps} | loss {loss:.4f} | lr {lr:.2e} | {speed:,.0f} tok/s | "
                    f"selection {share:.0%} of time | ETA {_format_eta(eta)}"
                )
                timing.record(p.step, speed, p.train_seconds, p.scoring_seconds, share)
                last_log_time, last_log_tokens = now, p.tokens
            if metrics is not None and (p.step % tcfg.eval_every == 0 or p.step == tcfg.max_steps) and trainer.valid:
                results = trainer.evaluate()
                metrics.eval(p.step, results)
                log(eval_line(p.step, results, trainer.baseline))
            ddp_util.barrier(info)
            stopping = ddp_util.any_rank(info, trainer.stop.signum is not None)
            if p.step % tcfg.checkpoint_every == 0 or p.step == tcfg.max_steps or stopping:
                trainer.save(metrics)
            if stopping:
                signum = trainer.stop.signum or signal.SIGTERM
                log(
                    f"[train] stopped at step {p.step} after a signal; checkpoint saved in "
                    f"{out_dir / 'checkpoints'}; run the same command again to resume"
                )
                return RunResult(out_dir, None, stopped_by=signum, model=trainer.model, trained_ids=trained_ids)
    finally:
        trainer.stop.restore()

    final_dir = None
    if info.main:
        final_dir = write_final(trainer, out_dir)
        outputs = sorted(q for q in final_dir.iterdir() if q.is_file())
        outputs += [out_dir / METRICS, out_dir / "config.yaml"]
        outputs += sorted((out_dir / "selection").glob("round-*.jsonl"))
        summary = run_summary(out_dir / METRICS, p, n_params)
        extra = {"summary": summary}
        if source is not None:
            extra["init_from"] = init_from.describe(cfg.init_from, source, start, inputs["init_hash"])
        write_manifest(out_dir, "pretrain", settings, inputs, outputs, extra=extra)
        vs = summary["vs_unigram"]
        if vs["langs"]:
            log(
                f"[train] final validation: below the unigram baseline in {vs['below']}/{vs['langs']} languages, "
                f"mean margin {vs['mean_margin']:+.3f} nats (worst: {vs['worst']})"
            )
        vb = summary["vs_bigram"]
        if vb["langs"]:
            log(
                f"[train] against the left-neighbour bigram counts: below them in {vb['below']}/{vb['langs']} "
                f"languages, mean margin {vb['mean_margin']:+.3f} nats (how much word order the model uses)"
            )
        log(f"[train] done: {final_dir}")
    ddp_util.barrier(info)
    return RunResult(out_dir, final_dir, model=trainer.model, trained_ids=trained_ids)


def run_summary(metrics_path: Path, p: Progress, n_params: int) -> dict:
    """First and last validation loss per language against the unigram baseline, plus totals."""
    metrics = read_metrics(metrics_path)
    evals, baseline = metrics.evals, metrics.baseline
    first, last = (evals[0]["langs"], evals[-1]["langs"]) if evals else ({}, {})
    valid = {}
    for lang in last:
        if lang not in first or None in (first[lang]["loss"], last[lang]["loss"]):
            continue
        valid[lang] = {"first": first[lang]["loss"], "last": last[lang]["loss"], "bpc": last[lang].get("bpc")}
        if lang in baseline:
            valid[lang].update(unigram=baseline[lang]["loss"], unigram_bpc=baseline[lang]["bpc"])
            if "bigram" in baseline[lang]:
                valid[lang].update(bigram=baseline[lang]["bigram"]["loss"], bigram_bpc=baseline[lang]["bigram"]["bpc"])
    return {
        "parameters": n_params,
        "steps": p.step,
        "tokens": p.tokens,
        "skipped_steps": p.skipped_steps,
        "train_seconds": round(p.train_seconds, 1),
        "scoring_seconds": round(p.scoring_seconds, 1),
        "valid_loss": valid,
        "vs_unigram": validation.compare(last, baseline),
        "vs_bigram": validation.compare(last, {lang: b["bigram"] for lang, b in baseline.items() if "bigram" in b}),
    }


COMMAND = Command(
    PretrainConfig,
    "python -m pretrain.train",
    __doc__,
    presets=PRESETS_DIR,
    flags=lambda parser: parser.add_argument(
        "--fresh",
        action="store_true",
        help="delete this out_dir's previous run (checkpoints, metrics, final) and start again",
    ),
)
parse_args = COMMAND.parse
load_run_config = COMMAND.load


def settings_origin(args: argparse.Namespace) -> str:
    """How errors name where the settings came from: the preset, the config file, overrides."""
    parts = [
        f"preset {args.preset}" if args.preset else "",
        f"config {args.config}" if args.config else "",
        "with overrides" if args.overrides else "",
    ]
    return " ".join(p for p in parts if p) or "the default settings"


def main(argv=None) -> int:
    return COMMAND.run(argv, _train, failures=(TrainingError, ckpt.CheckpointError))


def _train(cfg: PretrainConfig, args: argparse.Namespace) -> int:
    try:
        result = run(cfg, fresh=args.fresh, where=settings_origin(args))
    except torch.OutOfMemoryError as err:  # the batch settings and what to lower (untested without a GPU)
        t = cfg.train
        fail(
            f"out of GPU memory with train.batch_size={t.batch_size}, train.grad_accum={t.grad_accum}, "
            f"data.block_len={cfg.data.block_len}, selection.score_batch_size="
            f"{getattr(cfg.selection, 'score_batch_size', '?')}; lower train.batch_size and raise "
            f"train.grad_accum (same tokens/step), or lower the scoring batch. ({err})"
        )
        return 3
    if result.stopped_by is not None:
        return 128 + int(result.stopped_by)  # the shell's convention for "ended by a signal"
    return 0


if __name__ == "__main__":
    sys.exit(main())
