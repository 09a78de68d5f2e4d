"""Tokenizer stage: temperature-sampled SentencePiece, saved as a Hugging Face fast tokenizer.

Later stages use `load_tokenizer(dir)` and `tokenizer_hash(dir)`; tests of other stages use
`tests.support.tokenizer.build_tiny_tokenizer`.
"""

from tokenizer.artifacts import TokenizerFolderError, load_bulk_encoder, load_tokenizer, tokenizer_hash

__all__ = ["TokenizerFolderError", "load_bulk_encoder", "load_tokenizer", "tokenizer_hash"]
