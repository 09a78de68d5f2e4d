"""Steps 8-10 per language, on one worker: near-dedup, validation split, shard writing.

After exact dedup every line gets its MinHash signature (in parallel, `SignBatch`), then one
GroupByKey brings each language's lines together and `WriteLanguage` streams them in fixed order
through the LSH index (`near_dedup.dedup_language`), chooses the validation lines
(`valid_split.valid_share`, now that the language's size n is known) and writes the sorted shards
(`write_shards.write_shard`). Doing the three in the group that near-dedup needs anyway saves two
shuffles of the whole corpus (a side-input count and a group per shard) and the per-line counting
of kept lines, which matters on the 2-process DirectRunner (see docs/corpus.md, measured numbers).
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from pipeline.config import MinHashConfig, ValidConfig
from pipeline.near_dedup import Signer, dedup_language
from pipeline.outputs import ParDoByTag
from pipeline.records import Line, pack, unpack
from pipeline.tally import COUNTS, SAMPLES, Tally
from pipeline.textkey import stable_fraction
from pipeline.valid_split import split_of, valid_share
from pipeline.write_shards import shard_name, write_shard


def shard_of(line: Line, num_shards: int) -> int:
    return int(stable_fraction(f"{line.source}\x00{line.path}\x00{line.line_no}") * num_shards)


class SignBatch(beam.DoFn):
    """packed lines -> (lang, (packed lines, [signature bytes])) per language in the batch."""

    def __init__(self, cfg: MinHashConfig):
        self.cfg = cfg
        self.signer: Signer | None = None

    def setup(self):
        self.signer = Signer(self.cfg) if self.cfg.enabled else None

    def process(self, packed):
        by_lang: dict[str, list[Line]] = {}
        for line in unpack(packed):
            by_lang.setdefault(line.lang, []).append(line)
        for lang, lines in by_lang.items():
            sigs = [self.signer.signature(line.key).tobytes() if self.signer else b"" for line in lines]
            yield lang, (pack(lines), sigs)


class WriteLanguage(beam.DoFn):
    """(lang, [(packed lines, signatures)]) -> shard infos {path, lang, split, count, bytes,
    sha256}; tagged COUNTS (kept, near_dup) and SAMPLES (near_dup)."""

    def __init__(
        self, staging_dir: str, num_shards: int, minhash: MinHashConfig, valid: ValidConfig, sample_limit: int
    ):
        self.staging_dir = staging_dir
        self.num_shards = num_shards
        self.minhash = minhash
        self.valid = valid
        self.sample_limit = sample_limit

    def process(self, item):
        lang, batches = item
        pairs = [pair for packed, sigs in batches for pair in zip(unpack(packed), sigs)]
        tally = Tally(self.sample_limit)
        kept: list[Line] = []
        if self.minhash.enabled:
            for line in dedup_language(pairs, self.minhash):
                if line.reason is None:
                    kept.append(line)
                else:
                    tally.drop(line)
        else:
            kept = [line for line, _ in pairs]
        share = valid_share(len(kept), self.valid)
        shards: dict[tuple[str, int], list[Line]] = {}
        for line in kept:
            split = split_of(line, share)
            shards.setdefault((split, shard_of(line, self.num_shards)), []).append(line)
            tally.count(("kept", line.lang, line.source, split), line.text)
        for (split, index), lines in sorted(shards.items()):
            info = write_shard(FileSystems.join(self.staging_dir, lang, shard_name(split, index)), lines)
            yield {"path": f"{lang}/{shard_name(split, index)}", "lang": lang, "split": split, **info}
        yield from tally.outputs()


class LanguageShards(beam.PTransform):
    """PCollection[packed unique lines] -> {"shards": shard infos, COUNTS, SAMPLES}: one element
    per batch of lines and per language, not per line."""

    def __init__(
        self, staging_dir: str, num_shards: int, minhash: MinHashConfig, valid: ValidConfig, sample_limit: int
    ):
        super().__init__()
        self.args = (staging_dir, num_shards, minhash, valid, sample_limit)

    def expand(self, batches):
        return (
            batches
            | "Sign" >> beam.ParDo(SignBatch(self.args[2]))
            | "GroupByLanguage" >> beam.GroupByKey()
            | "WriteLanguage" >> ParDoByTag(WriteLanguage(*self.args), (COUNTS, SAMPLES), main="shards")
        )
