"""Vocabulary surgery on an XLM-R/RoBERTa masked LM and its fast tokenizer (continued pretraining).

Reduction, as AfroXLMR did it (Alabi et al., 2022): keep the pieces our corpus uses. The embedding
rows, the LM head's decoder rows (when untied from the embeddings) and its bias are sliced to the
kept ids, in their old order, and the tokenizer's model loses every other piece. Text whose
segmentation used only kept pieces is segmented as before, and the model's logits over the kept
pieces are unchanged.

Extension: pieces of our own tokenizer that the checkpoint lacks are appended after the old ids,
which keep their vectors. A new piece's rows start as the mean of the rows of its segmentation
under the old tokenizer, and (Unigram) it scores just above that segmentation, so the tokenizer
picks it wherever it would have spelled out its text.

The tokenizers library builds a model from (piece, score) lists but shows the scores only in its
JSON form, so a tokenizer is changed there and loaded back with `Tokenizer.from_str`.
"""

from __future__ import annotations

import copy
import json
import re
from collections import defaultdict
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from tokenizers import Tokenizer

from pretrain.data import tokenize_texts

# Every tensor of an XLM-R/RoBERTa masked LM that has one row per piece. When the embeddings are
# tied, the decoder weight is the embedding matrix and its bias is lm_head.bias.
VOCAB_TENSORS = (
    "roberta.embeddings.word_embeddings.weight",
    "lm_head.decoder.weight",
    "lm_head.decoder.bias",
    "lm_head.bias",
)
BYTE_PIECE = re.compile(r"<0x[0-9A-Fa-f]{2}>")
# tokenizers' Unigram gives a character no piece covers this much less than its lowest score.
UNK_PENALTY = 10.0
# A new piece's score over its old segmentation: LENGTH_BONUS * len(piece)^2. Squares add up to
# less than the square of the sum, so a piece always beats any split of its own text into other
# new pieces (see `_new_piece_score`).
LENGTH_BONUS = 1e-3


# ---- the tokenizer's model -------------------------------------------------------------------
def tokenizer_spec(tokenizer) -> dict:
    """The fast tokenizer's full pipeline as tokenizers serialises it (tokenizer.json)."""
    return json.loads(tokenizer.backend_tokenizer.to_str())


def model_pieces(spec: dict) -> list[str]:
    """The pieces of the tokenizer's model, by id (added tokens beyond them not included)."""
    model = spec["model"]
    if model["type"] == "Unigram":
        return [piece for piece, _ in model["vocab"]]
    if model["type"] == "BPE":
        return sorted(model["vocab"], key=model["vocab"].get)
    raise ValueError(f"tokenizer model {model['type']!r} is not supported; XLM-R's Unigram and RoBERTa's BPE are")


def _merges(model: dict) -> list[tuple[str, str]]:
    """BPE merges, written as pairs or as "left right" strings (older tokenizer.json)."""
    return [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in model["merges"]]


def _added_ids(spec: dict) -> list[int]:
    return [token["id"] for token in spec["added_tokens"]]


# ---- reduction -------------------------------------------------------------------------------
def count_pieces(tokenizer, texts: Iterable[str], batch: int = 1000) -> np.ndarray:
    """int64 (len(tokenizer),): how often each id occurs when `texts` are tokenized."""
    counts = np.zeros(len(tokenizer), dtype=np.int64)
    buffer: list[int] = []
    for ids in tokenize_texts(tokenizer, texts, batch):
        buffer.extend(ids)
        if len(buffer) >= 1 << 20:  # one bincount per million ids, not per text
            counts += np.bincount(buffer, minlength=len(counts))
            buffer = []
    if buffer:
        counts += np.bincount(buffer, minlength=len(counts))
    return counts


def _merge_parents(kept: set[str], merges: Sequence[tuple[str, str]]) -> set[str]:
    """`kept` plus every piece a BPE tokenizer passes through to build a kept piece: both parts
    of each merge whose result is kept, recursively (a kept piece stays reachable)."""
    made_by = defaultdict(list)
    for left, right in merges:
        made_by[left + right].append((left, right))
    kept, todo = set(kept), list(kept)
    while todo:
        for pair in made_by.get(todo.pop(), ()):
            for part in pair:
                if part not in kept:
                    kept.add(part)
                    todo.append(part)
    return kept


