"""Benchmark: `python -m tokenizer.bench [--preset tiny] corpus_dir=... [key=value ...]`, prints JSON.

1. Training: our whole stage (sample, SentencePiece, conversion + id check, report) against
   the raw `sentencepiece` trainer with the same options on the same sampled text.
   Goal (issue 3): stage without the report at most 1.2x the raw trainer.
2. Encoding throughput in MB/s (UTF-8 bytes) of the saved fast tokenizer with batch
   encoding (`tokenizer(batch)`), against raw SentencePiece batch encoding.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import sentencepiece as spm

from common.config import load_config
from common.corpus import iter_texts, list_languages
from tokenizer import load_tokenizer
from tokenizer.config import TokenizerConfig, preset_path
from tokenizer.sampling import resolve_languages, write_sample
from tokenizer.spm_train import load_processor, trainer_options
from tokenizer.train import run_stage


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def bench_training(cfg: TokenizerConfig, work: Path) -> dict:
    t0, c0 = time.perf_counter(), time.process_time()
    out = run_stage(dataclasses.replace(cfg, out_dir=work / "tokenizer", force=True), log=lambda *_: None,
                    progress=False)
    stage_s, stage_cpu = time.perf_counter() - t0, time.process_time() - c0
    timings = json.loads((out / "report.json").read_text(encoding="utf-8"))["timings"]

    sample = work / "sample.txt"  # the same text: sampling is a function of corpus, config and seed
    langs = resolve_languages(cfg.corpus_dir, cfg.langs)
    write_sample(Path(cfg.corpus_dir), langs, sample, cfg.sampling, log=lambda *_: None)
    options = trainer_options(cfg.spm, sample)
    t0, c0 = time.perf_counter(), time.process_time()
    spm.SentencePieceTrainer.train(model_prefix=str(work / "raw"), **options)
    raw_s, raw_cpu = time.perf_counter() - t0, time.process_time() - c0
    without_report = stage_s - timings["report_s"]
    without_report_cpu = stage_cpu - timings["report_cpu_s"]
    return {
        "stage_total_s": round(stage_s, 3),
        "stage_without_report_s": round(without_report, 3),
        "stage_parts": timings,
        "raw_sentencepiece_s": round(raw_s, 3),
        "ratio_stage_without_report_vs_raw": round(without_report / raw_s, 3),
        "ratio_stage_total_vs_raw": round(stage_s / raw_s, 3),
        "stage_without_report_cpu_s": round(without_report_cpu, 3),
        "raw_sentencepiece_cpu_s": round(raw_cpu, 3),
        "cpu_ratio_stage_without_report_vs_raw": round(without_report_cpu / raw_cpu, 3),
        "sample_chars": sum(len(line) for line in sample.read_text(encoding="utf-8").splitlines()),
        "vocab_size": len(load_tokenizer(out)),
    }, out


def encode_texts(corpus_dir: Path, megabytes: float) -> list[str]:
    """Lines of every language, round robin, until `megabytes` of UTF-8."""
    streams = [itertools.chain(iter_texts(corpus_dir, lang, "valid"), iter_texts(corpus_dir, lang, "train"))
               for lang in list_languages(corpus_dir)]
    texts, size, limit = [], 0, megabytes * 1e6
    for group in itertools.zip_longest(*streams):
        for text in group:
            if text is not None:
                texts.append(text)
                size += len(text.encode("utf-8"))
        if size >= limit:
            break
    return texts


def bench_encoding(out: Path, texts: list[str], batch_size: int) -> dict:
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    tok = load_tokenizer(out)
    sp = load_processor(out / "sentencepiece.model")
    batches = [texts[i:i + batch_size] for i in range(0, len(texts), batch_size)]
    tok(batches[0])  # warm up

    def throughput(fn) -> dict:
        """MB per wall second and per CPU second (all threads; less sensitive to a busy machine)."""
        t0, c0 = time.perf_counter(), time.process_time()
        for batch in batches:
            fn(batch)
        return {"mb_s": round(mb / (time.perf_counter() - t0), 2), "mb_per_cpu_s": round(mb / (time.process_time() - c0), 2)}

    threads = len(os.sched_getaffinity(0))
    return {
        "texts": len(texts),
        "megabytes": round(mb, 3),
        "batch_size": batch_size,
        "fast_tokenizer_batch": throughput(lambda b: tok(b, add_special_tokens=False, verbose=False)),
        "raw_sentencepiece_batch": throughput(lambda b: sp.encode(b, num_threads=threads)),
        "raw_sentencepiece_1_thread": throughput(lambda b: sp.encode(b, num_threads=1)),
        "threads": threads,
        "tokenizers_parallelism": os.environ.get("TOKENIZERS_PARALLELISM", "unset (on)"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tokenizer.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny", help="tokenizer preset to train (default tiny)")
    parser.add_argument("--encode-mb", type=float, default=20.0, help="MB of corpus text to encode")
    parser.add_argument("--batch-size", type=int, default=1000, help="texts per encoding batch")
    parser.add_argument("overrides", nargs="*", help="tokenizer settings key=value (corpus_dir=... needed)")
    args = parser.parse_args(argv)
    cfg = load_config(TokenizerConfig, preset_path(args.preset), args.overrides)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="tokenizer-bench-") as tmp:
        log(f"training preset {args.preset} on {cfg.corpus_dir}")
        training, out = bench_training(cfg, Path(tmp))
        log("encoding")
        encoding = bench_encoding(out, encode_texts(Path(cfg.corpus_dir), args.encode_mb), args.batch_size)
    result = {
        "preset": args.preset, "corpus_dir": str(cfg.corpus_dir), "training": training, "encoding": encoding,
        "cores": len(os.sched_getaffinity(0)),
        "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
