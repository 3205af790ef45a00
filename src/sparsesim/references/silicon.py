"""The GPU-class presets against measured silicon (``sparsesim validate silicon``).

``data/llmcompass_a100.yaml`` holds latencies measured on an A100 SXM4 80 GB and published with
LLMCompass (ISCA 2024); the file says how each was measured. Every case is run here on the
``a100_80gb`` preset as it ships (nothing fitted) and reported beside its measurement:

- ``matmul``: 20 bf16 GEMMs, one GPU.
- ``gpt3_prefill`` / ``gpt3_decode``: the six matrix products of one GPT-3 layer, tensor parallel 4
  (one GPU's shard), batch 8, a 2048-token prefill and one decode step at 3073 cached positions.
- ``all_reduce``: an all-reduce over four GPUs on NVLink, 8 B to 16 GiB, costed by
  :func:`~sparsesim.hardware.interconnect.collective_cost` on the preset's interconnect.

The measured matrix products are host wall times around one ``torch.matmul`` or ``torch.bmm`` and
its synchronisation; the tool models the kernel alone. Each case therefore carries the kernel time
and the harness figure LLMCompass adds to its own simulated matmuls for these measurements
(``harness_s`` per call, from the data file); ``error`` compares kernel plus harness,
``kernel_error`` the kernel alone. The all-reduce carries no harness.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from importlib import resources

import yaml

from sparsesim.core.errors import InputError
from sparsesim.core.registry import suggest
from sparsesim.hardware.config import AccelConfig
from sparsesim.hardware.interconnect import collective_cost
from sparsesim.hardware.presets import load_accel
from sparsesim.simulation.run import simulate_rows
from sparsesim.workloads.gemm import Phase
from sparsesim.workloads.ops import Linear, Matmul, Op, Workload

DATA = "llmcompass_a100.yaml"
GROUPS = ("matmul", "gpt3_prefill", "gpt3_decode", "all_reduce")
"""The case groups, in report order."""


@dataclass(frozen=True, slots=True)
class Measurement:
    """One measured case: ``measured_s`` on the chip, the model's ``kernel_s`` and the
    measurement ``harness_s`` (launch and synchronisation around the kernels, 0 for a
    collective), all in seconds; ``tolerance`` is the |relative error| a case is "within"."""

    group: str
    case: str
    measured_s: float
    kernel_s: float
    harness_s: float
    tolerance: float

    @property
    def model_s(self) -> float:
        """The model's figure for what was measured: kernel plus harness, seconds."""
        return self.kernel_s + self.harness_s

    @property
    def error(self) -> float:
        """Relative error of :attr:`model_s` against the measurement."""
        return self.model_s / self.measured_s - 1.0

    @property
    def kernel_error(self) -> float:
        """Relative error of the kernel time alone against the measurement."""
        return self.kernel_s / self.measured_s - 1.0

    @property
    def within(self) -> bool:
        return abs(self.error) <= self.tolerance

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "model_s": self.model_s, "error": self.error,
                "kernel_error": self.kernel_error, "within": self.within}


def load_data() -> dict:
    """The measurements, their source and the comparison's settings (``data/llmcompass_a100.yaml``)."""
    text = resources.files("sparsesim.references").joinpath("data", DATA).read_text(encoding="utf-8")
    return yaml.safe_load(text)


def kernel_seconds(ops: list[Op], cfg: AccelConfig) -> list[float]:
    """Forward latency of each op in ``ops`` on ``cfg`` (shape only, ``best`` dataflow), seconds."""
    workload = Workload("silicon", tuple(ops), (Phase.FWD,), None)
    rows = simulate_rows(workload, cfg, "best", progress=False)
    return [r["cycles"] / cfg.clock_hz for r in rows]


