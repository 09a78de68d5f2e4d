"""The finetuning tests' inputs: tiny random-init XLM-R model folders (no Hub access), and a
user's own tasks declared in YAML only (`write_user_config`: a CoNLL NER set, a TSV sentiment set).

`build_tiny_model(out_dir)` writes what `pretrain/` writes into `final/`: an XLM-R MLM
(`save_pretrained`, safetensors) plus its fast tokenizer. The tokenizer is a small Unigram
model trained with `tokenizers` on the given texts, with XLM-R's special tokens and ids
(`<s>`=0, `<pad>`=1, `</s>`=2, `<unk>`=3, `<mask>` last; docs/interfaces.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from finetune.run import PRESETS

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]


def _default_texts() -> list[str]:
    return [
        "Ọmọ náà ń lọ sí ilé-ìwé lójoojúmọ́ ní Ìbàdàn.",
        "Ẹ kú àárọ̀, ṣé dáadáa ni Adébáyọ̀?",
        "Yaron yana zuwa makaranta kowace rana a Kano.",
        "Shugaba Muhammadu Buhari ya isa Abuja ranar Litinin.",
        "ልጁ በየቀኑ ወደ ትምህርት ቤት ይሄዳል።",
        "Mtoto anaenda shule kila siku 🙂 Nairobi.",
        "Nwaanyị ahụ na-eri nri n'ụlọ ya na Enugu.",
    ]


def build_tiny_tokenizer(out_dir: str | Path, texts: Iterable[str] | None = None, vocab_size: int = 400):
    """Train a small Unigram tokenizer with XLM-R specials; save it to `out_dir`."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers.trainers import UnigramTrainer
    from transformers import PreTrainedTokenizerFast

    texts = list(texts) if texts is not None else _default_texts()
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = UnigramTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, unk_token="<unk>", max_piece_length=8)
    tok.train_from_iterator(texts * 5, trainer=trainer)
    tok.add_special_tokens(["<mask>"])
    bos, eos = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", bos), ("</s>", eos)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=128,
    )
    out_dir = Path(out_dir)
    fast.save_pretrained(out_dir)
    return fast


def build_tiny_model(
    out_dir: str | Path,
    texts: Iterable[str] | None = None,
    vocab_size: int = 400,
    hidden_size: int = 32,
    layers: int = 2,
    max_length: int = 128,
    seed: int = 0,
    tokenizer_dir: str | Path | None = None,
) -> Path:
    """Random-init XLM-R MLM + tokenizer folder, as pretraining's `final/` looks.

    `tokenizer_dir`: use that tokenizer (e.g. the tokenizer stage's output) instead of
    training a small one here.
    """
    import torch
    from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaForMaskedLM

    out_dir = Path(out_dir)
    if tokenizer_dir is not None:
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
        tokenizer.save_pretrained(out_dir)
    else:
        tokenizer = build_tiny_tokenizer(out_dir, texts, vocab_size)
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden_size * 4,
        # XLM-R positions start after padding_idx (=1): max_length + 2 slots.
        max_position_embeddings=max_length + 2,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        type_vocab_size=1,
    )
    torch.manual_seed(seed)
    XLMRobertaForMaskedLM(config).save_pretrained(out_dir)
    return out_dir


# ---------------------------------------------------------------- a user's own tasks, in YAML only
NER_SENTS = [
    [("Adébáyọ̀", "B-PER"), ("lọ", "O"), ("sí", "O"), ("Ìbàdàn", "B-LOC")],
    [("Musa", "B-PER"), ("Bello", "I-PER"), ("ya", "O"), ("isa", "O"), ("Kano", "B-LOC")],
    [("ልጁ", "O"), ("ወደ", "O"), ("Addis", "B-LOC"), ("Ababa", "I-LOC"), ("ይሄዳል", "O")],
    [("Mtoto", "O"), ("anaenda", "O"), ("Nairobi", "B-LOC"), ("🙂", "O")],
]
CLS_ROWS = [
    ("Ó dára púpọ̀ 🙂", "positive"),
    ("Kò dára rárá", "negative"),
    ("Fíìmù tó dáa", "positive"),
    ("Mi ò fẹ́ràn rẹ̀", "negative"),
]


def write_user_config(folder: Path, tasks: list[str], seeds: list[int]) -> Path:
    """Write ner.txt (each sentence 3 times), sent.tsv (each row 3 times) and user.yaml on the
    tiny preset with `tasks` (myner, mysent) and `seeds`; return the YAML's path."""
    (folder / "ner.txt").write_text(
        "-DOCSTART- O\n\n" + "\n\n".join("\n".join(f"{w}\t{l}" for w, l in s) for s in NER_SENTS * 3), encoding="utf-8"
    )
    (folder / "sent.tsv").write_text(
        "review\tsentiment\n" + "".join(f"{t}\t{l}\n" for t, l in CLS_ROWS * 3), encoding="utf-8"
    )
    path = folder / "user.yaml"
    path.write_text(
        f"""
inherit: {PRESETS / "tiny.yaml"}
tasks: [{", ".join(tasks)}]
langs: []
seeds: [{", ".join(map(str, seeds))}]
train: {{epochs: 2, batch_size: 4, max_length: 16}}
custom_tasks:
  - name: myner
    kind: ner
    langs: [mul]
    files: {{train: {folder}/ner.txt, dev: {folder}/ner.txt, test: {folder}/ner.txt}}
  - name: mysent
    kind: classification
    langs: [yor]
    files: {{train: {folder}/sent.tsv, dev: {folder}/sent.tsv, test: {folder}/sent.tsv}}
    reader: {{text_columns: [review], label_column: sentiment, quoting: none}}
""",
        encoding="utf-8",
    )
    return path
