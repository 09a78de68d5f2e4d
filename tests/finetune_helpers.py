"""A user's own finetuning tasks, declared in YAML only: a CoNLL NER set and a TSV sentiment set."""
from __future__ import annotations

from pathlib import Path

from finetune.run import PRESETS

NER_SENTS = [
    [("Adébáyọ̀", "B-PER"), ("lọ", "O"), ("sí", "O"), ("Ìbàdàn", "B-LOC")],
    [("Musa", "B-PER"), ("Bello", "I-PER"), ("ya", "O"), ("isa", "O"), ("Kano", "B-LOC")],
    [("ልጁ", "O"), ("ወደ", "O"), ("Addis", "B-LOC"), ("Ababa", "I-LOC"), ("ይሄዳል", "O")],
    [("Mtoto", "O"), ("anaenda", "O"), ("Nairobi", "B-LOC"), ("🙂", "O")],
]
CLS_ROWS = [("Ó dára púpọ̀ 🙂", "positive"), ("Kò dára rárá", "negative"),
            ("Fíìmù tó dáa", "positive"), ("Mi ò fẹ́ràn rẹ̀", "negative")]


def write_user_config(folder: Path, tasks: list[str], seeds: list[int]) -> Path:
    """Write ner.txt (each sentence 3 times), sent.tsv (each row 3 times) and user.yaml on the
    tiny preset with `tasks` (myner, mysent) and `seeds`; return the YAML's path."""
    (folder / "ner.txt").write_text(
        "-DOCSTART- O\n\n" + "\n\n".join("\n".join(f"{w}\t{l}" for w, l in s) for s in NER_SENTS * 3),
        encoding="utf-8")
    (folder / "sent.tsv").write_text(
        "review\tsentiment\n" + "".join(f"{t}\t{l}\n" for t, l in CLS_ROWS * 3), encoding="utf-8")
    path = folder / "user.yaml"
    path.write_text(f"""
inherit: {PRESETS / 'tiny.yaml'}
tasks: [{', '.join(tasks)}]
langs: []
seeds: [{', '.join(map(str, seeds))}]
train: {{epochs: 2, batch_size: 4, max_length: 16}}
custom_tasks:
  - name: myner
    kind: ner
    langs: [mul]
    files: {{train: {folder}/ner.txt, dev: {folder}/ner.txt, test: {folder}/ner.txt}}
  - name: mysent
    kind: classification
    langs: [yor]
    files: {{train: {folder}/sent.tsv, dev: {folder}/sent.tsv, test: {folder}/sent.tsv}}
    reader: {{text_columns: [review], label_column: sentiment, quoting: none}}
""", encoding="utf-8")
    return path
