"""The model card: README.md with Hub metadata, results from the finetune table, licence.

Metadata (`ModelCardData`): languages (ISO 639-3, from the run), licence, datasets, tags,
`pipeline_tag: fill-mask` and a `model-index` with one entry per (task, language, metric) of
the finetune results (mean over seeds). The body says how to use the model, what it was
trained on and under which terms, and shows the results table.
"""

from __future__ import annotations

import csv
import json
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from common.formats import FormatError
from finetune import results as finetune_results
from pretrain.runfiles import METRICS, Metrics, read_metrics

# Column names accepted for the score, its spread and the number of seeds (finetune/results.py
# writes test_score per seed in results.csv, test_mean/test_std/seeds in summary.csv).
SCORE_ALIASES = ("test_score", "test_mean", "score", "mean", "score_mean", "value")
STD_ALIASES = ("test_std", "std", "score_std", "stdev")
SEEDS_ALIASES = ("seeds", "n_seeds", "n")


class ResultsError(ValueError):
    """The finetune results table is missing, empty or malformed."""


@dataclass(frozen=True)
class TaskInfo:
    task_type: str  # Hub task id
    task_name: str
    dataset_id: str  # Hub dataset id where one exists, else our evaluation set's name
    dataset_name: str
    variant: str = ""  # tells apart two tasks scored on the same test set (model-index config)


# Finetune task names (finetune/ and shared/data/eval folder names) -> Hub model-index fields.
TASKS = {
    "masakhaner1": TaskInfo(
        "token-classification", "Named entity recognition", "masakhane/masakhaner", "MasakhaNER 1.0"
    ),
    "masakhaner2": TaskInfo(
        "token-classification", "Named entity recognition", "masakhane/masakhaner2", "MasakhaNER 2.0"
    ),
    "masakhanews": TaskInfo("text-classification", "News topic classification", "masakhane/masakhanews", "MasakhaNEWS"),
    "hedderich": TaskInfo(
        "text-classification", "News title topic classification", "hedderich_topics", "Hausa VOA / Yoruba BBC topics"
    ),
    "yosm": TaskInfo("text-classification", "Sentiment analysis", "yosm", "YOSM (Yoruba movie reviews)"),
    # The paper's out-of-domain setting: train on AfriSenti Yoruba tweets, test on YOSM.
    "afrisenti_yosm": TaskInfo(
        "text-classification",
        "Sentiment analysis (tweets to movie reviews)",
        "yosm",
        "YOSM, trained on AfriSenti yor",
        variant="afrisenti-train",
    ),
    "afrisenti": TaskInfo(
        "text-classification", "Sentiment analysis", "shmuhammad/AfriSenti-twitter-sentiment", "AfriSenti"
    ),
}


# Pretraining sources (mono/ folders) that are also published on the Hub, for `datasets:`.
HUB_TRAINING_DATASETS = {
    "w_afrolm_mlm_al": "bonadossou/afrolm_active_learning_dataset",
    "w_lafand_mt": "masakhane/mafand",
}


def task_info(task: str) -> TaskInfo:
    if task in TASKS:
        return TASKS[task]
    for key, info in TASKS.items():  # e.g. "ner_masakhaner2", "yosm_ood"
        if key in task:
            return info
    kind = "token-classification" if "ner" in task.lower() else "text-classification"
    return TaskInfo(kind, task, task, task)


@dataclass(frozen=True)
class Result:
    task: str
    lang: str
    metric: str
    split: str
    setting: str
    score: float
    std: float | None
    n_seeds: int | None


def _pick(row: dict, aliases: tuple[str, ...]) -> str | None:
    for name in aliases:
        if row.get(name) not in (None, ""):
            return row[name]
    return None


def _number_row(row: dict, line: int, path: Path) -> tuple[float, float | None, int | None]:
    raw = _pick(row, SCORE_ALIASES)
    std, seeds = _pick(row, STD_ALIASES), _pick(row, SEEDS_ALIASES)
    try:
        return float(raw), (float(std) if std else None), (int(float(seeds)) if seeds else None)
    except (TypeError, ValueError):
        raise ResultsError(
            f"{path}:{line}: not a number in score/std/seeds (score={raw!r}, std={std!r}, seeds={seeds!r})"
        ) from None


def _only_this_model(rows: list[tuple[int, dict]], run_name: str, path: Path) -> list[tuple[int, dict]]:
    """A table may hold several models (baselines); keep the one whose path names this run."""
    models = sorted({row.get("model") or "" for _, row in rows})
    if len(models) <= 1:
        return rows
    ours = [m for m in models if run_name and run_name in m]
    if len(ours) != 1:
        raise ResultsError(
            f"{path}: results of several models {models}; none or more than one names "
            f"run {run_name!r} (point results= at this run's table)"
        )
    return [(line, row) for line, row in rows if (row.get("model") or "") == ours[0]]


