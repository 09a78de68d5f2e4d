"""Continued pretraining: start from an existing XLM-R/RoBERTa masked-LM checkpoint (`init_from`).

`resolve` finds the folder (a local path, or a Hub id when online), `check_checkpoint` refuses,
before anything is written, a checkpoint of another family or whose tokenizer does not match its
embeddings, and `checkpoint_hash` fingerprints its weights, config and tokenizer so that resume
and skip notice a changed checkpoint. `prepare_start` applies the `vocab.*` settings (reduction
to our corpus, extension with our tokenizer's pieces; pretrain/vocab.py) into `<out_dir>/init/`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from common import corpus
from common.config import ConfigError, config_to_dict
from common.io import sha256_file, sha256_json, write_json
from pretrain import vocab
from pretrain.masking import WORD_START

FAMILIES = ("xlm-roberta", "roberta")  # config.json model_type; both use RobertaLMHead and positions after <pad>
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
# What a Hub checkpoint needs here: no TF/Flax/ONNX copies of the weights.
HUB_FILES = [
    "config.json",
    "model.safetensors",
    "model-*.safetensors",
    "model.safetensors.index.json",
    *TOKENIZER_FILES,
    "sentencepiece.bpe.model",
    "vocab.json",
    "merges.txt",
]
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
START_DIR = "init"  # <out_dir>/init/: the checkpoint after vocab.* changes
RECORD = "init.json"  # in START_DIR: what it was made from, and the vocabulary changes


@dataclass
class Checkpoint:
    model_type: str
    vocab_size: int  # the tokenizer's ids = the embedding's rows


def resolve(init_from: str) -> Path:
    """The local folder of `init_from`: a path, else a Hub repository id (downloaded once into
    the Hugging Face cache; refused offline)."""
    path = Path(init_from).expanduser()
    if path.exists() or not HUB_ID.match(init_from) or init_from.startswith("."):
        return path
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(init_from, allow_patterns=HUB_FILES))
        if not any((folder / name).exists() for name in WEIGHT_FILES):  # shards come with an index
            folder = Path(snapshot_download(init_from, allow_patterns=[*HUB_FILES, "pytorch_model*.bin*"]))
    except Exception as err:  # offline, unknown repository, no access
        raise ConfigError(
            f"init_from={init_from}: no such folder, and not available from the Hugging Face Hub "
            f"({type(err).__name__}: {str(err)[:200]})"
        ) from None
    return folder


def _embedding_rows(folder: Path) -> int | None:
    """Rows of the word-embedding matrix in model.safetensors, read from its header (no tensor loaded)."""
    from safetensors import safe_open

    path = folder / "model.safetensors"
    if not path.exists():
        return None
    try:
        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():
                if key.endswith("word_embeddings.weight"):
                    return int(handle.get_slice(key).get_shape()[0])
    except Exception as err:  # truncated or not safetensors at all
        raise ConfigError(f"init_from={folder}: unreadable {path.name} ({err})") from None
    return None


def check_checkpoint(folder: Path, cfg) -> Checkpoint:
    """Everything that can be checked before training `cfg` (a PretrainConfig) from `folder`;
    ConfigError naming the folder otherwise."""
    from transformers import AutoConfig, AutoTokenizer

    where = f"init_from={folder}"
    if not folder.is_dir():
        raise ConfigError(f"{where}: no such folder")
    if not (folder / "config.json").exists():
        hint = f"; did you mean {folder / 'final'}?" if (folder / "final" / "config.json").exists() else ""
        raise ConfigError(f"{where}: no config.json, not a Hugging Face model folder{hint}")
    try:
        config = AutoConfig.from_pretrained(str(folder))
    except Exception as err:  # unknown model_type, broken JSON
        raise ConfigError(f"{where}: config.json cannot be read ({type(err).__name__}: {str(err)[:200]})") from None
    if config.model_type not in FAMILIES:
        raise ConfigError(
            f"{where}: a {config.model_type!r} checkpoint; continued pretraining needs an "
            f"XLM-R/RoBERTa-family masked LM (model_type {' or '.join(FAMILIES)})"
        )
    heads = [a for a in (config.architectures or []) if not a.endswith("ForMaskedLM")]
    if heads:
        raise ConfigError(f"{where}: a {heads[0]} checkpoint, not a masked LM (its LM head is missing)")
    if not any((folder / name).exists() for name in WEIGHT_FILES):
        raise ConfigError(f"{where}: no weights ({' or '.join(WEIGHT_FILES)})")
    if not (folder / "tokenizer.json").exists():
        raise ConfigError(
            f"{where}: no tokenizer.json; save the checkpoint's fast tokenizer into it "
            "(AutoTokenizer.from_pretrained(...).save_pretrained(folder))"
        )
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    rows = _embedding_rows(folder) or config.vocab_size
    if len(tokenizer) != rows or config.vocab_size != rows:
        raise ConfigError(
            f"{where}: its tokenizer has {len(tokenizer):,} ids but the model's embeddings have "
            f"{rows:,} rows (config.json vocab_size {config.vocab_size:,}); they must match"
        )
    missing = [
        name for name in ("bos_token", "eos_token", "pad_token", "mask_token") if getattr(tokenizer, name) is None
    ]
    if missing:
        raise ConfigError(f"{where}: its tokenizer has no {', '.join(missing)}")
    if config.pad_token_id != tokenizer.pad_token_id:
        raise ConfigError(
            f"{where}: the tokenizer's <pad> id {tokenizer.pad_token_id} is not the model's "
            f"pad_token_id {config.pad_token_id}"
        )
    kind = vocab.tokenizer_spec(tokenizer)["model"]["type"]
    if cfg.vocab.extend and kind != "Unigram":
        raise ConfigError(f"vocab.extend=true needs a Unigram tokenizer (as XLM-R's); {folder} has a {kind} one")
    if cfg.masking.whole_word and not any(p.startswith(WORD_START) for p in tokenizer.get_vocab()):
        raise ConfigError(
            f"masking.whole_word=true finds words by SentencePiece's {WORD_START} marker; the "
            f"tokenizer of {folder} has none (byte-level BPE)"
        )
    block_len = cfg.data.block_len
    positions = block_len + config.pad_token_id + 1  # XLM-R positions start after the padding id
    if config.max_position_embeddings < positions:
        raise ConfigError(
            f"data.block_len={block_len} is too long for {folder}: it has "
            f"{config.max_position_embeddings} positions (at most "
            f"data.block_len={config.max_position_embeddings - config.pad_token_id - 1})"
        )
    return Checkpoint(config.model_type, rows)


def checkpoint_hash(folder: Path) -> str:
    """sha256 over the files that make the initial model: weights, config and tokenizer."""
    names = ["config.json", *WEIGHT_FILES, *TOKENIZER_FILES]
    files = [folder / name for name in names if (folder / name).exists()]
    for index in (folder / name for name in WEIGHT_FILES if name.endswith(".index.json")):
        if index.exists():  # sharded weights: the shards it names
            files += [folder / s for s in sorted(set(json.loads(index.read_text())["weight_map"].values()))]
    return sha256_json({f.name: sha256_file(f) for f in files})


def load_model(folder: Path):
    """The checkpoint's masked LM in fp32, in training mode."""
    import torch
    from transformers import AutoModelForMaskedLM

    model = AutoModelForMaskedLM.from_pretrained(str(folder), dtype=torch.float32)
    return model.train()


