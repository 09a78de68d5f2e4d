"""AdamW with decoupled weight decay and a warm-up + decay learning-rate schedule."""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn

from pretrain.config import TrainConfig


def lr_factor(
    step: int, warmup: int, total: int, schedule: str, min_ratio: float, decay_fraction: float = 0.2
) -> float:
    """Multiplier of the peak lr before optimizer step `step` (0-based).

    Linear warm-up over `warmup` steps (step 0 already gets 1/warmup, so no step is wasted at
    lr 0), then linear or cosine decay from 1 to `min_ratio` at step `total`; or `wsd`
    (warmup-stable-decay, Hu et al. 2024 "MiniCPM"): the peak held until the last
    `decay_fraction` of the steps, then a linear decay to `min_ratio`.
    """
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "wsd":
        decay_steps = max(1, round(decay_fraction * total))
        progress = min(1.0, max(0.0, (step - (total - decay_steps)) / decay_steps))
        return min_ratio + (1.0 - min_ratio) * (1.0 - progress)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "cosine":
        decay = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        decay = 1.0 - progress
    return min_ratio + (1.0 - min_ratio) * decay


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices only; biases and LayerNorm weights are left alone (BERT, RoBERTa)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, cfg: TrainConfig):
    """AdamW (the fused kernel, on CPU too: ~10x faster than the foreach one there) and its LambdaLR schedule."""
    optimizer = torch.optim.AdamW(
        param_groups(model, cfg.weight_decay),
        lr=cfg.lr,
        betas=(cfg.adam_beta1, cfg.adam_beta2),
        eps=cfg.adam_eps,
        fused=True,
    )
    factor = partial(
        lr_factor,
        warmup=cfg.warmup_steps,
        total=cfg.max_steps,
        schedule=cfg.schedule,
        min_ratio=cfg.min_lr_ratio,
        decay_fraction=cfg.decay_fraction,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return optimizer, scheduler
