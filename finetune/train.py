"""One finetuning run: a task, a language, a model, a seed.

A plain torch loop (AdamW, linear warmup/decay, gradient clipping) because it is short and
fully seeded: `seed` fixes the head initialisation, dropout and the batch order. After every
epoch the dev set is scored; the weights of the best dev epoch (not the last; AfroLM's scripts
report the last) are kept in memory and restored before the single test evaluation.

Placement (`Placement`): the model and every batch go to `train.device`; on CUDA the forward
passes run under bf16 autocast (`train.bf16`). Under `torchrun` the processes form a data
parallel group: all of them draw the same seeded batches, each trains on its own rows of
every batch (DDP averages the gradients, weighted so the step equals the single-process one)
and scores its own share of dev/test, gathered so every process makes the same best-epoch
choice. On CPU with one process nothing of this changes a single number.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from dataclasses import dataclass, field
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from common.config import ConfigError

from finetune.config import TrainConfig
from finetune.data import TaskData
from finetune.features import classification_features, merge_word_predictions, ner_windows
from finetune.metrics import MAIN_METRIC, score
from finetune.model import CheckedModel, load_model

log = logging.getLogger("finetune")


@dataclass(frozen=True)
class Placement:
    """Where one process trains: its device, bf16 autocast, and its place in a DDP group."""

    device: torch.device = torch.device("cpu")
    bf16: bool = False
    """Effective bf16 autocast (only ever true on CUDA)."""
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def autocast(self):
        if self.bf16 and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()


def resolve_device(name: str) -> torch.device:
    """`train.device` -> a torch device; refuses cuda when no CUDA device is visible."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "train.device=cuda but no CUDA device is visible "
            "(torch.cuda.is_available() is false); use train.device=auto or cpu"
        )
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"train.device must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)


def setup_placement(cfg: TrainConfig, timeout_s: int = 1800) -> Placement:
    """The device for `cfg`, and the process group `torchrun` describes (WORLD_SIZE > 1).

    The bounded timeout makes a job whose peer died stop with an error instead of hanging;
    it is long because rank 0 alone writes files between collective steps.
    """
    device = resolve_device(cfg.device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = (int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))) if world > 1 else (0, 0)
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise ConfigError(
                f"train.device: process {rank} wants GPU {local} but only {torch.cuda.device_count()} are visible"
            )
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timedelta(seconds=timeout_s))
    return Placement(device, cfg.bf16 and device.type == "cuda", rank, world, local)


def teardown_placement(place: Placement) -> None:
    if place.world > 1 and dist.is_initialized():
        dist.destroy_process_group()