def read_results(path: Path, run_name: str = "") -> list[Result]:
    """Long-format table: task, lang, metric and a score, one row per seed or already averaged.

    Accepts the finetune stage's results.csv (one row per seed: `test_score`, `seed`,
    `setting`, `model`) and its summary.csv (`test_mean`, `test_std`, `seeds`), or any table
    with `score` (+ `std`, `n_seeds`, `split`). Rows sharing (task, lang, metric, split,
    setting) are averaged over seeds; `avg` rows (means over languages) are left out.
    """
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"no finetune results at {path} (run `make finetune`, or allow_no_results=true)")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or [])
        missing = [c for c in ("task", "lang", "metric") if c not in columns]
        if not columns & set(SCORE_ALIASES):
            missing.append(f"a score ({'/'.join(SCORE_ALIASES)})")
        if missing:
            raise ResultsError(f"{path}: missing column(s) {missing}; has {sorted(columns)}")
        rows = list(enumerate(reader, start=2))
        per_seed = "seed" in columns
    if set(finetune_results.REQUIRED) <= columns:  # the finetune stage's results.csv: its own reader
        try:
            rows = list(enumerate(finetune_results.read_results(path), start=2))
        except FormatError as err:
            raise ResultsError(str(err)) from None
    rows = [(line, row) for line, row in rows if row["lang"] != "avg"]
    groups: dict[tuple, list[tuple[float, float | None, int | None]]] = defaultdict(list)
    for line, row in _only_this_model(rows, run_name, path):
        key = (row["task"], row["lang"], row["metric"], row.get("split") or "test", row.get("setting") or "")
        groups[key].append(_number_row(row, line, path))
    if not groups:
        raise ResultsError(f"{path}: the results table has no rows")
    return [_combine(key, members, per_seed) for key, members in sorted(groups.items())]


def _combine(key: tuple, rows: list[tuple[float, float | None, int | None]], per_seed: bool) -> Result:
    if len(rows) == 1:
        score, std, seeds = rows[0]
        return Result(*key, score, std, 1 if per_seed else seeds)
    scores = [r[0] for r in rows]  # one row per seed
    return Result(*key, statistics.fmean(scores), statistics.stdev(scores), len(scores))


def eval_results(results: list[Result]) -> list[EvalResult]:
    out = []
    for r in results:
        info = task_info(r.task)
        seeds = f" (mean of {r.n_seeds} seeds)" if r.n_seeds else ""
        setting = f", {r.setting}" if r.setting else ""
        # The Hub merges results with equal (task, dataset, config, split): keep variants apart.
        config = "-".join(part for part in (r.lang, info.variant, r.setting.replace(" ", "-")) if part)
        out.append(
            EvalResult(
                task_type=info.task_type,
                task_name=info.task_name,
                dataset_type=info.dataset_id,
                dataset_name=f"{info.dataset_name} ({r.lang}{setting})",
                dataset_config=config,
                dataset_split=r.split,
                metric_type=r.metric,
                metric_name=f"{r.metric}{seeds}",
                metric_value=round(r.score, 4),
            )
        )
    return out


