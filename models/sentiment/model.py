"""A sentence classifier: the all-MiniLM-L6-v2 encoder, mean pooling, L2 normalisation, a linear head.

TorchServe instantiates the single nn.Module class of this file with no
arguments and loads the state dict written by train.py (the encoder's
pretrained weights and the trained head) into it, so every constructor
argument has a default that matches those weights.

The encoder is written here in plain torch (a 6-layer BERT, 384 wide, 12
heads) rather than imported from `transformers`: the worker then imports only
torch and `tokenizers`, which starts faster and smaller (docs/models.md has
the figures), and tests/unit/test_models_sentiment_model.py checks that it gives
the same embeddings as transformers' BertModel on the same weights. Parameter
names follow BertModel's, under `encoder.`, so the pretrained safetensors
load as they are. The encoder's parts are ModuleDicts, not classes of their
own: TorchServe wants exactly one class in this file.

Inputs are token ids and an attention mask (1 for a token, 0 for padding),
padded to the longest member of the batch; padding changes no member's output.
"""

import torch
from torch import nn
from torch.nn import functional as F


def _dense(inside: int, width: int) -> nn.ModuleDict:
    """A projection, then the residual and LayerNorm (BertSelfOutput and BertOutput)."""
    return nn.ModuleDict({"dense": nn.Linear(inside, width), "LayerNorm": nn.LayerNorm(width, eps=1e-12)})


def _layer(width: int, inside: int) -> nn.ModuleDict:
    attention = {"self": nn.ModuleDict({k: nn.Linear(width, width) for k in ("query", "key", "value")})}
    return nn.ModuleDict(
        {
            "attention": nn.ModuleDict({**attention, "output": _dense(width, width)}),
            "intermediate": nn.ModuleDict({"dense": nn.Linear(width, inside)}),
            "output": _dense(inside, width),
        }
    )


def minilm(vocab=30522, width=384, layers=6, inside=1536, positions=512, types=2) -> nn.ModuleDict:
    """BERT's encoder with all-MiniLM-L6-v2's shape; parameter names as transformers' BertModel."""
    embeddings = {
        "word_embeddings": nn.Embedding(vocab, width),
        "position_embeddings": nn.Embedding(positions, width),
        "token_type_embeddings": nn.Embedding(types, width),
        "LayerNorm": nn.LayerNorm(width, eps=1e-12),
    }
    return nn.ModuleDict(
        {
            "embeddings": nn.ModuleDict(embeddings),
            "encoder": nn.ModuleDict({"layer": nn.ModuleList(_layer(width, inside) for _ in range(layers))}),
        }
    )


def _add_norm(block: nn.ModuleDict, x, residual):
    return block["LayerNorm"](block["dense"](x) + residual)


def _run_layer(layer: nn.ModuleDict, x, bias, heads: int):
    n, length, width = x.shape
    att = layer["attention"]["self"]

    def split(t):
        return t.view(n, length, heads, width // heads).transpose(1, 2)

    mixed = F.scaled_dot_product_attention(split(att["query"](x)), split(att["key"](x)), split(att["value"](x)), bias)
    x = _add_norm(layer["attention"]["output"], mixed.transpose(1, 2).reshape(n, length, width), x)
    return _add_norm(layer["output"], F.gelu(layer["intermediate"]["dense"](x)), x)


def token_states(encoder: nn.ModuleDict, ids, mask, heads: int = 12):
    """Token states (N, L, width); padded positions are attended to by no token."""
    emb = encoder["embeddings"]
    bias = torch.zeros(mask.shape, dtype=emb["LayerNorm"].weight.dtype, device=mask.device)
    bias = bias.masked_fill(mask == 0, torch.finfo(bias.dtype).min)[:, None, None, :]
    positions = torch.arange(ids.shape[1], device=ids.device)
    # every token is of segment 0: one sentence per input
    x = emb["word_embeddings"](ids) + emb["position_embeddings"](positions) + emb["token_type_embeddings"].weight[0]
    x = emb["LayerNorm"](x)
    for layer in encoder["encoder"]["layer"]:
        x = _run_layer(layer, x, bias, heads)
    return x


def sentence_embeddings(states, mask):
    """Mean of the token states over real tokens, L2-normalised (sentence-transformers' Pooling + Normalize)."""
    weights = mask.unsqueeze(-1).to(states.dtype)
    mean = (states * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
    return F.normalize(mean, p=2, dim=1)


class SentimentClassifier(nn.Module):
    """Logits (negative, positive) of each sentence: encoder, mean pooling, normalisation, one linear layer."""

    def __init__(self, classes: int = 2, width: int = 384, heads: int = 12):
        super().__init__()
        self.heads = heads
        self.encoder = minilm(width=width)
        self.head = nn.Linear(width, classes)

    def embed(self, ids, mask):
        return sentence_embeddings(token_states(self.encoder, ids, mask, self.heads), mask)

    def forward(self, ids, mask):
        return self.head(self.embed(ids, mask))
