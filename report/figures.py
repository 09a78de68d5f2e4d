"""One function per figure; each takes data from `report.readers` and returns a matplotlib Figure.

Figures are built with the object-oriented API (`matplotlib.figure.Figure`, Agg canvas), never
pyplot: no global state, no display needed. `png_bytes` renders one at a fixed dpi.
"""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")  # before anything imports pyplot: headless everywhere

from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from report.readers import Metrics, Round  # noqa: E402

KEPT_COLOR = "#2b8a3e"


def png_bytes(fig: Figure, dpi: int) -> bytes:
    buf = io.BytesIO()
    # No timestamp or software version in the file: same data, same bytes.
    # constrained layout already fits the labels: no bbox_inches="tight" (it draws twice).
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def palette(names: list[str], avoid_green: bool = False) -> dict[str, tuple]:
    """A stable colour per name (languages keep their colour across figures). `avoid_green`
    keeps green for "kept" lines only."""
    cmap = matplotlib.colormaps["tab20" if len(names) > 9 else "tab10"]
    colors = [cmap(i) for i in range(cmap.N)]
    if avoid_green:
        colors = [c for i, c in enumerate(colors) if i not in ((4, 5) if cmap.N == 20 else (2,))]
    return {name: colors[i % len(colors)] for i, name in enumerate(sorted(names))}


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def _height(rows: int) -> float:
    return max(2.6, 0.32 * rows + 1.4)


# ------------------------------------------------------------------------- corpus


def corpus_outcomes(stats: dict) -> Figure:
    """Per language: lines kept and dropped by reason (stacked), in lines and in % of read."""
    langs = sorted(stats["languages"])
    entries = [stats["languages"][lang] for lang in langs]
    reasons = sorted({r for e in entries for r in e.get("dropped_by_reason", {})})
    colors = palette(reasons, avoid_green=True)
    fig = _figure(12, _height(len(langs)))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, share in zip(axes, (False, True)):
        left = [0.0] * len(langs)
        for name in ["kept", *reasons]:
            values = [(e["kept"] if name == "kept" else e.get("dropped_by_reason", {}).get(name, 0)) for e in entries]
            if share:
                values = [100.0 * v / e["read"] if e["read"] else 0.0 for v, e in zip(values, entries)]
            ax.barh(langs, values, left=left, label=name, color=KEPT_COLOR if name == "kept" else colors[name])
            left = [a + b for a, b in zip(left, values)]
        ax.set_xlabel("% of lines read" if share else "lines")
        ax.grid(axis="x", alpha=0.3)
    axes[0].invert_yaxis()  # shared y: first language on top in both panels
    axes[0].set_title("Lines kept and dropped, by reason")
    axes[1].set_title("Share of lines read")
    axes[1].set_xlim(0, 100)
    axes[1].legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    return fig


# ------------------------------------------------------------------------- tokenizer


def tokenizer_metrics(report: dict) -> Figure:
    langs = sorted(report["languages"])
    rows = [report["languages"][lang] for lang in langs]
    fig = _figure(12, 3.6)
    axes = fig.subplots(1, 3)
    for ax, key, title in zip(
        axes,
        ("fertility", "byte_rate", "unk_rate"),
        ("Fertility (tokens per word)", "Byte-fallback tokens (%)", "<unk> tokens (%)"),
    ):
        scale = 1.0 if key == "fertility" else 100.0
        values = [(r.get(key) or 0.0) * scale for r in rows]
        ax.bar(langs, values, color=[palette(langs)[lang] for lang in langs])
        ax.set_title(title)
        ax.tick_params(axis="x", rotation=45)
        ax.grid(axis="y", alpha=0.3)
    return fig


# ------------------------------------------------------------------------- pretraining


def step_to_tokens(metrics: Metrics) -> dict[int, int]:
    return {row["step"]: row["tokens"] for row in metrics.train if "tokens" in row}


