"""For the tests of the tokenizer and later stages: tiny corpora and tiny real tokenizers.

`build_tiny_tokenizer` goes through the stage's real code path (sampling, SentencePiece,
conversion, report, manifest), so pretraining and finetuning tests use a real tokenizer.
Signature is stable; it trains in about a second.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from common.io import sha256_file, sha256_json, write_jsonl_gz, write_manifest

# Realistic short lines: Yoruba tone marks and dots below, Igbo dotted vowels, Hausa hooked
# letters, Ge'ez, Swahili, Nigerian Pidgin, digits and emoji.
TINY_TEXTS: dict[str, list[str]] = {
    "yor": [
        "Ọmọ náà ń lọ sí ilé-ìwé lójoojúmọ́.",
        "Ẹ kú àárọ̀, ṣé dáadáa ni?",
        "Àwọn ọmọ ilé-ìwé mẹ́wàá ló wá sí ìpàdé ní ọdún 2023.",
        "Ìjọba ìpínlẹ̀ Èkó ti kéde pé ọjà yóò ṣí lọ́la.",
        "Bàbá mi fẹ́ràn láti ka ìwé ìròyìn ní òwúrọ̀.",
        "Òjò rọ̀ púpọ̀ lánàá, ọ̀nà sì kún fún omi.",
    ],
    "ibo": [
        "Nwaanyị ahụ na-eri nri n'ụlọ ya.",
        "Ọ bụ ezigbo mmadụ.",
        "Ụmụaka ndị ahụ gara ahịa n'ụtụtụ taa.",
        "Gọọmentị kwuru na a ga-emeghe ụlọ akwụkwọ na Mọnde.",
        "Anyị nọ n'obodo Enugwu kemgbe afọ 2019.",
        "Ọ na-amasị m ịgụ akwụkwọ akụkọ.",
    ],
    "hau": [
        "Yaron yana zuwa makaranta kowace rana.",
        "Ina kwana, yaya aiki?",
        "Ƙungiyar ta ɗauki mataki a ranar Litinin.",
        "Gwamnati ta ce za a buɗe kasuwa gobe da ƙarfe 8.",
        "Ruwan sama ya sauka sosai a Kano jiya.",
        "Ɗalibai ɗari biyu sun halarci taron.",
    ],
    "amh": [
        "ልጁ በየቀኑ ወደ ትምህርት ቤት ይሄዳል።",
        "እንደምን አደርክ?",
        "መንግሥት ገበያው ነገ እንደሚከፈት አስታውቋል።",
        "ትናንት በአዲስ አበባ ከባድ ዝናብ ዘነበ።",
        "ተማሪዎቹ በ2015 ዓ.ም. ተመረቁ።",
        "አባቴ ጠዋት ጋዜጣ ማንበብ ይወዳል።",
    ],
    "swa": [
        "Mtoto anaenda shule kila siku 🙂.",
        "Habari za asubuhi?",
        "Serikali imetangaza kwamba soko litafunguliwa kesho.",
        "Mvua kubwa ilinyesha jijini Dar es Salaam jana.",
        "Wanafunzi 200 walihudhuria mkutano huo 🎉.",
        "Baba yangu anapenda kusoma gazeti asubuhi.",
    ],
    "pcm": [
        "Di pikin dey go school everi day.",
        "How you dey? I dey kampe!",
        "Goment don tok say market go open tomorrow.",
        "Rain fall well-well for Lagos yesterday 😂.",
        "Dem carry 50 people go di meeting.",
        "My papa like to read newspaper for morning.",
    ],
}


def write_corpus(
    corpus_dir: str | Path,
    train: dict[str, list[str]],
    valid: dict[str, list[str]] | None = None,
) -> Path:
    """A corpus-stage folder (docs/interfaces.md): shards per language and a manifest with corpus_hash."""
    corpus_dir = Path(corpus_dir)
    outputs = []
    for split, texts_by_lang in (("train", train), ("valid", valid or {})):
        for lang, texts in texts_by_lang.items():
            path = corpus_dir / lang / f"{split}-00000.jsonl.gz"
            records = (
                {"id": f"{lang}-{split}-{i}", "lang": lang, "source": "test", "text": t} for i, t in enumerate(texts)
            )
            write_jsonl_gz(path, records)
            outputs.append(path)
    digest = sha256_json({str(p.relative_to(corpus_dir)): sha256_file(p) for p in outputs})
    write_manifest(corpus_dir, "corpus", {}, {}, outputs, extra={"corpus_hash": digest})
    return corpus_dir


def build_tiny_tokenizer(
    out_dir: str | Path,
    texts_by_lang: dict[str, list[str]] | None = None,
    vocab_size: int = 600,
) -> Path:
    """Train a tiny tokenizer on `texts_by_lang` (default: TINY_TEXTS) into `out_dir`; returns it.

    The vocabulary may end up smaller than `vocab_size` when the text is too small
    (hard_vocab_limit=false); `len(load_tokenizer(out_dir))` is the real size.
    """
    from tokenizer.config import ReportConfig, SamplingConfig, SentencePieceConfig, TokenizerConfig
    from tokenizer.train import run_stage

    texts_by_lang = texts_by_lang or TINY_TEXTS
    with tempfile.TemporaryDirectory(prefix="tiny-corpus-") as tmp:
        corpus = write_corpus(Path(tmp) / "corpus", texts_by_lang, {k: v[:2] for k, v in texts_by_lang.items()})
        cfg = TokenizerConfig(
            corpus_dir=corpus,
            out_dir=Path(out_dir),
            sampling=SamplingConfig(char_budget=200_000),
            spm=SentencePieceConfig(vocab_size=vocab_size, hard_vocab_limit=False),
            report=ReportConfig(max_lines=100),
        )
        return run_stage(cfg, log=lambda *_: None, progress=False)


# Plain-line files of the real data (mono/SOURCES.tsv format "lines"), by language.
REAL_LINE_FILES: dict[str, list[str]] = {
    "amh": ["e_hornmt/data/amh.txt"],
    "tir": ["e_hornmt/data/tir.txt"],
    "orm": ["e_hornmt/data/orm.txt"],
    "som": ["e_hornmt/data/som.txt"],
    "aar": ["e_hornmt/data/aar.txt"],
    "fub": ["w_fulfulde_translator/linjila_fulfulde_fub.txt"],
    "ibo": ["w_igbonlp/ig_en_mt/benchmark_dataset/train.ig"],
    "pcm": ["w_lafand_mt/text_files/en-pcm/train.pcm"],
    "luo": ["w_lafand_mt/text_files/en_luo/train.luo"],
    "bam": ["w_lafand_mt/text_files/fr-bam/train.bam"],
    "yor": [
        "w_yoruba_text/Iroyin/yoglobalvoices.txt",
        "w_yoruba_text/Iroyin/news_sites.txt",
        "w_yoruba_text/Universal_Declaration_Human_Rights/unhr.yo.txt",
    ],
}


def corpus_from_line_files(
    corpus_dir: str | Path,
    data_dir: str | Path,
    files: dict[str, list[str]] | None = None,
    max_lines: int | None = None,
    valid_every: int = 20,
) -> Path:
    """A corpus-layout folder from real plain-line files (NFC, stripped, deduplicated).

    Stands in for the corpus stage in tests and benchmarks: every `valid_every`-th distinct
    line (by a hash of its text) goes to `valid`. At most `max_lines` lines per language.
    """
    import hashlib
    import unicodedata

    train: dict[str, list[str]] = {}
    valid: dict[str, list[str]] = {}
    for lang, names in (files or REAL_LINE_FILES).items():
        seen: set[str] = set()
        for name in names:
            with open(Path(data_dir) / "mono" / name, encoding="utf-8-sig") as handle:
                for raw in handle:
                    text = unicodedata.normalize("NFC", raw.strip())
                    if not text or text in seen:
                        continue
                    seen.add(text)
                    bucket = int(hashlib.sha1(text.encode()).hexdigest(), 16) % valid_every
                    (valid if bucket == 0 else train).setdefault(lang, []).append(text)
        if max_lines:
            train[lang] = train.get(lang, [])[:max_lines]
            valid[lang] = valid.get(lang, [])[: max(1, max_lines // valid_every)]
    return write_corpus(corpus_dir, train, valid)
