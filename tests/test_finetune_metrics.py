"""Our evaluate.Metric modules give exactly seqeval's / scikit-learn's numbers."""

from __future__ import annotations

import random

import pytest
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from seqeval.scheme import IOB2
from sklearn.metrics import accuracy_score
from sklearn.metrics import f1_score as sk_f1

from finetune.metrics import ClassificationScores, SeqevalStrict, score

# Fixed predictions with the cases strict IOB2 treats differently from conlleval:
# an entity starting with I-, a type switch inside an entity, a boundary error.
REFS = [
    ["B-PER", "I-PER", "O", "B-LOC", "O"],
    ["O", "B-ORG", "I-ORG", "I-ORG", "O", "B-DATE", "I-DATE"],
    ["B-PER", "O", "B-PER", "I-PER"],
    ["O", "O", "O"],
]
PREDS = [
    ["B-PER", "I-PER", "O", "I-LOC", "O"],  # I-LOC starts an entity: not an entity in strict
    ["O", "B-ORG", "I-ORG", "O", "O", "B-DATE", "I-DATE"],  # ORG boundary wrong
    ["B-PER", "O", "B-PER", "I-LOC"],  # type switch
    ["O", "B-LOC", "O"],  # false positive
]


def test_seqeval_strict_matches_seqeval():
    ours = score("ner", PREDS, REFS)
    kwargs = {"mode": "strict", "scheme": IOB2}
    assert ours["f1"] == f1_score(REFS, PREDS, **kwargs)
    assert ours["precision"] == precision_score(REFS, PREDS, **kwargs)
    assert ours["recall"] == recall_score(REFS, PREDS, **kwargs)
    report = classification_report(REFS, PREDS, output_dict=True, **kwargs)
    for etype, values in ours["per_type"].items():
        assert values["f1"] == report[etype]["f1-score"]
        assert values["support"] == report[etype]["support"]
    assert ours["entities"] == 6
    # Strict mode matters here: conlleval-style counting accepts the I-LOC entity.
    assert ours["f1"] != f1_score(REFS, PREDS)


def test_seqeval_strict_add_batch_equals_compute():
    metric = SeqevalStrict(keep_in_memory=True)
    for p, r in zip(PREDS, REFS):
        metric.add_batch(predictions=[p], references=[r])
    batched = metric.compute()
    assert batched == score("ner", PREDS, REFS)


def test_seqeval_strict_rejects_length_mismatch():
    with pytest.raises(ValueError, match="sentence 0"):
        score("ner", [["O"]], [["O", "B-PER"]])


def test_classification_scores_match_sklearn():
    rng = random.Random(7)
    labels = ["africa", "health", "nigeria", "politics", "world", "ìlera"]
    refs = [rng.choice(labels) for _ in range(200)]
    preds = [r if rng.random() < 0.6 else rng.choice(labels[:4]) for r in refs]
    ours = ClassificationScores(keep_in_memory=True).compute(predictions=preds, references=refs)
    assert ours["accuracy"] == accuracy_score(refs, preds)
    assert ours["macro_f1"] == sk_f1(refs, preds, average="macro", zero_division=0)
    assert ours["examples"] == 200
    assert 0 < ours["macro_f1"] < 1 and 0 < ours["accuracy"] < 1