def save_folder(model, tokenizer, dest: Path, record: dict) -> None:
    """A Hugging Face folder (safetensors, config, tokenizer) and `record`, swapped in whole."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / RECORD, record)  # last: what this folder was made from
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def describe(init_from: str, source: Path, start: Path, init_hash: str) -> dict:
    """The manifest's record of where the run started: the setting, the folder, its hash and
    any vocabulary changes."""
    record = {"setting": init_from, "folder": str(source), "init_hash": init_hash}
    if (Path(start) / RECORD).exists():
        record["vocab"] = json.loads((Path(start) / RECORD).read_text(encoding="utf-8"))["changes"]
    return record


def prepare_start(cfg, source: Path, inputs: dict, log=print) -> Path:
    """The folder the run starts from: `source` itself, or, when `vocab.reduce`/`vocab.extend`
    ask for changes, `<out_dir>/init/` with them made (reused while its inputs are the same)."""
    vcfg = cfg.vocab
    if not (vcfg.reduce or vcfg.extend):
        return source
    from transformers import AutoTokenizer

    dest = Path(cfg.out_dir) / START_DIR
    langs = list(cfg.data.langs) or corpus.list_languages(cfg.corpus_dir)
    key = {"inputs": inputs, "vocab": config_to_dict(vcfg), "langs": langs}
    if (dest / RECORD).exists() and json.loads((dest / RECORD).read_text(encoding="utf-8"))["key"] == key:
        log(f"[init] {dest} is ready")
        return dest
    model, tokenizer = load_model(source), AutoTokenizer.from_pretrained(str(source))
    changes = {"source": str(source), "pieces_before": len(tokenizer)}
    if vcfg.reduce:
        texts = (text for lang in langs for text in corpus.iter_texts(cfg.corpus_dir, lang, "train"))
        counts = vocab.count_pieces(tokenizer, texts, cfg.data.tokenize_batch)
        keep = vocab.kept_ids(tokenizer, counts, vcfg.min_count)
        model, tokenizer = vocab.reduce_vocab(model, tokenizer, keep)
        changes["kept"] = len(keep)
        log(
            f"[init] vocabulary reduced to the pieces seen >= {vcfg.min_count} times in {int(counts.sum()):,} "
            f"train tokens ({', '.join(langs)}): {len(keep):,} of {changes['pieces_before']:,} kept"
        )
    if vcfg.extend:
        pieces = vocab.missing_pieces(tokenizer, AutoTokenizer.from_pretrained(str(cfg.tokenizer_dir)))
        model, tokenizer = vocab.extend_vocab(model, tokenizer, pieces)
        changes["added"] = len(pieces)
        log(f"[init] vocabulary extended with {len(pieces):,} pieces of {cfg.tokenizer_dir}")
    changes["pieces_after"] = len(tokenizer)
    save_folder(model, tokenizer, dest, {"key": key, "changes": changes})
    return dest