def loss_curves(metrics: Metrics) -> Figure:
    """Training loss; per-language validation loss with each language's unigram baseline dashed;
    and the final margin below that baseline per language. x = tokens seen when the log has them."""
    tokens = step_to_tokens(metrics)
    tokens[0] = 0
    use_tokens = bool(metrics.train) and all(row["step"] in tokens for row in metrics.evals)
    x_of = (lambda step: tokens[step]) if use_tokens else (lambda step: step)
    xlabel = "tokens seen" if use_tokens else "optimizer step"
    langs = sorted({lang for e in metrics.evals for lang in e["langs"]})
    margins = final_margins(metrics)
    fig = _figure(16 if margins else 12, max(4.0, _height(len(margins)) if margins else 4.0))
    axes = fig.subplots(1, 3 if margins else 2, width_ratios=[1, 1.2, 0.8] if margins else None)
    ax_train, ax_valid = axes[0], axes[1]
    ax_train.plot([x_of(r["step"]) for r in metrics.train], [r["loss"] for r in metrics.train], color="#333333", lw=1.2)
    ax_train.set_title("Training loss (masked tokens)")
    colors = palette(langs)
    for lang in langs:
        points = [
            (x_of(e["step"]), e["langs"][lang]["loss"])
            for e in metrics.evals
            if isinstance(e["langs"].get(lang), dict) and e["langs"][lang].get("loss") is not None
        ]
        if points:
            ax_valid.plot(*zip(*points), marker="o", ms=3, lw=1.2, label=lang, color=colors[lang])
            base = metrics.baseline.get(lang, {}).get("loss")
            if base is not None:
                ax_valid.hlines(base, points[0][0], points[-1][0], colors=[colors[lang]], linestyles="dashed", lw=0.9)
    ax_valid.set_title("Validation loss per language (dashed: its unigram baseline)")
    if langs:
        ax_valid.legend(
            fontsize=8, ncol=2 if len(langs) > 8 else 1, frameon=False, loc="center left", bbox_to_anchor=(1.01, 0.5)
        )
    for ax in (ax_train, ax_valid):
        ax.set_xlabel(xlabel)
        ax.set_ylabel("loss (nats per masked token)")
        ax.grid(alpha=0.3)
    if margins:
        names = sorted(margins, key=margins.get)
        values = [margins[n] for n in names]
        ax = axes[2]
        ax.barh(names, values, color=[KEPT_COLOR if v > 0 else "#c92a2a" for v in values])
        ax.axvline(0, color="#333333", lw=0.8)
        ax.set_title("Final margin below the unigram (nats)")
        ax.set_xlabel("unigram loss - model loss (> 0: model better)")
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(alpha=0.3, axis="x")
    return fig


def final_margins(metrics: Metrics) -> dict[str, float]:
    """lang -> unigram loss - last validation loss, for languages with both."""
    if not metrics.evals or not metrics.baseline:
        return {}
    last = metrics.evals[-1]["langs"]
    return {
        lang: metrics.baseline[lang]["loss"] - r["loss"]
        for lang, r in last.items()
        if isinstance(r, dict)
        and r.get("loss") is not None
        and isinstance(metrics.baseline.get(lang), dict)
        and metrics.baseline[lang].get("loss") is not None
    }


# ------------------------------------------------------------------------- selection


def selection_share(rounds: list[int], shares: dict[str, list[float]]) -> Figure:
    """Each language's share of the blocks chosen, round after round (stacked)."""
    langs = sorted(shares)
    colors = palette(langs)
    fig = _figure(12, 3.8)
    ax = fig.subplots()
    values = [[100.0 * v for v in shares[lang]] for lang in langs]
    if len(rounds) > 1:
        ax.stackplot(rounds, values, labels=langs, colors=[colors[lang] for lang in langs])
        ax.set_xlim(rounds[0], rounds[-1])
    else:  # one round: a single stacked bar
        bottom = 0.0
        for lang, v in zip(langs, values):
            ax.bar(rounds, v, bottom=bottom, label=lang, color=colors[lang], width=0.5)
            bottom += v[0]
        ax.set_xticks(rounds)
        ax.set_xlim(rounds[0] - 1, rounds[0] + 1)
    ax.set_ylim(0, 100)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("selection round")
    ax.set_ylabel("% of chosen blocks")
    ax.set_title("Share of each language among the chosen blocks")
    ax.legend(
        fontsize=8, frameon=False, loc="center left", bbox_to_anchor=(1.01, 0.5), ncol=2 if len(langs) > 10 else 1
    )
    return fig


