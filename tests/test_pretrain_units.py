"""Pure pieces of pretraining: packing, masking, schedule, data order, pool, checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from common.config import ConfigError, load_config
from pretrain import checkpoint as ckpt
from pretrain.config import PretrainConfig
from pretrain.data import PackedBlockPool, SpecialIds, build_block_cache, pack_documents
from pretrain.masking import IGNORE_INDEX, mask_tokens, special_table, word_start_table
from pretrain.optim import lr_factor
from pretrain.runlog import differences
from pretrain.train import derive_seed, parse_args, rank_share, step_block_ids
from tests.support.pretrain import build_inputs

IDS = SpecialIds(bos=0, eos=2, pad=1)


def test_pack_documents_starts_blocks_with_bos_and_separates_documents():
    blocks, dropped = pack_documents([[10, 11, 12], [20, 21], [30, 31, 32, 33]], block_len=5, ids=IDS)
    # stream: 10 11 12 </s> 20 21 </s> 30 31 32 33 </s> -> 12 tokens, 4 per block after <s>
    assert blocks.tolist() == [[0, 10, 11, 12, 2], [0, 20, 21, 2, 30], [0, 31, 32, 33, 2]]
    assert dropped == 0
    blocks, dropped = pack_documents([[10, 11, 12, 13, 14]], block_len=5, ids=IDS)
    assert blocks.tolist() == [[0, 10, 11, 12, 13]] and dropped == 2  # "14 </s>" do not fill a block


def test_pack_documents_pads_the_tail_when_asked_and_skips_empty_docs():
    blocks, dropped = pack_documents([[], [7, 8]], block_len=6, ids=IDS, keep_tail=True)
    assert blocks.tolist() == [[0, 7, 8, 2, 1, 1]] and dropped == 0
    blocks, _ = pack_documents([[7]], block_len=6, ids=IDS)
    assert blocks.shape == (0, 6)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return build_inputs(tmp_path_factory.mktemp("units"), langs=("amh", "yor"), n=60)


@pytest.fixture(scope="module")
def tokenizer(inputs):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(inputs[1]))


def test_mask_tokens_rates_and_specials(tokenizer):
    special = special_table(tokenizer)
    vocab = len(tokenizer)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(4, vocab - 1, (64, 128))
    ids[:, 0], ids[:, -1], ids[:, -5:-1] = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    inputs, labels = mask_tokens(ids, special, tokenizer.mask_token_id, vocab, gen)
    chosen = labels != IGNORE_INDEX
    assert not chosen[special[ids]].any()  # <s>, </s>, <pad> never predicted
    assert torch.equal(labels[chosen], ids[chosen])
    maskable = (~special[ids]).sum().item()
    assert abs(chosen.sum().item() / maskable - 0.15) < 0.02
    n = chosen.sum().item()
    as_mask = (inputs[chosen] == tokenizer.mask_token_id).sum().item() / n
    kept = (inputs[chosen] == ids[chosen]).sum().item() / n
    assert abs(as_mask - 0.8) < 0.03 and abs(kept - 0.1) < 0.03
    assert torch.equal(inputs[~chosen], ids[~chosen])
    # Same generator seed, same masks (resume needs this); another seed, other masks.
    again, _ = mask_tokens(ids, special, tokenizer.mask_token_id, vocab, torch.Generator().manual_seed(0))
    other, _ = mask_tokens(ids, special, tokenizer.mask_token_id, vocab, torch.Generator().manual_seed(1))
    assert torch.equal(inputs, again) and not torch.equal(inputs, other)


def test_whole_word_masking_masks_all_pieces_of_a_word(tokenizer):
    text = "ልጁቤት በየቀኑ ወደ ትምህርትቤት ይሄዳል ọmọnáà ń lọsí ilé ìwélójoojúmọ́ " * 6  # glued: several pieces
    ids = torch.tensor([tokenizer(text)["input_ids"]] * 16)
    starts = word_start_table(tokenizer)
    _, labels = mask_tokens(
        ids,
        special_table(tokenizer),
        tokenizer.mask_token_id,
        len(tokenizer),
        torch.Generator().manual_seed(3),
        probability=0.3,
        word_start=starts,
    )
    chosen = labels != IGNORE_INDEX
    assert chosen.any()
    multi_piece_words = 0
    for row in range(ids.shape[0]):
        word = -1
        decisions: dict[int, set] = {}
        for t in range(ids.shape[1]):
            if starts[ids[row, t]]:
                word += 1
            if ids[row, t] not in (tokenizer.bos_token_id, tokenizer.eos_token_id):
                decisions.setdefault(word, set()).add(bool(chosen[row, t]))
        assert all(len(d) == 1 for d in decisions.values())  # a word is masked whole or not at all
        multi_piece_words += sum(1 for t in range(1, ids.shape[1]) if not starts[ids[row, t]])
    assert multi_piece_words > 0  # the text does have words of several pieces


def test_lr_schedule_warmup_then_decay():
    f = lambda s, kind="linear": lr_factor(s, warmup=10, total=110, schedule=kind, min_ratio=0.1)  # noqa: E731
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.1 + 0.9 * 0.5) and f(110) == pytest.approx(0.1)
    assert f(60, "cosine") == pytest.approx(0.1 + 0.9 * 0.5)
    assert f(35, "cosine") > f(35, "linear")  # cosine stays high longer
    decay = [f(s) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(decay, decay[1:]))
    # warmup-stable-decay: the peak until the last 20% of 110 steps (22), then linear to the floor.
    wsd = [lr_factor(s, warmup=10, total=110, schedule="wsd", min_ratio=0.1) for s in range(111)]
    assert wsd[9] == wsd[10] == wsd[88] == pytest.approx(1.0) and wsd[99] == pytest.approx(0.1 + 0.9 * 0.5)
    assert wsd[110] == pytest.approx(0.1) and all(a >= b for a, b in zip(wsd[10:], wsd[11:]))


def test_step_blocks_wrap_around_and_ranks_split_without_overlap():
    chosen = np.arange(100, 110)
    assert step_block_ids(chosen, 0, 4).tolist() == [100, 101, 102, 103]
    assert step_block_ids(chosen, 2, 4).tolist() == [108, 109, 100, 101]
    step = step_block_ids(chosen, 1, 4)
    parts = [rank_share(step, r, 2) for r in range(2)]
    assert np.concatenate(parts).tolist() == step.tolist()
    assert not set(parts[0]) & set(parts[1])


def test_derive_seed_is_stable_and_distinct():
    assert derive_seed(0, 1, 5, 0) == derive_seed(0, 1, 5, 0)
    assert len({derive_seed(0, 1, s, r) for s in range(50) for r in range(2)}) == 100


def test_config_validation_names_the_setting():
    with pytest.raises(ConfigError, match="model.num_heads"):
        load_config(PretrainConfig, overrides=["model.hidden_size=30", "model.num_heads=4"])
    with pytest.raises(ConfigError, match="train.warmup_steps"):
        load_config(PretrainConfig, overrides=["train.max_steps=5", "train.warmup_steps=9"])
    with pytest.raises(ConfigError, match="nonsense"):
        load_config(PretrainConfig, overrides=["train.nonsense=1"])
    cfg = load_config(PretrainConfig, overrides=["selection.strategy=loss"])
    assert cfg.selection.strategy == "loss"


def test_help_lists_the_settings(capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for name in (
        "--preset",
        "--fresh",
        "model.hidden_size",
        "train.grad_accum",
        "masking.whole_word",
        "selection.strategy",
        "data.block_len",
    ):
        assert name in text


def test_presets_load_and_show_their_arithmetic():
    from pretrain.config import PRESETS_DIR, preset_path
    from common.config import read_yaml_with_inherit

    for name in ("tiny", "small", "base", "afrolm"):
        cfg = load_config(PretrainConfig, base=read_yaml_with_inherit(preset_path(name)))
        text = (PRESETS_DIR / f"{name}.yaml").read_text()
        assert "tokens/step" in text and "params" in text, name
        assert cfg.model.hidden_size % cfg.model.num_heads == 0


def test_differences_name_each_changed_setting():
    lines = differences({"a": 1, "b": "x"}, {"a": 2, "b": "x", "c": True})
    assert lines == ["a: 1 -> 2", "c: (unset) -> true"]


def test_block_pool_ids_blocks_and_generated_state(inputs, tokenizer, tmp_path):
    corpus_dir, tok_dir = inputs
    cache = build_block_cache(corpus_dir, tokenizer, tok_dir, 32, tmp_path / "cache", log=lambda *_: None)
    assert build_block_cache(corpus_dir, tokenizer, tok_dir, 32, tmp_path / "cache", log=lambda *_: None) == cache
    pool = PackedBlockPool(cache, ["amh", "yor"], tokenizer, corpus_dir)
    amh, yor = pool.ids("amh"), pool.ids("yor")
    assert len(amh) and len(yor) and not set(amh) & set(yor)
    blocks = pool.blocks(np.concatenate([amh[:2], yor[:2]]))
    assert blocks.shape == (4, 32) and (blocks[:, 0] == tokenizer.bos_token_id).all()
    decoded = tokenizer.decode(blocks[0][1:].tolist())
    assert any("\u1200" <= ch <= "\u137f" for ch in decoded)  # Ge'ez text survives packing
    state = pool.state_dict()
    rng = np.random.default_rng(0)
    prompts = pool.sample_sentences("yor", 3, rng)
    assert len(prompts) == 3 and all(isinstance(p, str) and p for p in prompts)
    new = pool.add_generated("yor", prompts)
    assert len(new) >= 1 and new[0] == len(amh) + len(yor)
    assert set(new) <= set(pool.ids("yor"))
    grown = pool.state_dict()
    other = PackedBlockPool(cache, ["amh", "yor"], tokenizer, corpus_dir)
    other.load_state_dict(grown)
    assert np.array_equal(other.blocks(new), pool.blocks(new)) and other.ids("yor").tolist() == pool.ids("yor").tolist()
    other.load_state_dict(state)
    assert len(other) == len(amh) + len(yor)


def _save(root, step, payload=b"x"):
    return ckpt.save_checkpoint(
        root, step, {"a.bin": payload * 10, "progress.json": json.dumps({"step": step}).encode()}
    )


def test_checkpoint_keeps_newest_k_row13(tmp_path):
    root = tmp_path / "checkpoints"
    for step in range(1, 7):
        folder = _save(root, step)
        ckpt.prune(root, keep=2, newest=folder)
    assert [s for s, _ in ckpt.list_checkpoints(root)] == [6, 5]
    # A newer folder without COMPLETE (killed while saving) never displaces the only complete one.
    only = _save(tmp_path / "one", 3)
    partial = tmp_path / "one" / ckpt.checkpoint_name(4)
    partial.mkdir()
    (partial / "a.bin").write_bytes(b"half")
    ckpt.prune(tmp_path / "one", keep=1, newest=only)
    assert ckpt.find_latest(tmp_path / "one") == only and only.exists()


def test_checkpoint_checksum_fallback_row3(tmp_path):
    root = tmp_path / "checkpoints"
    _save(root, 1)
    newest = _save(root, 2)
    with open(newest / "a.bin", "r+b") as handle:
        handle.truncate(3)
    warnings = []
    assert ckpt.find_latest(root, warn=warnings.append) == root / ckpt.checkpoint_name(1)
    assert "a.bin does not match its checksum" in warnings[0] and ckpt.checkpoint_name(2) in warnings[0]


def test_cpu_bf16_support_is_read_from_the_cpu_flags(tmp_path):
    from pretrain.train import cpu_has_bf16

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n")
    assert cpu_has_bf16(cpuinfo)
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f amx_tile amx_bf16\n")
    assert cpu_has_bf16(cpuinfo)
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma avx512f\n")  # emulated bf16 is slower
    assert not cpu_has_bf16(cpuinfo)
    assert not cpu_has_bf16(tmp_path / "missing")


def test_unigram_output_bias_makes_the_untrained_model_predict_piece_frequencies(tokenizer):
    from pretrain.config import ModelConfig
    from pretrain.model import MaskedLMObjective, build_model, set_output_bias

    vocab = len(tokenizer)
    special = special_table(tokenizer)
    counts = torch.arange(1, vocab + 1, dtype=torch.float64) ** 2  # a skewed piece distribution
    counts[special] = 0
    log_probs = torch.log(counts / counts.sum())  # -inf for the special tokens
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden_size=32, num_layers=1, num_heads=2, ffn_size=64), tokenizer, 32)
    set_output_bias(model, log_probs.numpy())
    bias = model.lm_head.bias.detach()
    finite = ~special
    assert abs(float(bias[finite].mean())) < 1e-5  # centred
    assert torch.all(bias[special] == bias[finite].min())  # specials get the lowest finite value
    # The untrained model's loss on masked pieces drawn from that distribution is close to the
    # distribution's entropy, far below a uniform guess (ln V).
    gen = torch.Generator().manual_seed(0)
    ids = torch.multinomial(counts.float(), 4 * 32, replacement=True, generator=gen).view(4, 32)
    labels = torch.where(torch.rand(ids.shape, generator=gen) < 0.5, ids, torch.full_like(ids, IGNORE_INDEX))
    inputs = torch.where(labels != IGNORE_INDEX, torch.full_like(ids, tokenizer.mask_token_id), ids)
    model.eval()
    with torch.no_grad():
        loss_sum, n = MaskedLMObjective(model)(inputs, torch.ones_like(ids), labels)
    probs = counts / counts.sum()
    entropy = float(-(probs[finite] * probs[finite].log()).sum())
    assert abs(float(loss_sum / n) - entropy) < 0.3 < np.log(vocab) - entropy


def _attention_on_offsets(model, ids) -> list[float]:
    """Mean first-layer attention each head puts on its neighbour (offsets 1, -1, 2, -2, ...)."""
    from pretrain.model import NEIGHBOUR_OFFSETS

    model.config._attn_implementation = "eager"  # the attention probabilities are returned
    with torch.no_grad():
        attention = model.roberta(input_ids=ids, output_attentions=True).attentions[0]
    rows = torch.arange(4, ids.shape[1] - 4)
    return [float(attention[:, h, rows, rows - NEIGHBOUR_OFFSETS[h]].mean()) for h in range(attention.shape[1])]


def test_neighbour_heads_attend_to_their_neighbour_and_load_as_plain_xlmr(tokenizer, tmp_path):
    from transformers import XLMRobertaForMaskedLM

    from pretrain.config import ModelConfig
    from pretrain.model import build_model, init_neighbour_heads

    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden_size=64, num_layers=2, num_heads=4, ffn_size=128), tokenizer, 32).eval()
    ids = torch.randint(5, len(tokenizer), (8, 32))
    assert max(_attention_on_offsets(model, ids)) < 0.2  # random init: near-uniform over 32 positions
    init_neighbour_heads(model, 32)
    assert min(_attention_on_offsets(model, ids)) > 0.8  # previous, next, two back, two ahead
    model.save_pretrained(tmp_path)
    reloaded = XLMRobertaForMaskedLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits, reloaded(input_ids=ids).logits, atol=1e-5)


def test_neighbour_heads_learn_a_successor_rule_that_random_init_has_not_found(tokenizer):
    """Text where each piece fixes the next: the masked piece is known from its left neighbour.
    From the same seed and steps, the model that starts with neighbour heads is far below the
    unigram (ln of the pieces used) while the random-init one is still near it."""
    from pretrain.config import ModelConfig
    from pretrain.model import MaskedLMObjective, build_model, init_neighbour_heads

    pieces = torch.arange(10, 74)  # 64 pieces, used uniformly
    successor = pieces[torch.randperm(64, generator=torch.Generator().manual_seed(1))]
    next_of = torch.zeros(len(tokenizer), dtype=torch.long)
    next_of[pieces] = successor

    def batch(gen):
        ids = torch.empty(16, 32, dtype=torch.long)
        ids[:, 0] = pieces[torch.randint(0, 64, (16,), generator=gen)]
        for t in range(1, 32):
            ids[:, t] = next_of[ids[:, t - 1]]
        labels = torch.where(torch.rand(ids.shape, generator=gen) < 0.15, ids, torch.full_like(ids, IGNORE_INDEX))
        return torch.where(labels != IGNORE_INDEX, torch.full_like(ids, tokenizer.mask_token_id), ids), labels

    def final_loss(neighbours: bool) -> float:
        torch.manual_seed(0)
        model = build_model(
            ModelConfig(hidden_size=64, num_layers=1, num_heads=2, ffn_size=128, dropout=0.0), tokenizer, 32
        )
        if neighbours:
            init_neighbour_heads(model, 32)
        objective = MaskedLMObjective(model)
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
        gen = torch.Generator().manual_seed(2)
        for _ in range(150):
            inputs, labels = batch(gen)
            loss_sum, n = objective(inputs, torch.ones_like(inputs), labels)
            optimizer.zero_grad()
            (loss_sum / n).backward()
            optimizer.step()
        return float(loss_sum.detach() / n)

    unigram = float(np.log(64))
    assert final_loss(neighbours=True) < unigram - 2.0
    assert final_loss(neighbours=False) > unigram - 1.0
