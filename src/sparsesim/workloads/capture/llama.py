"""A Llama-style decoder in PyTorch, random init, with a KV cache (torch only here).

Built from a :class:`~sparsesim.workloads.llm_networks.DecoderShape`: RMSNorm (Zhang and
Sennrich 2019), rotary position embeddings (Su et al., RoFormer, rotate-half form),
grouped-query attention (Ainslie et al. 2023), and a gated FFN ``down(act(gate(x)) * up(x))``
with ``act`` SiLU (SwiGLU, Shazeer 2020) or ReLU (the ProSparse-style ReLU-fied FFN, whose
``relu(gate(x))`` is exactly sparse). Module names are those of Hugging Face's Llama
(``model.layers.0.self_attn.q_proj``, ``model.layers.0.mlp.down_proj``, ``lm_head``), so a
capture of this model and of a Hugging Face one name their ops alike.

Attention computes grouped-query attention the way GQA kernels do: the ``heads/kv_heads``
query heads that share a K/V head are stacked as rows of one matmul against that head's
cache, ``Q_g [(G*T) x d] . K^T [d x S]`` (see :mod:`sparsesim.workloads.llm_networks`). Only
the last position's logits are computed (``last_only``), which is all generation needs.
Mixture-of-experts decoders are shape-only (no torch model here).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsesim.core.errors import field_error
from sparsesim.workloads.llm_networks import DecoderShape


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotary_tables(positions: Tensor, head_dim: int, theta: float) -> tuple[Tensor, Tensor]:
    """``cos, sin`` of shape ``(T, head_dim)`` for absolute ``positions`` (rotate-half layout).

    Computed with an outer product (``torch.outer``), not a matmul, so no GEMM is recorded
    for it: an accelerator reads these from a table.
    """
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(positions.to(torch.float32), inv_freq)
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos(), angles.sin()


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate ``x`` (``..., T, head_dim``) by the position angles."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class KVCache:
    """Keys and values per layer, ``(batch, kv_heads, length, head_dim)``, grown by each pass.

    ``length`` is layer 0's, i.e. the cache length before a pass only until layer 0 appends:
    the model reads it once per pass and hands it to every layer."""

    def __init__(self, layers: int) -> None:
        self.keys: list[Tensor | None] = [None] * layers
        self.values: list[Tensor | None] = [None] * layers

    @property
    def length(self) -> int:
        return 0 if self.keys[0] is None else int(self.keys[0].shape[2])

    def append(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        if self.keys[layer] is not None:
            k = torch.cat((self.keys[layer], k), dim=2)
            v = torch.cat((self.values[layer], v), dim=2)
        self.keys[layer], self.values[layer] = k, v
        return k, v


class Attention(nn.Module):
    def __init__(self, shape: DecoderShape, layer: int) -> None:
        super().__init__()
        self.shape, self.layer = shape, layer
        d, hd = shape.dim, shape.head_dim
        self.q_proj = nn.Linear(d, shape.heads * hd, bias=False)
        self.k_proj = nn.Linear(d, shape.kv_heads * hd, bias=False)
        self.v_proj = nn.Linear(d, shape.kv_heads * hd, bias=False)
        self.o_proj = nn.Linear(shape.heads * hd, d, bias=False)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, cache: KVCache, past: int) -> Tensor:
        b, t, _ = x.shape
        s, hd, kvh = self.shape, self.shape.head_dim, self.shape.kv_heads
        group = s.heads // kvh
        q = apply_rotary(self.q_proj(x).view(b, t, s.heads, hd).transpose(1, 2), cos, sin)  # (b, H, t, hd)
        k = apply_rotary(self.k_proj(x).view(b, t, kvh, hd).transpose(1, 2), cos, sin)  # (b, kvh, t, hd)
        v = self.v_proj(x).view(b, t, kvh, hd).transpose(1, 2)
        k, v = cache.append(self.layer, k, v)
        # query head h uses K/V head h // group: stack a group's heads as rows (g-major, then t)
        q = q.reshape(b, kvh, group * t, hd)
        scores = torch.matmul(q, k.transpose(-2, -1)) * hd ** -0.5  # (b, kvh, group*t, past+t)
        query_pos = past + torch.arange(t).repeat(group)
        causal = torch.arange(past + t)[None, :] > query_pos[:, None]
        probs = scores.masked_fill(causal, float("-inf")).softmax(-1)
        context = torch.matmul(probs, v)  # (b, kvh, group*t, hd)
        context = context.view(b, kvh, group, t, hd).permute(0, 3, 1, 2, 4).reshape(b, t, s.heads * hd)
        return self.o_proj(context)


class MLP(nn.Module):
    def __init__(self, shape: DecoderShape) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(shape.dim, shape.ffn_hidden, bias=False)
        self.up_proj = nn.Linear(shape.dim, shape.ffn_hidden, bias=False)
        self.down_proj = nn.Linear(shape.ffn_hidden, shape.dim, bias=False)
        self.act = F.relu if shape.ffn == "relu" else F.silu

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, shape: DecoderShape, layer: int) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(shape.dim, shape.norm_eps)
        self.self_attn = Attention(shape, layer)
        self.post_attention_layernorm = RMSNorm(shape.dim, shape.norm_eps)
        self.mlp = MLP(shape)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, cache: KVCache, past: int) -> Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache, past)
        return x + self.mlp(self.post_attention_layernorm(x))


class Model(nn.Module):
    def __init__(self, shape: DecoderShape) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(shape.vocab, shape.dim)
        self.layers = nn.ModuleList(DecoderLayer(shape, i) for i in range(shape.layers))
        self.norm = RMSNorm(shape.dim, shape.norm_eps)


class LlamaForCausalLM(nn.Module):
    """The decoder plus LM head; ``forward(tokens, cache)`` returns the last position's logits."""

    def __init__(self, shape: DecoderShape) -> None:
        super().__init__()
        if shape.moe:
            raise field_error("model", f"{shape.name} is a mixture of experts: shape-only (run --network)")
        self.shape = shape
        self.model = Model(shape)
        self.lm_head = nn.Linear(shape.dim, shape.vocab, bias=False)

    def forward(self, tokens: Tensor, cache: KVCache) -> Tensor:
        past = cache.length
        cos, sin = rotary_tables(torch.arange(past, past + tokens.shape[1]), self.shape.head_dim, self.shape.rope_theta)
        x = self.model.embed_tokens(tokens)
        for layer in self.model.layers:
            x = layer(x, cos, sin, cache, past)
        return self.lm_head(self.model.norm(x[:, -1:]))[:, 0]

    def new_cache(self) -> KVCache:
        return KVCache(self.shape.layers)


def build(shape: DecoderShape, gen: torch.Generator) -> LlamaForCausalLM:
    """A random-init decoder: weights ``N(0, 0.02^2)`` (Hugging Face's Llama init), norms 1.

    Initialised in place with ``gen`` parameter by parameter, so memory stays at one copy of
    the weights even for the ~1B models.
    """
    with torch.device("meta"):
        model = LlamaForCausalLM(shape)
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("layernorm.weight") or name.endswith("norm.weight"):
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02, generator=gen)
    return model.eval()
