"""Entry point: `python -m tokenizer.train [--preset NAME] [--config FILE] [key=value ...]`.

corpus train shards -> temperature sample -> SentencePiece -> HF fast tokenizer folder
(tokenizer.json, tokenizer_config.json, sentencepiece.model, config.yaml, report.json,
report.md) -> manifest.json last. Skipped when config and corpus hash are unchanged.
"""

from __future__ import annotations

import itertools
import math
import os
import shutil
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

import yaml

from common.cli import Command
from common.config import config_to_dict
from common.corpus import corpus_hash
from common.io import MANIFEST_NAME, atomic_write, manifest_is_current, write_manifest
from tokenizer.artifacts import load_tokenizer, tokenizer_hash
from tokenizer.config import LOCATION_KEYS, PRESET_DIR, TokenizerConfig
from tokenizer.convert import to_fast_tokenizer
from tokenizer.report import report_table, build_report, write_report
from tokenizer.sampling import resolve_languages, write_sample
from tokenizer.spm_train import load_processor, train_sentencepiece

STAGE = "tokenizer"
# Texts the HF tokenizer must encode exactly like SentencePiece before anything is saved.
PROBES = (
    "Ẹ kú àárọ̀, ṣé dáadáa ni?",
    "  two  spaces  ",
    "ልጁ በየቀኑ ወደ ትምህርት ቤት ይሄዳል።",
    "Nwaanyị ahụ 2024 😀 ⵣ 中文\tend",
    "",
)


