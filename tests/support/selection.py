"""Selection test set-up: a tiny real tokenizer (tests.support.tokenizer, SentencePiece -> HF
fast), a 2-layer hidden-32 XLM-R MLM, and an in-memory BlockPool over Yoruba, Hausa, Amharic
(Ge'ez) and Swahili text. A test module that uses the fixtures imports them by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaForMaskedLM

from pretrain import runfiles
from pretrain.scoring import scoring_mask, special_token_ids
from pretrain.selection import SelectionConfig
from tests.support.tokenizer import TINY_TEXTS, build_tiny_tokenizer

BLOCK_LEN = 32
LANGS = {"yor": 400, "hau": 200, "amh": 100, "swa": 40}  # sentences per language: uneven on purpose


def synthetic_sentences(lang: str, n: int, seed: int) -> list[str]:
    """Sentences of 5-12 words drawn (Zipf-like) from the language's real words."""
    words = sorted({w for line in TINY_TEXTS[lang] for w in line.split()})
    rng = np.random.default_rng([seed, len(lang), ord(lang[0])])
    weights = 1.0 / np.arange(1, len(words) + 1)
    weights /= weights.sum()
    return [" ".join(rng.choice(words, size=rng.integers(5, 13), p=weights)) for _ in range(n)]


class MemoryPool:
    """The BlockPool protocol over in-memory token blocks (what pretrain/data.py provides)."""

    def __init__(self, tokenizer, train: dict[str, list[str]], valid: dict[str, list[str]], block_len: int = BLOCK_LEN):
        self.tokenizer, self.block_len = tokenizer, block_len
        self.train, self.valid = train, valid  # valid is here only to prove it is never used
        self.rows: list[np.ndarray] = []
        self.langs: list[str] = []
        self.generated: dict[str, list[str]] = {}
        self.sampled: dict[str, list[str]] = {}
        for lang, texts in train.items():
            self.add_texts(lang, texts)

    def pack(self, texts) -> list[np.ndarray]:
        ids = []
        for text in texts:
            ids += self.tokenizer(text, add_special_tokens=False)["input_ids"] + [2]
        step = self.block_len - 1
        out = []
        for start in range(0, len(ids), step):
            if len(ids) - start < 2:  # a lone trailing `</s>` is no block
                break
            row = [0] + ids[start : start + step]
            out.append(np.array(row + [1] * (self.block_len - len(row)), dtype=np.int64))
        return out

    def add_rows(self, lang: str, rows) -> np.ndarray:
        first = len(self.rows)
        self.rows += list(rows)
        self.langs += [lang] * len(rows)
        return np.arange(first, len(self.rows), dtype=np.int64)

    def add_texts(self, lang: str, texts) -> np.ndarray:
        return self.add_rows(lang, self.pack(texts))

    @property
    def languages(self) -> list[str]:
        return sorted(set(self.langs))

    def ids(self, lang: str) -> np.ndarray:
        return np.array([i for i, l in enumerate(self.langs) if l == lang], dtype=np.int64)

    def blocks(self, ids) -> np.ndarray:
        return np.stack([self.rows[int(i)] for i in ids])

    def sample_sentences(self, lang, n, rng) -> list[str]:
        texts = self.train[lang]
        picked = [texts[i] for i in rng.choice(len(texts), size=min(n, len(texts)), replace=False)]
        self.sampled.setdefault(lang, []).extend(picked)
        return picked

    def add_generated(self, lang, texts) -> np.ndarray:
        self.generated.setdefault(lang, []).extend(texts)
        return self.add_texts(lang, texts)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """A 2-layer, hidden-32 model gains nothing from threads; on a busy 2-core CI machine
    two threads per process made these tests ten times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return AutoTokenizer.from_pretrained(build_tiny_tokenizer(tmp_path_factory.mktemp("tok")))


def corpus(seed: int = 0) -> tuple[dict, dict]:
    train = {lang: synthetic_sentences(lang, n, seed) for lang, n in LANGS.items()}
    valid = {lang: synthetic_sentences(lang, 20, seed + 100) for lang in LANGS}
    return train, valid


def make_pool(tokenizer) -> MemoryPool:
    return MemoryPool(tokenizer, *corpus())


def tiny_model(tokenizer, seed: int = 0) -> XLMRobertaForMaskedLM:
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=BLOCK_LEN + 2,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )
    torch.manual_seed(seed)
    return XLMRobertaForMaskedLM(config)


def train_briefly(model, pool: MemoryPool, steps: int = 150, seed: int = 0) -> None:
    """Plain MLM on the pool's blocks, so that scores mean something."""
    ids = np.concatenate([pool.ids(lang) for lang in pool.languages])
    blocks = torch.as_tensor(pool.blocks(ids))
    special = list(special_token_ids(model).values())
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        batch = blocks[torch.randint(len(blocks), (32,), generator=gen)]
        mask = scoring_mask(batch, 0.15, gen, special)
        labels = batch.masked_fill(~mask, -100)
        loss = model(
            input_ids=batch.masked_fill(mask, len(pool.tokenizer) - 1),
            attention_mask=(batch != 1).long(),
            labels=labels,
        ).loss
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.fixture(scope="module")
def trained(tokenizer):
    """(initial weights, a briefly trained model) on the clean pool."""
    model = tiny_model(tokenizer)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    train_briefly(model, make_pool(tokenizer))
    return initial, model


def read_round(path):
    """(candidate lines, summary line) of a round file, read by its owner's reader."""
    found = runfiles.read_round(path)
    assert found.summary is not None
    return found.candidates, found.summary


def cfg_for(strategy: str, **kw) -> SelectionConfig:
    base = dict(
        strategy=strategy,
        blocks_per_round=40,
        candidates_per_round=120,
        score_batch_size=64,
        afrolm_prompts_per_round=24,
        rho_reference_steps=10,
    )
    return SelectionConfig(**{**base, **kw})


def plant_junk(pool: MemoryPool, lang: str, n_each: int, seed: int) -> set[int]:
    """One character repeated, random bytes, another script (Ge'ez or Latin), n_each each."""
    rng = np.random.default_rng(seed)
    other = "amh" if lang != "amh" else "hau"
    texts = ["ẹ" * 60] * n_each
    texts += [rng.bytes(80).decode("utf-8", errors="replace") for _ in range(n_each)]
    texts += [" ".join(synthetic_sentences(other, 4, seed + i)) for i in range(n_each)]
    ids = set()
    for text in texts:  # one block each, the way a bad source line would arrive
        ids |= set(pool.add_rows(lang, pool.pack([text])[:1]).tolist())
    return ids
