"""Benchmark: `python -m tokenizer.bench [--preset tiny] corpus_dir=... [key=value ...]`, prints JSON.

1. Training: our whole stage (sample, SentencePiece, conversion + id check, report) against
   the raw `sentencepiece` trainer with the same options on the same sampled text, in
   `--repeat` alternating rounds. Goal: stage without the report at most 1.2x the raw
   trainer, with identical pieces (checked every round; exit status 1 if they differ).
2. Encoding throughput in MB/s (UTF-8 bytes) of the saved fast tokenizer with batch
   encoding (`tokenizer(batch)`), against raw SentencePiece batch encoding.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sentencepiece as spm

from common.cli import Command
from common.corpus import iter_texts, list_languages
from tokenizer import load_tokenizer
from tokenizer.config import PRESET_DIR, TokenizerConfig
from tokenizer.sampling import resolve_languages, write_sample
from tokenizer.spm_train import load_processor, trainer_options
from tokenizer.train import run_stage


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def piece_table(model_path: Path) -> list[tuple[str, float]]:
    sp = load_processor(model_path)
    return [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]


def compare_pieces(ours: Path, raw: Path) -> dict:
    """Same pieces in the same order (ids), and the same scores."""
    a, b = piece_table(ours), piece_table(raw)
    first = next((i for i, (x, y) in enumerate(zip(a, b)) if x[0] != y[0]), None)
    return {
        "pieces_identical": [p for p, _ in a] == [p for p, _ in b],
        "scores_identical": a == b,
        "pieces": len(a),
        "raw_pieces": len(b),
        "first_different_id": first,
    }


def time_stage(cfg: TokenizerConfig, out_dir: Path) -> dict:
    t0, c0 = time.perf_counter(), time.process_time()
    out = run_stage(dataclasses.replace(cfg, out_dir=out_dir, force=True), log=lambda *_: None, progress=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    parts = json.loads((out / "report.json").read_text(encoding="utf-8"))["timings"]
    return {
        "total_s": wall,
        "total_cpu_s": cpu,
        "without_report_s": wall - parts["report_s"],
        "without_report_cpu_s": cpu - parts["report_cpu_s"],
        "parts": parts,
    }


def time_raw(cfg: TokenizerConfig, sample: Path, prefix: Path) -> dict:
    spm.set_random_generator_seed(cfg.sampling.seed)  # as the stage does
    options = trainer_options(cfg.spm, sample)
    t0, c0 = time.perf_counter(), time.process_time()
    spm.SentencePieceTrainer.train(model_prefix=str(prefix), **options)
    return {"s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}


def bench_training(cfg: TokenizerConfig, work: Path, repeat: int = 1) -> tuple[dict, Path]:
    """`repeat` rounds of (stage, raw trainer), the order alternating so neither side always
    runs first; the headline numbers are each side's best round (noise on a shared machine
    only ever adds time), the medians are given too."""
    sample = work / "sample.txt"  # the same text: sampling is a function of corpus, config and seed
    langs = resolve_languages(cfg.corpus_dir, cfg.langs)
    write_sample(Path(cfg.corpus_dir), langs, sample, cfg.sampling, log=lambda *_: None)
    out, raw_prefix = work / "tokenizer", work / "raw"
    stages, raws, checks = [], [], []
    for round_ in range(repeat):
        for arm in ("stage", "raw") if round_ % 2 == 0 else ("raw", "stage"):
            if arm == "stage":
                stages.append(time_stage(cfg, out))
            else:
                raws.append(time_raw(cfg, sample, raw_prefix))
        checks.append(compare_pieces(out / "sentencepiece.model", raw_prefix.with_suffix(".model")))
        log(
            f"round {round_ + 1}/{repeat}: stage without report {stages[-1]['without_report_s']:.1f} s, "
            f"raw {raws[-1]['s']:.1f} s, pieces identical: {checks[-1]['pieces_identical']}"
        )
    best = min(stages, key=lambda r: r["without_report_s"])
    best_raw_s, best_raw_cpu = min(r["s"] for r in raws), min(r["cpu_s"] for r in raws)
    best_stage_cpu = min(r["without_report_cpu_s"] for r in stages)
    median = statistics.median
    return {
        "rounds": repeat,
        "stage_total_s": round(best["total_s"], 3),
        "stage_without_report_s": round(best["without_report_s"], 3),
        "stage_parts": best["parts"],
        "raw_sentencepiece_s": round(best_raw_s, 3),
        "ratio_stage_without_report_vs_raw": round(best["without_report_s"] / best_raw_s, 3),
        "ratio_stage_total_vs_raw": round(best["total_s"] / best_raw_s, 3),
        "stage_without_report_cpu_s": round(best_stage_cpu, 3),
        "raw_sentencepiece_cpu_s": round(best_raw_cpu, 3),
        "cpu_ratio_stage_without_report_vs_raw": round(best_stage_cpu / best_raw_cpu, 3),
        "median_ratio_stage_without_report_vs_raw": round(
            median(r["without_report_s"] for r in stages) / median(r["s"] for r in raws), 3
        ),
        "all_rounds": [
            {
                "stage_without_report_s": round(st["without_report_s"], 3),
                "stage_without_report_cpu_s": round(st["without_report_cpu_s"], 3),
                "raw_sentencepiece_s": round(raw["s"], 3),
                "raw_sentencepiece_cpu_s": round(raw["cpu_s"], 3),
            }
            for st, raw in zip(stages, raws)
        ],
        **{key: all(c[key] for c in checks) for key in ("pieces_identical", "scores_identical")},
        "pieces": checks[-1]["pieces"],
        "first_different_id": next(
            (c["first_different_id"] for c in checks if c["first_different_id"] is not None), None
        ),
        "sample_chars": sum(len(line) for line in sample.read_text(encoding="utf-8").splitlines()),
        "vocab_size": len(load_tokenizer(out)),
    }, out


def encode_texts(corpus_dir: Path, megabytes: float) -> list[str]:
    """Lines of every language, round robin, until `megabytes` of UTF-8."""
    streams = [
        itertools.chain(iter_texts(corpus_dir, lang, "valid"), iter_texts(corpus_dir, lang, "train"))
        for lang in list_languages(corpus_dir)
    ]
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
    batches = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
    tok(batches[0])  # warm up

    def throughput(fn) -> dict:
        """MB per wall second and per CPU second (all threads; less sensitive to a busy machine)."""
        t0, c0 = time.perf_counter(), time.process_time()
        for batch in batches:
            fn(batch)
        return {
            "mb_s": round(mb / (time.perf_counter() - t0), 2),
            "mb_per_cpu_s": round(mb / (time.process_time() - c0), 2),
        }

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


def _flags(parser) -> None:
    parser.add_argument("--encode-mb", type=float, default=20.0, help="MB of corpus text to encode")
    parser.add_argument("--batch-size", type=int, default=1000, help="texts per encoding batch")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds of (stage, raw trainer), alternating order; best round counts (default 3)",
    )


COMMAND = Command(
    TokenizerConfig, "python -m tokenizer.bench", __doc__, presets=PRESET_DIR, default_preset="tiny", flags=_flags
)


def main(argv: list[str] | None = None) -> int:
    return COMMAND.run(argv, bench)


def bench(cfg: TokenizerConfig, args) -> int:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="tokenizer-bench-") as tmp:
        log(f"training preset {args.preset} on {cfg.corpus_dir}")
        training, out = bench_training(cfg, Path(tmp), max(1, args.repeat))
        log(
            f"pieces identical to the raw trainer's: {training['pieces_identical']} "
            f"({training['pieces']:,} pieces; scores identical: {training['scores_identical']})"
        )
        log("encoding")
        encoding = bench_encoding(out, encode_texts(Path(cfg.corpus_dir), args.encode_mb), args.batch_size)
    result = {
        "preset": args.preset,
        "corpus_dir": str(cfg.corpus_dir),
        "training": training,
        "encoding": encoding,
        "cores": len(os.sched_getaffinity(0)),
        "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
    }
    print(json.dumps(result, indent=2))
    if not training["pieces_identical"]:
        log(f"FAIL: the stage's pieces differ from the raw trainer's from id {training['first_different_id']}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
