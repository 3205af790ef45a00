"""``sparsesim validate reference``: the fast model against the cycle-by-cycle reference.

Each case is drawn from its own seed (the run's seed and the case number), so a case is the
same whatever the number of cases: an array of 1x1 to 8x8 (non-square too), a GEMM with
``M, N, K`` in 1..40, a dataflow, fold overlap on or off, and dense or sparsity features with
their ``--sparsity`` strings (``nm:N:M`` in the fwd or bwd_data phase, ``zero_skip`` with every
target and action on systolic or decoupled lanes and various sync windows, ``delta:THETA`` over
a short sequence). Operands are small integers drawn with random densities, all-zero rows and
columns, short last N:M groups, and unchanged (empty-delta) steps.

Both models run the same operands: the reference (:mod:`sparsesim.hardware.reference`) directly,
the fast model through its public path, :func:`sparsesim.simulation.run.simulate_rows` on a one-layer
workload whose tensor source returns the drawn tensors, with ``dram.ideal`` so its
``compute_cycles`` is the array time. A case agrees when the cycles and the MAC events
(performed, gated, register-file accesses) are equal, the reference's outputs equal the
product under the features' semantics exactly (``A @ B``, N:M-pruned ``B``, accumulated
deltas), the fast model's delta output error equals the one measured from what the reference
accumulated, and, for dense cases without fold overlap, the reference's cycles equal
SCALE-Sim's closed form (docs/design.md section 3.2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sparsesim.dataflows import DATAFLOWS
from sparsesim.hardware.presets import load_accel
from sparsesim.hardware.reference import ArraySpec, DeltaEncoder, ZeroLogic, nm_prune_columns, run_array, weight_slots
from sparsesim.sparsity import cli_sparsity, composed_effects, parse_features
from sparsesim.sparsity.base import GemmEffects
from sparsesim.simulation.run import simulate_rows
from sparsesim.workloads.gemm import PHASES, Phase
from sparsesim.workloads.lowering import OPERAND_ROLES
from sparsesim.workloads.ops import Linear, Workload

NM_RATIOS = ((1, 4), (2, 4), (1, 8), (2, 8), (4, 8), (1, 16))
"""The N:M ratios drawn (those the presets' sparse MAC units support)."""

EVENTS = ("macs_performed", "macs_gated", "rf_accesses")


@dataclass(frozen=True, slots=True)
class Case:
    """One drawn case: hardware, GEMM, features and the tensors of every time step."""

    index: int
    dataflow: str
    rows: int
    cols: int
    fold_overlap: bool
    lanes: str
    sync_window_steps: int
    phase: Phase
    M: int
    N: int
    K: int
    features: tuple[str, ...]
    inputs: tuple[np.ndarray, ...]  # X per time step (tokens x in_features)
    weight: np.ndarray  # W (out_features x in_features)
    grad: np.ndarray  # dY (tokens x out_features)

    @property
    def linear(self) -> Linear:
        """The layer whose ``phase`` GEMM is ``M x N x K`` (see :mod:`sparsesim.workloads.ops`)."""
        tokens, fin, fout = {Phase.FWD: (self.M, self.K, self.N), Phase.BWD_DATA: (self.M, self.N, self.K),
                             Phase.BWD_WEIGHT: (self.K, self.M, self.N)}[self.phase]
        return Linear(name="layer", tokens=tokens, in_features=fin, out_features=fout)

    @property
    def parsed(self) -> tuple:
        """The feature config objects of :attr:`features` (each CLI string parsed once, as a run does)."""
        return parse_features(tuple(cli_sparsity(list(self.features))))

    @property
    def effects(self) -> GemmEffects:
        """What the features do with the zeros of the case's GEMM operands (composed)."""
        return composed_effects(self.parsed, self.phase, OPERAND_ROLES[self.phase])


# ---------------------------------------------------------------- drawing cases


def _tensor(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Small integers with a random density, sometimes whole zero rows/columns, or all zero."""
    x = rng.integers(-4, 5, shape).astype(np.float32)
    x *= rng.random(shape) < rng.choice([0.05, 0.2, 0.4, 0.7, 1.0])
    if rng.random() < 0.5:
        x[rng.random(shape[0]) < 0.4, :] = 0
    if rng.random() < 0.5:
        x[:, rng.random(shape[1]) < 0.4] = 0
    if rng.random() < 0.04:
        x[:] = 0
    return x


def draw_case(seed: int, index: int) -> Case:
    """Case ``index`` of the run seeded ``seed`` (independent of how many cases are drawn)."""
    rng = np.random.default_rng([seed, index])
    dataflow = str(rng.choice(["os", "ws", "is"]))
    rows, cols = (int(v) for v in rng.integers(1, 9, 2))
    M, N, K = (int(v) for v in rng.integers(1, 41, 3))
    overlap = bool(rng.random() < 0.5)
    lanes = str(rng.choice(["systolic", "decoupled"]))
    window = int(rng.choice([1, 2, 3, 4, 8, 32]))
    kind = str(rng.choice(["dense", "nm", "zero_skip", "nm+zero_skip", "delta", "delta+nm"],
                          p=[0.15, 0.2, 0.3, 0.1, 0.17, 0.08]))
    features: list[str] = []
    phase = Phase.FWD
    if "nm" in kind:
        n, m = NM_RATIOS[int(rng.integers(len(NM_RATIOS)))]
        features.append(f"nm:{n}:{m}")
        if "delta" not in kind:
            phase = Phase.FWD if rng.random() < 0.5 else Phase.BWD_DATA
    if "zero_skip" in kind:
        target = str(rng.choice(["input", "weight", "both", "grad"]))
        action = str(rng.choice(["gating", "skipping"]))
        features.append(f"zero_skip:{target}:{action}")
        if kind == "zero_skip":
            phase = Phase(str(rng.choice([p.value for p in PHASES])))
    steps = 1
    if "delta" in kind:
        features.append(f"delta:{rng.choice([0, 1, 2, 2.5]):g}")
        steps = int(rng.integers(2, 5))
    probe = Case(index, dataflow, rows, cols, overlap, lanes, window, phase, M, N, K, tuple(features), (), np.zeros(0),
                 np.zeros(0))
    op = probe.linear
    x = _tensor(rng, (op.tokens, op.in_features))
    inputs = [x]
    for _ in range(steps - 1):  # each step changes a random share of the elements (0: an empty delta)
        p = rng.choice([0.0, 0.2, 0.6, 1.0])
        change = rng.integers(-3, 4, x.shape) * (rng.random(x.shape) < p)
        inputs.append((inputs[-1] + change).astype(np.float32))
    weight = _tensor(rng, (op.out_features, op.in_features))
    grad = _tensor(rng, (op.tokens, op.out_features))
    return Case(index, dataflow, rows, cols, overlap, lanes, window, phase, M, N, K, tuple(features),
                tuple(inputs), weight, grad)


# ---------------------------------------------------------------- the two models


class _Tensors:
    """A tensor source handing the fast model the case's tensors (one op per time step)."""

    def __init__(self, case: Case) -> None:
        self.case = case

    def tensors(self, index: int) -> dict[str, np.ndarray | None]:
        return {"input": self.case.inputs[index], "weight": self.case.weight, "grad": self.case.grad}


def _settings(case: Case) -> list[str]:
    return [f"array.rows={case.rows}", f"array.cols={case.cols}",
            f"array.fold_overlap={str(case.fold_overlap).lower()}", f"array.lanes={case.lanes}",
            f"array.sync_window_steps={case.sync_window_steps}", "dram.ideal=true"]


def fast_rows(case: Case) -> list[dict]:
    """The fast model's rows for the case (one per time step)."""
    extra = {"sparsity": cli_sparsity(list(case.features))} if case.features else None
    cfg = load_accel("edge32", _settings(case), extra)
    steps = len(case.inputs)
    op = case.linear
    sequence = steps > 1 or any(f.encodes_input for f in case.parsed)  # delta encoding needs a time axis
    workload = Workload("validate", (op,) * steps, (case.phase,), tuple(range(steps)) if sequence else None,
                        _Tensors(case))
    return simulate_rows(workload, cfg, case.dataflow, progress=False)


def _operands(case: Case, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(A, B)`` of the case's phase (docs/design.md section 1), B before any N:M pruning."""
    w, dy = case.weight.astype(np.int64), case.grad.astype(np.int64)
    if case.phase is Phase.FWD:
        return x, w.T
    if case.phase is Phase.BWD_DATA:
        return dy, w
    return x.T, dy


def gathers_live_rows(case: Case, zeros: ZeroLogic, nm: tuple[int, int] | None) -> bool:
    """Whether the hardware gathers only the weight rows behind a nonzero activation column
    (weight fetch skipping): a feature skips the weight rows behind A's zeros (zero-skip of the
    inputs, or delta, with ``weight_fetch``), with a weight as B stored dense (neither N:M nor
    compressed by a skipping weight target)."""
    effects = case.effects
    return effects.a.fetch_skip and OPERAND_ROLES[case.phase][1] == "weight" and nm is None \
        and not effects.b.compress


def zero_logic(case: Case) -> tuple[ZeroLogic, tuple[int, int] | None]:
    """What the hardware does with zeros in this case, and the N:M ratio of B if any: the
    features' composed operand effects (:meth:`~sparsesim.sparsity.base.Feature.effects`) and
    the N:M pattern they give the phase's weights (fwd and, BDWP, bwd_data). Where any zero
    detector is active on A, the padded (zero) N:M weight slots are detected and gated too.
    """
    effects = case.effects
    pattern = next((p for p in (f.weight_pattern(case.linear, case.phase) for f in case.parsed) if p), None)
    nm = None if pattern is None else (pattern.n, pattern.m)
    detect_a = effects.a.aware
    detect_b = effects.b.aware or (nm is not None and detect_a)
    return ZeroLogic(skip_a=effects.a.skip, skip_b=effects.b.skip, detect_a=detect_a, detect_b=detect_b), nm


def closed_form_cycles(dataflow: str, M: int, N: int, K: int, R: int, C: int) -> int:
    """SCALE-Sim v3's dense cycles without fold overlap (docs/design.md section 3.2), as the
    registered dataflow ``dataflow`` states them."""
    return DATAFLOWS.get(dataflow).kind.closed_form_cycles(M, N, K, R, C)


@dataclass(frozen=True, slots=True)
class Outcome:
    """Both models on one case, and what disagrees (empty ``problems``: they agree)."""

    case: Case
    reference_cycles: tuple[int, ...]  # per time step
    fast_cycles: tuple[int, ...]
    reference_events: dict
    fast_events: dict
    values_ok: bool
    delta_error_ok: bool
    closed_form_ok: bool | None  # None: not a dense case without fold overlap
    problems: tuple[str, ...]

    @property
    def agree(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        c = self.case
        return {"case": c.index, "dataflow": c.dataflow, "M": c.M, "N": c.N, "K": c.K, "rows": c.rows,
                "cols": c.cols, "fold_overlap": c.fold_overlap, "lanes": c.lanes,
                "sync_window_steps": c.sync_window_steps, "phase": str(c.phase), "features": list(c.features),
                "time_steps": len(c.inputs), "reference_cycles": sum(self.reference_cycles),
                "fast_cycles": sum(self.fast_cycles), "reference_cycles_per_step": list(self.reference_cycles),
                "fast_cycles_per_step": list(self.fast_cycles), "reference_events": self.reference_events,
                "fast_events": self.fast_events, "values_ok": self.values_ok, "delta_error_ok": self.delta_error_ok,
                "closed_form_ok": self.closed_form_ok, "agree": self.agree, "problems": list(self.problems)}


def run_case(case: Case) -> Outcome:
    """Run both models on ``case`` and compare them."""
    zeros, nm = zero_logic(case)
    gather = gathers_live_rows(case, zeros, nm)
    spec = ArraySpec(rows=case.rows, cols=case.cols, dataflow=DATAFLOWS.get(case.dataflow).kind,
                     fold_overlap=case.fold_overlap, lanes=case.lanes, sync_window_steps=case.sync_window_steps)
    delta = next((f.threshold for f in case.parsed if f.encodes_input), None)  # the delta encoder's theta
    rows = fast_rows(case)
    if len(rows) != len(case.inputs):
        raise RuntimeError(f"the fast model returned {len(rows)} rows for {len(case.inputs)} time steps")
    ref_cycles, fast_cycles, problems = [], [], []
    ref_events, fast_events = dict.fromkeys(EVENTS, 0), dict.fromkeys(EVENTS, 0)
    values_ok = delta_error_ok = True
    encoder = None
    for step, (x, row) in enumerate(zip(case.inputs, rows)):
        a, b = _operands(case, x.astype(np.int64))
        slots = weight_slots(b, nm)
        b_seen = nm_prune_columns(b, *nm) if nm is not None else b
        if delta is not None:
            encoder = encoder or DeltaEncoder(a.shape, b.shape[1], delta)
            a = encoder.encode(a)
        a_run, slots_run = a, slots
        live = a.any(axis=0)
        if gather and not live.all():  # the array sees only the gathered live rows (one if none)
            keep = np.flatnonzero(live) if live.any() else np.zeros(1, dtype=np.int64)
            a_run, slots_run = a[:, keep], weight_slots(b[keep], None)
        ref = run_array(a_run, slots_run, b.shape[1], spec, zeros)
        ref_cycles.append(ref.cycles)
        fast_cycles.append(int(row["compute_cycles"]))
        for name in EVENTS:
            ref_events[name] += getattr(ref, name)
            fast_events[name] += int(row["events"][name])
        values_ok &= bool(np.array_equal(ref.out, a @ b_seen))
        if encoder is not None:  # the output error of what was actually accumulated
            err = float(np.abs(encoder.accumulate(ref.out) - x.astype(np.float64) @ b_seen).max(initial=0.0))
            values_ok &= delta != 0 or err == 0  # threshold 0 reproduces the dense outputs exactly
            fast_err = row.get("delta_err_max")
            if fast_err is None or float(fast_err) != err:
                delta_error_ok = False
                problems.append(f"step {step}: delta output error {fast_err} (fast) vs {err} (accumulated "
                                "by the reference)")
    if not values_ok:
        problems.append("reference outputs differ from the sparse-semantics product")
    if ref_cycles != fast_cycles:
        problems.append(f"cycles {ref_cycles} (reference) vs {fast_cycles} (fast)")
    if ref_events != fast_events:
        problems.append(f"events {ref_events} (reference) vs {fast_events} (fast)")
    closed_ok = None
    if not case.features and not case.fold_overlap:
        closed = closed_form_cycles(case.dataflow, case.M, case.N, case.K, case.rows, case.cols)
        closed_ok = ref_cycles == [closed]
        if not closed_ok:
            problems.append(f"reference {ref_cycles[0]} cycles vs SCALE-Sim's {closed}")
    return Outcome(case, tuple(ref_cycles), tuple(fast_cycles), ref_events, fast_events, values_ok, delta_error_ok,
                   closed_ok, tuple(problems))


def validate_reference(cases: int, seed: int) -> list[Outcome]:
    """Draw ``cases`` cases from ``seed`` and run both models on each."""
    return [run_case(draw_case(seed, i)) for i in range(cases)]
