"""Reference: the ground-truth cycles of a one-MAC Eyeriss v2 PE on MobileNet-0.5's pointwise layers,
from the Sparseloop MICRO'22 artifact, replayed through ``eyeriss_v2_pe`` on the artifact's own masks.

Source: ``github:Accelergy-Project/micro22-sparseloop-artifact`` at ``de0374a``,
``workspace/2022.micro.artifact/evaluation_setups/fig12_eyerissv2_pe_setup``: the ground truth
``scripts/ground_truth_cycles.yaml`` (28 layers), Sparseloop's uniform-density prediction
``results-summary/num-cycles/simulated.txt``, and the real nonzero masks of 8 pointwise layers
(``workload/mobilenet0.5-sparse/actual_data/actual_data_masks/Lxx_{iacts,weights}.txt``, shapes in
``.../uniform/Lxx.yaml``), stored packed in ``data/eyeriss_v2_sparseloop_fig12.npz`` (see
``data/README.md`` for the licence situation and how the file was made).

Each layer (a 1x1 conv: C input channels, M output channels, E x F pixels) is replayed as the
linear layer it is: tokens E*F, iacts flattened (pixel, C) with C fastest, weights (M, C) with
C fastest (the flattening under which the artifact's masks reproduce its ground truth; the
other three orders miss by 1-11%). Run with ``zero_skip:both:skipping`` and ``dram.ideal=true``;
the compute cycles are compared with the ground truth. Tolerance 0 (exact), chosen before
comparing: the cycle rule (docs/architectures/eyeriss_v2.md) counts every effectual MAC of a
one-MAC PE once and nothing else, which is what the ground truth is.

A ninth case is L20, the one depthwise layer with masks: its ground truth is its dense MAC
count, which the preset reproduces by ``eyeriss.depthwise_skip: false`` (exact, tolerance 0;
a check of the depthwise path and the key's setting, not of the skipping rule).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from importlib import resources

import numpy as np

from sparsesim.hardware.presets import load_accel
from sparsesim.references import REFERENCES, Agreement, ReferenceCheck
from sparsesim.simulation.run import simulate_rows
from sparsesim.sparsity import cli_sparsity
from sparsesim.workloads.gemm import Phase
from sparsesim.workloads.ops import Conv2d, Linear, Workload

DATA = "eyeriss_v2_sparseloop_fig12.npz"
TOLERANCE = 0.0  # exact: see the module docstring


@dataclass(frozen=True, slots=True)
class Layer:
    """One pointwise layer of the artifact: its shape, masks and stored cycle counts."""

    name: str
    C: int
    M: int
    pixels: int
    iacts: np.ndarray  # (pixels, C) 0/1
    weights: np.ndarray  # (M, C) 0/1
    truth_cycles: int
    uniform_cycles: int  # Sparseloop's uniform-density prediction


def _unpack(data, key: str) -> np.ndarray:
    return np.unpackbits(data[key])[: int(data[f"{key}_len"])]


def layers() -> list[Layer]:
    """The 8 layers with real masks, in the artifact's order."""
    with resources.files("sparsesim.references").joinpath("data", DATA).open("rb") as f:
        data = np.load(f)
        truth = dict(zip(data["truth_layers"].tolist(), data["truth_cycles"].tolist()))
        uniform = dict(zip(data["truth_layers"].tolist(), data["uniform_cycles"].tolist()))
        out = []
        for name, (C, M, E, F, R, S, N, G) in zip(data["mask_layers"].tolist(), data["mask_dims_CMEFRSNG"].tolist()):
            assert R == S == N == G == 1, name  # pointwise, batch 1, one group
            out.append(Layer(name, C, M, E * F, _unpack(data, f"{name}_iacts").reshape(E * F, C),
                             _unpack(data, f"{name}_weights").reshape(M, C), truth[name], uniform[name]))
    return out


class _Tensors:
    """Masks as a layer's tensors (the replay reads their zeros only)."""

    def __init__(self, x: np.ndarray, w: np.ndarray) -> None:
        self.x, self.w = x.astype(np.float32), w.astype(np.float32)

    def tensors(self, index: int, roles=None) -> dict:
        return {"input": self.x, "weight": self.w}


def replay(layer: Layer, accel: str = "eyeriss_v2_pe", sets: tuple[str, ...] = ()) -> dict:
    """The result row of ``layer`` on ``accel`` with both sides' zeros skipped and ideal DRAM."""
    cfg = load_accel(accel, ["dram.ideal=true", *sets])
    cfg = dataclasses.replace(cfg, sparsity=tuple(cli_sparsity(["zero_skip:both:skipping"])))
    op = Linear(name=layer.name, tokens=layer.pixels, in_features=layer.C, out_features=layer.M)
    workload = Workload(f"sparseloop-{layer.name}", (op,), (Phase.FWD,), None, _Tensors(layer.iacts, layer.weights))
    (row,) = simulate_rows(workload, cfg, "eyeriss_v2", progress=False)
    return row


def depthwise_l20(depthwise_skip: bool = False) -> tuple[int, dict]:
    """L20, the artifact's one depthwise layer with masks (256 channels, 3 x 3, stride 1, 8 x 8:
    16 384 iacts, 2 304 weights; no shape file), replayed as a depthwise conv on
    ``eyeriss_v2_pe``: its ground truth and the result row. The masks' flattening is unknown
    (read here as (H, W, C) and (R, S, C), C fastest); with ``depthwise_skip`` false, the
    preset's setting, the zeros cost cycles and the flattening does not matter."""
    with resources.files("sparsesim.references").joinpath("data", DATA).open("rb") as f:
        data = np.load(f)
        truth = dict(zip(data["truth_layers"].tolist(), data["truth_cycles"].tolist()))["L20"]
        x = _unpack(data, "L20_iacts").reshape(8, 8, 256).transpose(2, 0, 1)[None]
        w = _unpack(data, "L20_weights").reshape(3, 3, 256).transpose(2, 0, 1)[:, None]
    op = Conv2d(name="L20", batch=1, in_channels=256, out_channels=256, in_h=8, in_w=8, kernel_h=3, kernel_w=3,
                pad_h=1, pad_w=1, groups=256)
    cfg = load_accel("eyeriss_v2_pe", ["dram.ideal=true", f"eyeriss.depthwise_skip={str(depthwise_skip).lower()}"])
    cfg = dataclasses.replace(cfg, sparsity=tuple(cli_sparsity(["zero_skip:both:skipping"])))
    source = _Tensors(x, w)
    (row,) = simulate_rows(Workload("sparseloop-L20", (op,), (Phase.FWD,), None, source), cfg, "eyeriss_v2",
                           progress=False)
    return truth, row


class EyerissV2PE(ReferenceCheck):
    name = "eyeriss_v2_pe_sparseloop"
    array_kind = "eyeriss_v2"
    source = ("Sparseloop MICRO'22 artifact (Accelergy-Project/micro22-sparseloop-artifact @ de0374a), "
              "fig12_eyerissv2_pe_setup ground_truth_cycles.yaml and real MobileNet-0.5 masks")

    def run(self) -> list[Agreement]:
        cases = [Agreement(f"{layer.name} compute cycles", float(layer.truth_cycles),
                           float(replay(layer)["compute_cycles"]), "cycles", TOLERANCE) for layer in layers()]
        truth, row = depthwise_l20()
        return [*cases, Agreement("L20 (depthwise, depthwise_skip false) compute cycles", float(truth),
                                  float(row["compute_cycles"]), "cycles", TOLERANCE)]


REFERENCES.add(EyerissV2PE.name, EyerissV2PE())
