"""How much of a model's GEMM work a capture recorded: an independent count at the aten level.

The recorder sees torch *functions* (``F.linear``, ``torch.matmul``...). A function it does
not lower (``F.multi_head_attention_forward``, a non-matmul ``einsum``, a transposed conv,
``torch._VF.lstm``) runs with the recorder switched off, so the GEMMs inside it would be lost
silently. :class:`MacCounter` is a :class:`~torch.utils._python_dispatch.TorchDispatchMode`
active during every captured forward pass: it sees each aten GEMM kernel (``mm``,
``addmm``, ``bmm``, ``baddbmm``, ``convolution``, the fused attention kernels...) whatever
called it, counts its MACs, and attributes them to the torch function call that was running
(set by the recorder in :attr:`MacCounter.owner`): recorded work, or an unrecorded function
of a named module. :func:`coverage_summary` turns that into the manifest's
``capture.coverage`` (see :mod:`sparsesim.workloads.trace.format`).

Only forward work is counted; in training each recorded op's backward GEMMs are recorded
with it, and a skipped op's backward is as much work again as its forward, or twice that.
MACs here are multiply-accumulates of the dense GEMMs (a conv counts ``output elements x
C/g x R x S``, like :meth:`sparsesim.workloads.ops.Conv2d.gemm`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten

RECORDED = ("", "<recorded>")
"""The :attr:`MacCounter.owner` of work inside a call the recorder lowers to trace ops."""


def _mm(a, b) -> int:
    return a.shape[0] * a.shape[1] * b.shape[-1]


def _bmm(a, b) -> int:
    return a.shape[0] * a.shape[1] * a.shape[2] * b.shape[-1]


def _conv(args, out) -> int:
    x, w, transposed = args[0], args[1], bool(args[6]) if len(args) > 6 else False
    per_element = math.prod(w.shape[1:])  # C/g x kernel (forward) or K/g x kernel (transposed)
    return (x.numel() if transposed else out.numel()) * per_element


def _attention(args) -> int:
    q, k, v = args[:3]
    rows = math.prod(q.shape[:-1])  # batch x heads x L
    return rows * k.shape[-2] * (q.shape[-1] + v.shape[-1])  # Q.K^T then P.V


def _rnn_layer(args) -> int:
    x, w_ih, w_hh = args[:3]
    return (x.numel() // x.shape[-1]) * (w_ih.numel() + w_hh.numel())  # per token: input and hidden GEMVs


_MACS = {
    aten.mm: lambda a, o: _mm(a[0], a[1]),
    aten.addmm: lambda a, o: _mm(a[1], a[2]),
    aten.bmm: lambda a, o: _bmm(a[0], a[1]),
    aten.baddbmm: lambda a, o: _bmm(a[1], a[2]),
    aten.addbmm: lambda a, o: _bmm(a[1], a[2]),
    aten.mv: lambda a, o: a[0].numel(),
    aten.addmv: lambda a, o: a[1].numel(),
    aten.dot: lambda a, o: a[0].numel(),
    aten.vdot: lambda a, o: a[0].numel(),
    aten.convolution: lambda a, o: _conv(a, o),
    aten._convolution: lambda a, o: _conv(a, o),
    aten._scaled_dot_product_flash_attention_for_cpu: lambda a, o: _attention(a),
    aten._scaled_dot_product_flash_attention: lambda a, o: _attention(a),
    aten._scaled_dot_product_efficient_attention: lambda a, o: _attention(a),
    aten._scaled_dot_product_cudnn_attention: lambda a, o: _attention(a),
    aten.mkldnn_rnn_layer: lambda a, o: _rnn_layer(a),  # nn.LSTM on CPU; GRU and RNN run as addmm
}
"""Forward MACs of each aten GEMM kernel from its arguments and output."""


class MacCounter(TorchDispatchMode):
    """Counts forward GEMM MACs per owner: :data:`RECORDED`, or ``(module, function)`` not recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.owner: tuple[str, str] = ("", "<no torch function>")
        self.recorded_macs = 0
        self.skipped_macs = 0
        self.skipped: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])  # owner -> [calls, macs]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        count = _MACS.get(func.overloadpacket)
        if count is not None:
            macs = int(count(args, out))
            if self.owner == RECORDED:
                self.recorded_macs += macs
            else:
                self.skipped_macs += macs
                self.skipped[self.owner][1] += macs
        return out

    def attribute(self, owner: tuple[str, str], call: Callable[[], object]) -> object:
        """Run ``call()`` with its GEMM work attributed to ``owner``; a call that did some counts once."""
        previous, self.owner = self.owner, owner
        before = self.skipped_macs
        try:
            return call()
        finally:
            self.owner = previous
            if self.skipped_macs > before:
                self.skipped[owner][0] += 1


def coverage_summary(counter: MacCounter, recorded_fwd_macs: int, steps: int) -> dict:
    """The manifest's ``capture.coverage`` from a counter that saw ``steps`` captured forward passes.

    ``macs_fwd_recorded`` is what the trace's ops hold (their fwd GEMMs); ``macs_fwd_total``
    adds the work counted outside them. ``skipped`` lists every unrecorded function that did
    GEMM work: module, function, calls and forward MACs over all captured steps.
    """
    skipped = [{"module": module or "<top>", "function": function, "calls": calls, "macs_fwd": macs}
               for (module, function), (calls, macs) in counter.skipped.items() if macs > 0]
    skipped.sort(key=lambda s: (-s["macs_fwd"], s["module"], s["function"]))
    unrecorded = sum(s["macs_fwd"] for s in skipped)
    return {"steps": steps, "macs_fwd_total": recorded_fwd_macs + unrecorded, "macs_fwd_recorded": recorded_fwd_macs,
            "macs_fwd_counted_in_recorded_calls": counter.recorded_macs, "skipped": skipped}
