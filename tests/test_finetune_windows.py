"""Long sentences are split into word windows; every word is predicted."""

from __future__ import annotations

import random

import pytest

from finetune.features import IGNORE, merge_word_predictions, ner_windows, plan_windows, usable_words
from finetune.metrics import score
from tests.support.finetune import build_tiny_tokenizer

LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return build_tiny_tokenizer(tmp_path_factory.mktemp("tok"))


def long_sentence(n_words: int, seed: int = 0):
    rng = random.Random(seed)
    vocab = [
        "Ọmọ",
        "náà",
        "lọ",
        "sí",
        "ilé-ìwé",
        "Yaron",
        "makaranta",
        "ልጁ",
        "ትምህርት",
        "🙂",
        "Mtoto",
        "anaenda",
        "shule",
        "ụlọ",
        "Nwaanyị",
    ]
    words, tags = [], []
    while len(words) < n_words:
        if rng.random() < 0.1:
            words += ["Adébáyọ̀", "Ògúnlànà"]
            tags += ["B-PER", "I-PER"]
        elif rng.random() < 0.05:
            words += ["Addis", "Ababa", "City"]
            tags += ["B-LOC", "I-LOC", "I-LOC"]
        else:
            words.append(rng.choice(vocab))
            tags.append("O")
    return words, tags


@pytest.mark.parametrize(
    "pieces, budget, context", [([1] * 10, 4, 0), ([3, 1, 5, 2, 2, 9, 1], 6, 2), ([2] * 7, 5, 10), ([1], 8, 3)]
)
def test_plan_windows_owns_each_word_once(pieces, budget, context):
    windows = plan_windows(pieces, budget, context)
    owned = [i for _, start, end in windows for i in range(start, end)]
    assert owned == list(range(len(pieces)))
    for ctx, start, end in windows:
        assert ctx <= start < end and start - ctx <= context
        assert end - start == 1 or sum(pieces[ctx:end]) <= budget


def test_long_sentence_every_word_predicted_every_entity_scored_row32(tokenizer):
    words, tags = long_sentence(400)
    short_words, short_tags = long_sentence(5, seed=1)
    ids = [[LABELS.index(t) for t in tags], [LABELS.index(t) for t in short_tags]]
    windows = ner_windows(tokenizer, [words, short_words], ids, max_length=32, context_words=4)
    assert len([w for w in windows if w.example == 0]) > 10
    assert all(len(w.features["input_ids"]) <= 32 for w in windows)
    # A "model" that echoes the gold label at each labelled position: if any word were lost
    # or duplicated, merging would fail or the score would drop below 1.
    echo = [[l if l != IGNORE else 0 for l in w.features["labels"]] for w in windows]
    merged = merge_word_predictions(windows, echo, [len(words), len(short_words)])
    assert merged == ids
    names = [[LABELS[i] for i in seq] for seq in merged]
    result = score("ner", names, [tags, short_tags])
    gold_entities = sum(t.startswith("B-") for t in tags + short_tags)
    assert result["entities"] == gold_entities and result["f1"] == 1.0


def test_missed_window_lowers_recall_not_hidden_row32(tokenizer):
    """Predicting O for one window's words must cost recall on the full sentence."""
    words, tags = long_sentence(300, seed=3)
    ids = [[LABELS.index(t) for t in tags]]
    windows = ner_windows(tokenizer, [words], ids, max_length=24, context_words=0)
    preds = [[l if l != IGNORE else 0 for l in w.features["labels"]] for w in windows]
    hit = next(i for i, w in enumerate(windows) if any(l == 3 for l in w.features["labels"]))
    preds[hit] = [0] * len(preds[hit])
    merged = merge_word_predictions(windows, preds, [len(words)])
    result = score("ner", [[LABELS[i] for i in merged[0]]], [tags])
    assert result["recall"] < 1.0 and result["precision"] == 1.0


def test_word_without_pieces_still_predicted(tokenizer):
    words = ["Ọmọ", "", "\u200b", "lọ"]  # empty token (xho train) and a zero-width space
    fixed = usable_words(tokenizer, words)
    assert fixed[1] == tokenizer.unk_token and fixed[0] == "Ọmọ" and fixed[3] == "lọ"
    windows = ner_windows(tokenizer, [words], [[0, 3, 4, 0]], max_length=16, context_words=2)
    labelled = [l for w in windows for l in w.features["labels"] if l != IGNORE]
    assert labelled == [0, 3, 4, 0]


def test_single_overlong_word_keeps_its_label(tokenizer):
    words = ["Ọ̀" * 60, "lọ"]
    windows = ner_windows(tokenizer, [words], [[3, 0]], max_length=12, context_words=2)
    assert [l for w in windows for l in w.features["labels"] if l != IGNORE] == [3, 0]
    assert all(len(w.features["input_ids"]) <= 12 for w in windows)
