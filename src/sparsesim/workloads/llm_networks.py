"""Llama-style decoder shapes and their LLM-inference GEMMs (shapes only, no torch).

:class:`DecoderShape` describes a decoder-only transformer (Llama family: RMSNorm, rotary
embeddings, grouped-query attention, SwiGLU or ReLU-fied FFN, optional top-k mixture of
experts). It serves three users:

* the zoo models ``llama_*`` (:mod:`sparsesim.workloads.capture.llama` builds them in torch);
* the shape-only networks for ``run --network`` (``llama2_7b``, ``llama3_8b``,
  ``mixtral_8x7b``): :func:`llm_workload` lists the prefill and decode GEMMs of a prompt of
  ``prompt_len`` tokens followed by ``gen_len`` generated ones, for ``batch`` sequences;
* the size estimate that ``trace capture --max-bytes`` checks before a capture starts
  (:func:`inference_ops` names the ops exactly as the capture does).

Op names follow the Hugging Face modules (``model.layers.0.mlp.down_proj``); the attention
matmuls are ``model.layers.0.self_attn.matmul0`` (``Q . K^T``) and ``matmul1`` (``P . V``).

What the GEMMs are:

* prefill: every projection over ``batch * prompt_len`` tokens; the attention matmuls over
  the whole prompt (``prompt_len x prompt_len`` scores, computed in full and then masked,
  as eager attention does); the LM head only for the last prompt token (only its logits
  pick the next token, as serving engines do).
* decode step ``t`` (0-based): one token per sequence, so every projection has ``batch``
  rows (a matrix-vector product per sequence); the attention matmuls read the KV cache at
  its current length ``prompt_len + t + 1``.
* grouped-query attention: ``heads`` query heads share ``kv_heads`` K/V heads. With
  ``attention="grouped"`` (the zoo model, and what a GQA kernel does) the ``heads/kv_heads``
  query heads of a group are stacked as rows of one GEMM against their shared K/V:
  ``(batch*kv_heads) x [(heads/kv_heads)*T x head_dim] . [head_dim x S]``. With
  ``"repeated"`` (Hugging Face eager attention, which repeats K/V per query head) it is
  ``(batch*heads) x [T x head_dim] . [head_dim x S]``. Both have the same MACs.
* mixture of experts (Mixtral): a router ``gate`` Linear per layer, then each token goes
  to ``top_k`` of ``experts`` experts. The shape-only model has no router logits, so it
  assigns deterministically and balanced: assignment ``j`` of token ``i`` in a pass
  (``i`` counting tokens over the whole run, prompt first) goes to expert
  ``(top_k * i + j) mod experts``. Prefill spreads the prompt evenly; a decode step with
  one sequence touches ``top_k`` experts, different ones from step to step. An expert with
  no token has no GEMM (its weights are not read).

Decode rows: :func:`llm_workload` with ``aggregate=True`` (what ``run --network`` uses)
merges ops of the same shape and phase across layers and decode steps into one row with a
``repeat`` count (``model.layers.*.mlp.down_proj``, repeat = layers x steps); the
attention matmuls differ per step (cache length), so each decode step keeps its own row
(``model.layers.*.self_attn.matmul0@t17``, repeat = layers). Cycles, bytes and energy of a
row are those of one instance times ``repeat``.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from sparsesim.core.errors import arg_error, field_error
from sparsesim.workloads.gemm import Phase
from sparsesim.workloads.ops import Linear, Matmul, Op, Workload
from sparsesim.core.registry import Registry

FFN_KINDS = ("swiglu", "relu")
"""``swiglu``: ``down(silu(gate(x)) * up(x))``; ``relu``: ProSparse-style ``down(relu(gate(x)) * up(x))``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DecoderShape:
    """The shape of a Llama-style decoder-only transformer."""

    name: str
    summary: str
    vocab: int
    dim: int  # hidden size
    layers: int
    heads: int  # query heads
    kv_heads: int  # key/value heads (grouped-query attention: heads % kv_heads == 0)
    ffn_hidden: int  # intermediate size of the FFN (per expert)
    ffn: str = "swiglu"
    experts: int = 1  # > 1: mixture of experts, top_k experts per token
    top_k: int = 1
    tie_embeddings: bool = False  # LM head shares the embedding matrix
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        for key in ("vocab", "dim", "layers", "heads", "kv_heads", "ffn_hidden", "experts", "top_k"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise field_error(f"{self.name}.{key}", f"must be a positive integer, got {value!r}")
        if self.dim % self.heads:
            raise field_error(f"{self.name}.heads", f"{self.heads} does not divide dim={self.dim}")
        if self.heads % self.kv_heads:
            raise field_error(f"{self.name}.kv_heads", f"{self.kv_heads} does not divide heads={self.heads}")
        if self.top_k > self.experts:
            raise field_error(f"{self.name}.top_k", f"{self.top_k} > experts={self.experts}")
        if self.ffn not in FFN_KINDS:
            raise field_error(f"{self.name}.ffn", f"unknown FFN {self.ffn!r} (choose from {', '.join(FFN_KINDS)})")

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    @property
    def moe(self) -> bool:
        return self.experts > 1

    @property
    def attention_params(self) -> int:
        """q, k, v and o projection weights of one layer (no biases)."""
        hd = self.head_dim
        return 2 * self.dim * self.heads * hd + 2 * self.dim * self.kv_heads * hd

    @property
    def ffn_params(self) -> int:
        """FFN weights of one layer: gate, up and down per expert, plus the router."""
        return self.experts * 3 * self.dim * self.ffn_hidden + (self.dim * self.experts if self.moe else 0)

    @property
    def params(self) -> int:
        """Every parameter: embeddings, per-layer projections and the two RMSNorm gains, final
        norm, LM head (unless tied)."""
        per_layer = self.attention_params + self.ffn_params + 2 * self.dim
        head = 0 if self.tie_embeddings else self.vocab * self.dim
        return self.vocab * self.dim + self.layers * per_layer + self.dim + head

    @property
    def active_params_per_token(self) -> int:
        """Weights a token multiplies with: projections of ``top_k`` experts, router, LM head."""
        ffn = self.top_k * 3 * self.dim * self.ffn_hidden + (self.dim * self.experts if self.moe else 0)
        return self.layers * (self.attention_params + ffn) + self.vocab * self.dim

    def macs_per_token(self, context: int) -> int:
        """MACs of one decode token at cache length ``context``: projections plus attention."""
        return self.active_params_per_token + self.layers * 2 * self.heads * self.head_dim * context


DECODERS: Registry[DecoderShape] = Registry("decoder")
for _shape in (
    DecoderShape(name="llama_tiny", summary="tiny Llama-style decoder (tests): d=64, 2 layers, 4 heads / 2 KV heads",
                 vocab=256, dim=64, layers=2, heads=4, kv_heads=2, ffn_hidden=176),
    DecoderShape(name="llama_tiny_relu", summary="llama_tiny with a ProSparse-style ReLU FFN",
                 vocab=256, dim=64, layers=2, heads=4, kv_heads=2, ffn_hidden=176, ffn="relu"),
    DecoderShape(name="llama_1b", summary="~1.1B Llama-style decoder (TinyLlama-1.1B shapes): d=2048, 22 layers, "
                 "32 heads / 4 KV heads, SwiGLU 5632", vocab=32000, dim=2048, layers=22, heads=32, kv_heads=4,
                 ffn_hidden=5632),
    DecoderShape(name="llama_1b_relu", summary="llama_1b with a ProSparse-style ReLU FFN",
                 vocab=32000, dim=2048, layers=22, heads=32, kv_heads=4, ffn_hidden=5632, ffn="relu"),
    DecoderShape(name="smollm2_135m", summary="SmolLM2-135M shapes: d=576, 30 layers, 9 heads / 3 KV heads, "
                 "SwiGLU 1536, tied embeddings", vocab=49152, dim=576, layers=30, heads=9, kv_heads=3,
                 ffn_hidden=1536, tie_embeddings=True, rope_theta=100000.0),
    DecoderShape(name="pydoc_relu_lm", summary="byte-level decoder with a ReLU-gated FFN, trained here on the corpus "
                 "(sparsesim study training-dynamics' ReLU model: d=128, 4 layers, 4 heads / 2 KV heads, 352; "
                 "captured with its trained weights, trained on first use and cached)",
                 vocab=256, dim=128, layers=4, heads=4, kv_heads=2, ffn_hidden=352, ffn="relu"),
    DecoderShape(name="llama2_7b", summary="Llama-2-7B shapes: d=4096, 32 layers, 32 heads (MHA), SwiGLU 11008",
                 vocab=32000, dim=4096, layers=32, heads=32, kv_heads=32, ffn_hidden=11008),
    DecoderShape(name="llama2_70b", summary="Llama-2-70B shapes: d=8192, 80 layers, 64 heads / 8 KV heads, "
                 "SwiGLU 28672", vocab=32000, dim=8192, layers=80, heads=64, kv_heads=8, ffn_hidden=28672),
    DecoderShape(name="llama3_8b", summary="Llama-3-8B shapes: d=4096, 32 layers, 32 heads / 8 KV heads, SwiGLU 14336",
                 vocab=128256, dim=4096, layers=32, heads=32, kv_heads=8, ffn_hidden=14336, rope_theta=500000.0),
    DecoderShape(name="mixtral_8x7b", summary="Mixtral-8x7B shapes: d=4096, 32 layers, 32 heads / 8 KV heads, "
                 "8 SwiGLU experts of 14336, top-2", vocab=32000, dim=4096, layers=32, heads=32, kv_heads=8,
                 ffn_hidden=14336, experts=8, top_k=2, rope_theta=1e6),
):
    DECODERS.add(_shape.name, _shape)
del _shape

SHAPE_ONLY = ("llama2_7b", "llama2_70b", "llama3_8b", "mixtral_8x7b")
"""Decoders offered to ``run --network`` (too big to capture here)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class InferenceOp:
    """One GEMM op of an inference run: the op, its phase and decode step (None in prefill)."""

    op: Op
    phase: Phase
    time_step: int | None


def _check(batch: int, prompt_len: int, gen_len: int) -> None:
    for key, value, low in (("batch", batch, 1), ("prompt_len", prompt_len, 1), ("gen_len", gen_len, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise arg_error(key, f"must be an integer >= {low}, got {value!r}")


def _layer_ops(shape: DecoderShape, i: int, batch: int, new: int, context: int, attention: str,
               first_token: int) -> Iterator[Op]:
    """The GEMMs of layer ``i`` for ``new`` tokens per sequence against a cache of ``context``."""
    p = f"model.layers.{i}"
    d, hd, h, kvh = shape.dim, shape.head_dim, shape.heads, shape.kv_heads
    tokens = batch * new
    yield Linear(name=f"{p}.self_attn.q_proj", tokens=tokens, in_features=d, out_features=h * hd)
    yield Linear(name=f"{p}.self_attn.k_proj", tokens=tokens, in_features=d, out_features=kvh * hd)
    yield Linear(name=f"{p}.self_attn.v_proj", tokens=tokens, in_features=d, out_features=kvh * hd)
    if attention == "grouped":
        mm_batch, rows = batch * kvh, (h // kvh) * new
    else:
        mm_batch, rows = batch * h, new
    yield Matmul(name=f"{p}.self_attn.matmul0", batch=mm_batch, m=rows, k=hd, n=context)
    yield Matmul(name=f"{p}.self_attn.matmul1", batch=mm_batch, m=rows, k=context, n=hd)
    yield Linear(name=f"{p}.self_attn.o_proj", tokens=tokens, in_features=h * hd, out_features=d)
    if not shape.moe:
        f = shape.ffn_hidden
        yield Linear(name=f"{p}.mlp.gate_proj", tokens=tokens, in_features=d, out_features=f)
        yield Linear(name=f"{p}.mlp.up_proj", tokens=tokens, in_features=d, out_features=f)
        yield Linear(name=f"{p}.mlp.down_proj", tokens=tokens, in_features=f, out_features=d)
        return
    moe = f"{p}.block_sparse_moe"
    yield Linear(name=f"{moe}.gate", tokens=tokens, in_features=d, out_features=shape.experts)
    counts = Counter((shape.top_k * t + j) % shape.experts
                     for t in range(first_token, first_token + tokens) for j in range(shape.top_k))
    for e in sorted(counts):
        n = counts[e]
        yield Linear(name=f"{moe}.experts.{e}.w1", tokens=n, in_features=d, out_features=shape.ffn_hidden)
        yield Linear(name=f"{moe}.experts.{e}.w3", tokens=n, in_features=d, out_features=shape.ffn_hidden)
        yield Linear(name=f"{moe}.experts.{e}.w2", tokens=n, in_features=shape.ffn_hidden, out_features=d)


def inference_ops(shape: DecoderShape, *, batch: int, prompt_len: int, gen_len: int,
                  attention: str = "grouped") -> Iterator[InferenceOp]:
    """Every GEMM of a prefill of ``prompt_len`` tokens and ``gen_len`` decode steps, in order.

    ``gen_len=0`` is prefill alone. Decode step ``t`` is the forward pass of generated token
    ``t`` (the prefill already produced the logits of the first one; the step feeds it back).
    """
    _check(batch, prompt_len, gen_len)
    if attention not in ("grouped", "repeated"):
        raise field_error("attention", f"unknown {attention!r} (choose from grouped, repeated)")
    for i in range(shape.layers):
        for op in _layer_ops(shape, i, batch, prompt_len, prompt_len, attention, 0):
            yield InferenceOp(op=op, phase=Phase.PREFILL, time_step=None)
    yield InferenceOp(op=Linear(name="lm_head", tokens=batch, in_features=shape.dim, out_features=shape.vocab),
                      phase=Phase.PREFILL, time_step=None)
    for t in range(gen_len):
        first = batch * (prompt_len + t)
        for i in range(shape.layers):
            for op in _layer_ops(shape, i, batch, 1, prompt_len + t + 1, attention, first):
                yield InferenceOp(op=op, phase=Phase.DECODE, time_step=t)
        yield InferenceOp(op=Linear(name="lm_head", tokens=batch, in_features=shape.dim, out_features=shape.vocab),
                          phase=Phase.DECODE, time_step=t)


_LAYER = re.compile(r"^model\.layers\.\d+\.")
_EXPERT = re.compile(r"\.experts\.\d+\.")


def llm_workload(name: str, *, batch: int = 1, prompt_len: int = 128, gen_len: int = 32,
                 phases: tuple[Phase, ...] = (Phase.PREFILL, Phase.DECODE), aggregate: bool = True,
                 act_sparsity: float | None = None) -> Workload:
    """The shape-only inference workload of decoder ``name`` (see the module docstring).

    ``aggregate`` merges ops of equal shape and phase across layers (and experts, and decode
    steps for everything but the attention matmuls) into one row with a ``repeat`` count,
    kept in ``meta["repeats"]``. ``act_sparsity`` (fraction of zero input activations of the
    synthetic operands a sparse replay draws) goes to ``meta["act_sparsity"]``.
    """
    shape = DECODERS.get(name, "network")
    if act_sparsity is not None and (isinstance(act_sparsity, bool) or not isinstance(act_sparsity, (int, float))
                                     or not 0.0 <= act_sparsity < 1.0):
        raise arg_error("act_sparsity", f"must be a number in [0, 1), got {act_sparsity!r}")
    items = [x for x in inference_ops(shape, batch=batch, prompt_len=prompt_len, gen_len=gen_len)
             if x.phase in phases]
    if not items:
        wanted = ", ".join(map(str, phases))
        raise arg_error("phases", f"no GEMMs in {wanted}: an LLM network has the phases prefill and decode "
                                  "(decode needs at least one generated token)")
    if aggregate:
        merged: dict[tuple, list] = {}
        for x in items:
            base, step = merged_name(x.op, x.time_step)
            key = (base, x.phase, type(x.op), tuple(sorted(_params(x.op).items())))
            if key in merged:
                merged[key][1] += 1
            else:
                merged[key] = [InferenceOp(op=_renamed(x.op, base), phase=x.phase, time_step=step), 1]
        items, repeats = [v[0] for v in merged.values()], tuple(v[1] for v in merged.values())
    else:
        repeats = tuple(1 for _ in items)
    phases_used = tuple(p for p in phases if any(x.phase is p for x in items))
    meta = {"phases_by_op": tuple((x.phase,) for x in items), "repeats": repeats,
            "llm": {"decoder": name, "batch": batch, "prompt_len": prompt_len, "gen_len": gen_len}}
    if act_sparsity is not None:
        meta["act_sparsity"] = act_sparsity
    return Workload(name, tuple(x.op for x in items), phases_used, time_steps=tuple(x.time_step for x in items),
                    meta=meta)


def merged_name(op: Op, time_step: int | None) -> tuple[str, int | None]:
    """The name of the aggregated row ``op`` merges into (every layer and expert as ``*``; an
    attention matmul keeps its decode step, ``@tN``, as the KV cache grows), and the step the
    row keeps (None but for those matmuls)."""
    base = _EXPERT.sub(".experts.*.", _LAYER.sub("model.layers.*.", op.name))
    step = time_step if isinstance(op, Matmul) else None
    return (base if step is None else f"{base}@t{step}"), step


def _params(op: Op) -> dict:
    return {f.name: getattr(op, f.name) for f in dataclasses.fields(op) if f.name != "name"}


def _renamed(op: Op, name: str) -> Op:
    return dataclasses.replace(op, name=name)