def broadcast(place: Placement, obj):
    """Rank 0's `obj` on every process (small picklable values)."""
    if place.world == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _group() -> tuple[int, int]:
    """(rank, world) of the running process group; (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@dataclass
class RunOutput:
    best_epoch: int
    dev_scores: list[float]
    dev: dict
    test: dict
    test_predictions: list
    seconds: float
    cpu_seconds: float = 0.0
    counts: dict = field(default_factory=dict)
    device: str = "cpu"
    """Where the parameters were during training (e.g. `cuda:0`)."""


class Encoded:
    """A split turned into model inputs, plus what is needed to map predictions back."""

    def __init__(self, data: TaskData, split: str, checked: CheckedModel, cfg: TrainConfig):
        ds = data.splits[split].dataset
        tok = checked.tokenizer
        label2id = {l: i for i, l in enumerate(data.labels)}
        self.kind = data.task.kind
        if self.kind == "ner":
            self.words = list(ds["words"])
            self.gold = list(ds["labels"])
            ids = [[label2id[l] for l in seq] for seq in self.gold]
            context = cfg.stride_words or max(1, checked.max_length // 4)
            self.windows = ner_windows(tok, self.words, ids, checked.max_length, context)
            self.features = [w.features for w in self.windows]
        else:
            self.gold = list(ds["label"])
            self.features = classification_features(
                tok, list(ds["text"]), [label2id[l] for l in self.gold], checked.max_length
            )
        self.n_examples = len(ds)


def _collator(kind: str, tokenizer):
    from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding

    if kind == "ner":
        return DataCollatorForTokenClassification(tokenizer, label_pad_token_id=-100)
    return DataCollatorWithPadding(tokenizer)


@torch.no_grad()
def predict(model, enc: Encoded, collate, batch_size: int) -> list:
    """Predicted label ids: one per word (NER, windows merged) or one per text.

    Batches go to the model's device. In a data-parallel group each process predicts every
    world-th input and the shares are gathered, so all processes return the same list.
    """
    model.eval()
    device = next(model.parameters()).device
    rank, world = _group()
    features = enc.features[rank::world] if world > 1 else enc.features
    loader = DataLoader(features, batch_size=batch_size, shuffle=False, collate_fn=collate)
    window_preds = []
    for batch in loader:
        logits = model(
            input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)
        ).logits
        preds = logits.argmax(-1).cpu()
        if enc.kind == "ner":
            window_preds.extend(row.tolist() for row in preds)
        else:
            window_preds.extend(preds.tolist())
    if world > 1:
        shares = [None] * world
        dist.all_gather_object(shares, window_preds)
        window_preds = [shares[i % world][i // world] for i in range(len(enc.features))]
    if enc.kind == "ner":
        return merge_word_predictions(enc.windows, window_preds, [len(w) for w in enc.words])
    return window_preds


def evaluate_split(model, enc: Encoded, labels: list[str], collate, batch_size: int):
    ids = predict(model, enc, collate, batch_size)
    if enc.kind == "ner":
        names = [[labels[i] for i in seq] for seq in ids]
    else:
        names = [labels[i] for i in ids]
    return score(enc.kind, names, enc.gold), names


def _optimizer(model, cfg: TrainConfig, steps: int):
    from transformers import get_linear_schedule_with_warmup

    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if param.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(param)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr
    )
    sched = get_linear_schedule_with_warmup(opt, math.ceil(cfg.warmup_ratio * steps), steps)
    return opt, sched


@contextlib.contextmanager
def torch_threads(n: int):
    """Run with `n` torch threads (0: leave as is), restoring the previous number after."""
    previous = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def finetune_once(
    checked: CheckedModel,
    data: TaskData,
    encoded: dict[str, Encoded],
    cfg: TrainConfig,
    seed: int,
    progress: str = "",
    place: Placement | None = None,
) -> RunOutput:
    """One seeded run; `place` defaults to one process on the CPU."""
    with torch_threads(cfg.threads):
        return _finetune_once(checked, data, encoded, cfg, seed, progress, place or Placement())


def _shard_loss(model, batch: dict, place: Placement) -> torch.Tensor:
    """This process's share of the batch's loss, scaled so DDP's gradient average is the
    gradient of the whole batch's mean loss (each share weighted by its labelled targets)."""
    rows = torch.tensor(range(place.rank, batch["input_ids"].shape[0], place.world), dtype=torch.long)
    labels = batch["labels"]
    total = int((labels != -100).sum())
    local = int((labels[rows] != -100).sum()) if len(rows) else 0
    if local == 0:
        # Nothing to learn here, but every process must still run the whole graph for DDP.
        part = {k: v[:1] for k, v in batch.items()}
        return model(**part).logits.float().sum() * 0.0
    part = {k: v[rows] for k, v in batch.items()}
    return model(**part).loss * (local * place.world / total)


def _finetune_once(checked, data, encoded, cfg, seed, progress, place: Placement) -> RunOutput:
    from transformers import set_seed

    started, cpu_started = time.time(), time.process_time()
    set_seed(seed)  # python, numpy, torch: head init and dropout
    model = load_model(checked, data.task.kind, data.labels).to(place.device)
    trained = model
    if place.world > 1:
        trained = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[place.device.index] if place.device.type == "cuda" else None
        )
    collate = _collator(data.task.kind, checked.tokenizer)
    # Every process draws the same batches (same seed), so the data order does not depend
    # on how many processes share the work.
    order = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(
        encoded["train"].features, batch_size=cfg.batch_size, shuffle=True, generator=order, collate_fn=collate
    )
    opt, sched = _optimizer(model, cfg, cfg.epochs * len(train_loader))
    main = MAIN_METRIC[data.task.kind]
    best, best_epoch, best_state, dev_scores, best_dev = -1.0, 0, None, [], {}
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        total, batches = 0.0, 0
        for batch in train_loader:
            batch = {k: v.to(place.device) for k, v in batch.items()}
            with place.autocast():
                if place.world > 1:
                    loss = _shard_loss(trained, batch, place)
                else:
                    loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            total, batches = total + loss.item(), batches + 1
        with place.autocast():
            dev, _ = evaluate_split(model, encoded["dev"], data.labels, collate, cfg.eval_batch_size)
        dev_scores.append(dev[main])
        log.info(
            "%s epoch %d/%d loss %.4f dev %s %.4f%s",
            progress,
            epoch,
            cfg.epochs,
            total / max(batches, 1),
            main,
            dev[main],
            " (best)" if dev[main] > best else "",
        )
        if dev[main] > best:  # ties keep the earlier epoch
            best, best_epoch, best_dev = dev[main], epoch, dev
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    with place.autocast():
        test, names = evaluate_split(model, encoded["test"], data.labels, collate, cfg.eval_batch_size)
    return RunOutput(
        best_epoch,
        dev_scores,
        best_dev,
        test,
        names,
        time.time() - started,
        time.process_time() - cpu_started,
        device=str(next(model.parameters()).device),
    )
