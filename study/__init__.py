"""The selection study: does a model that chooses its own pretraining data learn more from less text?

`study.run` runs the grid (`python -m study`), `study.analysis` computes the numbers and the
verdict from the runs' files, `study.stats` holds the tests it uses, `study.figures` draws them.
docs/study.md states the design and the verdict rules.
"""