def kept_ids(tokenizer, counts: np.ndarray, min_count: int) -> np.ndarray:
    """Sorted ids to keep: pieces seen at least `min_count` times, and always the special and
    added tokens, byte-fallback pieces (they spell any character) and, for BPE, the alphabet
    (BPE starts from single characters; a byte-level BPE has no other way to spell a byte) and
    every piece a kept piece is merged from."""
    spec = tokenizer_spec(tokenizer)
    pieces = model_pieces(spec)
    keep = np.asarray(counts) >= min_count
    keep[_added_ids(spec) + list(tokenizer.all_special_ids)] = True
    model = spec["model"]
    if model.get("byte_fallback"):
        keep[[i for i, p in enumerate(pieces) if BYTE_PIECE.fullmatch(p)]] = True
    if model["type"] == "BPE":
        kept = {p for i, p in enumerate(pieces) if keep[i] or len(p) == 1}
        kept = _merge_parents(kept, _merges(model))
        keep[[i for i, p in enumerate(pieces) if p in kept]] = True
    return np.flatnonzero(keep)


def _remap_post_processor(node: dict | None, id_map: dict[int, int]) -> dict | None:
    """The ids of `<s>`/`</s>` that the post-processor adds, renumbered."""
    if node is None:
        return None
    kind = node["type"]
    if kind in ("RobertaProcessing", "BertProcessing"):
        for key in ("sep", "cls"):
            node[key] = [node[key][0], id_map[node[key][1]]]
    elif kind == "TemplateProcessing":
        for token in node["special_tokens"].values():
            token["ids"] = [id_map[i] for i in token["ids"]]
    elif kind == "Sequence":
        node["processors"] = [_remap_post_processor(p, id_map) for p in node["processors"]]
    return node


def reduced_spec(spec: dict, keep: Sequence[int]) -> dict:
    """tokenizer.json with only the `keep` ids (in their old order), renumbered from 0."""
    spec = copy.deepcopy(spec)
    id_map = {old: new for new, old in enumerate(keep)}
    pieces = model_pieces(spec)
    model = spec["model"]
    if model["type"] == "Unigram":
        model["vocab"] = [model["vocab"][i] for i in keep if i < len(pieces)]
        if model.get("unk_id") is not None:
            model["unk_id"] = id_map[model["unk_id"]]
    else:  # BPE: a merge stays when its parts and its result stay
        kept = {pieces[i] for i in keep if i < len(pieces)}
        model["vocab"] = {p: id_map[i] for p, i in model["vocab"].items() if i in id_map}
        as_strings = bool(model["merges"]) and isinstance(model["merges"][0], str)
        merges = [(a, b) for a, b in _merges(model) if a in kept and b in kept and a + b in kept]
        model["merges"] = [f"{a} {b}" for a, b in merges] if as_strings else [[a, b] for a, b in merges]
    for token in spec["added_tokens"]:
        token["id"] = id_map[token["id"]]
    spec["post_processor"] = _remap_post_processor(spec.get("post_processor"), id_map)
    if spec.get("padding"):
        spec["padding"]["pad_id"] = id_map[spec["padding"]["pad_id"]]
    return spec


def reduce_vocab(model, tokenizer, keep: Sequence[int]):
    """(model, tokenizer) with only the `keep` ids; returns new objects, the inputs are untouched."""
    keep = [int(i) for i in keep]
    if sorted(set(keep)) != keep:
        raise ValueError("keep must be sorted, distinct ids")
    spec = tokenizer_spec(tokenizer)
    dropped = sorted(set(_added_ids(spec)) - set(keep))
    if dropped:
        raise ValueError(f"special/added token ids {dropped} must be kept")
    id_map = {old: new for new, old in enumerate(keep)}
    pad = model.config.pad_token_id
    if pad is not None and id_map.get(pad) != pad:
        # XLM-R counts positions from the padding id: moving it would shift every position.
        raise ValueError(f"the padding id {pad} must keep its id (keep every id below it)")
    index = torch.tensor(keep, dtype=torch.long)
    reduced = _with_vocab_rows(model, len(keep), lambda rows: rows[index])
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        if getattr(model.config, name, None) is not None:
            setattr(reduced.config, name, id_map[getattr(model.config, name)])
    return reduced, wrap_tokenizer(reduced_spec(spec, keep), tokenizer)


# ---- extension -------------------------------------------------------------------------------
def missing_pieces(tokenizer, ours) -> list[str]:
    """Ordinary pieces of `ours` (no special, added or byte-fallback pieces) that `tokenizer`
    lacks, in `ours`'s id order."""
    have = set(tokenizer.get_vocab())
    our_spec = tokenizer_spec(ours)
    skip = {token["content"] for token in our_spec["added_tokens"]} | set(ours.all_special_tokens)
    return [p for p in model_pieces(our_spec) if p not in have and p not in skip and not BYTE_PIECE.fullmatch(p)]


