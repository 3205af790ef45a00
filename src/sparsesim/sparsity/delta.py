"""Delta / temporal sparsity (Delta Networks, Neil et al. ICML 2017; DeltaRNN; EdgeDRNN).

For inputs that arrive as a sequence, a layer processes only the changes: ``d = x_t - x_ref``
is sent where ``d != 0`` and ``|d| >= threshold``, ``x_ref`` is updated only where it fired,
and the output accumulates ``M += W[:, fired] . d[fired]``. The sparse GEMM on ``d`` is
zero-skipping on the delta tensor (same lockstep rules as :mod:`zero_skip`). Each step also
pays the encoder (subtract, compare, reference update per input element) and the reads and
writes of the reference and accumulator state, on chip where it fits in the output buffer,
else in DRAM. ``threshold = 0`` reproduces the dense outputs exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from sparsesim.hardware.config import _param
from sparsesim.hardware.kernels import delta_step
from sparsesim.hardware.schedule import EventCounts
from sparsesim.sparsity.base import FEATURES, NO_EFFECTS, Feature, FeatureRun, GemmEffects, OperandEffects, RowView, \
    SideCharge
from sparsesim.core.errors import InputError
from sparsesim.workloads.lowering import gemm_operands

COLUMNS = {"delta_threshold": None, "delta_fired_fraction": None, "delta_err_max": None, "delta_err_mean": None}
"""``delta_threshold`` theta; ``delta_fired_fraction`` the fraction of input elements sent;
``delta_err_*`` the output error against the dense layer at this step. Rows it acts on also
carry ``delta_state_on_chip`` and ``delta_state_bytes`` (the reference and accumulator state)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeltaConfig(Feature):
    kind: ClassVar[str] = "delta"
    order: ClassVar[int] = 30
    columns: ClassVar[dict] = COLUMNS
    encodes_input: ClassVar[bool] = True
    examples: ClassVar[tuple[str, ...]] = ("delta:0.05", "delta:0:weight_fetch=false")
    neutral: ClassVar[str | None] = "delta:0"
    threshold: float = _param("firing threshold theta on |x_t - x_ref| (same units as the activations)",
                              default=0.0, minimum=0.0, maximum=1e30)
    target: str = _param("the tensor that is delta-encoded", default="input", choices=("input",))
    weight_fetch: bool = _param("skip the weight rows behind activations that are zero in every row of the "
                                "GEMM: not fetched from DRAM (at dram.burst_bytes granularity), not read from "
                                "SRAM; the skip bitmap that drives the gather is charged", default=True)

    @classmethod
    def from_cli(cls, fields: list[str]) -> dict:
        if len(fields) != 1:
            raise InputError("expected delta:THRESHOLD, e.g. delta:0.05")
        try:
            return {"kind": "delta", "threshold": float(fields[0])}
        except ValueError:
            raise InputError(f"delta threshold must be a number, got {fields[0]!r}") from None

    def label(self) -> str:
        return f"delta{self.threshold:g}" + ("" if self.weight_fetch else "-nofetch")

    def zero_roles(self) -> tuple[str, ...]:
        return ("input",)

    def effects(self, phase, roles: tuple[str, str]) -> GemmEffects:
        """fwd: A is the delta tensor, its zeros (unsent changes) skipped and stored compressed;
        with ``weight_fetch`` the weight rows behind them are not fetched."""
        if not phase.forward:
            return NO_EFFECTS
        return GemmEffects(OperandEffects(aware=True, skip=True, compress=True, fetch_skip=self.weight_fetch))

    def check_workload(self, workload) -> None:
        if workload.time_steps is None or all(t is None for t in workload.time_steps):
            raise InputError("sparsity.delta: the workload has no time axis; delta replay needs a "
                             "sequence trace (e.g. `sparsesim trace capture --model video_cnn`)")
        if any(not p.forward for p in workload.phases):
            raise InputError("sparsity.delta: delta encoding applies to inference; simulate forward phases only")

    def start(self, run) -> DeltaRun:
        return DeltaRun(self, run)

    def state_keys(self, workload) -> list:
        """A layer's reference and accumulated deltas are its own: keyed by op name (every time
        step of a layer in one process, layers apart)."""
        return [op.name for op in workload.ops]


FEATURES.add("delta", DeltaConfig)