def _matmul(data: dict, cfg: AccelConfig) -> list[Measurement]:
    ops = [Linear(name=f"{M}x{N}x{K}", tokens=M, in_features=K, out_features=N) for M, N, K, _ in data["matmul"]]
    return [Measurement("matmul", op.name, float(t), k, data["harness_s"], data["tolerance"])
            for op, (*_, t), k in zip(ops, data["matmul"], kernel_seconds(ops, cfg))]


def gpt3_layer_ops(layer: dict, decode: bool) -> list[Op]:
    """One GPU's six matrix products of the GPT-3 layer in ``layer`` (the data file's
    ``gpt3_layer``), in the file's op order; Q_K_V is one of its three equal projections."""
    d, tp, b = layer["d_model"], layer["tensor_parallel"], layer["batch"]
    heads, head_dim = layer["heads"] // tp, layer["d_model"] // layer["heads"]
    tokens = b if decode else b * layer["prompt"]
    rows, context = (1, layer["decode_context"]) if decode else (layer["prompt"], layer["prompt"])
    return [Linear(name="Q_K_V", tokens=tokens, in_features=d, out_features=d // tp),
            Matmul(name="Q_mul_K", batch=b * heads, m=rows, k=head_dim, n=context),
            Matmul(name="A_mul_V", batch=b * heads, m=rows, k=context, n=head_dim),
            Linear(name="Wo_proj", tokens=tokens, in_features=d // tp, out_features=d),
            Linear(name="W1_proj", tokens=tokens, in_features=d, out_features=4 * d // tp),
            Linear(name="W2_proj", tokens=tokens, in_features=4 * d // tp, out_features=d)]


def _gpt3(data: dict, cfg: AccelConfig, decode: bool) -> list[Measurement]:
    layer = data["gpt3_layer"]
    ops = gpt3_layer_ops(layer, decode)
    group = "gpt3_decode" if decode else "gpt3_prefill"
    out = []
    for (name, calls, prefill_s, decode_s), op, k in zip(layer["ops"], ops, kernel_seconds(ops, cfg)):
        if name != op.name:
            raise InputError(f"gpt3_layer.ops: {name!r} where {op.name!r} was expected")
        out.append(Measurement(group, name, float(decode_s if decode else prefill_s), calls * k,
                               calls * data["harness_s"], data["tolerance"]))
    return out


def _all_reduce(data: dict, cfg: AccelConfig) -> list[Measurement]:
    ic, group = cfg.system.interconnect, data["gpt3_layer"]["tensor_parallel"]
    return [Measurement("all_reduce", f"{nbytes} B", us * 1e-6,
                        collective_cost("all_reduce", nbytes, group, ic).seconds, 0.0, data["tolerance"])
            for nbytes, us in data["all_reduce"]]


def run(groups: list[str] | tuple[str, ...] = GROUPS) -> list[Measurement]:
    """Every case of ``groups`` (a subset of :data:`GROUPS`), on the data file's preset as it ships."""
    for g in groups:
        if g not in GROUPS:
            raise InputError(f"--group: unknown group {g!r}{suggest(g, GROUPS)}")
    data = load_data()
    cfg = load_accel(data["preset"])
    build = {"matmul": lambda: _matmul(data, cfg), "gpt3_prefill": lambda: _gpt3(data, cfg, False),
             "gpt3_decode": lambda: _gpt3(data, cfg, True), "all_reduce": lambda: _all_reduce(data, cfg)}
    return [m for g in GROUPS if g in groups for m in build[g]()]


def summary(cases: list[Measurement]) -> list[dict]:
    """Per group: cases, how many are within tolerance, mean |error| and mean |kernel error|."""
    out = []
    for g in GROUPS:
        mine = [c for c in cases if c.group == g]
        if mine:
            out.append({"group": g, "cases": len(mine), "within": sum(c.within for c in mine),
                        "mean_abs_error": sum(abs(c.error) for c in mine) / len(mine),
                        "mean_abs_kernel_error": sum(abs(c.kernel_error) for c in mine) / len(mine),
                        "measured_s": sum(c.measured_s for c in mine), "model_s": sum(c.model_s for c in mine)})
    return out
