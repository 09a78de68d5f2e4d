"""Load any Hugging Face checkpoint folder, after checking it is whole.

Checks run before any training: config and weights present and readable, a tokenizer that
loads, a tokenizer whose ids all fit the model's embedding table, the same padding id in
both, and (safetensors) an embedding matrix of the size the config says.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from common.config import ConfigError

log = logging.getLogger("finetune")

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
# Models whose position ids start after the padding index (RoBERTa family): 2 slots fewer.
POSITION_OFFSET_TYPES = {"roberta", "xlm-roberta", "camembert", "xlm-roberta-xl", "longformer"}


class ModelFolderError(ConfigError):
    """The model folder cannot be used; the message names the folder and what is wrong."""


@dataclass
class CheckedModel:
    path: Path
    tokenizer: object
    config: object
    max_length: int
    """Most sub-tokens (specials included) one input may have."""


def _embedding_rows(folder: Path) -> int | None:
    """Rows of the word-embedding matrix read from the safetensors header (no full load)."""
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors"))
    for file in files:
        try:
            with safe_open(str(file), framework="pt") as handle:
                for key in handle.keys():
                    if key.endswith("word_embeddings.weight") or key.endswith("embed_tokens.weight"):
                        return int(handle.get_slice(key).get_shape()[0])
        except Exception as err:  # truncated or corrupt file
            raise ModelFolderError(f"{file}: unreadable weights ({err})") from None
    return None


def _load_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    except Exception as err:
        raise ModelFolderError(
            f"{folder}: no usable tokenizer ({type(err).__name__}: {str(err)[:300]}); a model "
            "folder must contain its tokenizer files (tokenizer.json or sentencepiece model)"
        ) from None
    if not getattr(tokenizer, "is_fast", False):
        raise ModelFolderError(
            f"{folder}: tokenizer is not a fast tokenizer; word_ids() (first-sub-token labels) needs one"
        )
    try:
        tokenizer(["a", "b"], is_split_into_words=True)
    except Exception:  # byte-level BPE tokenizers need add_prefix_space for pre-split words
        tokenizer = AutoTokenizer.from_pretrained(str(folder), add_prefix_space=True)
    return tokenizer


def check_model_folder(path: str | Path, wanted_length: int) -> CheckedModel:
    """Everything that can be checked without training; raises `ModelFolderError`."""
    from transformers import AutoConfig

    folder = Path(path)
    if not folder.is_dir():
        raise ModelFolderError(f"model folder {folder} does not exist")
    present = sorted(p.name for p in folder.iterdir())
    if not (folder / "config.json").exists():
        raise ModelFolderError(f"{folder}: no config.json (folder has {present})")
    weights = [name for name in WEIGHT_FILES if (folder / name).exists()]
    if not weights:
        raise ModelFolderError(f"{folder}: no weights ({' or '.join(WEIGHT_FILES)}); folder has {present}")
    for index in (w for w in weights if w.endswith(".index.json")):
        shards = set(json.loads((folder / index).read_text())["weight_map"].values())
        missing = sorted(s for s in shards if not (folder / s).exists())
        if missing:
            raise ModelFolderError(f"{folder}: {index} names missing shard(s) {missing}")
    try:
        config = AutoConfig.from_pretrained(str(folder))
    except Exception as err:
        raise ModelFolderError(f"{folder}/config.json: cannot be read ({err})") from None
    tokenizer = _load_tokenizer(folder)
    vocab = getattr(config, "vocab_size", None)
    rows = _embedding_rows(folder)
    if vocab is not None and rows is not None and rows != vocab:
        raise ModelFolderError(
            f"{folder}: config.json says vocab_size={vocab} but the weights' embedding has {rows} rows"
        )
    if vocab is not None and len(tokenizer) > vocab:
        raise ModelFolderError(
            f"{folder}: vocabulary mismatch: the tokenizer has {len(tokenizer)} tokens but the "
            f"model's embedding has {vocab} rows (ids >= {vocab} would crash or be wrong); is "
            "this the tokenizer the model was trained with?"
        )
    cfg_pad = getattr(config, "pad_token_id", None)
    if cfg_pad is not None and tokenizer.pad_token_id is not None and cfg_pad != tokenizer.pad_token_id:
        raise ModelFolderError(
            f"{folder}: tokenizer pad id {tokenizer.pad_token_id} != model "
            f"pad_token_id {cfg_pad}; tokenizer and model do not belong together"
        )
    if tokenizer.pad_token_id is None:
        raise ModelFolderError(f"{folder}: tokenizer has no padding token")
    return CheckedModel(folder, tokenizer, config, _max_length(config, tokenizer, wanted_length))


def _max_length(config, tokenizer, wanted: int) -> int:
    limit = getattr(config, "max_position_embeddings", None)
    if limit and getattr(config, "model_type", "") in POSITION_OFFSET_TYPES:
        limit -= (config.pad_token_id or 0) + 1
    tok_limit = getattr(tokenizer, "model_max_length", None)
    candidates = [wanted] + [x for x in (limit, tok_limit) if x and x < 1_000_000]
    return min(candidates)


def load_model(checked: CheckedModel, kind: str, labels: list[str]):
    """A fresh task head on the pretrained encoder (seed it first)."""
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    cls = AutoModelForTokenClassification if kind == "ner" else AutoModelForSequenceClassification
    level = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # the "newly initialised head" report is expected
    transformers.utils.logging.disable_progress_bar()
    try:
        model = cls.from_pretrained(
            str(checked.path),
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={l: i for i, l in enumerate(labels)},
        )
    except Exception as err:
        raise ModelFolderError(
            f"{checked.path}: cannot build a {cls.__name__} ({type(err).__name__}: {str(err)[:300]})"
        ) from None
    finally:
        transformers.logging.set_verbosity(level)
        transformers.utils.logging.enable_progress_bar()
    return model
