"""Model inputs: word windows for NER (every word predicted), truncated texts for classification.

NER labels sit on each word's first sub-token, -100 elsewhere (`word_ids()`, as in
transformers' run_ner.py). A sentence longer than the model's window is cut into windows of
whole words: every word is *owned* by exactly one window (its prediction comes from there),
and a window may also carry up to `context_words` earlier words as unlabelled left context.
`merge_word_predictions` puts the windows back together, so seqeval scores every gold
entity of the full sentence.
"""

from __future__ import annotations

from dataclasses import dataclass

IGNORE = -100


@dataclass
class NerWindow:
    example: int
    own_start: int
    own_end: int
    features: dict
    """input_ids, attention_mask, labels: what the collator pads."""


def usable_words(tokenizer, words: list[str]) -> list[str]:
    """Words that give no sub-token (empty, or only characters the tokenizer drops) are
    replaced by the unknown token, so that each word can still be labelled and predicted."""
    if not words:
        return words
    enc = tokenizer(words, is_split_into_words=True, add_special_tokens=False, verbose=False)
    covered = {w for w in enc.word_ids() if w is not None}
    if len(covered) == len(words):
        return words
    return [w if i in covered else tokenizer.unk_token for i, w in enumerate(words)]


def _pieces_per_word(tokenizer, words: list[str]) -> list[int]:
    counts = [0] * len(words)
    enc = tokenizer(words, is_split_into_words=True, add_special_tokens=False, verbose=False)
    for w in enc.word_ids():
        if w is not None:
            counts[w] += 1
    return counts


def plan_windows(pieces: list[int], budget: int, context_words: int) -> list[tuple[int, int, int]]:
    """Greedy (context_start, own_start, own_end) windows whose pieces fit `budget`.

    Each word is owned by one window; a word longer than the budget gets a window alone (it
    is truncated, but its first sub-token, which carries its label, survives).
    """
    windows = []
    start = 0
    n = len(pieces)
    while start < n:
        end, used = start, 0
        while end < n and (end == start or used + pieces[end] <= budget):
            used += pieces[end]
            end += 1
        ctx = start
        while ctx > 0 and start - ctx < context_words and used + pieces[ctx - 1] <= budget:
            ctx -= 1
            used += pieces[ctx]
        windows.append((ctx, start, end))
        start = end
    return windows


def _encode_window(tokenizer, words, labels, ctx, start, end, max_length):
    enc = tokenizer(words[ctx:end], is_split_into_words=True, truncation=True, max_length=max_length)
    label_ids, previous = [], None
    for w in enc.word_ids():
        owned = w is not None and w != previous and w + ctx >= start
        label_ids.append(labels[w + ctx] if owned else IGNORE)
        previous = w
    return enc, label_ids


def ner_windows(
    tokenizer, sentences: list[list[str]], tags: list[list[int]], max_length: int, context_words: int
) -> list[NerWindow]:
    """Windows for every sentence; `tags` are label ids (gold for train/dev/test)."""
    budget = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    out = []
    for ex, (raw_words, labels) in enumerate(zip(sentences, tags)):
        words = usable_words(tokenizer, list(raw_words))
        plan = plan_windows(_pieces_per_word(tokenizer, words), budget, context_words)
        queue = list(plan)
        while queue:
            ctx, start, end = queue.pop(0)
            enc, label_ids = _encode_window(tokenizer, words, labels, ctx, start, end, max_length)
            owned = sum(l != IGNORE for l in label_ids)
            if owned < end - start:
                # Tokenising a slice can differ from the whole sentence by a piece or two
                # (prefix space on its first word): retry without context, then with fewer words.
                if ctx < start:
                    queue.insert(0, (start, start, end))
                else:
                    mid = start + max(1, (end - start) // 2)
                    queue[:0] = [(start, start, mid)] + ([(mid, mid, end)] if mid < end else [])
                continue
            out.append(
                NerWindow(
                    ex,
                    start,
                    end,
                    {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": label_ids},
                )
            )
    return out


def merge_word_predictions(
    windows: list[NerWindow], window_preds: list[list[int]], lengths: list[int]
) -> list[list[int]]:
    """Per-window predicted ids at labelled positions -> one id per word of each sentence."""
    merged: list[list[int | None]] = [[None] * n for n in lengths]
    for window, preds in zip(windows, window_preds):
        positions = [i for i, l in enumerate(window.features["labels"]) if l != IGNORE]
        if len(positions) != window.own_end - window.own_start:
            raise AssertionError("window lost a word")  # guarded by ner_windows
        for k, pos in enumerate(positions):
            merged[window.example][window.own_start + k] = preds[pos]
    for ex, sent in enumerate(merged):
        if any(p is None for p in sent):
            raise AssertionError(f"sentence {ex}: a word got no prediction")
    return merged  # type: ignore[return-value]


def classification_features(tokenizer, texts: list[str], labels: list[int], max_length: int) -> list[dict]:
    """Texts truncated to the window (MasakhaNEWS articles are long; the headline comes first)."""
    enc = tokenizer(texts, truncation=True, max_length=max_length)
    return [
        {"input_ids": ids, "attention_mask": mask, "labels": label}
        for ids, mask, label in zip(enc["input_ids"], enc["attention_mask"], labels)
    ]
