"""Figures of the selection study, in the report's style (report/figures.py: object-oriented
matplotlib, Agg, fixed dpi, reproducible bytes). Every function takes plain numbers (the dict
that study.analysis.figure_data builds) and returns a Figure, or None when there is nothing to draw."""

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


def _grouped_bars(keys: list, arms: list[str], values: dict, key_width: float):
    """A group of bars per key, one bar per arm with a ± sd error bar; `values[arm][key]` = (mean, sd)."""
    colors = palette(arms)
    fig = _figure(max(7, key_width * len(keys) + 2), 3.6)
    ax = fig.subplots()
    width = 0.8 / len(arms)
    x = np.arange(len(keys))
    for i, arm in enumerate(arms):
        pairs = [values.get(arm, {}).get(k, (np.nan, 0.0)) for k in keys]
        ax.bar(
            x + (i - (len(arms) - 1) / 2) * width,
            [m for m, _ in pairs],
            width,
            yerr=[sd or 0.0 for _, sd in pairs],
            capsize=2,
            label=arm,
            color=colors[arm],
        )
    return fig, ax, x


def paired_differences(differences: dict, sesoi: float, control: str):
    """Per strategy: each seed's difference from the control (dots), the mean and its 95% interval,
    and the ±sesoi band of practical equivalence."""
    if not differences:
        return None
    arms = list(differences)
    colors = palette(arms)
    fig = _figure(max(6, 1.1 * len(arms) + 2), 3.6)
    ax = fig.subplots()
    ax.axhspan(-sesoi, sesoi, color="0.9", label=f"±{sesoi:g} (sesoi)")
    ax.axhline(0, color="0.4", lw=0.8)
    for i, arm in enumerate(arms):
        diffs, mean, (low, high) = differences[arm]
        jitter = np.linspace(-0.15, 0.15, len(diffs)) if len(diffs) > 1 else np.zeros(len(diffs))
        ax.scatter(i + jitter, diffs, s=12, color=colors[arm], alpha=0.6)
        if low is not None and high is not None and np.isfinite([low, high]).all():
            ax.errorbar(i + 0.3, mean, yerr=[[mean - low], [high - mean]], fmt="o", color=colors[arm], capsize=3)
    ax.set_xticks(range(len(arms)), arms)
    ax.set_ylabel(f"final loss − {control} (nats)")
    ax.set_title("Per seed, mean and 95% CI (below 0: better)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    return fig


def final_loss_bars(final: dict, arms: list[str], langs: list[str]):
    """Per language: final validation loss per arm, mean ± sd over seeds."""
    keys = [*langs, "mean"]
    fig, ax, x = _grouped_bars(keys, arms, final, 1.1)
    cells = [final[a][k] for a in arms for k in keys if k in final.get(a, {})]
    lows = [m - (sd or 0) for m, sd in cells]
    highs = [m + (sd or 0) for m, sd in cells]
    pad = 0.15 * (max(highs) - min(lows) + 1e-9)
    ax.set_ylim(min(lows) - pad, max(highs) + pad)
    ax.set_xticks(x, keys)
    ax.set_ylabel("validation loss (nats)")
    ax.set_title("Final validation loss per language (mean ± sd over seeds)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncols=len(arms), loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    return fig


def loss_vs_tokens(curves: dict):
    """Language-mean validation loss vs training tokens, mean over seeds with a ± sd band;
    `curves[arm]` = (tokens, mean, sd)."""
    colors = palette(list(curves))
    fig = _figure(7, 3.8)
    axes = fig.subplots(1, 2)
    for ax, skip in zip(axes, (0, 2)):  # right panel: without the first checkpoints, to see the end
        for arm, (tokens, mean, sd) in curves.items():
            tokens, mean, sd = np.asarray(tokens), np.asarray(mean), np.asarray(sd)
            ax.plot(tokens[skip:], mean[skip:], label=arm, color=colors[arm], marker=".")
            ax.fill_between(tokens[skip:], (mean - sd)[skip:], (mean + sd)[skip:], color=colors[arm], alpha=0.15)
        ax.set_xlabel("training tokens")
        ax.xaxis.set_major_formatter(FuncFormatter(_short))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean validation loss (nats)")
    axes[0].set_title("All checkpoints")
    axes[1].set_title("From the third checkpoint")
    axes[1].legend(fontsize=8, frameon=False)
    return fig


def selection_share_grid(shares: dict, arms: list[str]):
    """Per arm: share of chosen blocks per language in each round (stacked), mean over seeds."""
    arms = [a for a in arms if shares.get(a)]
    langs = sorted({lang for a in shares.values() for r in a.values() for lang in r})
    if not arms or not langs:
        return None
    colors = palette(langs)
    fig = _figure(2.3 * len(arms) + 1.5, 3.2)
    axes = np.atleast_1d(fig.subplots(1, len(arms), sharey=True))
    for ax, arm in zip(axes, arms):
        rounds = sorted(shares[arm])
        bottom = np.zeros(len(rounds))
        for lang in langs:
            values = np.array([100 * shares[arm][r].get(lang, 0.0) for r in rounds])
            ax.bar([str(r) for r in rounds], values, bottom=bottom, color=colors[lang], label=lang)
            bottom += values
        ax.set_title(arm, fontsize=9)
        ax.set_xlabel("round")
    axes[0].set_ylabel("% of chosen blocks")
    axes[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return fig


def downstream_bars(downstream: dict, arms: list[str]):
    """Test score per downstream task and language, mean ± sd over pretraining seeds;
    `downstream[arm][(task, lang)]` = (mean, sd)."""
    keys = sorted({k for values in downstream.values() for k in values})
    if not keys:
        return None
    fig, ax, x = _grouped_bars(keys, arms, downstream, 1.4)
    ax.set_xticks(x, [f"{t}\n{lang}" for t, lang in keys], fontsize=8)
    ax.set_ylabel("test score (%)")
    ax.set_title("Downstream (finetuned, mean ± sd over pretraining seeds)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncols=len(arms), loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    return fig


def write_figures(folder: Path, data: dict) -> list[Path]:
    """Draw every figure of `data` (study.analysis.figure_data) as PNG into `folder`; the paths written."""
    arms = data["arms"]
    figures = {
        "paired_differences": paired_differences(data["differences"], data["sesoi"], data["control"]),
        "final_loss_per_language": final_loss_bars(data["final"], arms, data["langs"]),
        "loss_vs_tokens": loss_vs_tokens(data["curves"]),
        "selection_share_per_round": selection_share_grid(data["shares"], arms),
        "downstream": downstream_bars(data["downstream"], arms),
    }
    written = []
    Path(folder).mkdir(parents=True, exist_ok=True)
    for name, fig in figures.items():
        if fig is None:
            continue
        path = Path(folder) / f"{name}.png"
        with atomic_write(path, "wb") as handle:
            handle.write(png_bytes(fig, DPI))
        written.append(path)
    return written
