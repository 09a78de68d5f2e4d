"""`random`: the control. Candidates of each language are taken uniformly at random (after the
junk guard every strategy shares), so any gain of another strategy is measured against it."""

from pretrain.strategies.base import Strategy

STRATEGY = Strategy(name="random", summary="control: uniform choice within each language")