# ---- licences --------------------------------------------------------------------------
def source_licences(data_dir: Path) -> dict[str, list[str]]:
    """Source folder -> distinct licence statements, from mono/SOURCES.tsv (empty if absent)."""
    table = Path(data_dir) / "mono" / "SOURCES.tsv"
    if not table.is_file():
        return {}
    licences: dict[str, list[str]] = defaultdict(list)
    with open(table, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            folder = row["path"].split("/", 1)[0]
            if row["licence"] not in licences[folder]:
                licences[folder].append(row["licence"])
    return dict(sorted(licences.items()))


def licence_text(run_name: str, licences: dict[str, list[str]]) -> str:
    """LICENSE.md: why the model is non-commercial and which source carries which terms."""
    lines = [
        f"# Terms of use for {run_name}",
        "",
        "These weights were trained on text whose licences are mixed, and several of them",
        "forbid commercial use. A model trained on such text inherits their terms, so:",
        "",
        "- **Non-commercial use only.** The AfroLM corpus is CC BY-NC-SA 4.0; MasakhaNER and",
        "  lafand-mt (MAFAND-MT) data are CC BY-NC 4.0.",
        "- **Share alike.** The AfroLM corpus (CC BY-NC-SA 4.0) and the isiZulu/Siswati news titles",
        "  (CC BY-SA 4.0) ask that adaptations carry the same terms; the two ShareAlike licences are",
        "  not compatible with each other, which is why no single Creative Commons licence id is",
        "  given in the metadata (`license: other`).",
        "- **Attribution.** Credit the sources below when you use or redistribute the model.",
        "- Some sources (scraped news, Bible translations) state no licence; their copyright stays",
        "  with their owners. Use the model for research, not as a licence to their text.",
        "",
    ]
    if licences:
        lines += [
            "## Sources and their stated licences (from mono/SOURCES.tsv)",
            "",
            "| source folder | licence as stated |",
            "|---|---|",
        ]
        lines += [f"| {folder} | {'; '.join(terms)} |" for folder, terms in licences.items()]
        lines.append("")
    return "\n".join(lines)


# ---- the card --------------------------------------------------------------------------
@dataclass
class CardInputs:
    repo_id: str
    run_name: str
    languages: list[str]
    strategy: str
    preset: str
    results: list[Result]
    license: str
    license_name: str
    training: dict  # summary of the run: steps, final loss, model size
    has_report: bool
    example: str  # fill-mask example with `<mask>`: the widget's text and the usage snippet's
    sources: list[str]  # pretraining source folders (mono/), for `datasets:`


def _results_table(results: list[Result]) -> str:
    if not results:
        return "No finetuning results were published with this model (allow_no_results=true).\n"
    rows = [
        "| task | dataset | language | setting | split | metric | score | std | seeds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        info = task_info(r.task)
        std = f"{r.std:.4g}" if r.std is not None else ""
        rows.append(
            f"| {info.task_name} | {info.dataset_name} | {r.lang} | {r.setting} | {r.split} "
            f"| {r.metric} | {r.score:.4g} | {std} | {r.n_seeds or ''} |"
        )
    return "\n".join(rows) + "\n"


def build_card(inputs: CardInputs) -> ModelCard:
    results = eval_results(inputs.results)
    datasets = sorted(HUB_TRAINING_DATASETS[s] for s in inputs.sources if s in HUB_TRAINING_DATASETS)
    data = ModelCardData(
        language=inputs.languages,
        license=inputs.license,
        license_name=inputs.license_name if inputs.license == "other" else None,
        license_link="LICENSE.md" if inputs.license == "other" else None,
        library_name="transformers",
        pipeline_tag="fill-mask",
        tags=[
            "xlm-roberta",
            "masked-language-modeling",
            "african-languages",
            "multilingual",
            "active-learning",
            f"selection-{inputs.strategy}",
        ],
        datasets=datasets or None,
        model_name=inputs.run_name,
        eval_results=results or None,
        widget=[{"text": inputs.example}],
    )
    training = "\n".join(f"- {key}: {value}" for key, value in inputs.training.items())
    report = (
        "The training report (HTML and figures) is in [`report/`](report/index.html).\n" if inputs.has_report else ""
    )
    body = f"""
# {inputs.run_name}

An XLM-R-style masked language model pretrained from scratch on {len(inputs.languages)} African
languages ({", ".join(inputs.languages)}), after AfroLM (Dossou et al., 2022): the model periodically
scores candidate training data and chooses what it trains on next (selection strategy
`{inputs.strategy}`, preset `{inputs.preset}`).

## How to use

```python
from transformers import pipeline

fill = pipeline("fill-mask", model="{inputs.repo_id}")
fill({json.dumps(inputs.example, ensure_ascii=False)})
```

## Training

{training}

The resolved training configuration is in `training_config.yaml`, the loss curve in
`training_metrics.jsonl`. {report}
## Evaluation

Finetuned per task and language; scores are means over seeds on the test split
(`eval_results.csv` has the table as published).

{_results_table(inputs.results)}
## Licence and terms of use

The training text mixes licences, several of them non-commercial: the AfroLM corpus is
CC BY-NC-SA 4.0, MasakhaNER and lafand-mt are CC BY-NC 4.0, and some sources state no licence.
**This model inherits those terms: non-commercial use only, with attribution and share-alike.**
See [LICENSE.md](LICENSE.md) for every source and its licence.

## Limitations

Small, uneven corpora (from about 0.1 MB to 5 MB per language): expect weak predictions for
the smallest languages. Evaluation sentences were removed from the pretraining text, but the
corpora are web, news and Bible text, with their biases.
"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")


def training_summary(run: Path, config: dict) -> dict:
    """Facts about the run for the card, from its manifest summary, config and metrics."""
    summary: dict = {}
    manifest = run / "manifest.json"
    facts = json.loads(manifest.read_text(encoding="utf-8")).get("summary", {}) if manifest.is_file() else {}
    for key in ("parameters", "steps", "tokens"):
        if isinstance(facts.get(key), (int, float)):
            summary[key] = f"{facts[key]:,}"
    model = config.get("model") if isinstance(config.get("model"), dict) else {}
    if model:
        summary["model"] = ", ".join(f"{k}={v}" for k, v in model.items() if not isinstance(v, (dict, list)))
    losses = facts.get("valid_loss") or {}
    if losses:
        summary["validation loss (first -> last)"] = ", ".join(
            f"{lang} {v['first']:.2f} -> {v['last']:.2f}" for lang, v in sorted(losses.items())
        )
    train = _metrics(run).train
    if train:
        summary.setdefault("steps", train[-1].get("step", "?"))
        summary["final training loss"] = f"{float(train[-1]['loss']):.4f}"
    return summary


def _metrics(run: Path) -> Metrics:
    """The run's metrics.jsonl (none yet: no events)."""
    path = run / METRICS
    return read_metrics(path) if path.is_file() else Metrics()


def evaluated_languages(run: Path) -> list[str]:
    """Languages of the run's last per-language validation (pretrain's `eval` events)."""
    evals = [e for e in _metrics(run).evals if isinstance(e["langs"], dict)]
    return sorted(evals[-1]["langs"]) if evals else []
