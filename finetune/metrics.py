"""Metrics as local `evaluate.Metric` modules (Hub metric scripts cannot be downloaded here).

evaluate 0.4.6 lets a subclass of `evaluate.Metric` with `_info` and `_compute` run fully
offline: `SeqevalStrict().compute(predictions=..., references=...)`, `add_batch` included.
The numbers come from the libraries themselves: seqeval in strict IOB2 mode (entity-level
P/R/F1, micro-averaged over types, as MasakhaNER reports) and scikit-learn (accuracy,
macro-F1). tests/test_finetune_metrics.py checks them against direct calls on fixed input.
"""

from __future__ import annotations

import datasets
import evaluate


class SeqevalStrict(evaluate.Metric):
    """Entity-level precision/recall/F1 with seqeval, `mode="strict", scheme=IOB2`."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="seqeval strict IOB2 entity P/R/F1 (micro over types) + per type",
            citation="seqeval (Nakayama 2018); MasakhaNER (Adelani et al. 2021)",
            inputs_description="predictions, references: lists of IOB2 tag sequences",
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("string")),
                    "references": datasets.Sequence(datasets.Value("string")),
                }
            ),
        )

    def _compute(self, predictions, references):
        from seqeval.metrics import classification_report
        from seqeval.scheme import IOB2

        for i, (p, r) in enumerate(zip(predictions, references)):
            if len(p) != len(r):
                raise ValueError(f"sentence {i}: {len(p)} predicted tags for {len(r)} words")
        report = classification_report(
            references, predictions, mode="strict", scheme=IOB2, output_dict=True, zero_division=0
        )
        micro = report["micro avg"]
        tokens = sum(len(r) for r in references)
        correct = sum(pt == rt for p, r in zip(predictions, references) for pt, rt in zip(p, r))
        per_type = {
            k: {
                "precision": float(v["precision"]),
                "recall": float(v["recall"]),
                "f1": float(v["f1-score"]),
                "support": int(v["support"]),
            }
            for k, v in report.items()
            if not k.endswith(" avg")
        }
        return {
            "precision": float(micro["precision"]),
            "recall": float(micro["recall"]),
            "f1": float(micro["f1-score"]),
            "entities": int(micro["support"]),
            "token_accuracy": correct / tokens if tokens else 0.0,
            "per_type": per_type,
        }


class ClassificationScores(evaluate.Metric):
    """Accuracy and macro-F1 (scikit-learn) over string labels."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="accuracy and macro-F1 over the labels present in gold or predictions",
            citation="scikit-learn (Pedregosa et al. 2011)",
            inputs_description="predictions, references: label strings",
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references):
        from sklearn.metrics import accuracy_score, f1_score

        return {
            "accuracy": float(accuracy_score(references, predictions)),
            "macro_f1": float(f1_score(references, predictions, average="macro", zero_division=0)),
            "examples": len(references),
        }


MAIN_METRIC = {"ner": "f1", "classification": "macro_f1"}


def score(kind: str, predictions, references) -> dict:
    """The task's metrics; `MAIN_METRIC[kind]` picks the dev-selection and headline number."""
    # keep_in_memory: no arrow cache files under ~/.cache/huggingface/metrics.
    cls = SeqevalStrict if kind == "ner" else ClassificationScores
    metric = cls(keep_in_memory=True)
    return metric.compute(predictions=list(predictions), references=list(references))
