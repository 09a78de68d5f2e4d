"""Reading a finished tokenizer folder: what later stages call (docs/interfaces.md)."""

from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path
from typing import Callable, Sequence

from common.config import ConfigError
from common.io import atomic_write, sha256_file, sha256_json

HASHED_FILES = ("tokenizer.json", "sentencepiece.model")
# sentencepiece.model is not required to load: `tokenizer.save_pretrained` (e.g. into a model's
# final/ folder) writes only the two JSON files.
REQUIRED_FILES = ("tokenizer.json", "tokenizer_config.json")
LAYOUT = {"bos_token_id": 0, "pad_token_id": 1, "eos_token_id": 2, "unk_token_id": 3}
# The class every folder we write names in tokenizer_config.json. transformers 5 writes its
# generic fast class as `TokenizersBackend`, which transformers 4 does not have ("Tokenizer class
# TokenizersBackend does not exist"); both lines know `PreTrainedTokenizerFast` (in 5 an alias
# of TokenizersBackend) and both load tokenizer.json exactly as written under that name.
PORTABLE_TOKENIZER_CLASS = "PreTrainedTokenizerFast"


class TokenizerFolderError(ConfigError):
    """A tokenizer folder is incomplete or breaks the id layout contract."""


def tokenizer_hash(tokenizer_dir: str | Path) -> str:
    """What identifies a tokenizer folder (the manifest's `tokenizer_hash`, pretraining's block
    cache keys and run inputs): sha256 over the hashes of its tokenizer.json and
    sentencepiece.model. A model's folder holds the same files and so the same hash (a
    `final/` folder keeps sentencepiece.model); one without sentencepiece.model (a Hub
    checkpoint, a changed vocabulary) is hashed by its tokenizer.json alone."""
    tokenizer_dir = Path(tokenizer_dir)
    _require(tokenizer_dir, HASHED_FILES[:1])
    return sha256_json(
        {name: sha256_file(tokenizer_dir / name) for name in HASHED_FILES if (tokenizer_dir / name).is_file()}
    )


def load_tokenizer(tokenizer_dir: str | Path):
    """`AutoTokenizer.from_pretrained(dir)`, offline, after checking files and the id layout."""
    from transformers import AutoTokenizer

    tokenizer_dir = Path(tokenizer_dir)
    _require(tokenizer_dir, REQUIRED_FILES)
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    check_layout(tokenizer, tokenizer_dir)
    return tokenizer


def make_portable(tokenizer_dir: str | Path) -> None:
    """Name `PreTrainedTokenizerFast` in a saved folder's tokenizer_config.json, so the folder
    loads in transformers 4.x as well as 5.x. Call it after every `save_pretrained` of one of
    our tokenizers. Only the class name changes: our tokenizers are always the tokenizers
    pipeline in tokenizer.json (a model-specific class such as XLMRobertaTokenizer would
    rebuild its own pipeline, without byte fallback)."""
    path = Path(tokenizer_dir) / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    if config.get("tokenizer_class") == PORTABLE_TOKENIZER_CLASS:
        return
    config["tokenizer_class"] = PORTABLE_TOKENIZER_CLASS
    with atomic_write(path) as handle:  # same layout as transformers writes it
        handle.write(json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def load_bulk_encoder(tokenizer_dir: str | Path) -> Callable[[Sequence[str]], list[list[int]]]:
    """Encode many texts with SentencePiece directly: same ids as the fast tokenizer without
    special tokens (the stage checks this before saving), about 10x faster on CPU
    (docs/tokenizer.md, measured numbers). For packing a corpus into blocks."""
    import sentencepiece as spm

    tokenizer_dir = Path(tokenizer_dir)
    _require(tokenizer_dir, ("sentencepiece.model",))
    sp = spm.SentencePieceProcessor(model_file=str(tokenizer_dir / "sentencepiece.model"))
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

    def encode(texts: Sequence[str]) -> list[list[int]]:
        return sp.encode([unicodedata.normalize("NFC", t) for t in texts], num_threads=threads)

    return encode


def check_layout(tokenizer, where: str | Path) -> None:
    wrong = {name: getattr(tokenizer, name) for name, want in LAYOUT.items() if getattr(tokenizer, name) != want}
    if tokenizer.mask_token_id != len(tokenizer) - 1:
        wrong["mask_token_id"] = tokenizer.mask_token_id
    if wrong:
        raise TokenizerFolderError(
            f"{where}: special token ids {wrong} break the layout <s>=0 <pad>=1 </s>=2 <unk>=3 ... <mask>=last"
        )


def _require(tokenizer_dir: Path, names: tuple[str, ...]) -> None:
    missing = [name for name in names if not (tokenizer_dir / name).is_file()]
    if missing:
        raise TokenizerFolderError(
            f"{tokenizer_dir} is not a complete tokenizer folder: missing {', '.join(missing)}; run `make tokenizer`"
        )