def pick_rounds(rounds: list[Round], limit: int) -> list[Round]:
    """At most `limit` scored rounds, evenly spaced, first and last included."""
    scored = [r for r in rounds if r.scores]
    if len(scored) <= limit:
        return scored
    picks = (
        sorted({round(i * (len(scored) - 1) / (limit - 1)) for i in range(limit)}) if limit > 1 else [len(scored) - 1]
    )
    return [scored[i] for i in picks]


def score_distributions(rounds: list[Round]) -> Figure:
    """Box plots of candidate scores per language, one panel per round; dots = chosen mean."""
    langs = sorted({lang for r in rounds for lang in r.scores})
    colors = palette(langs)
    cols = 1 if len(langs) > 12 else min(3, len(rounds))  # many languages: one wide panel per round
    rows = math.ceil(len(rounds) / cols)
    fig = _figure(12, 3.2 * rows)
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
    for ax, r in zip(axes.flat, rounds):
        present = [lang for lang in langs if r.scores.get(lang)]
        box = ax.boxplot(
            [r.scores[lang] for lang in present],
            tick_labels=present,
            patch_artist=True,
            showfliers=True,
            flierprops={"markersize": 2},
        )
        for patch, lang in zip(box["boxes"], present):
            patch.set_facecolor(colors[lang])
            patch.set_alpha(0.6)
        for i, lang in enumerate(present, 1):
            chosen = r.chosen_scores.get(lang)
            if chosen:
                ax.plot(i, sum(chosen) / len(chosen), "k.", ms=7)
        ax.set_title(f"round {r.index}")
        ax.tick_params(axis="x", rotation=45, labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(rounds) :]:
        ax.set_visible(False)
    axes[0][0].set_ylabel("score")
    fig.suptitle("Candidate scores per language (box) and mean score of the chosen blocks (dot)")
    return fig


def scoring_time(timing: list[dict]) -> Figure:
    fig = _figure(12, 3)
    ax = fig.subplots()
    steps = [row["step"] for row in timing]
    share = [100.0 * row["scoring_s"] / row["elapsed_s"] if row["elapsed_s"] else 0.0 for row in timing]
    ax.plot(steps, share, color="#c92a2a")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("% of wall time")
    ax.set_title("Time spent scoring / selecting, cumulative share of training time")
    ax.set_ylim(0, max(5.0, max(share, default=0) * 1.15))
    ax.grid(alpha=0.3)
    return fig


# ------------------------------------------------------------------------- downstream


def downstream_bars(summary: list[dict], group_key: str = "model") -> Figure:
    """Mean test score per task/lang with the std over seeds as error bars, one bar per
    `group_key` value (models of one run, or runs side by side)."""
    cells = sorted({(r["task"], r["lang"]) for r in summary})
    groups = sorted({r[group_key] for r in summary})
    colors = palette(groups)
    index = {(r["task"], r["lang"], r[group_key]): r for r in summary}
    width = 0.8 / len(groups)
    fig = _figure(max(8.0, 0.55 * len(cells) * max(1, len(groups)) + 2), 4)
    ax = fig.subplots()
    for g, group in enumerate(groups):
        xs, means, stds = [], [], []
        for i, cell in enumerate(cells):
            row = index.get((*cell, group))
            if row:
                xs.append(i + (g - (len(groups) - 1) / 2) * width)
                means.append(row["mean"])
                stds.append(row["std"])
        ax.bar(xs, means, width=width, yerr=stds, capsize=2, label=group, color=colors[group])
    ax.set_xticks(
        range(len(cells)),
        [f"{t} {lang}" for t, lang in cells],
        fontsize=8,
        rotation=30,
        ha="right",
        rotation_mode="anchor",
    )
    top = max((r["mean"] + (r["std"] or 0.0) for r in summary), default=0.0)
    ax.set_ylim(0, max(10.0, top * 1.1))  # scores are % in [0, 100]; all-zero runs still show an axis
    ax.set_ylabel("test score (%)")
    ax.set_title("Downstream results: mean ± std over seeds")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, frameon=False, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig
