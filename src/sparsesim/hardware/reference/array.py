"""The PE array, cycle by cycle: feeders, fold sequencer and PEs moving real values.

Mapping (docs/design.md section 3.2), with ``s`` a compacted reduction slot (a plain ``k`` when the
weights are dense; see :mod:`.operands`):

=====  ==============  ==============  =========  =====================================
name   PE rows         PE columns      time       in the PEs
=====  ==============  ==============  =========  =====================================
os     outputs ``i``   outputs ``j``   slots      accumulators (double-buffered banks)
ws     slots ``s``     outputs ``j``   ``i``      weight slots (double-buffered registers)
is     slots ``s``     outputs ``i``   ``j``      activation groups (double-buffered)
=====  ==============  ==============  =========  =====================================

Every cycle the tokens in the row pipes move one PE to the right and those in the column
pipes (``os``: weights; ``ws``/``is``: partial sums) one PE down; feeders enter row ``r``
through an ``r``-deep skew line and column ``c`` through a ``c``-deep one, so the operands of
one step meet on the anti-diagonal. A partial sum leaves the bottom PE into the output
buffer, where ``ws``/``is`` add it to the partial sums of the other K folds. A MAC multiplies
a weight slot's value by the activation its index selects out of the group (``m = 1``: the
only one); it is *gated* when a zero detector sees a zero operand (cycle kept, no register
access), else *performed* (two operand register reads and an accumulator read-modify-write).

Feeders decide which streamed steps a fold executes:

* dense: every step, all lanes in lockstep;
* lockstep skipping: a step is skipped, in zero cycles, when no lane of the fold has
  effectual work in it: ``os`` looks at the fold's activation groups (input skipping) and its
  weight slots of the step's group (weight skipping), ``ws`` at the activations entering the
  fold's rows, ``is`` at the weight slots entering them. A stationary operand's zeros can
  only be gated. With N:M on ``os`` the time unit is the group (its ``n`` slots together);
* decoupled lanes (``array.lanes: decoupled``): each PE row (lane) has its own queue of the
  steps in which it has effectual work; all lanes meet every ``sync_window_steps`` steps, so a
  window lasts as long as its busiest lane (a window without work costs nothing). A waiting
  lane sends an idle token along its row: each used PE it passes counts a gated slot. Lanes
  out of step cannot pass partial sums or weights systolically, so on this array a PE reads
  the weight of its column's step from the column's weight registers (``os``) and adds its
  product into the output buffer's accumulator of that output through the column's adder
  (``ws``/``is``).

The fold sequencer (folds in loop order: ``os`` M blocks outside, ``ws``/``is`` the column
blocks outside) runs the array as follows, ``R x C`` the array, ``P`` the preload (``R`` for
``ws``/``is``, else 0) and ``L`` the steps a fold executed:

* Each fold occupies the whole array: operand tokens of its unused rows/columns are bubbles,
  and its drain waits the full ``R + C - 2`` cycles of the wavefront (SCALE-Sim v3's
  convention).
* Preload: the stationary block of a fold shifts down each column's chain of shadow
  registers, one row per cycle, column ``c`` starting ``c`` cycles after the preload does.
* Without fold overlap, a fold is preload, stream, drain: ``max(P + L + R + C - 2, 1)``
  cycles (the sequencer spends at least a cycle on a fold).
* With fold overlap, each fold starts by handing the ``R``-deep shadow chain a transfer
  that takes ``R`` cycles: ``ws``/``is`` preload the *next* fold's stationary block into the
  other register bank, ``os`` swaps the *previous* fold's finished outputs into the shadow
  accumulators and shifts them out. So the next fold starts streaming ``max(L, R)`` cycles
  after the current one started. The run ends when the last fold has drained, ``L + R + C -
  2`` cycles after it started streaming, and, ``os``, the chain transfer it started is done,
  ``R`` cycles after it started (this only matters for a fully skipped last fold on an
  ``R x 1`` array). The last ``os`` block's own read-out is not charged, as in SCALE-Sim's
  ``os`` count, which ends at the last MAC.

A stationary token carries its fold; a PE that would multiply by a stale one raises, so a
sequencing hazard cannot pass silently. At the end every pipe must be empty.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from sparsesim.hardware.dataflow_kind import DataflowKind
from sparsesim.hardware.reference.operands import WeightSlots, activation_groups


@dataclass(frozen=True, slots=True, kw_only=True)
class ArraySpec:
    """The array the reference runs: geometry, dataflow, fold overlap, lane organisation.

    ``dataflow`` is the description the fast model's dataflow carries
    (``DATAFLOWS.get(name).kind``); the reference asks it which operand is stationary, whose
    zeros can skip a step and which block index is the outer fold loop, never its name.
    """

    rows: int
    cols: int
    dataflow: DataflowKind
    fold_overlap: bool = True
    lanes: str = "systolic"  # or "decoupled"
    sync_window_steps: int = 4

    def __post_init__(self) -> None:
        if not isinstance(self.dataflow, DataflowKind):
            raise ValueError(f"dataflow must be a DataflowKind, got {self.dataflow!r}")
        if self.rows < 1 or self.cols < 1 or self.sync_window_steps < 1:
            raise ValueError("rows, cols and sync_window_steps must be positive")
        if self.lanes not in ("systolic", "decoupled"):
            raise ValueError(f"unknown lane organisation {self.lanes!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ZeroLogic:
    """Which zeros the hardware acts on: ``skip_*`` removes steps, ``detect_*`` gates MACs."""

    skip_a: bool = False
    skip_b: bool = False
    detect_a: bool = False
    detect_b: bool = False


@dataclass(frozen=True, slots=True)
class ReferenceRun:
    """What the reference measured: cycles, the outputs it accumulated, MAC events."""

    cycles: int
    out: np.ndarray  # (M, N)
    macs_performed: int
    macs_gated: int
    rf_accesses: int
    fold_steps: tuple[int, ...]  # steps each fold executed (loop order)


@dataclass(frozen=True, slots=True)
class _Fold:
    index: int
    rb: int  # row block
    cb: int  # column block
    rows_used: int
    cols_used: int


class _Array:
    """One GEMM on the array. Create, call :meth:`run` once."""

    def __init__(self, a: np.ndarray, w: WeightSlots, m_rows: int, n_cols: int, spec: ArraySpec,
                 zeros: ZeroLogic) -> None:
        self.spec, self.zeros, self.w = spec, zeros, w
        self.R, self.C = spec.rows, spec.cols
        kind = spec.dataflow
        # the operand held in the PEs: "Out" (os), "B" (ws: weight slots) or "A" (is: activations)
        self.held = kind.stationary
        self.M, self.N, self.S = m_rows, n_cols, w.slots
        self.act = activation_groups(a, w.m)  # [i][g] -> tuple of m activations
        self.act_alive = [[any(v != 0 for v in grp) for grp in row] for row in self.act]
        exact = np.result_type(a.dtype, np.asarray(w.value).dtype).kind in "iub"  # integers stay exact
        self.out = np.zeros((m_rows, n_cols), dtype=np.int64 if exact else np.float64)
        self.performed = self.gated = self.rf = 0
        # geometry: extents along PE rows and columns, the streamed length
        self.row_ext, self.col_ext, self.T = kind.extents({"M": self.M, "N": self.N, "K": self.S})
        fr, fc = -(-self.row_ext // self.R), -(-self.col_ext // self.C)
        order = [(rb, cb) for rb in range(fr) for cb in range(fc)] if kind.outer == "row" else \
            [(rb, cb) for cb in range(fc) for rb in range(fr)]
        self.folds = [_Fold(f, rb, cb, min(self.R, self.row_ext - rb * self.R), min(self.C, self.col_ext - cb * self.C))
                      for f, (rb, cb) in enumerate(order)]
        self.preload = self.R if kind.preload else 0
        # which skip-targeted zeros can remove a step: those of the streamed operands
        self.skip = (zeros.skip_a and "A" in kind.zero_skippable, zeros.skip_b and "B" in kind.zero_skippable)
        # the array's state
        self.t = 0
        self.row_pipe = [[None] * self.C for _ in range(self.R)]  # moves right
        self.col_pipe = [[None] * self.C for _ in range(self.R)]  # moves down
        self.row_skew = [deque([None] * r) for r in range(self.R)]
        self.col_skew = [deque([None] * c) for c in range(self.C)]
        self.chain = [[None] * self.C for _ in range(self.R)]  # stationary transit (shadow) chain
        self.stationary = [[[None, None] for _ in range(self.C)] for _ in range(self.R)]  # two banks
        self.acc = [[[None, None] for _ in range(self.C)] for _ in range(self.R)]  # os: [fold, value] banks
        self.preloads: list[tuple[_Fold, int]] = []  # (fold, start cycle) of chain transfers under way
        # os under weight skipping: does group g hold a nonzero weight in column block cb?
        self.col_group_alive = {}

    # ---------------------------------------------------------------- feeders
    def _lane_alive(self, fold: _Fold, r: int, u: int) -> bool:
        """Whether lane ``r`` of ``fold`` has effectual work at step ``u`` (skip-targeted zeros only)."""
        (skip_a, skip_b), w = self.skip, self.w
        if self.held == "Out":
            g = w.group[u]
            return (not skip_a or self.act_alive[fold.rb * self.R + r][g]) and \
                (not skip_b or self._cols_alive(fold, g))
        s = fold.rb * self.R + r
        if self.held == "B":
            return not skip_a or self.act_alive[u][w.group[s]]
        return not skip_b or w.value[s][u] != 0

    def _cols_alive(self, fold: _Fold, g: int) -> bool:
        key = (fold.cb, g)
        if key not in self.col_group_alive:
            j0 = fold.cb * self.C
            self.col_group_alive[key] = any(self.w.value[s][j] != 0 for s in self.w.group_slots[g]
                                            for j in range(j0, j0 + fold.cols_used))
        return self.col_group_alive[key]

    def _skipping(self) -> bool:
        return any(self.skip)

    def _feeder(self, fold: _Fold):
        """Per cycle, the step each lane (used PE row) streams, ``None`` for an idle lane."""
        lanes = range(fold.rows_used)
        if not self._skipping():
            for u in range(self.T):
                yield [u] * fold.rows_used
            return
        if self.spec.lanes == "systolic":
            for u in range(self.T):
                if any(self._lane_alive(fold, r, u) for r in lanes):  # else skipped in zero cycles
                    yield [u] * fold.rows_used
            return
        window = self.spec.sync_window_steps
        for w0 in range(0, self.T, window):  # lanes meet at every window boundary
            queues = [deque(u for u in range(w0, min(w0 + window, self.T)) if self._lane_alive(fold, r, u))
                      for r in lanes]
            while any(queues):
                yield [q.popleft() if q else None for q in queues]

    # ---------------------------------------------------------------- tokens
    def _row_token(self, fold: _Fold, r: int, u: int | None):
        """What lane ``r`` of ``fold`` sends into its row for step ``u`` (``None``: idle)."""
        if u is None:
            return (fold, None, None)
        if self.held == "Out":  # os: activation group of output row i, for slot u
            return (fold, u, self.act[fold.rb * self.R + r][self.w.group[u]])
        s = fold.rb * self.R + r
        if self.held == "B":  # ws: activation group of row i = u feeding slot s
            return (fold, u, self.act[u][self.w.group[s]])
        return (fold, u, (self.w.value[s][u], self.w.index[s][u]))  # is: weight slot s of column u

    def _col_token(self, fold: _Fold, c: int, u: int):
        """What enters column ``c`` for step ``u``: ``os`` a weight slot, ``ws``/``is`` a partial sum."""
        if self.held == "Out":
            j = fold.cb * self.C + c
            return (fold, u, (self.w.value[u][j], self.w.index[u][j]))
        return [fold, u, 0]

    def _stationary_token(self, fold: _Fold, r: int, c: int):
        """Block row ``r``, column ``c`` of ``fold``'s stationary operand (payload None: unused PE)."""
        if r >= fold.rows_used or c >= fold.cols_used:
            return (fold, None)
        s = fold.rb * self.R + r
        if self.held == "B":  # ws: weight slot s of output column j
            j = fold.cb * self.C + c
            return (fold, (self.w.value[s][j], self.w.index[s][j]))
        return (fold, self.act[fold.cb * self.C + c][self.w.group[s]])  # is: activation group of i

    # ---------------------------------------------------------------- one MAC
    def _mac(self, weight, group) -> int | float:
        """Weight slot ``(value, index)`` times the activation its index selects; gate zeros."""
        value, index = weight
        a = group[index]
        if (self.zeros.detect_a and a == 0) or (self.zeros.detect_b and value == 0):
            self.gated += 1
            return 0
        self.performed += 1
        self.rf += 3  # two operand registers read, accumulator read-modify-write
        return value * a

    # ---------------------------------------------------------------- one cycle
    def _cycle(self, lanes: list | None, fold: _Fold | None) -> None:
        """Advance the array by one cycle, ``lanes`` the steps the feeder streams into ``fold``."""
        R, C = self.R, self.C
        decoupled = self.spec.lanes == "decoupled"
        # 1. stationary chains: each column's transit chain shifts one row while its transfer
        #    window is open; the full column is then copied into the fold's register bank
        for pfold, start in self.preloads:
            bank = pfold.index & 1
            for c in range(C):
                k = self.t - start - c
                if 0 <= k < R:
                    for r in range(R - 1, 0, -1):
                        self.chain[r][c] = self.chain[r - 1][c]
                    self.chain[0][c] = self._stationary_token(pfold, R - 1 - k, c)
                    if k == R - 1:
                        for r in range(R):
                            self.stationary[r][c][bank] = self.chain[r][c]
        self.preloads = [(f, s) for f, s in self.preloads if self.t - s < R + C - 2]
        # 2. feeders push into the skew lines; skew lines and pipes advance one step
        row_in = [None] * R
        col_in = [None] * C
        if lanes is not None:
            for r, u in enumerate(lanes):
                row_in[r] = self._row_token(fold, r, u)
            step = next((u for u in lanes if u is not None), None)
            if not decoupled and step is not None:
                for c in range(fold.cols_used):
                    col_in[c] = self._col_token(fold, c, step)
        for r in range(R):
            self.row_skew[r].append(row_in[r])
            row = self.row_pipe[r]
            row.pop()  # the token leaving the right edge has passed every PE of its row
            row.insert(0, self.row_skew[r].popleft())
        self.col_pipe.pop()  # os: a weight leaving the bottom edge has passed every PE of its column
        top = []
        for c in range(C):
            self.col_skew[c].append(col_in[c])
            top.append(self.col_skew[c].popleft())
        self.col_pipe.insert(0, top)
        # 3. every PE acts on what it holds
        for r in range(R):
            row, col, stat, acc = self.row_pipe[r], self.col_pipe[r], self.stationary[r], self.acc[r]
            for c in range(C):
                rt = row[c]
                if rt is None:
                    continue
                f = rt[0]
                if c >= f.cols_used:
                    continue
                if rt[1] is None:  # an idle lane waiting for its window's sync
                    self.gated += 1
                    continue
                if self.held == "Out":
                    if decoupled:
                        j = f.cb * C + c
                        weight = (self.w.value[rt[1]][j], self.w.index[rt[1]][j])
                    else:
                        ct = col[c]
                        if ct is None or ct[0] is not f or ct[1] != rt[1]:
                            raise RuntimeError("os operands out of step")
                        weight = ct[2]
                    bank = acc[c][f.index & 1]
                    if bank is None or bank[0] is not f:
                        self._flush(r, c, bank)
                        bank = acc[c][f.index & 1] = [f, 0]
                    bank[1] += self._mac(weight, rt[2])
                    continue
                st = stat[c][f.index & 1]
                if st is None or st[0] is not f:
                    raise RuntimeError(f"PE({r},{c}) would use a stale stationary operand")
                if self.held == "B":
                    product = self._mac(st[1], rt[2])
                    i, j = rt[1], f.cb * C + c
                else:
                    product = self._mac(rt[2], st[1])
                    i, j = f.cb * C + c, rt[1]
                if decoupled:  # the column's adder takes the product straight to its output
                    self.out[i, j] += product
                    continue
                pt = col[c]
                if pt is None or pt[0] is not f or pt[1] != rt[1]:
                    raise RuntimeError("partial sum and operand out of step")
                pt[2] += product
        # 4. partial sums leaving the bottom row go to the output buffer
        if self.held != "Out":
            for c, pt in enumerate(self.col_pipe[R - 1]):
                if pt is not None:
                    f = pt[0]
                    i, j = (pt[1], f.cb * C + c) if self.held == "B" else (f.cb * C + c, pt[1])
                    self.out[i, j] += pt[2]
                    self.col_pipe[R - 1][c] = None
        self.t += 1

    def _flush(self, r: int, c: int, bank) -> None:
        """``os``: a finished accumulator bank goes to the output buffer."""
        if bank is None:
            return
        f = bank[0]
        self.out[f.rb * self.R + r, f.cb * self.C + c] = bank[1]

    # ---------------------------------------------------------------- the sequencer
    def _idle_until(self, end: int) -> None:
        while self.t < end:
            self._cycle(None, None)

    def _stream(self, fold: _Fold) -> int:
        """Stream ``fold`` until its feeder runs dry; returns the steps executed."""
        start = self.t
        for lanes in self._feeder(fold):
            self._cycle(lanes, fold)
        return self.t - start

    def run(self) -> ReferenceRun:
        R, C, P = self.R, self.C, self.preload
        skew = R + C - 2
        steps = []
        if not self.spec.fold_overlap:
            for fold in self.folds:
                start = self.t
                if P:
                    self.preloads.append((fold, start))
                self._idle_until(start + P)
                length = self._stream(fold)
                steps.append(length)
                self._idle_until(start + max(P + length + skew, 1))
        else:
            if P:
                self.preloads.append((self.folds[0], 0))
            self._idle_until(P)
            for n, fold in enumerate(self.folds):
                start = self.t
                last = n == len(self.folds) - 1
                if P and not last:  # the next block preloads into the other bank meanwhile
                    self.preloads.append((self.folds[n + 1], start))
                length = self._stream(fold)
                steps.append(length)
                if last:  # os: the previous output block still leaves through the R-deep chain
                    self._idle_until(start + max(length + skew, R if self.held == "Out" else 0))
                else:
                    self._idle_until(start + max(length, R))
        self._check_drained()
        for r in range(R):
            for c in range(C):
                for bank in self.acc[r][c]:
                    self._flush(r, c, bank)
        return ReferenceRun(self.t, self.out, self.performed, self.gated, self.rf, tuple(steps))

    def _check_drained(self) -> None:
        """Every token must have reached the last used PE of its row (column), every partial
        sum the output buffer, when the sequencer ends the run."""
        late = any(v is not None for line in self.row_skew + self.col_skew for v in line)
        for r in range(self.R):
            for c in range(self.C):
                rt, ct = self.row_pipe[r][c], self.col_pipe[r][c]
                late |= rt is not None and c < rt[0].cols_used - 1
                if ct is not None:
                    late |= self.held != "Out" or r < ct[0].rows_used - 1
        if late:
            raise RuntimeError("the sequencer ended the run before the array drained")


def run_array(a: np.ndarray, w: WeightSlots, n_cols: int, spec: ArraySpec, zeros: ZeroLogic = ZeroLogic()) -> ReferenceRun:
    """Run ``Out = A . B`` on the array, ``A[M x K]`` dense activations and ``B`` held as
    weight slots (:func:`sparsesim.hardware.reference.operands.weight_slots`), ``n_cols = N``."""
    if a.ndim != 2 or -(-a.shape[1] // w.m) != len(w.group_slots):
        raise ValueError(f"A has shape {a.shape}, the weights {len(w.group_slots)} groups of {w.m}")
    return _Array(a, w, a.shape[0], n_cols, spec, zeros).run()
