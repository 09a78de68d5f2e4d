"""Train a SentencePiece model whose ids match the XLM-R layout.

Lossless by construction:
- the text is NFC-normalised by us (tokenizer.sampling) and SentencePiece's own NFKC rule is
  switched off (`normalization_rule_name=identity`), so nothing folds or reorders characters;
- `remove_extra_whitespaces=false` keeps runs of spaces and leading/trailing spaces;
- `byte_fallback=true`: a character without a piece becomes its UTF-8 bytes, never <unk>;
- `allow_whitespace_only_pieces` stays false: with it SentencePiece groups runs of spaces in a
  way the `tokenizers` Metaspace pre-tokenizer does not reproduce, and ids would differ.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import sentencepiece as spm

from common.config import ConfigError
from tokenizer.config import SentencePieceConfig

SPECIAL_IDS = {"bos_id": 0, "pad_id": 1, "eos_id": 2, "unk_id": 3}


class VocabularyTooLargeError(ConfigError):
    """The sampled text cannot support the configured number of pieces."""


def trainer_options(cfg: SentencePieceConfig, sample_path: Path) -> dict:
    """The exact options given to `SentencePieceTrainer.train` (also used by the benchmark)."""
    return dict(
        input=str(sample_path),
        input_format="text",
        model_type=cfg.model_type,
        vocab_size=cfg.vocab_size,
        character_coverage=cfg.character_coverage,
        byte_fallback=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        split_digits=cfg.split_digits,
        allow_whitespace_only_pieces=False,
        max_sentencepiece_length=cfg.max_sentencepiece_length,
        # Lines are already cut to sampling.max_line_chars characters (<= 4 bytes each).
        max_sentence_length=1 << 16,
        input_sentence_size=cfg.input_sentence_size,
        shuffle_input_sentence=cfg.shuffle_input_sentence,
        hard_vocab_limit=cfg.hard_vocab_limit,
        num_threads=cfg.threads(),
        bos_piece="<s>",
        pad_piece="<pad>",
        eos_piece="</s>",
        unk_piece="<unk>",
        # Byte pieces are spelled <0xHH>; with these as pieces a literal "<0x41>" in the text is
        # always cheaper as characters than as the byte piece in the converted Unigram lattice.
        required_chars="<>x0123456789ABCDEF",
        minloglevel=1,
        **SPECIAL_IDS,
    )


def train_sentencepiece(cfg: SentencePieceConfig, sample_path: Path, seed: int, progress: bool = True) -> bytes:
    """Train on the sample file; returns the serialized model.

    Lines are fed through `sentence_iterator` rather than `input=`: the model stores its
    trainer options, and a temporary file name in them would change the tokenizer hash of
    an otherwise identical model.
    """
    spm.set_random_generator_seed(seed)
    options = trainer_options(cfg, sample_path)
    del options["input"], options["input_format"]
    options["minloglevel"] = 0 if progress else 1  # 0: SentencePiece's own progress lines on stderr
    model = io.BytesIO()
    try:
        with open(sample_path, encoding="utf-8") as lines:
            spm.SentencePieceTrainer.train(
                sentence_iterator=(line.rstrip("\n") for line in lines), model_writer=model, **options
            )
    except RuntimeError as err:
        match = re.search(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)", str(err))
        if match:
            raise VocabularyTooLargeError(
                f"spm.vocab_size={match.group(1)} is more than the sampled text supports "
                f"(at most {match.group(2)} with these settings); lower spm.vocab_size, raise "
                f"sampling.char_budget, or set spm.hard_vocab_limit=false to accept a smaller vocabulary"
            ) from None
        raise
    return model.getvalue()


def load_processor(model: bytes | str | Path) -> spm.SentencePieceProcessor:
    if isinstance(model, bytes):
        return spm.SentencePieceProcessor(model_proto=model)
    return spm.SentencePieceProcessor(model_file=str(model))
