"""Step 9: a fixed validation split per language, chosen by hash of the dedup key.

A line goes to `valid` when `stable_fraction(line.key)` < k / n, where n is the language's kept line
count and k = clamp(fraction * n, min_lines, max_lines), at most max_share * n. The hash
makes the choice independent of order, workers and runs; as the corpus grows, the threshold
moves only a little, so a line rarely changes sides. The split size is k in expectation (the
hash is uniform), not exactly k. Applied per language in language_shards.WriteLanguage.
"""

from __future__ import annotations

from pipeline.config import ValidConfig
from pipeline.records import Line
from pipeline.textkey import stable_fraction


def valid_share(n: int, cfg: ValidConfig) -> float:
    """The share of a language of n lines that goes to valid."""
    if n <= 0 or cfg.fraction == 0.0:
        return 0.0
    k = min(max(cfg.fraction * n, cfg.min_lines), cfg.max_lines, cfg.max_share * n)
    return k / n


def split_of(line: Line, share: float) -> str:
    return "valid" if stable_fraction(line.key) < share else "train"
