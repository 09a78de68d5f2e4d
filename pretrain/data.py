"""Token data: corpus text packed once into fixed-length blocks, cached, served as a BlockPool.

Every block starts with `<s>`; documents (corpus records) follow each other, each closed by
`</s>`, and a long document simply continues in the next block (RoBERTa's FULL-SENTENCES
packing). Train blocks (and, with `data.noise_share`, noise blocks made from them:
pretrain/noise.py) form the selection pool; validation blocks come from the corpus stage's
valid split and are never in the pool. The cache folder's name is a hash of the tokenizer hash,
the corpus hash and the block length, so any change to them builds a new cache.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from common import corpus
from common.io import atomic_write, sha256_json, write_json
from pretrain import noise
from tokenizer.artifacts import tokenizer_hash

CACHE_FORMAT = 1  # bump when the cache layout or packing rule changes
INDEX_NAME = "index.json"


@dataclass(frozen=True)
class SpecialIds:
    bos: int  # <s>
    eos: int  # </s>
    pad: int  # <pad>


def special_ids(tokenizer) -> SpecialIds:
    ids = SpecialIds(tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
    if None in (ids.bos, ids.eos, ids.pad):
        raise ValueError(f"tokenizer lacks <s>, </s> or <pad> (got {ids}); see docs/interfaces.md")
    return ids


def pack_documents(
    docs: Iterable[Sequence[int]], block_len: int, ids: SpecialIds, keep_tail: bool = False
) -> tuple[np.ndarray, int]:
    """Pack token lists into blocks `[<s>, doc1..., </s>, doc2..., </s>, ...]` of `block_len`.

    Returns (blocks int32 (n, block_len), tokens dropped). The last, partly filled block is
    padded with `<pad>` when `keep_tail` (validation, generated text) and dropped otherwise
    (training: no block of mostly padding), its tokens counted as dropped.
    """
    body = block_len - 1  # room after <s>
    stream: list[int] = []
    for doc in docs:
        if len(doc):
            stream.extend(doc)
            stream.append(ids.eos)
    n_full = len(stream) // body
    tail = len(stream) - n_full * body
    n_blocks = n_full + (1 if keep_tail and tail else 0)
    blocks = np.full((n_blocks, block_len), ids.pad, dtype=np.int32)
    blocks[:, 0] = ids.bos
    if n_full:
        blocks[:n_full, 1:] = np.asarray(stream[: n_full * body], dtype=np.int32).reshape(n_full, body)
    if n_blocks > n_full:
        blocks[n_full, 1 : 1 + tail] = stream[n_full * body :]
    return blocks, (0 if keep_tail else tail)


def tokenize_texts(tokenizer, texts: Iterable[str], batch: int) -> Iterable[list[int]]:
    """Token ids of each text, no special tokens; batched for the fast tokenizer's threads.

    Goes to the Rust tokenizer directly: documents longer than the model are expected here
    (packing splits them), so the wrapper's max-length warning would only be noise.
    """
    backend = tokenizer.backend_tokenizer
    buffer: list[str] = []
    for text in texts:
        buffer.append(text)
        if len(buffer) >= batch:
            yield from (enc.ids for enc in backend.encode_batch(buffer, add_special_tokens=False))
            buffer = []
    if buffer:
        yield from (enc.ids for enc in backend.encode_batch(buffer, add_special_tokens=False))


def cache_key(tok_hash: str, corpus_hash: str, block_len: int) -> str:
    return sha256_json({"tokenizer": tok_hash, "corpus": corpus_hash, "block_len": block_len, "format": CACHE_FORMAT})[
        :20
    ]


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_write(path, "wb") as handle:
        np.save(handle, array)


def build_block_cache(
    corpus_dir: Path,
    tokenizer,
    tokenizer_dir: Path,
    block_len: int,
    cache_root: Path,
    batch: int = 1000,
    log=print,
) -> Path:
    """Tokenize and pack every corpus language once; return the cache folder (reused if complete)."""
    key = cache_key(tokenizer_hash(tokenizer_dir), corpus.corpus_hash(corpus_dir), block_len)
    final = Path(cache_root) / key
    if (final / INDEX_NAME).exists():
        log(f"[data] token blocks cached in {final}")
        return final
    ids = special_ids(tokenizer)
    Path(cache_root).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cache_root, prefix=f".{key}."))
    try:
        index = {"block_len": block_len, "format": CACHE_FORMAT, "langs": {}}
        for lang in corpus.list_languages(corpus_dir):
            entry = {}
            for split, keep_tail in (("train", False), ("valid", True)):
                docs = tokenize_texts(tokenizer, corpus.iter_texts(corpus_dir, lang, split), batch)
                blocks, dropped = pack_documents(docs, block_len, ids, keep_tail=keep_tail)
                _save_npy(tmp / lang / f"{split}.npy", blocks)
                entry[split] = {"blocks": int(len(blocks)), "dropped_tokens": int(dropped)}
            index["langs"][lang] = entry
            log(f"[data] {lang}: {entry['train']['blocks']} train / {entry['valid']['blocks']} valid blocks")
        write_json(tmp / INDEX_NAME, index)  # last: marks the cache complete
        try:
            os.replace(tmp, final)
        except OSError:  # another process built it first
            if not (final / INDEX_NAME).exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def cache_root(cache_dir: str | Path | None, out_dir: str | Path) -> Path:
    """Where a run's token-block caches live: `data.cache_dir`, else `<out_dir>/../cache` (shared by
    the runs beside it)."""
    return Path(cache_dir) if cache_dir else Path(out_dir).parent / "cache"


def run_block_cache(cfg, tokenizer, tokenizer_dir: Path, log=print) -> Path:
    """The token-block cache of the pretraining config `cfg` (built if missing; see build_block_cache)."""
    return build_block_cache(
        cfg.corpus_dir,
        tokenizer,
        tokenizer_dir,
        cfg.data.block_len,
        cache_root(cfg.data.cache_dir, cfg.out_dir),
        cfg.data.tokenize_batch,
        log=log,
    )


def read_index(cache: Path) -> dict:
    return json.loads((Path(cache) / INDEX_NAME).read_text(encoding="utf-8"))


def load_valid_blocks(cache: Path, lang: str) -> np.ndarray:
    """The validation blocks of `lang` (memory-mapped, in corpus order)."""
    path = Path(cache) / lang / "valid.npy"
    if not path.exists():
        return np.zeros((0, read_index(cache)["block_len"]), dtype=np.int32)
    return np.load(path, mmap_mode="r")


class PackedBlockPool:
    """`pretrain.pool.BlockPool` over a block cache, plus generated blocks added during training.

    Ids: the cached train blocks of each language in sorted-language order (contiguous ranges),
    then the noise blocks of each language (`noise_share` > 0, pretrain/noise.py; same order),
    then generated blocks in the order they were added. Noise is rebuilt from the cache, never
    checkpointed; `noise_kind` names it.
    """

    def __init__(
        self,
        cache: Path,
        langs: Sequence[str],
        tokenizer,
        corpus_dir: Path,
        batch: int = 1000,
        noise_share: float = 0.0,
    ):
        index = read_index(cache)
        self.block_len: int = index["block_len"]
        self.tokenizer = tokenizer  # the run's fast tokenizer (the afrolm strategy decodes with it)
        self._corpus_dir = Path(corpus_dir)
        self._batch = batch
        self._langs = sorted(langs)
        self._arrays = [np.load(Path(cache) / lang / "train.npy", mmap_mode="r") for lang in self._langs]
        sizes = [len(a) for a in self._arrays]
        self._offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.n_real = int(self._offsets[-1])
        self._noise, self._noise_codes = self._build_noise(noise_share)
        self._noise_offsets = self.n_real + np.concatenate(
            [[0], np.cumsum([len(c) for c in self._noise_codes])]
        ).astype(np.int64)
        self.n_noise = int(self._noise_offsets[-1]) - self.n_real
        self._noise_code_of = np.concatenate(self._noise_codes)  # by id - n_real
        self.n_base = self.n_real + self.n_noise
        self._gen_blocks = np.zeros((0, self.block_len), dtype=np.int32)
        self._gen_langs: list[str] = []
        self._sentences: dict[str, list[str]] = {}

    @property
    def languages(self) -> list[str]:
        return list(self._langs)

    def __len__(self) -> int:
        return self.n_base + len(self._gen_blocks)

    def ids(self, lang: str) -> np.ndarray:
        i = self._langs.index(lang)
        base = np.arange(self._offsets[i], self._offsets[i + 1], dtype=np.int64)
        gen = np.flatnonzero(np.asarray(self._gen_langs, dtype=object) == lang).astype(np.int64)
        return np.concatenate([base, self.noise_ids(lang), self.n_base + gen])

    def noise_ids(self, lang: str) -> np.ndarray:
        """The ids of `lang`'s noise blocks (none without `noise_share`)."""
        i = self._langs.index(lang)
        return np.arange(self._noise_offsets[i], self._noise_offsets[i + 1], dtype=np.int64)

    def noise_kind(self, ids: Sequence[int]) -> np.ndarray:
        """Per id: its noise kind (pretrain/noise.py KINDS), "" for training and generated blocks."""
        ids = np.asarray(ids, dtype=np.int64)
        out = np.array([""] * len(ids), dtype=object)
        inside = (ids >= self.n_real) & (ids < self.n_base)
        if inside.any():
            codes = self._noise_code_of[ids[inside] - self.n_real]
            out[inside] = np.asarray(noise.KINDS, dtype=object)[codes]
        return out

    def _locate(self, gid: int) -> tuple[np.ndarray, int, int]:
        """(array, row, language index) of a cached or noise block id."""
        if gid < self.n_real:
            lang_i = int(np.searchsorted(self._offsets, gid, side="right")) - 1
            return self._arrays[lang_i], gid - int(self._offsets[lang_i]), lang_i
        lang_i = int(np.searchsorted(self._noise_offsets, gid, side="right")) - 1
        return self._noise[lang_i], gid - int(self._noise_offsets[lang_i]), lang_i

    def blocks(self, ids: Sequence[int]) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        out = np.empty((len(ids), self.block_len), dtype=np.int64)
        if len(ids) and (ids.min() < 0 or ids.max() >= len(self)):
            raise IndexError(f"block id out of range [0, {len(self)}): {ids.min()}..{ids.max()}")
        for row, gid in enumerate(ids):
            if gid >= self.n_base:
                out[row] = self._gen_blocks[gid - self.n_base]
            else:
                array, i, _ = self._locate(int(gid))
                out[row] = array[i]
        return out

    def _build_noise(self, share: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Each language's noise blocks and kind codes (empty without `share`)."""
        if share <= 0:
            empty = np.zeros((0, self.block_len), dtype=np.int32)
            return [empty] * len(self._langs), [np.zeros(0, np.uint8)] * len(self._langs)
        tok = self.tokenizer  # without one (reading a finished run's pool), the fixed XLM-R layout
        bos = tok.bos_token_id if tok is not None else 0
        special = list(tok.all_special_ids) if tok is not None else [0, 1, 2, 3]  # <s> <pad> </s> <unk>
        train = dict(zip(self._langs, self._arrays))
        built = [noise.build_noise(lang, train, share, bos, special) for lang in self._langs]
        return [b for b, _ in built], [c for _, c in built]

    def sample_sentences(self, lang: str, n: int, rng: np.random.Generator) -> list[str]:
        if lang not in self._sentences:  # read once: a language's text is a few MB at most
            self._sentences[lang] = [t for t in corpus.iter_texts(self._corpus_dir, lang, "train") if t.strip()]
        lines = self._sentences[lang]
        if not lines or n <= 0:
            return []
        picks = rng.choice(len(lines), size=min(n, len(lines)), replace=False)
        return [lines[i] for i in picks]

    def add_generated(self, lang: str, texts: Sequence[str]) -> np.ndarray:
        if lang not in self._langs:
            raise KeyError(f"add_generated: {lang!r} is not a pool language ({', '.join(self._langs)})")
        docs = tokenize_texts(self.tokenizer, texts, self._batch)
        new, _ = pack_documents(docs, self.block_len, special_ids(self.tokenizer), keep_tail=True)
        return self._append(lang, new)

    def _append(self, lang: str, new: np.ndarray) -> np.ndarray:
        start = len(self)
        self._gen_blocks = np.concatenate([self._gen_blocks, new.astype(np.int32)])
        self._gen_langs.extend([lang] * len(new))
        return np.arange(start, start + len(new), dtype=np.int64)

    # Checkpointing: generated blocks are stored as tokens, so resuming needs no re-tokenizing.
    def state_dict(self) -> dict:
        return {"gen_blocks": self._gen_blocks.copy(), "gen_langs": list(self._gen_langs)}

    def load_state_dict(self, state: dict) -> None:
        self._gen_blocks = np.zeros((0, self.block_len), dtype=np.int32)
        self._gen_langs = []
        blocks = np.asarray(state["gen_blocks"], dtype=np.int32).reshape(-1, self.block_len)
        for lang in dict.fromkeys(state["gen_langs"]):
            if lang not in self._langs:
                raise KeyError(f"checkpoint has generated blocks of {lang!r}, not a pool language")
        self._gen_blocks = blocks
        self._gen_langs = list(state["gen_langs"])
