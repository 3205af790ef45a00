"""Torch functions that are GEMMs in disguise, rewritten as the ops the recorder stores (torch only here).

Each :class:`Decomposition` computes its function from recordable pieces: every GEMM in it
goes through ``record(kind, func, name, args, kwargs)`` (the recorder's own ``conv2d``,
``linear`` or ``matmul`` path, so its operands and output gradient are stored), the rest
(scaling, masks, softmax, bias, reshapes) runs as ordinary differentiable torch code. The
result equals the function's up to floating-point rounding, and gradients flow through the
same pieces. A decomposition that cannot handle a call returns :data:`NOT_LOWERED` before
doing anything; the call then runs unrecorded and its MACs are listed as skipped
(:mod:`.coverage`).

=====================================  ==============================================================
function                               recorded as
=====================================  ==============================================================
``conv1d``                             ``conv2d`` over ``(N, C, 1, L)`` with a ``(K, C/g, 1, S)`` filter
``conv3d``                             its im2col GEMM: ``linear`` (tokens ``N*D'*H'*W'``, in
                                       ``C*T*R*S``, out ``K``), or a ``matmul`` with batch ``g`` for
                                       grouped convs; exact MACs and operands, but the stored input is
                                       the unfolded patches (``T*R*S`` times the input)
``conv_transpose2d`` (groups 1)        its scatter GEMM: ``linear`` (tokens ``N*H*W``, in ``C``, out
                                       ``K*R*S``), then col2im (``F.fold``, additions only)
``scaled_dot_product_attention``       two ``matmul`` ops, ``NAME.scores`` (Q.K^T) and ``NAME.context``
                                       (P.V), with mask, causal mask, scale, dropout and GQA between
``addmm``, ``baddbmm``, ``addbmm``     the ``matmul`` of the two factors; ``beta*input`` and ``alpha``
                                       around it
``multi_head_attention_forward``       the projections as ``linear`` ops and the two attention GEMMs
                                       (:func:`multi_head_attention`)
``lstm``, ``gru``, ``rnn_tanh/relu``   ``nn.LSTM``/``GRU``/``RNN`` unrolled: two ``linear`` ops per time
                                       step, layer and direction (:func:`_recurrent`)
``einsum`` (two operands)              one (batched) ``matmul`` when the equation is a contraction:
                                       indices in both operands and the output are the batch, in both
                                       operands only the reduction; an index in one operand only is
                                       summed out first
=====================================  ==============================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import Tensor

NOT_LOWERED = object()
"""Returned by a decomposition that does not handle a call (the call then runs unrecorded)."""

Record = Callable[[str, object, str, tuple, dict], Tensor]
"""``record(kind, func, name, args, kwargs)``: run one GEMM call through the recorder, return its output."""


@dataclass(frozen=True, slots=True)
class Decomposition:
    """A torch function rewritten into recordable GEMMs; ``label`` names its calls (``conv1d0``)."""

    label: str
    run: Callable[[Record, str, tuple, dict], object]  # (record, name, args, kwargs) -> result or NOT_LOWERED


def _bind(args: tuple, kwargs: dict, names: tuple[str, ...], defaults: dict) -> dict | None:
    """Positional and keyword arguments by name; ``None`` if an unexpected one (e.g. ``out=``) is given."""
    if len(args) > len(names) or set(kwargs) - set(names):
        return None
    call = dict(defaults)
    call.update(zip(names, args))
    call.update(kwargs)
    return call


def _tuple(value, n: int) -> tuple[int, ...]:
    return (int(value),) * n if isinstance(value, int) else tuple(int(v) for v in value)


_CONV_NAMES = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
_CONV_DEFAULTS = {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1}


def conv1d(record: Record, name: str, args: tuple, kwargs: dict):
    call = _bind(args, kwargs, _CONV_NAMES, _CONV_DEFAULTS)
    if call is None:
        return NOT_LOWERED
    x, w = call["input"], call["weight"]
    unbatched = x.dim() == 2
    x = x.unsqueeze(0) if unbatched else x
    padding = call["padding"] if isinstance(call["padding"], str) else (0, _tuple(call["padding"], 1)[0])
    y = record("conv2d", torch.conv2d, name,
               (x.unsqueeze(2), w.unsqueeze(2), call["bias"], (1, _tuple(call["stride"], 1)[0]), padding,
                (1, _tuple(call["dilation"], 1)[0]), int(call["groups"])), {})
    y = y.squeeze(2)
    return y.squeeze(0) if unbatched else y


def _same_padding(kernel: tuple[int, ...], dilation: tuple[int, ...]) -> list[tuple[int, int]]:
    """'same' padding per dimension, the extra one at the end as torch does for even filters."""
    totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
    return [(t // 2, t - t // 2) for t in totals]


def conv3d(record: Record, name: str, args: tuple, kwargs: dict):
    call = _bind(args, kwargs, _CONV_NAMES, _CONV_DEFAULTS)
    if call is None:
        return NOT_LOWERED
    x, w, bias, groups = call["input"], call["weight"], call["bias"], int(call["groups"])
    unbatched = x.dim() == 4
    x = x.unsqueeze(0) if unbatched else x
    kernel = tuple(w.shape[2:])
    stride, dilation = _tuple(call["stride"], 3), _tuple(call["dilation"], 3)
    padding = call["padding"]
    if padding == "valid":
        pads = [(0, 0)] * 3
    elif padding == "same":
        pads = _same_padding(kernel, dilation)
    else:
        pads = [(p, p) for p in _tuple(padding, 3)]
    cols = F.pad(x, [p for pair in reversed(pads) for p in pair])  # F.pad lists the last dimension first
    for dim, (k, s, d) in enumerate(zip(kernel, stride, dilation), start=2):
        cols = cols.unfold(dim, d * (k - 1) + 1, s)[..., ::d]  # window taps appended as the last axis
    n, c, do, ho, wo = cols.shape[:5]
    # (N, C, D', H', W', T, R, S) -> rows (n, d', h', w'), columns (c, t, r, s): weight.reshape(K, -1)'s order
    cols = cols.permute(0, 2, 3, 4, 1, 5, 6, 7).reshape(n * do * ho * wo, c * math.prod(kernel))
    k_out = w.shape[0]
    if groups == 1:
        y = record("linear", F.linear, name, (cols, w.reshape(k_out, -1)), {})
    else:
        per_group = cols.reshape(cols.shape[0], groups, -1).transpose(0, 1)  # (g, tokens, C/g*T*R*S)
        wg = w.reshape(groups, k_out // groups, -1).transpose(1, 2)  # (g, C/g*T*R*S, K/g)
        y = record("matmul", torch.matmul, name, (per_group, wg), {}).transpose(0, 1)
    y = y.reshape(n, do, ho, wo, k_out).permute(0, 4, 1, 2, 3)
    if bias is not None:
        y = y + bias.view(1, -1, 1, 1, 1)
    return y.squeeze(0) if unbatched else y


_CONV_T_NAMES = ("input", "weight", "bias", "stride", "padding", "output_padding", "groups", "dilation")
_CONV_T_DEFAULTS = {"bias": None, "stride": 1, "padding": 0, "output_padding": 0, "groups": 1, "dilation": 1}


def conv_transpose2d(record: Record, name: str, args: tuple, kwargs: dict):
    """A transposed conv as the GEMM that scatters each input pixel into ``K x R x S`` outputs, then col2im.

    ``X[N*H*W, C] . W[C, K*R*S]`` is a ``linear`` op (tokens ``N*H*W``, in ``C``, out
    ``K*R*S``); ``F.fold`` adds the overlapping taps into the output (no MACs). Grouped
    transposed convs are left to torch (skipped).
    """
    call = _bind(args, kwargs, _CONV_T_NAMES, _CONV_T_DEFAULTS)
    if call is None or int(call["groups"]) != 1:
        return NOT_LOWERED
    x, w, bias = call["input"], call["weight"], call["bias"]
    unbatched = x.dim() == 3
    x = x.unsqueeze(0) if unbatched else x
    n, c, h, wd = x.shape
    r, s = w.shape[2:]
    stride, padding = _tuple(call["stride"], 2), _tuple(call["padding"], 2)
    dilation, extra = _tuple(call["dilation"], 2), _tuple(call["output_padding"], 2)
    size = [(i - 1) * st - 2 * p + d * (kk - 1) + e + 1
            for i, st, p, d, kk, e in zip((h, wd), stride, padding, dilation, (r, s), extra)]
    rows = x.permute(0, 2, 3, 1).reshape(n * h * wd, c)
    cols = record("linear", F.linear, name, (rows, w.reshape(c, -1).t()), {})  # (N*H*W, K*R*S)
    y = F.fold(cols.reshape(n, h * wd, -1).transpose(1, 2), size, (r, s), dilation=dilation, padding=padding,
               stride=stride)
    if bias is not None:
        y = y + bias.view(1, -1, 1, 1)
    return y.squeeze(0) if unbatched else y


_SDPA_NAMES = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
_SDPA_DEFAULTS = {"attn_mask": None, "dropout_p": 0.0, "is_causal": False, "scale": None, "enable_gqa": False}


def scaled_dot_product_attention(record: Record, name: str, args: tuple, kwargs: dict):
    """The math of ``F.scaled_dot_product_attention`` (its documented reference implementation)."""
    call = _bind(args, kwargs, _SDPA_NAMES, _SDPA_DEFAULTS)
    if call is None:
        return NOT_LOWERED
    q, k, v, mask = call["query"], call["key"], call["value"], call["attn_mask"]
    if call["enable_gqa"] and q.dim() >= 3 and k.size(-3) != q.size(-3):
        k = k.repeat_interleave(q.size(-3) // k.size(-3), -3)
        v = v.repeat_interleave(q.size(-3) // v.size(-3), -3)
    scale = call["scale"] if call["scale"] is not None else 1.0 / math.sqrt(q.size(-1))
    scores = record("matmul", torch.matmul, f"{name}.scores", (q, k.transpose(-2, -1)), {}) * scale
    if call["is_causal"]:
        keep = torch.ones(q.size(-2), k.size(-2), dtype=torch.bool, device=q.device).tril()
        scores = scores.masked_fill(~keep, float("-inf"))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    probs = torch.softmax(scores, dim=-1)
    if call["dropout_p"] > 0:
        probs = F.dropout(probs, call["dropout_p"], training=True)
    return record("matmul", torch.matmul, f"{name}.context", (probs, v), {})


def _scaled_sum(name: str, record: Record, args: tuple, kwargs: dict, reduce_batch: bool):
    call = _bind(args, kwargs, ("input", "a", "b", "beta", "alpha"), {"beta": 1, "alpha": 1})
    if call is None:
        return NOT_LOWERED
    product = record("matmul", torch.matmul, name, (call["a"], call["b"]), {})
    if reduce_batch:
        product = product.sum(0)
    beta, alpha = call["beta"], call["alpha"]
    product = product if alpha == 1 else alpha * product
    if beta == 0:  # torch ignores input (even NaN) when beta is 0
        return product.expand(torch.broadcast_shapes(product.shape, call["input"].shape)).clone()
    return (call["input"] if beta == 1 else beta * call["input"]) + product


def addmm(record: Record, name: str, args: tuple, kwargs: dict):
    return _scaled_sum(name, record, args, kwargs, reduce_batch=False)


def addbmm(record: Record, name: str, args: tuple, kwargs: dict):
    return _scaled_sum(name, record, args, kwargs, reduce_batch=True)


def _einsum_terms(equation: str, operands: tuple[Tensor, ...]) -> tuple[list[str], str] | None:
    """Input index strings and output string, with ``...`` expanded to fresh letters; None if unsupported."""
    equation = equation.replace(" ", "")
    lhs, arrow, out = equation.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(operands):
        return None
    used = set(equation) - set(".,->")
    fresh = iter(c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in used)
    ellipsis = None
    expanded = []
    for term, x in zip(terms, operands):
        if "..." in term:
            width = x.dim() - (len(term) - 3)
            if width < 0 or (ellipsis is not None and len(ellipsis) != width):
                return None  # broadcasting ellipses of different ranks: leave to torch
            ellipsis = ellipsis if ellipsis is not None else "".join(next(fresh) for _ in range(width))
            term = term.replace("...", ellipsis)
        if len(term) != x.dim() or len(set(term)) != len(term):  # repeated index: a diagonal, not a GEMM
            return None
        expanded.append(term)
    if not arrow:
        counts = "".join(expanded)
        out = (ellipsis or "") + "".join(sorted(c for c in set(counts) if counts.count(c) == 1
                                                  and c not in (ellipsis or "")))
    elif "..." in out:
        out = out.replace("...", ellipsis or "")
    return expanded, out


def einsum(record: Record, name: str, args: tuple, kwargs: dict):
    if kwargs or not args or not isinstance(args[0], str):
        return NOT_LOWERED
    operands = tuple(args[1]) if len(args) == 2 and isinstance(args[1], (list, tuple)) else tuple(args[1:])
    if len(operands) != 2 or not all(isinstance(t, Tensor) for t in operands):
        return NOT_LOWERED
    parsed = _einsum_terms(args[0], operands)
    if parsed is None:
        return NOT_LOWERED
    (ta, tb), out = parsed
    a, b = operands
    size = {}
    for term, x in ((ta, a), (tb, b)):
        for c, n in zip(term, x.shape):
            if size.setdefault(c, n) != n:
                return NOT_LOWERED  # broadcast size-1 index: leave to torch
    if set(out) - set(ta + tb) or len(set(out)) != len(out):
        return NOT_LOWERED
    # an index only one operand has and the output lacks is summed out before the GEMM
    alone_a = [c for c in ta if c not in tb and c not in out]
    alone_b = [c for c in tb if c not in ta and c not in out]
    if alone_a:
        a, ta = a.sum([ta.index(c) for c in alone_a]), "".join(c for c in ta if c not in alone_a)
    if alone_b:
        b, tb = b.sum([tb.index(c) for c in alone_b]), "".join(c for c in tb if c not in alone_b)
    batch = [c for c in out if c in ta and c in tb]
    rows = [c for c in out if c in ta and c not in tb]
    cols = [c for c in out if c in tb and c not in ta]
    red = [c for c in ta if c in tb and c not in out]

    def dims(letters):
        return math.prod(size[c] for c in letters)

    a3 = a.permute([ta.index(c) for c in batch + rows + red]).reshape(dims(batch), dims(rows), dims(red))
    b3 = b.permute([tb.index(c) for c in batch + red + cols]).reshape(dims(batch), dims(red), dims(cols))
    y = record("matmul", torch.matmul, name, (a3, b3), {})
    order = batch + rows + cols
    y = y.reshape([size[c] for c in order])
    return y.permute([order.index(c) for c in out])


_MHA_NAMES = ("query", "key", "value", "embed_dim_to_check", "num_heads", "in_proj_weight", "in_proj_bias", "bias_k",
              "bias_v", "add_zero_attn", "dropout_p", "out_proj_weight", "out_proj_bias", "training",
              "key_padding_mask", "need_weights", "attn_mask", "use_separate_proj_weight", "q_proj_weight",
              "k_proj_weight", "v_proj_weight", "static_k", "static_v", "average_attn_weights", "is_causal")
_MHA_DEFAULTS = {"training": True, "key_padding_mask": None, "need_weights": True, "attn_mask": None,
                 "use_separate_proj_weight": False, "q_proj_weight": None, "k_proj_weight": None,
                 "v_proj_weight": None, "static_k": None, "static_v": None, "average_attn_weights": True,
                 "is_causal": False}


def _additive(mask: Tensor, like: Tensor) -> Tensor:
    """An attention mask as added to the scores: bool True (masked out) becomes -inf."""
    if mask.dtype == torch.bool:
        return torch.zeros_like(mask, dtype=like.dtype).masked_fill(mask, float("-inf"))
    return mask.to(like.dtype)


def multi_head_attention(record: Record, name: str, args: tuple, kwargs: dict):
    """``F.multi_head_attention_forward`` (``nn.MultiheadAttention``) as projections and two attention GEMMs.

    Self-attention (query, key and value the same tensor) records one packed ``NAME.in_proj``
    linear, as torch computes it; otherwise ``NAME.q``, ``NAME.k``, ``NAME.v``. Then
    ``NAME.scores``, ``NAME.context`` and ``NAME.out_proj``. ``bias_k``/``bias_v``,
    ``add_zero_attn`` and static keys are left to torch (skipped).
    """
    call = _bind(args, kwargs, _MHA_NAMES, _MHA_DEFAULTS)
    if (call is None or call["bias_k"] is not None or call["bias_v"] is not None or call["add_zero_attn"]
            or call["static_k"] is not None or call["static_v"] is not None):
        return NOT_LOWERED
    query, key, value = call["query"], call["key"], call["value"]
    unbatched = query.dim() == 2
    if unbatched:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
    length, batch, embed = query.shape
    heads = int(call["num_heads"])
    head_dim = embed // heads
    bias = call["in_proj_bias"]
    biases = bias.chunk(3) if bias is not None else (None, None, None)
    if not call["use_separate_proj_weight"] and query is key and key is value:
        q, k, v = record("linear", F.linear, f"{name}.in_proj", (query, call["in_proj_weight"], bias), {}).chunk(3, -1)
    else:
        weights = ((call["q_proj_weight"], call["k_proj_weight"], call["v_proj_weight"])
                   if call["use_separate_proj_weight"] else call["in_proj_weight"].chunk(3))
        q, k, v = (record("linear", F.linear, f"{name}.{part}", (x, w, b), {})
                   for part, x, w, b in zip("qkv", (query, key, value), weights, biases))

    def heads_first(x: Tensor) -> Tensor:  # (L, N, E) -> (N, H, L, E/H)
        return x.reshape(x.shape[0], batch, heads, head_dim).permute(1, 2, 0, 3)

    q, k, v = heads_first(q), heads_first(k), heads_first(v)
    scores = record("matmul", torch.matmul, f"{name}.scores", (q, k.transpose(-2, -1)), {}) / math.sqrt(head_dim)
    if call["attn_mask"] is not None:
        mask = _additive(call["attn_mask"], scores)
        scores = scores + (mask.view(batch, heads, *mask.shape[-2:]) if mask.dim() == 3 else mask)
    if call["key_padding_mask"] is not None:
        padding = _additive(call["key_padding_mask"], scores)
        scores = scores + padding.view(batch if not unbatched else 1, 1, 1, -1)
    probs = torch.softmax(scores, dim=-1)
    if call["training"] and call["dropout_p"] > 0:
        probs = F.dropout(probs, call["dropout_p"], training=True)
    context = record("matmul", torch.matmul, f"{name}.context", (probs, v), {})
    context = context.permute(2, 0, 1, 3).reshape(length * batch, embed)
    out = record("linear", F.linear, f"{name}.out_proj", (context, call["out_proj_weight"], call["out_proj_bias"]), {})
    out = out.view(length, batch, embed)
    weights = None
    if call["need_weights"]:
        weights = probs.mean(1) if call["average_attn_weights"] else probs
        weights = weights.squeeze(0) if unbatched else weights
    return (out.squeeze(1) if unbatched else out), weights


def _lstm_cell(gates: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    i, f, g, o = gates.chunk(4, -1)
    c = torch.sigmoid(f) * state[1] + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return h, (h, c)


def _recurrent(cell: str):
    """The ``torch.lstm``/``gru``/``rnn_tanh``/``rnn_relu`` call of ``nn.LSTM``/``GRU``/``RNN``, unrolled.

    Every time step of every layer and direction records two ``linear`` ops,
    ``NAME.l<layer>[_reverse].ih`` (``x_t . W_ih^T``) and ``.hh`` (``h_{t-1} . W_hh^T``), so with
    ``sequence=True`` their t-th calls are time steps t (delta replay). The gate equations are
    those of the torch documentation of each module. Packed sequences and LSTM projections
    (``proj_size``) are left to torch (skipped).
    """

    def run(record: Record, name: str, args: tuple, kwargs: dict):
        if kwargs or len(args) != 9 or not isinstance(args[3], bool) or not isinstance(args[2], (list, tuple)):
            return NOT_LOWERED  # the packed-sequence overload puts batch_sizes second
        x, hx, params, has_biases, layers, dropout, train, bidirectional, batch_first = args
        directions = 2 if bidirectional else 1
        per = 4 if has_biases else 2
        if len(params) != per * layers * directions:
            return NOT_LOWERED  # proj_size adds a weight per layer and direction
        x = x.transpose(0, 1) if batch_first else x  # (T, B, features)
        h0, c0 = hx if cell == "lstm" else (hx, None)
        finals_h, finals_c = [], []
        for layer in range(layers):
            outputs = []
            for d in range(directions):
                index = layer * directions + d
                w_ih, w_hh, b_ih, b_hh = (*params[index * per:index * per + 2],
                                          *(params[index * per + 2:index * per + 4] if has_biases else (None, None)))
                label = f"{name}.l{layer}{'_reverse' if d else ''}"
                state = (h0[index], c0[index]) if cell == "lstm" else h0[index]
                steps = range(x.shape[0] - 1, -1, -1) if d else range(x.shape[0])
                hs = [None] * x.shape[0]
                for t in steps:
                    h_prev = state[0] if cell == "lstm" else state
                    gi = record("linear", F.linear, f"{label}.ih", (x[t], w_ih, b_ih), {})
                    gh = record("linear", F.linear, f"{label}.hh", (h_prev, w_hh, b_hh), {})
                    if cell == "lstm":
                        h, state = _lstm_cell(gi + gh, state)
                    elif cell == "gru":
                        (ir, iz, i_n), (hr, hz, hn) = gi.chunk(3, -1), gh.chunk(3, -1)
                        r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
                        h = state = (1 - z) * torch.tanh(i_n + r * hn) + z * h_prev
                    else:
                        h = state = torch.tanh(gi + gh) if cell == "rnn_tanh" else torch.relu(gi + gh)
                    hs[t] = h
                outputs.append(torch.stack(hs))
                finals_h.append(state[0] if cell == "lstm" else state)
                if cell == "lstm":
                    finals_c.append(state[1])
            x = torch.cat(outputs, -1) if directions == 2 else outputs[0]
            if dropout and train and layer < layers - 1:
                x = F.dropout(x, dropout, training=True)
        out = x.transpose(0, 1) if batch_first else x
        if cell == "lstm":
            return out, torch.stack(finals_h), torch.stack(finals_c)
        return out, torch.stack(finals_h)

    return run


DECOMPOSITIONS = MappingProxyType({
    torch.conv1d: Decomposition("conv1d", conv1d),  # F.conv1d is torch.conv1d
    torch.conv3d: Decomposition("conv3d", conv3d),
    torch.conv_transpose2d: Decomposition("conv_transpose2d", conv_transpose2d),
    F.scaled_dot_product_attention: Decomposition("sdpa", scaled_dot_product_attention),
    torch.addmm: Decomposition("addmm", addmm), torch.Tensor.addmm: Decomposition("addmm", addmm),
    torch.baddbmm: Decomposition("baddbmm", addmm), torch.Tensor.baddbmm: Decomposition("baddbmm", addmm),
    torch.addbmm: Decomposition("addbmm", addbmm), torch.Tensor.addbmm: Decomposition("addbmm", addbmm),
    torch.einsum: Decomposition("einsum", einsum),
    F.multi_head_attention_forward: Decomposition("mha", multi_head_attention),
    torch.lstm: Decomposition("lstm", _recurrent("lstm")),
    torch.gru: Decomposition("gru", _recurrent("gru")),
    torch.rnn_tanh: Decomposition("rnn", _recurrent("rnn_tanh")),
    torch.rnn_relu: Decomposition("rnn", _recurrent("rnn_relu")),
})
"""Torch functions the recorder rewrites into recorded GEMMs, by function object."""
