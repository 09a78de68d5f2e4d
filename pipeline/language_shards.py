"""Steps 7-9 per language, on one worker: near-dedup, validation split, shard writing.

After exact dedup every line gets its MinHash signature (in parallel, `near_dedup.AddSignature`),
then one GroupByKey brings each language's lines together and `WriteLanguage` streams them in
fixed order through the LSH index (`near_dedup.dedup_language`), chooses the validation lines
(`valid_split.valid_share`, now that the language's size n is known) and writes the sorted shards
(`write_shards.write_shard`). Doing the three in the group that near-dedup needs anyway saves two
shuffles of the whole corpus (a side-input count and a group per shard) and the per-line counting
of kept lines, which matters on the 2-process DirectRunner (see docs/corpus.md, measured numbers).
"""
from __future__ import annotations

from collections import Counter

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.io.filesystems import FileSystems

from pipeline import counters
from pipeline.config import MinHashConfig, ValidConfig
from pipeline.near_dedup import AddSignature, Signer, dedup_language
from pipeline.outputs import ParDoByTag
from pipeline.records import Line
from pipeline.steps import COUNTS, REJECTED, SAMPLES, Tally
from pipeline.textkey import stable_fraction
from pipeline.valid_split import split_of, valid_share
from pipeline.write_shards import shard_name, write_shard

KEPT = "kept_counts"


def shard_of(line: Line, num_shards: int) -> int:
    return int(stable_fraction(f"{line.source}\x00{line.path}\x00{line.line_no}") * num_shards)


class WriteLanguage(beam.DoFn):
    """(lang, [(Line, signature)]) -> shard infos; tagged near_dup Rejected and kept counts."""

    def __init__(self, staging_dir: str, num_shards: int, minhash: MinHashConfig, valid: ValidConfig):
        self.staging_dir = staging_dir
        self.num_shards = num_shards
        self.minhash = minhash
        self.valid = valid

    def process(self, item):
        yield from self.write(*item)

    def write(self, lang: str, pairs):
        """(Line, signature) pairs of one language -> tagged near_dup Rejected, KEPT counts, shard infos."""
        kept: list[Line] = []
        if self.minhash.enabled:
            for out in dedup_language(pairs, self.minhash):
                if isinstance(out, pvalue.TaggedOutput):
                    yield out
                else:
                    kept.append(out)
        else:
            kept = [line for line, _ in pairs]
        share = valid_share(len(kept), self.valid)
        shards: dict[tuple[str, int], list[Line]] = {}
        counts: Counter = Counter()
        for line in kept:
            split = split_of(line, share)
            shards.setdefault((split, shard_of(line, self.num_shards)), []).append(line)
            key = ("kept", line.lang, line.source, split)
            counts[key] += 1
            counts[key + ("bytes",)] += len(line.text.encode("utf-8", "surrogatepass"))
        for key in [k for k in counts if len(k) == 4]:
            yield pvalue.TaggedOutput(KEPT, (key, (counts[key], counts[key + ("bytes",)])))
        for (split, index), lines in sorted(shards.items()):
            info = write_shard(FileSystems.join(self.staging_dir, lang, shard_name(split, index)), lines)
            yield {"path": f"{lang}/{shard_name(split, index)}", "lang": lang, "split": split, **info}


class LanguageShards(beam.PTransform):
    """PCollection[Line] -> tagged outputs: main (shard infos), `rejected` (near_dup), `kept_counts`."""

    def __init__(self, staging_dir: str, num_shards: int, minhash: MinHashConfig, valid: ValidConfig):
        super().__init__()
        self.args = (staging_dir, num_shards, minhash, valid)

    def expand(self, lines):
        minhash = self.args[2]
        keyed = (lines | "Sign" >> beam.ParDo(AddSignature(minhash)) if minhash.enabled
                 else lines | "KeyByLang" >> beam.Map(lambda line: (line.lang, (line, b""))))
        return (
            keyed
            | "GroupByLanguage" >> beam.GroupByKey()
            | "WriteLanguage" >> beam.ParDo(WriteLanguage(*self.args)).with_outputs(REJECTED, KEPT, main="shards")
        )


class SignBatch(beam.DoFn):
    """[Line] -> (lang, [(Line tuple, signature bytes)]) per language in the list."""

    def __init__(self, cfg: MinHashConfig):
        self.cfg = cfg
        self.signer: Signer | None = None

    def setup(self):
        self.signer = Signer(self.cfg) if self.cfg.enabled else None

    def process(self, lines):
        by_lang: dict[str, list] = {}
        for line in lines:
            sig = self.signer.signature(line.text).tobytes() if self.signer else b""
            by_lang.setdefault(line.lang, []).append(
                ((line.source, line.lang, line.path, line.line_no, line.text), sig))
        yield from by_lang.items()


class WriteLanguageBatches(WriteLanguage):
    """(lang, [[(Line tuple, signature)]]) -> shard infos; tagged COUNTS (kept and near_dup) and SAMPLES."""

    def __init__(self, staging_dir: str, num_shards: int, minhash: MinHashConfig, valid: ValidConfig,
                 sample_limit: int):
        super().__init__(staging_dir, num_shards, minhash, valid)
        self.sample_limit = sample_limit

    def process(self, item):
        lang, batches = item
        tally = Tally(self.sample_limit)
        for out in self.write(lang, [(Line(*row), sig) for batch in batches for row, sig in batch]):
            if not isinstance(out, pvalue.TaggedOutput):
                yield out
            elif out.tag == KEPT:
                counters.inc(out.value[0], out.value[1][0])
                yield pvalue.TaggedOutput(COUNTS, out.value)
            else:
                tally.drop(out.value)
        yield from tally.outputs()


class LanguageShardsFromBatches(beam.PTransform):
    """PCollection[[Line]] (lists of unique lines) -> {"shards": shard infos, COUNTS, SAMPLES}.

    The batched form of `LanguageShards` used by pipeline.run: one element per list of lines
    and per language, not per line."""

    def __init__(self, staging_dir: str, num_shards: int, minhash: MinHashConfig, valid: ValidConfig,
                 sample_limit: int):
        super().__init__()
        self.args = (staging_dir, num_shards, minhash, valid, sample_limit)

    def expand(self, batches):
        return (
            batches
            | "Sign" >> beam.ParDo(SignBatch(self.args[2]))
            | "GroupByLanguage" >> beam.GroupByKey()
            | "WriteLanguage" >> ParDoByTag(WriteLanguageBatches(*self.args), (COUNTS, SAMPLES), main="shards")
        )
