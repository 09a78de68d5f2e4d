"""Figure helpers: which rounds are drawn, edge cases that must still give a PNG."""

from __future__ import annotations

from report import figures
from report.readers import Metrics, Round


def scored_round(index: int) -> Round:
    return Round(index, {"languages": {}}, {"yor": [5.0, 6.0, 7.0], "amh": [4.0, 4.5]}, {"yor": [7.0]})


def test_pick_rounds_even_spacing_with_first_and_last():
    rounds = [Round(0, None, {}, {})] + [scored_round(i) for i in range(1, 21)]  # round 0: warm-up, no scores
    picked = [r.index for r in figures.pick_rounds(rounds, 5)]
    assert picked == [1, 6, 11, 15, 20]
    assert [r.index for r in figures.pick_rounds(rounds[:3], 5)] == [1, 2]
    assert [r.index for r in figures.pick_rounds(rounds, 1)] == [20]


def test_edge_cases_render():
    one_round = figures.selection_share([0], {"yor": [0.75], "tir": [0.25]})
    no_train = figures.loss_curves(Metrics(evals=[{"step": 0, "langs": {"yor": {"loss": 9.0}}}]))
    zeros = figures.downstream_bars([{"task": "ner", "lang": "yor", "model": "m", "mean": 0.0, "std": 0.0}])
    for fig in (one_round, no_train, zeros, figures.score_distributions([scored_round(3)])):
        assert figures.png_bytes(fig, 30).startswith(b"\x89PNG")


def test_palette_keeps_green_for_kept():
    colors = figures.palette([f"reason{i}" for i in range(12)], avoid_green=True)
    greens = [c for c in colors.values() if c[1] > 0.55 and c[0] < 0.4 and c[2] < 0.4]
    assert greens == [] and len(set(colors.values())) == 12
