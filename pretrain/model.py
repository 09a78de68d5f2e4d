"""The XLM-R masked-LM model and the training objective computed on masked positions only."""

from __future__ import annotations

import torch
from torch import nn
from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

from pretrain.config import ModelConfig
from pretrain.masking import IGNORE_INDEX


def build_model(cfg: ModelConfig, tokenizer, block_len: int) -> XLMRobertaForMaskedLM:
    """A randomly initialised XLM-R MLM sized by `cfg`, vocabulary from `tokenizer`."""
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        intermediate_size=cfg.ffn_size,
        hidden_dropout_prob=cfg.dropout,
        attention_probs_dropout_prob=cfg.attention_dropout,
        # XLM-R positions start after the padding index: ids pad+1 .. pad+block_len.
        max_position_embeddings=block_len + tokenizer.pad_token_id + 1,
        type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=cfg.tie_embeddings,
    )
    return XLMRobertaForMaskedLM(config)


def init_neighbour_heads(model: XLMRobertaForMaskedLM, block_len: int) -> None:
    """Start each first-layer head attending to one neighbour: the previous piece, the next, two
    back, two ahead, ... (cycling through +-1..+-4 when there are more heads).

    A randomly initialised XLM-R attends almost uniformly, and on our small multilingual corpus it
    stays a bag of words for thousands of steps before attention finds word order. Here the
    position embeddings start as sinusoids of random frequencies in the first head-width
    dimensions (as much energy as a word embedding), and each head's query rotates them by its
    offset, so query . key peaks at that neighbour. Everything stays trainable and the model is a
    plain XLM-R: only the starting point changes.
    """
    config = model.config
    head_dim = config.hidden_size // config.num_attention_heads
    n_freq = head_dim // 2
    omega = (0.05 + 0.9 * torch.rand(n_freq)) * torch.pi  # radians per position
    t = torch.arange(block_len, dtype=torch.float32)[:, None]
    amplitude = config.initializer_range * (config.hidden_size / n_freq) ** 0.5
    positions = torch.zeros(block_len, config.hidden_size)
    positions[:, 0 : 2 * n_freq : 2] = amplitude * torch.sin(t * omega)
    positions[:, 1 : 2 * n_freq : 2] = amplitude * torch.cos(t * omega)
    # Pairs (sin, cos) of one frequency: rotating by omega*d moves a position d places back.
    identity = torch.eye(2 * n_freq)
    attention = model.roberta.encoder.layer[0].attention.self
    first = config.pad_token_id + 1  # XLM-R position ids start after the padding index
    with torch.no_grad():
        model.roberta.embeddings.position_embeddings.weight[first : first + block_len] = positions
        for head in range(config.num_attention_heads):
            offset = NEIGHBOUR_OFFSETS[head % len(NEIGHBOUR_OFFSETS)]
            cos, sin = torch.cos(omega * offset), torch.sin(omega * offset)
            rotation = torch.zeros(2 * n_freq, 2 * n_freq)
            rotation[0::2, 0::2] = torch.diag(cos)
            rotation[0::2, 1::2] = torch.diag(-sin)
            rotation[1::2, 0::2] = torch.diag(sin)
            rotation[1::2, 1::2] = torch.diag(cos)
            rows = slice(head * head_dim, head * head_dim + 2 * n_freq)
            attention.query.weight[rows] = 0.0
            attention.query.weight[rows, : 2 * n_freq] = NEIGHBOUR_SHARPNESS * rotation
            attention.key.weight[rows, : 2 * n_freq] = NEIGHBOUR_SHARPNESS * identity


# Offsets of the first layer's heads from their query piece (+1: the previous piece).
NEIGHBOUR_OFFSETS = (1, -1, 2, -2, 3, -3, 4, -4)
# Scale of the query and key weights on the positional dimensions: at 1.5 a head puts ~95% of its
# attention on its neighbour at the start (tiny shape, measured on swa blocks).
NEIGHBOUR_SHARPNESS = 1.5


def set_output_bias(model: XLMRobertaForMaskedLM, log_probs) -> None:
    """Start the LM-head bias at `log_probs` (vocab,), e.g. the training mix's unigram: an untrained
    model then predicts piece frequencies instead of a uniform guess over the vocabulary, so early
    steps go to context instead of relearning frequencies. Pieces with no probability (special
    tokens) get the lowest finite value."""
    values = torch.as_tensor(log_probs, dtype=torch.float32)
    finite = torch.isfinite(values)
    values = torch.where(finite, values, values[finite].min())
    with torch.no_grad():
        model.lm_head.bias.copy_(values - values[finite].mean())  # centred: softmax is shift-invariant


def count_parameters(model: nn.Module) -> int:
    """Distinct parameters (tied embedding/decoder weights counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


class MaskedLMObjective(nn.Module):
    """Sum of token cross-entropies at masked positions, and how many there were.

    The LM head (dense + LayerNorm + vocabulary projection) runs only on the ~15% masked
    positions: hidden states are gathered first, which saves most of the head's compute
    (the vocabulary projection dominates small models). Wrapping this module, not the HF
    model, in DistributedDataParallel keeps DDP's gradient hooks on the path actually used.
    """

    def __init__(self, model: XLMRobertaForMaskedLM):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, labels) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.model.roberta(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, H)
        targets = labels != IGNORE_INDEX  # (B, T)
        logits = self.model.lm_head(hidden[targets])  # (N, V), N masked positions
        loss_sum = nn.functional.cross_entropy(logits.float(), labels[targets], reduction="sum")
        return loss_sum, targets.sum()
