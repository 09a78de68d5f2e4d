"""`make report`: one self-contained HTML report (plus PNG figures) of a pipeline run.

`report.readers` reads each stage's output files (one small function per file), `report.figures`
draws one matplotlib figure per view, `report.sections` turns them into HTML, `report.build` is
the entry point (`python -m report.build --help`).
"""
