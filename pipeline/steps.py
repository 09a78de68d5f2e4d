"""The corpus steps, declared in order: what pipeline.run's one graph runs.

Every step is a small unit with one job: a pure function of records (`records.Line`). A step
that drops a line returns it with `reason` set (`Line.drop`), so nothing is dropped silently;
`STEPS` lists the reasons each step can give (docs/corpus.md has the same table).

Steps 1-6 go line by line, in batches of lines, so Beam's per-element costs are paid per batch,
not per line: `batches.ReadBatches` reads files into batches (step 1), and `batches.CleanBatch`
applies steps 2-6 to each line, chained by `clean` (`line_units` binds them to the settings).
Steps 7-10 need lines together and run in the graph's transform where their group
is: exact dedup per bucket of dedup keys, near dedup, the validation split and the shard writer
per language (`runs_in`, the graph's labels: pipeline.run.build_pipeline).
"""

from __future__ import annotations

from functools import partial
from typing import Callable, NamedTuple

from pipeline import readers
from pipeline.config import CorpusConfig
from pipeline.decontam import EvalIndex, decontaminate_line
from pipeline.exact_dedup import keep_smallest
from pipeline.filters import REASONS as FILTER_REASONS
from pipeline.filters import filter_line
from pipeline.near_dedup import dedup_language
from pipeline.normalise import normalise_line
from pipeline.read import readable
from pipeline.records import Line
from pipeline.segment import split_line
from pipeline.textkey import with_dedup_key
from pipeline.valid_split import split_of
from pipeline.write_shards import write_shard


class Step(NamedTuple):
    name: str
    unit: Callable  # the function that does the job, tested on its own
    drops: tuple[str, ...]  # every reason it drops a line with
    runs_in: str  # the graph's transform (label) that applies it
    many: bool = False  # a per-line step that turns one line into any number


CLEAN = "Clean"
STEPS = (
    Step("read", readable, readers.REASONS, "ReadBatches"),
    Step("normalise", normalise_line, (), CLEAN),
    Step("split", split_line, ("too_long", "empty"), CLEAN, many=True),
    Step("filter", filter_line, FILTER_REASONS, CLEAN),
    Step("decontaminate", decontaminate_line, ("decontaminated",), CLEAN),
    Step("dedup_key", with_dedup_key, (), CLEAN),
    Step("exact_dedup", keep_smallest, ("exact_dup",), "ExactDedup"),
    Step("near_dedup", dedup_language, ("near_dup",), "PerLanguage"),
    Step("valid_split", split_of, (), "PerLanguage"),
    Step("write", write_shard, (), "PerLanguage"),
)

Unit = tuple[Callable[[Line], object], bool]


def line_units(cfg: CorpusConfig, index: EvalIndex | None) -> list[Unit]:
    """The per-line steps bound to their settings, as (function of one line, many) pairs;
    without an evaluation index (decontamination off, or no eval files) there is no decontaminate."""
    settings = {
        "split": {"max_chars": cfg.split.max_chars, "reject_chars": cfg.split.reject_chars},
        "filter": {"cfg": cfg.filter},
        "decontaminate": {"index": index},
    }
    return [
        (partial(step.unit, **settings[step.name]) if step.name in settings else step.unit, step.many)
        for step in STEPS
        if step.runs_in == CLEAN and (step.name != "decontaminate" or index is not None)
    ]


def clean(line: Line, units: list[Unit]) -> list[Line]:
    """One line as read (step 1) -> its units after steps 2-6: kept ones (carrying their dedup
    key) and dropped ones (`reason` set; later steps pass a drop on untouched). Each is one unit
    of account of the stats (`read`)."""
    lines = [line]
    for unit, many in units:
        out = []
        for item in lines:
            if item.reason is not None:
                out.append(item)
            elif many:
                out.extend(unit(item))
            else:
                out.append(unit(item))
        lines = out
    return lines