class DeltaRun(FeatureRun):
    """Delta encoding in one run: the reference state and the sum of the sent deltas per layer."""

    config: DeltaConfig

    def __init__(self, config: DeltaConfig, run) -> None:
        super().__init__(config, run)
        # per layer name and input shape: an input that changes shape (attention over a growing
        # KV cache) starts again from a zero reference
        self.refs: dict[tuple[str, tuple[int, ...]], np.ndarray] = {}  # the reference x_ref
        self.accs: dict[tuple[str, tuple[int, ...]], np.ndarray] = {}  # the sum of the deltas sent so far

    def encode(self, op, phase, x: np.ndarray, extra: dict) -> np.ndarray:
        if not phase.forward:
            return x
        ref = self.refs.setdefault((op.name, x.shape), np.zeros(x.size, dtype=np.float64))
        d = delta_step(np.ascontiguousarray(x, dtype=np.float64).ravel(), ref, self.config.threshold)
        extra["delta_threshold"] = self.config.threshold
        extra["delta_fired_fraction"] = float((d != 0).mean())
        return d.reshape(x.shape)

    def keeps_b_seen(self, phase) -> bool:
        return phase.forward

    def side(self, row: RowView) -> SideCharge | None:
        if not row.phase.forward:
            return None
        touched = sum(int(np.count_nonzero(m.any(axis=1))) for m in row.a_masks) * row.gemm.N
        charge = self._costs(row.op, row.x_seen, touched, row.extra)
        self._error(row.op, row.phase, row.x_seen, row.x, row.b_seen, row.extra)
        return charge

    def _costs(self, op, d: np.ndarray, touched: int, extra: dict) -> SideCharge:
        """Encoder work and reference/accumulator state traffic of one delta step.

        Per input element: one subtract and one compare, a reference read, and a reference
        write where it fired. Per output element that some fired input reaches (``touched``:
        the outputs of every row of A that is not all zero), a read-modify-write of its
        accumulator; untouched accumulators keep their value. The state (reference plus
        accumulators) lives in the output buffer's free half when it fits, else in DRAM.
        """
        cfg = self.run.cfg
        elem, acc = cfg.array.element_bytes, cfg.array.accumulator_bytes
        n_in, n_out = d.size, int(np.prod(op.output_shape))
        fired = int(np.count_nonzero(d))
        reads = n_in * elem + touched * acc
        writes = fired * elem + touched * acc
        # the state shares the output buffer with the GEMM's own double-buffered output tiles:
        # it may take at most half, and the GEMM is then mapped into what is left
        on_chip = n_in * elem + n_out * acc <= cfg.buffers.out.size_bytes // 2
        counts = EventCounts(delta_state_bytes=reads + writes, encode_ops=2 * n_in)
        extra["delta_state_on_chip"] = on_chip
        extra["delta_state_bytes"] = n_in * elem + n_out * acc
        if on_chip:
            return SideCharge(counts=counts, out_reserved_bytes=n_in * elem + n_out * acc)
        return SideCharge(read_bytes=reads, write_bytes=writes, counts=counts)

    def _error(self, op, phase, sent: np.ndarray, x_now: np.ndarray, w: np.ndarray, extra: dict) -> None:
        """Output error of the delta layer against the dense layer at this step.

        The error is that of what was actually sent: the layer's accumulator holds
        ``sum_t (delta_t . W)``, which by linearity is ``(sum_t delta_t) . W``, so the run keeps
        the sum of the sent deltas (``sent`` is this step's) and evaluates ``(sum - x_t) . W``.
        A wrong delta therefore shows up as error. Keeping the sum in input space makes it exact
        in float64 for float32 data (each delta and each partial sum is representable), so
        threshold 0 gives exactly zero error; the rounding of a hardware accumulator is not
        modelled.
        """
        acc = self.accs.setdefault((op.name, x_now.shape), np.zeros(sent.size, dtype=np.float64))
        acc += sent.ravel()
        gap, b = gemm_operands(op, phase, acc.reshape(x_now.shape) - x_now.astype(np.float64), w, None)
        b = b.astype(np.float64)
        worst, total, count = 0.0, 0.0, 0
        rows = max(1, (1 << 22) // max(b.shape[2], 1))  # bound the temporaries to ~4M elements
        for g in range(gap.shape[0]):
            for r0 in range(0, gap.shape[1], rows):
                err = np.abs(gap[g, r0:r0 + rows] @ b[g])  # exact zero where every delta arrived
                if err.size:
                    worst, total, count = max(worst, float(err.max())), total + float(err.sum()), count + err.size
        extra["delta_err_max"] = worst
        extra["delta_err_mean"] = total / count if count else 0.0