def _lattice_score(piece: str, tokens, scores: dict[str, float], unk_id: int | None, unk_score: float) -> float:
    """Score of the Unigram tokenizer's best path through `piece`, from its segmentation `tokens`:
    the scores of its pieces, and `unk_score` per character no piece covers (those come back as
    <unk> or as byte-fallback pieces)."""
    known = [t for t in tokens if t.id != unk_id and not BYTE_PIECE.fullmatch(t.value)]
    unknown_chars = len(piece) - sum(len(t.value) for t in known)
    return sum(scores[t.value] for t in known) + unknown_chars * unk_score


def _new_piece_score(old_best: float, piece: str) -> float:
    """Just above the old segmentation of the piece's text. Any other path through that text
    scores at most the old best plus LENGTH_BONUS * (sum of its new pieces' squared lengths),
    which is below LENGTH_BONUS * len(piece)^2: the piece wins on its own text."""
    return old_best + LENGTH_BONUS * len(piece) ** 2


def extend_vocab(model, tokenizer, pieces: Sequence[str]):
    """(model, tokenizer) with `pieces` appended as new ids; returns new objects. Unigram only:
    a BPE tokenizer would need new merges, which can break the paths to other pieces."""
    spec = tokenizer_spec(tokenizer)
    unigram = spec["model"]
    if unigram["type"] != "Unigram":
        raise ValueError(f"vocabulary extension needs a Unigram tokenizer (as XLM-R's); this one is {unigram['type']}")
    old_size = len(unigram["vocab"])
    if old_size != len(tokenizer) or max(_added_ids(spec), default=0) >= old_size:
        raise ValueError(
            "vocabulary extension needs every added token inside the tokenizer's model "
            f"vocabulary ({old_size} pieces, {len(tokenizer)} ids)"
        )
    have = set(model_pieces(spec))
    if any(p in have for p in pieces) or len(set(pieces)) != len(pieces):
        raise ValueError("pieces to add must be new and distinct")
    scores = dict(map(tuple, unigram["vocab"]))
    unk_id = unigram.get("unk_id")
    unk_score = min(scores.values()) - UNK_PENALTY
    old_model = tokenizer.backend_tokenizer.model
    segments = []
    for piece in pieces:
        tokens = old_model.tokenize(piece)
        segments.append([t.id for t in tokens])
        old_best = _lattice_score(piece, tokens, scores, unk_id, unk_score)
        unigram["vocab"].append([piece, _new_piece_score(old_best, piece)])
    extended = wrap_tokenizer(spec, tokenizer)
    unreachable = [
        p
        for i, p in enumerate(pieces)
        if [t.id for t in extended.backend_tokenizer.model.tokenize(p)] != [old_size + i]
    ]
    if unreachable:  # cannot happen by the scoring rule above; a guard against tokenizers changes
        raise RuntimeError(f"{len(unreachable)} new pieces are not reachable, e.g. {unreachable[:5]}")

    def rows(old: torch.Tensor) -> torch.Tensor:
        means = [old[torch.tensor(ids, dtype=torch.long)].mean(0) for ids in segments]
        return torch.cat([old, torch.stack(means)]) if means else old.clone()

    return _with_vocab_rows(model, old_size + len(pieces), rows), extended


# ---- shared ----------------------------------------------------------------------------------
def _with_vocab_rows(model, size: int, rows: Callable[[torch.Tensor], torch.Tensor]):
    """A copy of `model` with `size` pieces, each per-piece tensor replaced by `rows(tensor)`.
    Built afresh from its config and loaded strictly, so tied weights stay tied."""
    config = copy.deepcopy(model.config)
    config.vocab_size = size
    state = {name: rows(t) if name in VOCAB_TENSORS else t for name, t in model.state_dict().items()}
    missing = [name for name in VOCAB_TENSORS if name not in state]
    if missing:
        raise ValueError(f"{type(model).__name__} has no {', '.join(missing)}; not an XLM-R/RoBERTa masked LM")
    resized = type(model)(config)
    resized.load_state_dict(state)
    resized.train(model.training)
    return resized


def wrap_tokenizer(spec: dict, like):
    """A fast tokenizer from tokenizer.json `spec`, with the special tokens of `like`. Saved, it
    names the generic fast class, which loads tokenizer.json exactly as written."""
    from tokenizer.convert import PortableTokenizerFast

    specials = {}
    for name, value in like.special_tokens_map.items():
        if isinstance(value, str):  # keep the AddedToken's flags (<mask> strips the space before it)
            value = like.added_tokens_decoder.get(like.convert_tokens_to_ids(value), value)
        specials[name] = value
    return PortableTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(spec)),
        model_max_length=like.model_max_length,
        clean_up_tokenization_spaces=getattr(like, "clean_up_tokenization_spaces", False),
        **specials,
    )