class Timer:
    """Wall and CPU seconds (all threads of this process) per phase, for report.json."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._start = (time.perf_counter(), time.process_time())

    def lap(self, name: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        self.timings[f"{name}_s"] = round(wall - self._start[0], 3)
        self.timings[f"{name}_cpu_s"] = round(cpu - self._start[1], 3)
        self._start = (wall, cpu)


class IdMismatchError(RuntimeError):
    """The converted tokenizer disagrees with the SentencePiece model."""


def stage_config(cfg: TokenizerConfig) -> dict:
    """What the output depends on: the resolved config without its paths."""
    data = config_to_dict(cfg)
    for key in LOCATION_KEYS:
        data.pop(key, None)
    return data


def run_stage(cfg: TokenizerConfig, log=print, progress: bool = True) -> Path:
    """Build (or skip) the tokenizer folder `cfg.out_dir`; returns it.

    `progress=False` silences SentencePiece's own log lines (tests, helpers).
    """
    out_dir = Path(cfg.out_dir)
    langs = resolve_languages(cfg.corpus_dir, cfg.langs)
    inputs = {"corpus_hash": corpus_hash(cfg.corpus_dir), "langs": ",".join(langs)}
    config = stage_config(cfg)
    if not cfg.force and manifest_is_current(out_dir, config, inputs):
        log(f"[tokenizer] skipped: {out_dir} is up to date (same config and corpus {inputs['corpus_hash'][:12]})")
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST_NAME).unlink(missing_ok=True)  # incomplete until the new manifest is written
    for stale in out_dir.glob(".work-*"):  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    timer = Timer()
    samples, outputs = train_into(out_dir, cfg, langs, timer, log, progress)
    tokenizer = load_tokenizer(out_dir)
    report = build_report(tokenizer, Path(cfg.corpus_dir), samples, cfg.report.max_lines, cfg.report.batch_size)
    timer.lap("report")
    report["timings"] = timer.timings
    outputs += write_report(out_dir, report)
    log(report_table(report))
    digest = tokenizer_hash(out_dir)
    pieces = len(tokenizer) - 1  # without <mask>
    if pieces < cfg.spm.vocab_size:
        log(
            f"[tokenizer] note: the text supports {pieces:,} pieces, fewer than spm.vocab_size="
            f"{cfg.spm.vocab_size:,} (spm.hard_vocab_limit=false); vocab_size recorded in the manifest"
        )
    write_manifest(
        out_dir,
        STAGE,
        config,
        inputs,
        outputs,
        extra={
            "tokenizer_hash": digest,
            "vocab_size": len(tokenizer),
            "vocab_size_requested": cfg.spm.vocab_size + 1,
            "languages": langs,
        },
    )
    log(f"[tokenizer] wrote {out_dir} (vocab {len(tokenizer):,}, tokenizer_hash {digest[:12]})")
    return out_dir


def train_into(
    out_dir: Path, cfg: TokenizerConfig, langs: list[str], timer: Timer, log, progress: bool
) -> tuple[dict, list[Path]]:
    """Sample, train SentencePiece, convert, check ids, save; the sample lives in a temp folder."""
    with tempfile.TemporaryDirectory(prefix=".work-", dir=out_dir) as work:
        sample_path = Path(work) / "sample.txt"
        samples = write_sample(Path(cfg.corpus_dir), langs, sample_path, cfg.sampling, log=log)
        timer.lap("sample")
        log(
            f"[tokenizer] training SentencePiece {cfg.spm.model_type}, vocab_size={cfg.spm.vocab_size:,}, "
            f"{cfg.spm.threads()} threads"
        )
        model = train_sentencepiece(cfg.spm, sample_path, cfg.sampling.seed, progress)
        timer.lap("sentencepiece")
        sp = load_processor(model)
        fast = to_fast_tokenizer(sp, cfg.spm.model_type, cfg.model_max_length)
        n_lines = sum(sample.drawn_lines for sample in samples.values())
        verify_same_ids(sp, fast, _spread_lines(sample_path, n_lines, 2000))
        outputs = save_folder(out_dir, fast, model, Path(work), cfg)
        timer.lap("convert")
    return samples, outputs


def _spread_lines(path: Path, n_lines: int, n: int) -> list[str]:
    """About `n` lines spread evenly over the sample file (every language is in it)."""
    with open(path, encoding="utf-8") as handle:
        return [line.rstrip("\n") for line in itertools.islice(handle, 0, None, max(1, n_lines // n))]


def is_equal_score_tie(sp, ids: list[int], want: list[int]) -> bool:
    """True when `ids` is another best segmentation of the same text: same pieces joined, same score.

    A unigram model's best segmentation can be tied ("sss" = "s"+"ss" = "ss"+"s", the same pieces
    hence the same log-probability), and SentencePiece and `tokenizers` break ties differently.
    """
    pieces, wanted = [sp.id_to_piece(i) for i in ids], [sp.id_to_piece(i) for i in want]
    score, wanted_score = sum(sp.get_score(i) for i in ids), sum(sp.get_score(i) for i in want)
    return "".join(pieces) == "".join(wanted) and math.isclose(score, wanted_score, rel_tol=1e-9, abs_tol=1e-6)


def verify_same_ids(sp, fast, texts: list[str]) -> None:
    """Refuse to save a tokenizer whose ids differ from SentencePiece's on real lines (ties aside)."""
    texts = list(PROBES) + list(texts)
    got = fast(texts, add_special_tokens=False)["input_ids"]
    wanted = sp.encode([unicodedata.normalize("NFC", text) for text in texts])  # one batch call
    for text, ids, want in zip(texts, got, wanted):
        if ids != want and not is_equal_score_tie(sp, ids, want):
            raise IdMismatchError(f"converted tokenizer differs from SentencePiece on {text!r}: {ids} != {want}")


def save_folder(out_dir: Path, fast, model: bytes, work: Path, cfg: TokenizerConfig) -> list[Path]:
    """Save into `work`, then rename each file into place (atomic per file)."""
    staged = work / "hf"
    fast.save_pretrained(str(staged))
    outputs = []
    for path in sorted(staged.iterdir()):
        os.replace(path, out_dir / path.name)
        outputs.append(out_dir / path.name)
    with atomic_write(out_dir / "sentencepiece.model", "wb") as handle:
        handle.write(model)
    with atomic_write(out_dir / "config.yaml") as handle:
        yaml.safe_dump(config_to_dict(cfg), handle, allow_unicode=True, sort_keys=False)
    return outputs + [out_dir / "sentencepiece.model", out_dir / "config.yaml"]


COMMAND = Command(TokenizerConfig, "python -m tokenizer.train", __doc__, presets=PRESET_DIR)


def main(argv: list[str] | None = None) -> int:
    return COMMAND.run(argv, lambda cfg, args: run_stage(cfg), failures=(IdMismatchError,))


if __name__ == "__main__":
    sys.exit(main())
