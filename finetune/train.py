"""One finetuning run: a task, a language, a model, a seed.

A plain torch loop (AdamW, linear warmup/decay, gradient clipping) because it is short and
fully seeded: `seed` fixes the head initialisation, dropout and the batch order. After every
epoch the dev set is scored; the weights of the best dev epoch (not the last; AfroLM's scripts
report the last) are kept in memory and restored before the single test evaluation.
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader

from finetune.config import TrainConfig
from finetune.data import TaskData
from finetune.features import classification_features, merge_word_predictions, ner_windows
from finetune.metrics import MAIN_METRIC, score
from finetune.model import CheckedModel, load_model

log = logging.getLogger("finetune")


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
                tok, list(ds["text"]), [label2id[l] for l in self.gold], checked.max_length)
        self.n_examples = len(ds)


def _collator(kind: str, tokenizer):
    from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding

    if kind == "ner":
        return DataCollatorForTokenClassification(tokenizer, label_pad_token_id=-100)
    return DataCollatorWithPadding(tokenizer)


@torch.no_grad()
def predict(model, enc: Encoded, collate, batch_size: int) -> list:
    """Predicted label ids: one per word (NER, windows merged) or one per text."""
    model.eval()
    loader = DataLoader(enc.features, batch_size=batch_size, shuffle=False, collate_fn=collate)
    window_preds = []
    for batch in loader:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        preds = logits.argmax(-1)
        if enc.kind == "ner":
            window_preds.extend(row.tolist() for row in preds)
        else:
            window_preds.extend(preds.tolist())
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
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
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


def finetune_once(checked: CheckedModel, data: TaskData, encoded: dict[str, Encoded],
                  cfg: TrainConfig, seed: int, progress: str = "") -> RunOutput:
    with torch_threads(cfg.threads):
        return _finetune_once(checked, data, encoded, cfg, seed, progress)


def _finetune_once(checked, data, encoded, cfg, seed, progress) -> RunOutput:
    from transformers import set_seed

    started, cpu_started = time.time(), time.process_time()
    set_seed(seed)  # python, numpy, torch: head init and dropout
    model = load_model(checked, data.task.kind, data.labels)
    collate = _collator(data.task.kind, checked.tokenizer)
    order = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(encoded["train"].features, batch_size=cfg.batch_size, shuffle=True,
                              generator=order, collate_fn=collate)
    opt, sched = _optimizer(model, cfg, cfg.epochs * len(train_loader))
    main = MAIN_METRIC[data.task.kind]
    best, best_epoch, best_state, dev_scores, best_dev = -1.0, 0, None, [], {}
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        total, batches = 0.0, 0
        for batch in train_loader:
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            total, batches = total + loss.item(), batches + 1
        dev, _ = evaluate_split(model, encoded["dev"], data.labels, collate, cfg.eval_batch_size)
        dev_scores.append(dev[main])
        log.info("%s epoch %d/%d loss %.4f dev %s %.4f%s", progress, epoch, cfg.epochs,
                 total / max(batches, 1), main, dev[main], " (best)" if dev[main] > best else "")
        if dev[main] > best:  # ties keep the earlier epoch
            best, best_epoch, best_dev = dev[main], epoch, dev
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    test, names = evaluate_split(model, encoded["test"], data.labels, collate, cfg.eval_batch_size)
    return RunOutput(best_epoch, dev_scores, best_dev, test, names, time.time() - started,
                     time.process_time() - cpu_started)
