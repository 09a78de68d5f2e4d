"""SentencePiece model -> Hugging Face fast tokenizer with the same ids.

Built with `tokenizers` directly rather than transformers' XLM-R converter: that converter
shifts ids by fairseq's offset and (in transformers 5) `XLMRobertaTokenizer` rebuilds its
own pipeline without byte fallback, so the folder names the generic fast class, which loads
tokenizer.json exactly as written. It is named `PreTrainedTokenizerFast` (not transformers 5's
`TokenizersBackend`, unknown to transformers 4) so the folder loads in both lines.

Pipeline, mirroring SentencePiece with add_dummy_prefix and the identity rule:
  normalizer     NFC, then prepend "▁", then " " -> "▁"   (like spm's escaping of spaces)
  pre-tokenizer  split before every "▁"                    (spm's split_by_whitespace)
  model          Unigram or BPE over the same pieces, byte_fallback on
  decoder        "▁" -> " ", <0xHH> bytes -> text, drop the dummy prefix space
  post-processor <s> A </s>  and  <s> A </s></s> B </s>    (XLM-R)
Known, documented exceptions to "same ids as SentencePiece for any text": literal special
token strings (`<s>`, `<mask>`, ...) are read as the special tokens (fill-mask needs that),
and U+2581 decodes as a space, as in SentencePiece itself (see docs/tokenizer.md). A literal
"<0x41>" stays text: byte pieces score far below everything, and spm_train makes "<>x0-9A-F"
single-character pieces, so spelling it out is always the cheaper Unigram path.
"""

from __future__ import annotations

import sentencepiece as spm
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from tokenizer.artifacts import make_portable

SPACE = "\u2581"
MASK = "<mask>"
SPECIAL_TOKENS = dict(
    bos_token="<s>", pad_token="<pad>", eos_token="</s>", unk_token="<unk>", cls_token="<s>", sep_token="</s>"
)
# Byte pieces get a score far below any real piece so the Unigram lattice never prefers
# reading a literal "<0x41>" in the text as a byte (SentencePiece never matches byte pieces).
BYTE_PIECE_SCORE = -1e6


def _piece_table(sp: spm.SentencePieceProcessor) -> list[tuple[str, float]]:
    table = []
    for i in range(sp.get_piece_size()):
        score = sp.get_score(i)
        if sp.is_byte(i):
            score = BYTE_PIECE_SCORE
        elif sp.is_control(i) or sp.is_unknown(i):
            score = 0.0
        table.append((sp.id_to_piece(i), score))
    return table


def _bpe_merges(sp: spm.SentencePieceProcessor, vocab: dict[str, int]) -> list[tuple[str, str]]:
    """Merges that rebuild SentencePiece's BPE pieces, ranked by the merged piece's id.

    SentencePiece BPE ids are in merge order, so piece k is built from two pieces of lower
    rank; every split of a piece into two known normal pieces is a candidate merge.
    """
    normal = {
        p: i
        for p, i in vocab.items()
        if i < sp.get_piece_size() and not (sp.is_unknown(i) or sp.is_control(i) or sp.is_byte(i))
    }
    merges = []
    for piece, rank in normal.items():
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in normal and right in normal:
                merges.append((rank, normal[left], normal[right], left, right))
    merges.sort()
    return [(left, right) for _, _, _, left, right in merges]


def build_backend(sp: spm.SentencePieceProcessor, model_type: str) -> Tokenizer:
    table = _piece_table(sp) + [(MASK, 0.0)]
    unk_id = sp.unk_id()
    if model_type == "unigram":
        model = models.Unigram(table, unk_id=unk_id, byte_fallback=True)
    elif model_type == "bpe":
        vocab = {piece: i for i, (piece, _) in enumerate(table)}
        model = models.BPE(
            vocab, _bpe_merges(sp, vocab), unk_token=sp.id_to_piece(unk_id), fuse_unk=True, byte_fallback=True
        )
    else:
        raise ValueError(f"spm.model_type must be unigram or bpe, got {model_type!r}")
    backend = Tokenizer(model)
    backend.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Prepend(SPACE), normalizers.Replace(" ", SPACE)]
    )
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="never", split=True)
    backend.decoder = decoders.Sequence(
        [decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    bos, eos = sp.bos_id(), sp.eos_id()
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", bos), ("</s>", eos)],
    )
    return backend


class PortableTokenizerFast(PreTrainedTokenizerFast):
    """The fast tokenizer, whose saved folder also loads in transformers 4.x (`make_portable`)."""

    def save_pretrained(self, save_directory, *args, **kwargs):
        files = super().save_pretrained(save_directory, *args, **kwargs)
        make_portable(save_directory)
        return files


def to_fast_tokenizer(
    sp: spm.SentencePieceProcessor, model_type: str, model_max_length: int
) -> PreTrainedTokenizerFast:
    """The Hugging Face tokenizer; ids 0-3 as in SentencePiece, <mask> = last id."""
    return PortableTokenizerFast(
        tokenizer_object=build_backend(sp, model_type),
        # lstrip like XLM-R: "Ọmọ <mask>" masks the word including its leading space.
        mask_token=AddedToken(MASK, lstrip=True, rstrip=False, special=True, normalized=False),
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,  # it would turn "a ." into "a." on decode
        **SPECIAL_TOKENS,
    )
