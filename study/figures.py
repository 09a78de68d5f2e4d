"""Figures of the selection study, in the report's style (report/figures.py: object-oriented
matplotlib, Agg, fixed dpi, reproducible bytes)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.ticker import FuncFormatter

from common.io import atomic_write
from report.figures import _figure, palette, png_bytes

DPI = 110


def _short(value: float, _pos=None) -> str:
    """Token counts as 650k / 65.5M: full numbers overlap on the axis."""
    if abs(value) >= 1e6:
        return f"{value / 1e6:.3g}M"
    return f"{value / 1e3:.0f}k" if abs(value) >= 1e3 else f"{value:.0f}"


def _grouped_bars(keys: list, strategies: list[str], mean_std, key_width: float):
    """A group of bars per key, one bar per strategy with a ± std error bar; (fig, ax, x)."""
    colors = palette(strategies)
    fig = _figure(max(7, key_width * len(keys) + 2), 3.6)
    ax = fig.subplots()
    width = 0.8 / len(strategies)
    x = np.arange(len(keys))
    for i, s in enumerate(strategies):
        pairs = [mean_std(s, k) for k in keys]
        ax.bar(x + (i - (len(strategies) - 1) / 2) * width, [mean for mean, _ in pairs], width,
               yerr=[std for _, std in pairs], capsize=2, label=s, color=colors[s])
    return fig, ax, x


def final_loss_bars(rows: list[dict], strategies: list[str], langs: list[str]):
    """Per language: final validation loss per strategy, mean ± std over seeds."""
    get = {(r["strategy"], r["key"]): r for r in rows if r["measure"] == "final_valid_loss"}
    keys = [*langs, "mean"]
    fig, ax, x = _grouped_bars(keys, strategies, lambda s, k: (get[(s, k)]["mean"], get[(s, k)]["std"]), 1.1)
    lows = [get[(s, k)]["mean"] - (get[(s, k)]["std"] or 0) for s in strategies for k in keys]
    highs = [get[(s, k)]["mean"] + (get[(s, k)]["std"] or 0) for s in strategies for k in keys]
    pad = 0.15 * (max(highs) - min(lows) + 1e-9)
    ax.set_ylim(min(lows) - pad, max(highs) + pad)
    ax.set_xticks(x, keys)
    ax.set_ylabel("validation loss (nats)")
    ax.set_title("Final validation loss per language (mean ± std over seeds)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncols=len(strategies), loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    return fig


def loss_vs_tokens(groups: dict, langs: list[str]):
    """Language-averaged validation loss vs training tokens, mean over seeds with a ±std band."""
    from pretrain.study_analysis import mean_curve

    colors = palette(list(groups))
    fig = _figure(7, 3.8)
    axes = fig.subplots(1, 2)
    for ax, skip in zip(axes, (0, 2)):  # right panel: without the first checkpoints, to see the end
        for s, group in groups.items():
            tokens, mean, std = mean_curve(group, langs)
            ax.plot(tokens[skip:], mean[skip:], label=s, color=colors[s], marker=".")
            ax.fill_between(tokens[skip:], (mean - std)[skip:], (mean + std)[skip:], color=colors[s], alpha=0.15)
        ax.set_xlabel("training tokens")
        ax.xaxis.set_major_formatter(FuncFormatter(_short))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean validation loss (nats)")
    axes[0].set_title("All checkpoints")
    axes[1].set_title("From the third checkpoint")
    axes[1].legend(fontsize=8, frameon=False)
    return fig


def selection_share_grid(shares: dict, strategies: list[str]):
    """Per strategy: share of chosen blocks per language in each round (stacked), mean over seeds."""
    langs = sorted({lang for s in shares.values() for r in s.values() for lang in r})
    colors = palette(langs)
    fig = _figure(2.3 * len(strategies) + 1.5, 3.2)
    axes = np.atleast_1d(fig.subplots(1, len(strategies), sharey=True))
    for ax, s in zip(axes, strategies):
        rounds = sorted(shares.get(s, {}))
        bottom = np.zeros(len(rounds))
        for lang in langs:
            values = np.array([100 * shares[s][r].get(lang, 0.0) for r in rounds])
            ax.bar([str(r) for r in rounds], values, bottom=bottom, color=colors[lang], label=lang)
            bottom += values
        ax.set_title(s, fontsize=9)
        ax.set_xlabel("round")
    axes[0].set_ylabel("% of chosen blocks")
    axes[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return fig


def downstream_bars(rows: list[dict], strategies: list[str]):
    """Test score per downstream task and language, mean ± std over pretraining seeds."""
    rows = [r for r in rows if r["measure"].startswith("downstream_")]
    keys = sorted({(r["measure"][len("downstream_"):], r["key"]) for r in rows})
    if not keys:
        return None
    get = {(r["strategy"], r["measure"][len("downstream_"):], r["key"]): r for r in rows}

    def mean_std(s, k):
        row = get.get((s, *k), {})
        return row.get("mean", np.nan), row.get("std", 0)

    fig, ax, x = _grouped_bars(keys, strategies, mean_std, 1.4)
    ax.set_xticks(x, [f"{t}\n{lang}" for t, lang in keys], fontsize=8)
    ax.set_ylabel("test score (%)")
    ax.set_title("Downstream (finetuned, mean ± std over pretraining seeds)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncols=len(strategies), loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    return fig


def write_figures(folder: Path, groups: dict, control: str, langs: list[str], rows: list[dict],
                  shares: dict) -> list[Path]:
    strategies = list(groups)
    figures = {
        "final_loss_per_language": final_loss_bars(rows, strategies, langs),
        "loss_vs_tokens": loss_vs_tokens(groups, langs),
        "selection_share_per_round": selection_share_grid(shares, strategies),
        "downstream": downstream_bars(rows, strategies),
    }
    written = []
    for name, fig in figures.items():
        if fig is None:
            continue
        path = Path(folder) / f"{name}.png"
        with atomic_write(path, "wb") as handle:
            handle.write(png_bytes(fig, DPI))
        written.append(path)
    return written
