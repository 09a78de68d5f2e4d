"""Per-language report on held-out lines.

For every language, on up to `report.max_lines` lines of the corpus `valid` split:
  fertility          tokens per whitespace-separated word
  unk_rate           <unk> tokens / tokens (0 expected: byte fallback)
  byte_rate          byte-fallback tokens (<0xHH>) / tokens
  roundtrip_errors   lines where decode(encode(x)) != NFC(x)
plus the language's share of the training sample. Written as report.json and report.md.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from pathlib import Path

import numpy as np

from common.corpus import iter_texts
from common.io import atomic_write, write_json
from tokenizer.sampling import LanguageSample

BYTE_PIECE = re.compile(r"<0x[0-9A-F]{2}>")


def byte_piece_ids(tokenizer) -> np.ndarray:
    """Ids of the 256 byte-fallback pieces <0x00>..<0xFF>."""
    return np.asarray(sorted(i for piece, i in tokenizer.get_vocab().items() if BYTE_PIECE.fullmatch(piece)))


def measure_language(tokenizer, texts: list[str], batch_size: int) -> dict:
    tokens = words = chars = unk = byte = errors = 0
    unk_id = tokenizer.unk_token_id
    byte_ids = byte_piece_ids(tokenizer)
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        encoded = tokenizer(batch, add_special_tokens=False, verbose=False)["input_ids"]
        decoded = tokenizer.batch_decode(encoded, skip_special_tokens=False)
        for text, ids, back in zip(batch, encoded, decoded):
            arr = np.asarray(ids, dtype=np.int64)
            tokens += len(arr)
            unk += int((arr == unk_id).sum())
            byte += int(np.isin(arr, byte_ids).sum())
            words += len(text.split())
            chars += len(text)
            errors += back != unicodedata.normalize("NFC", text)
    return {
        "lines": len(texts),
        "words": words,
        "chars": chars,
        "tokens": tokens,
        "fertility": tokens / words if words else None,
        "chars_per_token": chars / tokens if tokens else None,
        "unk_rate": unk / tokens if tokens else None,
        "byte_rate": byte / tokens if tokens else None,
        "unk_tokens": unk,
        "roundtrip_errors": errors,
    }


def build_report(
    tokenizer, corpus_dir: Path, samples: dict[str, LanguageSample], max_lines: int, batch_size: int
) -> dict:
    drawn_total = sum(s.drawn_chars for s in samples.values()) or 1
    languages = {}
    for lang, sample in sorted(samples.items()):
        texts = list(itertools.islice(iter_texts(corpus_dir, lang, "valid"), max_lines))
        row = measure_language(tokenizer, texts, batch_size)
        row.update(
            train_chars_available=sample.available_chars,
            target_share=sample.share,
            sample_chars=sample.drawn_chars,
            sample_share=sample.drawn_chars / drawn_total,
            repeat_factor=sample.repeat_factor,
        )
        languages[lang] = row
    no_valid = sorted(lang for lang, row in languages.items() if row["lines"] == 0)
    return {
        "vocab_size": len(tokenizer),
        "languages": languages,
        "languages_without_valid_lines": no_valid,
        "total_unk_tokens": sum(row["unk_tokens"] for row in languages.values()),
        "total_roundtrip_errors": sum(row["roundtrip_errors"] for row in languages.values()),
    }


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def report_table(report: dict) -> str:
    head = (
        "| lang | valid lines | fertility | chars/token | unk rate | byte rate | round-trip errors "
        "| train chars | sample share | repeat |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    rows = [
        f"| {lang} | {r['lines']} | {_fmt(r['fertility'], '.3f')} | {_fmt(r['chars_per_token'], '.2f')} "
        f"| {_fmt(r['unk_rate'], '.5f')} | {_fmt(r['byte_rate'], '.5f')} | {r['roundtrip_errors']} "
        f"| {r['train_chars_available']:,} | {r['sample_share']:.4f} | {r['repeat_factor']:.2f} |"
        for lang, r in report["languages"].items()
    ]
    note = f"Vocabulary: {report['vocab_size']:,} ids (including <mask>)."
    if report["languages_without_valid_lines"]:
        note += " No valid lines (not measured): " + ", ".join(report["languages_without_valid_lines"]) + "."
    return "\n".join([head, *rows, "", note]) + "\n"


def write_report(out_dir: Path, report: dict) -> list[Path]:
    json_path, md_path = out_dir / "report.json", out_dir / "report.md"
    write_json(json_path, report)
    with atomic_write(md_path) as handle:
        handle.write("# Tokenizer report (held-out `valid` lines)\n\n" + report_table(report))
    return [json_path, md_path]
