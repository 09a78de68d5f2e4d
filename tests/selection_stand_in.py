"""A minimal stand-in for `pretrain.selection`, used by the pretrain tests only until the
selection branch lands (then `install()` does nothing and the real module is tested).

It follows the interface in the issue: SelectionConfig, SelectionState, run_round ->
RoundResult(chosen_ids, summary, scoring_seconds). Quotas per language follow temperature
sampling p_l ∝ n_l^alpha; "afrolm" adds generated blocks to exercise the pool's state.
"""
from __future__ import annotations

import importlib.util
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np


@dataclass
class SelectionConfig:
    strategy: Literal["random", "loss", "entropy", "reducible", "afrolm"] = "random"
    select_every: int = 10
    blocks_per_round: int = 64
    candidates_per_round: int = 128
    alpha: float = 0.3
    exploration: float = 0.1
    seed: int = 0


@dataclass
class SelectionState:
    history: list = field(default_factory=list)

    def state_dict(self) -> dict:
        return {"history": list(self.history)}

    @classmethod
    def from_state_dict(cls, d: dict) -> "SelectionState":
        return cls(history=list(d["history"]))


@dataclass
class RoundResult:
    chosen_ids: np.ndarray
    summary: dict
    scoring_seconds: float


def quotas(sizes: dict[str, int], total: int, alpha: float) -> dict[str, int]:
    langs = sorted(sizes)
    w = np.array([sizes[l] ** alpha for l in langs], dtype=float)
    raw = w / w.sum() * total
    q = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - q))[: total - q.sum()]:
        q[i] += 1
    return dict(zip(langs, q.tolist()))


def run_round(model, pool, cfg, state, round_index, out_dir, device) -> RoundResult:
    import torch

    started = time.perf_counter()
    rng = np.random.default_rng([cfg.seed, round_index])
    if cfg.strategy == "afrolm" and round_index > 0:
        for lang in pool.languages:
            lines = pool.sample_sentences(lang, 2, rng)
            pool.add_generated(lang, [" ".join(reversed(t.split())) for t in lines])
    was_training = model.training
    model.eval()
    with torch.inference_mode():  # touch the model the way the real scorer does
        model(input_ids=torch.as_tensor(pool.blocks(pool.ids(pool.languages[0])[:1])).to(device))
    model.train(was_training)
    q = quotas({l: len(pool.ids(l)) for l in pool.languages}, cfg.blocks_per_round, cfg.alpha)
    chosen, rows = [], []
    for lang in pool.languages:
        ids = pool.ids(lang)
        take = rng.choice(ids, size=min(q[lang], len(ids)), replace=False)
        chosen.extend(take.tolist())
        rows.extend({"id": int(i), "lang": lang} for i in take)
    order = rng.permutation(len(chosen))
    chosen = np.asarray(chosen, dtype=np.int64)[order]
    state.history.append(round_index)
    path = Path(out_dir) / "selection" / f"round-{round_index:03d}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(rows[i]) + "\n" for i in order))
    tmp.replace(path)
    counts = {l: int(sum(1 for r in rows if r["lang"] == l)) for l in pool.languages}
    return RoundResult(chosen, {"strategy": cfg.strategy, "quota": q, "chosen_per_lang": counts,
                                "scoring_seconds": time.perf_counter() - started},
                       time.perf_counter() - started)


def install() -> bool:
    """Register this module as `pretrain.selection` unless the real one exists."""
    if importlib.util.find_spec("pretrain.selection") is not None:
        return False
    module = sys.modules[__name__]
    sys.modules["pretrain.selection"] = module
    import pretrain

    pretrain.selection = module
    return True
