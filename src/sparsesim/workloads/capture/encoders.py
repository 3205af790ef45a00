"""Full-size transformer encoders for the zoo: ViT-S/16 and BERT-base (torch only here).

* ``vit``: ViT-S/16 (Dosovitskiy et al. 2021; the "S" width of Touvron et al., DeiT): a
  16x16/16 patch-embedding conv over a 224x224 image, 196 patches plus a class token = 197
  tokens, 12 pre-norm layers of width 384 with 6 heads and a GELU MLP of 1536, a 1000-way
  head (the synthetic task uses its first 10 classes).
* ``bert``: BERT-base (Devlin et al. 2019): WordPiece vocabulary 30522, 512 positions, 2
  token types, 12 post-norm layers of width 768 with 12 heads and a GELU FFN of 3072, the
  pooler, and a classifier; sequence 128. ``layers`` keeps fewer than 12 layers.

Attention runs as two explicit ``torch.matmul`` calls (``Q . K^T``, ``P . V``) so the
capture records them; Q, K and V are separate Linears named as in the reference code
(``blocks.0.attn.q``; ``encoder.layer.0.attention.self.query``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsesim.workloads.capture.nets import ImageTask, Net, TokenTask


def _attend(q: Tensor, k: Tensor, v: Tensor, heads: int) -> Tensor:
    b, t, d = q.shape
    q, k, v = (y.view(b, t, heads, d // heads).transpose(1, 2) for y in (q, k, v))
    scores = torch.matmul(q, k.transpose(-2, -1)) / (d // heads) ** 0.5
    return torch.matmul(scores.softmax(-1), v).transpose(1, 2).reshape(b, t, d)


class ViTAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.proj = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(_attend(self.q(x), self.k(x), self.v(x), self.heads))


class ViTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn = ViTAttention(dim, heads)
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class ViT(nn.Module):
    """Vision transformer over ``image_size`` images in ``patch`` x ``patch`` patches."""

    def __init__(self, image_size: int = 224, patch: int = 16, dim: int = 384, layers: int = 12, heads: int = 6,
                 hidden: int = 1536, classes: int = 1000) -> None:
        super().__init__()
        tokens = (image_size // patch) ** 2 + 1
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(0.02 * torch.randn(1, tokens, dim))
        self.blocks = nn.ModuleList(ViTBlock(dim, heads, hidden) for _ in range(layers))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, classes)

    def forward(self, images: Tensor) -> Tensor:
        x = self.patch_embed(images).flatten(2).transpose(1, 2)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x)[:, 0])


class BertSelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = (nn.Linear(dim, dim) for _ in range(3))

    def forward(self, x: Tensor) -> Tensor:
        return _attend(self.query(x), self.key(x), self.value(x), self.heads)


class BertAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.self = BertSelfAttention(dim, heads)
        self.output = nn.ModuleDict({"dense": nn.Linear(dim, dim), "LayerNorm": nn.LayerNorm(dim, eps=1e-12)})

    def forward(self, x: Tensor) -> Tensor:
        return self.output["LayerNorm"](x + self.output["dense"](self.self(x)))


class BertLayer(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.attention = BertAttention(dim, heads)
        self.intermediate = nn.ModuleDict({"dense": nn.Linear(dim, hidden)})
        self.output = nn.ModuleDict({"dense": nn.Linear(hidden, dim), "LayerNorm": nn.LayerNorm(dim, eps=1e-12)})

    def forward(self, x: Tensor) -> Tensor:
        x = self.attention(x)
        h = F.gelu(self.intermediate["dense"](x))
        return self.output["LayerNorm"](x + self.output["dense"](h))


class Bert(nn.Module):
    """BERT encoder plus pooler and a classifier on the pooled first token."""

    def __init__(self, vocab: int = 30522, positions: int = 512, dim: int = 768, layers: int = 12, heads: int = 12,
                 hidden: int = 3072, classes: int = 4) -> None:
        super().__init__()
        self.embeddings = nn.ModuleDict({"word_embeddings": nn.Embedding(vocab, dim),
                                         "position_embeddings": nn.Embedding(positions, dim),
                                         "token_type_embeddings": nn.Embedding(2, dim),
                                         "LayerNorm": nn.LayerNorm(dim, eps=1e-12)})
        self.encoder = nn.ModuleDict({"layer": nn.ModuleList(BertLayer(dim, heads, hidden) for _ in range(layers))})
        self.pooler = nn.ModuleDict({"dense": nn.Linear(dim, dim)})
        self.classifier = nn.Linear(dim, classes)

    def forward(self, tokens: Tensor) -> Tensor:
        e = self.embeddings
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = e["word_embeddings"](tokens) + e["position_embeddings"](positions) + e["token_type_embeddings"](
            torch.zeros_like(tokens))
        x = e["LayerNorm"](x)
        for layer in self.encoder["layer"]:
            x = layer(x)
        return self.classifier(torch.tanh(self.pooler["dense"](x[:, 0])))


ENCODER_LAYERS = 12


def vit(gen: torch.Generator, layers: int = ENCODER_LAYERS) -> Net:
    return Net(ViT(layers=layers), ImageTask(gen, hw=224), "adam", 3e-4)


def bert(gen: torch.Generator, layers: int = ENCODER_LAYERS) -> Net:
    return Net(Bert(layers=layers), TokenTask(gen, vocab=30522, length=128), "adam", 1e-4)
