"""Hardware configuration: frozen dataclasses, loaded from YAML/TOML, validated in one place.

Every field carries its unit in its name (``_bytes``, ``_cycles``, ``_hz``, ``_pj``) or in its
``help`` metadata. :func:`build` turns a plain mapping into the dataclass tree and rejects
unknown keys with a "did you mean", wrong types and out-of-range values with a one-line
:class:`~sparsesim.core.errors.InputError` naming the dotted field. ``--set dotted.key=value``
overrides go through :func:`apply_overrides` before validation, so they are checked alike.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sparsesim.core.errors import InputError, field_error
from sparsesim.core.registry import suggest

PRECISION_BYTES = {"int8": 1, "fp16": 2, "bf16": 2, "fp32": 4}
"""Bytes per operand element for each supported MAC precision."""

ACCUMULATOR_BYTES = {"int8": 4, "fp16": 4, "bf16": 4, "fp32": 4}
"""Bytes of a partial sum: int8 MACs accumulate in int32, float MACs in fp32."""


def _param(help: str, *, default: Any = dataclasses.MISSING, minimum: float | None = None,
           maximum: float | None = None, choices: tuple | None = None,
           default_factory: Any = dataclasses.MISSING, recorded_at_default: bool = True) -> Any:
    """A dataclass field with help text and range/choice checks (gem5-params style).

    ``recorded_at_default=False`` marks a key added after run ids and result records existed:
    :func:`to_dict` leaves it out while it holds its default, so the run id
    (:func:`sparsesim.simulation.engine.run_id`), sweep point ids and ``cfg.*`` columns of
    every config that does not set it stay what they were before the key existed. Set away
    from its default it is recorded like any other key."""
    meta = {"help": help, "min": minimum, "max": maximum, "choices": choices,
            "recorded_at_default": recorded_at_default}
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True, slots=True, kw_only=True)
class ArrayConfig:
    """The PE array: a ``rows x cols`` grid of PEs of one registered kind (``kind``; a systolic
    grid of MAC units by default, see :mod:`sparsesim.dataflows.array_kind`)."""

    kind: str = _param("array kind (sparsesim.dataflows.array_kind.ARRAY_KINDS; `sparsesim list` names them): "
                       "systolic is the R x C systolic grid of os/ws/is", default="systolic", recorded_at_default=False)
    rows: int = _param("PE rows (R)", minimum=1, maximum=65536)
    cols: int = _param("PE columns (C)", minimum=1, maximum=65536)
    precision: str = _param("operand precision of the MACs", default="int8", choices=tuple(PRECISION_BYTES))
    fold_overlap: bool = _param(
        "pipeline consecutive folds (fill/drain hidden behind the next fold's streaming); "
        "false reproduces SCALE-Sim v3's non-overlapped folds", default=True)
    nm_ratios: tuple = _param("N:M ratios the sparse MAC units support, as \"N:M\" strings",
                              default=("1:4", "2:4", "1:8", "2:8", "4:8", "1:16"))
    lanes: str = _param("systolic: all PEs of a fold move in lockstep; decoupled: each PE row runs "
                        "ahead on its own operand queue and rows meet every sync_window_steps steps "
                        "(Cnvlutin/SparTen-like)", default="systolic", choices=("systolic", "decoupled"))
    dataflows: tuple = _param("dataflows the array's interconnect supports (empty: every registered "
                              "one); `best` chooses among these", default=())
    sync_window_steps: int = _param("decoupled lanes: streamed steps between synchronizations "
                                    "(bounded by the lane queue depth)", default=4, minimum=1, maximum=1 << 20)

    def __post_init__(self) -> None:
        for ratio in self.nm_ratios:
            parts = str(ratio).split(":")
            if len(parts) != 2 or not all(p.isdigit() for p in parts) or not 0 < int(parts[0]) < int(parts[1]):
                hint = " (quote each ratio: YAML reads an unquoted 2:4 as a number)" if isinstance(ratio, int) else ""
                raise field_error("array.nm_ratios", f"expected \"N:M\" with 0 < N < M, got {ratio!r}{hint}")

    @property
    def pes(self) -> int:
        return self.rows * self.cols

    @property
    def element_bytes(self) -> int:
        """Bytes per operand element."""
        return PRECISION_BYTES[self.precision]

    @property
    def accumulator_bytes(self) -> int:
        """Bytes per partial sum."""
        return ACCUMULATOR_BYTES[self.precision]


@dataclass(frozen=True, slots=True, kw_only=True)
class BufferConfig:
    """One on-chip SRAM operand buffer (double-buffered: half is filled while half is read)."""

    size_bytes: int = _param("capacity in bytes (both halves)", minimum=64, maximum=2**36)
    banks: int = _param("independent banks", default=1, minimum=1, maximum=4096)
    word_bytes: int = _param("bytes per access of one bank port", default=8, minimum=1, maximum=4096)


@dataclass(frozen=True, slots=True, kw_only=True)
class BuffersConfig:
    """The three operand buffers, by GEMM operand position.

    ``a`` feeds the ``A[M x K]`` operand (activations in fwd, ``dY`` in bwd_data, ``X^T`` in
    bwd_weight), ``b`` feeds ``B[K x N]`` (weights in fwd), ``out`` holds ``Out[M x N]``.
    """

    a: BufferConfig
    b: BufferConfig
    out: BufferConfig


@dataclass(frozen=True, slots=True, kw_only=True)
class BankedDramConfig:
    """Keys of the ``banked`` memory model (:mod:`sparsesim.hardware.memory.banked`), which only
    it reads. A value of 0 (or "") takes the value of ``dram.standard``'s data file
    (``sparsesim/hardware/dram_standards/``), so one ``--set`` overrides one parameter of the
    standard. ``_ck`` keys count DRAM clock cycles (tCK), ``_ns``/``_ps`` keys are times."""

    channels: int = _param("independent channels (pseudo-channels for HBM), each with its own command "
                           "and data bus; 0: the standard's", default=0, minimum=0, maximum=4096)
    bank_groups: int = _param("bank groups per channel; 0: the standard's", default=0, minimum=0, maximum=64)
    banks_per_group: int = _param("banks per bank group; 0: the standard's", default=0, minimum=0, maximum=64)
    row_bytes: int = _param("bytes of one row (page) of a bank, across the channel's devices; 0: the standard's",
                            default=0, minimum=0, maximum=1 << 20)
    bus_bits: int = _param("data bus width of one channel, bits; 0: the standard's", default=0, minimum=0,
                           maximum=4096)
    burst_length: int = _param("beats of one burst (a burst moves bus_bits x burst_length / 8 bytes); "
                               "0: the standard's", default=0, minimum=0, maximum=64)
    t_ck_ps: float = _param("DRAM command clock period tCK, ps; 0: the standard's", default=0.0, minimum=0.0,
                            maximum=1e5)
    t_bl_ck: int = _param("data-bus cycles of one burst (nBL), tCK; 0: the standard's", default=0, minimum=0,
                          maximum=256)
    t_cl_ck: int = _param("read column command to first data (CL), tCK; 0: the standard's", default=0,
                          minimum=0, maximum=1024)
    t_cwl_ck: int = _param("write column command to first data (CWL), tCK; 0: the standard's", default=0,
                           minimum=0, maximum=1024)
    t_rcd_ck: int = _param("activate to column command (tRCD), tCK; 0: the standard's", default=0, minimum=0,
                           maximum=1024)
    t_rp_ck: int = _param("precharge to activate (tRP), tCK; 0: the standard's", default=0, minimum=0,
                          maximum=1024)
    t_ras_ck: int = _param("activate to precharge (tRAS), tCK; 0: the standard's", default=0, minimum=0,
                           maximum=4096)
    t_rc_ck: int = _param("activate to activate of one bank (tRC), tCK; 0: the standard's", default=0,
                          minimum=0, maximum=4096)
    t_wr_ck: int = _param("end of write data to precharge (tWR), tCK; 0: the standard's", default=0, minimum=0,
                          maximum=1024)
    t_rtp_ck: int = _param("read to precharge (tRTP), tCK; 0: the standard's", default=0, minimum=0,
                           maximum=1024)
    t_ccd_s_ck: int = _param("column to column, different bank groups (tCCD_S), tCK; 0: the standard's",
                             default=0, minimum=0, maximum=1024)
    t_ccd_l_ck: int = _param("column to column, same bank group (tCCD_L), tCK; 0: the standard's", default=0,
                             minimum=0, maximum=1024)
    t_rrd_s_ck: int = _param("activate to activate, different bank groups (tRRD_S), tCK; 0: the standard's",
                             default=0, minimum=0, maximum=1024)
    t_rrd_l_ck: int = _param("activate to activate, same bank group (tRRD_L), tCK; 0: the standard's",
                             default=0, minimum=0, maximum=1024)
    t_faw_ck: int = _param("window holding at most four activates of a channel (tFAW), tCK; 0: the standard's",
                           default=0, minimum=0, maximum=4096)
    t_refi_ns: float = _param("interval between all-bank refreshes (tREFI), ns; 0: the standard's",
                              default=0.0, minimum=0.0, maximum=1e6)
    t_rfc_ns: float = _param("all-bank refresh cycle time, the channel blocked (tRFC), ns; 0: the standard's",
                             default=0.0, minimum=0.0, maximum=1e5)
    address_mapping: str = _param(
        "where consecutive bursts go, fields most significant first: row:bank:column:group:channel deals "
        "bursts to channels, then bank groups, in turn (a bank's row stays open for all its columns); "
        "row:bank:group:column:channel deals them to channels only; row:bank:group:channel:column keeps a "
        "whole row in one bank before the next; '': the standard's",
        default="", choices=("", "row:bank:column:group:channel", "row:bank:group:column:channel",
                             "row:bank:group:channel:column"))
    queue_depth: int = _param("requests (bursts) the scheduler of each channel sees ahead; it serves row hits "
                              "first (FR-FCFS) and opens other banks' rows while earlier bursts are served; "
                              "0: the standard's",
                              default=0, minimum=0, maximum=1 << 16)
    controller_latency_ns: float = _param("controller, PHY and interconnect time added to every transfer's "
                                          "arrival, ns (not part of a standard)", default=0.0, minimum=0.0,
                                          maximum=1e6)
    # Energy per DRAM event (docs/memory.md "Energy"): per channel, all its devices together. A standard
    # whose data file sets none of them prices bytes at dram.energy_pj_per_bit, as the simple model does.
    e_activate_pj: float = _param("energy of one activate with its precharge on a channel, pJ; 0: the standard's",
                                  default=0.0, minimum=0.0, maximum=1e9, recorded_at_default=False)
    e_read_burst_pj: float = _param("array energy of one read burst on a channel (beyond active standby), pJ; "
                                    "0: the standard's", default=0.0, minimum=0.0, maximum=1e9,
                                    recorded_at_default=False)
    e_write_burst_pj: float = _param("array energy of one write burst on a channel (beyond active standby), pJ; "
                                     "0: the standard's", default=0.0, minimum=0.0, maximum=1e9,
                                     recorded_at_default=False)
    io_pj_per_bit: float = _param("off-chip I/O and termination energy per bit moved, pJ; 0: the standard's "
                                  "(none, if its file gives none)", default=0.0, minimum=0.0, maximum=1e4,
                                  recorded_at_default=False)
    e_refresh_pj: float = _param("energy of one all-bank refresh of a channel, pJ; 0: the standard's",
                                 default=0.0, minimum=0.0, maximum=1e12, recorded_at_default=False)
    background_mw: float = _param("standby power of a channel while the run lasts (rows open: active standby), "
                                  "mW; 0: the standard's", default=0.0, minimum=0.0, maximum=1e6,
                                  recorded_at_default=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class DramConfig:
    """Off-chip memory: the keys of every memory model (:mod:`sparsesim.hardware.memory`)."""

    model: str = _param("memory model (sparsesim.hardware.memory.MEMORY_MODELS): simple is one channel of "
                        "bandwidth_bytes_per_cycle and latency_cycles", default="simple", recorded_at_default=False)
    bandwidth_bytes_per_cycle: float = _param("sustained bandwidth, bytes per array clock cycle",
                                              minimum=1e-3, maximum=1e6)
    latency_cycles: int = _param("latency of one burst request, array clock cycles", default=100,
                                 minimum=0, maximum=10**6)
    energy_pj_per_bit: float = _param("access energy, pJ per bit moved (read or write)", default=20.0,
                                      minimum=0.0, maximum=1e4)
    ideal: bool = _param("infinite bandwidth and zero latency, so memory never stalls the array "
                         "(what SCALE-Sim v3 assumes in its CALC bandwidth mode)", default=False)
    burst_bytes: int = _param("access granularity: DRAM moves whole bursts of this many bytes, so a "
                              "skipped weight row saves only the bursts it covers alone (64 B: one DDR4/LPDDR4 "
                              "x64 burst of 8 beats)", default=64, minimum=1, maximum=1 << 20)
    weight_layout: str = _param("how weights lie in DRAM: k_major (the weights of one input feature contiguous, "
                                "as activation-sparse kernels store them) or n_major (PyTorch's [out, in] "
                                "layout: a dead input's weights are strided over every output)",
                                default="k_major", choices=("k_major", "n_major"))
    standard: str = _param("DRAM standard of the banked model, a data file of sparsesim/hardware/dram_standards "
                           "(DDR4_3200, LPDDR5_6400, HBM2E, HBM3): it sets the organisation, timing and energy "
                           "that dram.banked leaves at 0; the simple model does not read it",
                           default="DDR4_3200", recorded_at_default=False)
    banked: BankedDramConfig = _param("keys of the banked model, each overriding one of dram.standard's",
                                      default_factory=BankedDramConfig, recorded_at_default=False)
    capacity_bytes: int = _param("capacity of one chip's DRAM, bytes; 0: not stated. A system run of a shape-only "
                                 "LLM reports each chip's weights and KV cache against it (total.system) and "
                                 "warns when they do not fit; timing never depends on it",
                                 default=0, minimum=0, maximum=1 << 50, recorded_at_default=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingConfig:
    """How the hardware handles N:M weights in training (SAT, Fang et al. TCAD 2023)."""

    pregen: bool = _param("pre-generate both compressed N:M weight copies (fwd along input features, "
                          "bwd_data along output features) right after each weight update; if false, "
                          "GEMMs read dense weights and prune them on the fly while loading", default=True)
    pregen_lanes: int = _param("parallel lanes of the pruning unit; each selects the N largest of one "
                               "group of M weights in M cycles (an insertion top-N)", default=32,
                               minimum=1, maximum=1 << 20)
    pregen_overlap: bool = _param("pre-generation runs on the pruning unit beside the work that follows "
                                  "each weight update and is exposed only where that work is shorter; false "
                                  "serializes it after the weight update", default=True)
    charge_pregen: bool = _param("charge N:M selection's time, traffic and energy, pre-generated or on the "
                                 "fly (false only to measure "
                                 "its share in an ablation)", default=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class MapperTilesConfig:
    """Pinned SRAM-level tile sizes in GEMM elements (0: searched)."""

    M: int = _param("tile size along M (rows of A and Out), elements; 0: searched", default=0,
                    minimum=0, maximum=2**40)
    N: int = _param("tile size along N (columns of B and Out), elements; 0: searched", default=0,
                    minimum=0, maximum=2**40)
    K: int = _param("tile size along the reduction K, elements; 0: searched", default=0,
                    minimum=0, maximum=2**40)


@dataclass(frozen=True, slots=True, kw_only=True)
class MapperConfig:
    """The mapper: how each GEMM's SRAM-level loop nest is chosen (:mod:`sparsesim.mapping`)."""

    policy: str = _param("search: the mapper searches tile sizes and loop order per GEMM; legacy: the "
                         "old schedule (greedy runs of folds, one of two fold orders, half buffers only)",
                         default="search", choices=("search", "legacy"))
    objective: str = _param("what the search minimizes per GEMM (`--dataflow best` still picks the "
                            "dataflow by cycles)", default="cycles", choices=("cycles", "energy", "dram_bytes"))
    tiles: MapperTilesConfig = _param("pinned tile sizes; a size pinned here is not searched",
                                      default_factory=MapperTilesConfig)
    order: str = _param("pinned loop order of the tiles, outermost first, a permutation of MNK "
                        "(empty: searched)", default="", choices=("", "MNK", "MKN", "NMK", "NKM", "KMN", "KNM"))
    file: str = _param("YAML mapping file pinning tiles/order per GEMM shape (see docs/mapper.md; empty: none)",
                       default="")
    cycles_tolerance: float = _param("objective cycles: nests within this fraction of the fastest count as "
                                     "equally fast, and the one moving the fewest DRAM bytes among them wins",
                                     default=0.01, minimum=0.0, maximum=1.0)
    max_tiles: int = _param("searched nests have at most this many tiles per GEMM (pipelining gains little "
                            "beyond it and the run's SimPy timing costs time per tile; pinned nests may have more)",
                            default=256, minimum=1, maximum=1 << 20)
    max_evaluations: int = _param("largest number of candidate nests evaluated exactly per GEMM and pass "
                                  "after the lower-bound ranking (branch and bound stops earlier when it can)",
                                  default=4, minimum=1, maximum=1 << 20)


@dataclass(frozen=True, slots=True, kw_only=True)
class EyerissConfig:
    """Eyeriss v2 PEs and clusters (``array.kind: eyeriss_v2``; Chen, Yang, Emer, Sze, JETCAS 2019,
    arXiv 1807.07928; docs/architectures/eyeriss_v2.md). The array is ``array.rows x array.cols``
    PEs cut into clusters of ``cluster_rows x cluster_cols``; the scratchpad sizes are those of
    the Sparseloop artifact's Eyeriss v2 PE (``arch.yaml`` of its fig12 setup)."""

    cluster_rows: int = _param("PE rows of one cluster (array.rows must be a multiple)", default=1,
                               minimum=1, maximum=4096)
    cluster_cols: int = _param("PE columns of one cluster (array.cols must be a multiple)", default=1,
                               minimum=1, maximum=4096)
    simd: int = _param("MACs per PE: a nonzero iact meets its weight column's nonzeros simd per cycle",
                       default=1, minimum=1, maximum=64)
    iact_spad_entries: int = _param("iact scratchpad data entries (nonzero iacts of one pixel's K chunk)",
                                    default=16, minimum=1, maximum=1 << 16)
    weight_spad_entries: int = _param("weight scratchpad data entries (weights of one K chunk x channel tile, "
                                      "held at their dense size)", default=192, minimum=1, maximum=1 << 20)
    weight_address_entries: int = _param("weight scratchpad address entries (weight columns, i.e. K indices "
                                         "of one chunk)", default=16, minimum=1, maximum=1 << 16)
    psum_spad_entries: int = _param("psum scratchpad entries (output channels of one pixel a PE holds)",
                                    default=32, minimum=1, maximum=1 << 16)
    iact_count_bits: int = _param("CSC metadata: bits of an iact's zero-run count", default=4, minimum=0,
                                  maximum=32)
    iact_address_bits: int = _param("CSC metadata: bits of an iact column address", default=4, minimum=0,
                                    maximum=32)
    weight_count_bits: int = _param("CSC metadata: bits of a weight's zero-run count", default=4, minimum=0,
                                    maximum=32)
    weight_address_bits: int = _param("CSC metadata: bits of a weight column address", default=7, minimum=0,
                                      maximum=32)
    sync: str = _param("synchronisation domain: each step (one pixel x one K chunk per PE) takes the max over "
                       "the PEs of a cluster (cluster), of the whole array (array), or PEs run decoupled (pe)",
                       default="cluster", choices=("pe", "cluster", "array"))
    depthwise_skip: bool = _param("depthwise convs (one input channel per group) skip zeros like any GEMM; "
                                  "false runs them dense (their zeros gated)", default=True)
    empty_column_cycles: int = _param("cycles a nonzero iact costs when its weight column (in the PE's channel "
                                      "tile) holds no nonzero", default=0, minimum=0, maximum=1 << 16)
    fill_cycles: int = _param("pipeline fill and drain of one GEMM group, cycles", default=0, minimum=0,
                              maximum=1 << 20)


@dataclass(frozen=True, slots=True, kw_only=True)
class DstcConfig:
    """The dual-side sparse tensor core (``array.kind: dstc``; Wang et al., ISCA 2021; see
    docs/architectures/dstc.md): the ``array.rows x array.cols`` multiplier grid computes
    outer products of condensed A columns and B rows into a ``tile_m x tile_n`` output tile
    held in the accumulation buffer."""

    tile_m: int = _param("rows (M) of the output tile one outer-product core accumulates, elements "
                         "(Sparseloop's DSTC: 32)", default=32, minimum=1, maximum=1 << 16)
    tile_n: int = _param("columns (N) of the output tile one outer-product core accumulates, elements "
                         "(Sparseloop's DSTC: 32)", default=32, minimum=1, maximum=1 << 16)
    packing: str = _param("per_k: each k's condensed outer product is issued alone and takes "
                          "ceil(a_k/rows)*ceil(b_k/cols) cycles; perfect: the products of a block's k steps "
                          "packed densely onto the grid (a bound, for ablation)", default="per_k",
                          choices=("per_k", "perfect"))
    acc_banks: int = _param("column banks of the accumulation buffer; output column c lives in bank "
                            "c mod acc_banks and a bank takes one grid column's products a cycle (0: one bank "
                            "per tile column, conflict-free); must be 0 or >= array.cols", default=0,
                            minimum=0, maximum=1 << 16)
    drain_words_per_cycle: int = _param("words a cycle the accumulation buffer drains when a tile is done "
                                        "(Sparseloop's DSTC Buffer: 116)", default=116, minimum=1, maximum=1 << 20)
    drain_overlap: bool = _param("the drain of a finished tile overlaps the next tile's products (a "
                                 "double-buffered accumulation buffer); false: it is paid after each tile",
                                 default=False)
    decode_overlap: bool = _param("the bitmap-to-coordinate decode of each k step (a popcount prefix) "
                                  "overlaps the previous step's products; false: one cycle per issued k step",
                                  default=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class SigmaConfig:
    """SIGMA's flexible dot-product engine (``array.kind: sigma``, :mod:`sparsesim.dataflows.sigma`;
    docs/architectures/sigma.md). The paper-like behaviour is the default; ``stonne_compatible``
    in :mod:`sparsesim.dataflows.sigma` names the values that reproduce STONNE's SIGMA model."""

    skip_streaming_zeros: bool = _param(
        "the distribution network sends only the streaming operand's nonzeros (where that operand's zeros "
        "are skipped), and a streamed vector with no effectual product costs no cycle (paper-like); false: "
        "every element a mapped multiplier needs is sent, zeros too, one vector per cycle (STONNE)", default=True)
    min_cluster: int = _param("stationary vectors are padded to at least this many mapped elements "
                              "(STONNE pads rows and columns to 3 with explicit zeros; 1: no padding)",
                              default=1, minimum=1, maximum=1 << 20)
    reorder: bool = _param("reorder stationary vectors before packing: those wider than the array first, then "
                           "each iteration filled largest-fitting first (STONNE -optimize=1); false: index order",
                           default=False)
    overlap_iterations: bool = _param(
        "double-buffered stationary operand: an iteration's configuration and stationary load hide behind the "
        "previous iteration's streaming and only the last drain is paid (ASSUMED for the paper); false: each "
        "iteration configures, loads, streams and drains in turn (STONNE)", default=True)
    distribution: str = _param(
        "distribution network: benes (non-blocking, dn_bandwidth elements per cycle reach any multipliers) or "
        "tree (STONNE: one tree per read port, each port sends one element per cycle to its own multipliers)",
        default="benes", choices=("benes", "tree"))
    reduction: str = _param(
        "reduction network: fan (forwarding adder network, every cluster's output leaves in the cycle it completes, "
        "up to rn_bandwidth a cycle) or art (STONNE: MAERI's augmented reduction tree, whose two switches of a "
        "forwarding pair share one collection-bus line, so two clusters ending there take two cycles a vector)",
        default="fan", choices=("fan", "art"))
    dn_bandwidth: int = _param("distribution bandwidth, elements per cycle (STONNE dn_bw); 0: one per multiplier",
                               default=0, minimum=0, maximum=1 << 24)
    rn_bandwidth: int = _param("reduction (collection) bandwidth, outputs per cycle (STONNE rn_bw); 0: one per "
                               "multiplier", default=0, minimum=0, maximum=1 << 24)
    config_cycles: int = _param("cycles to configure the networks for an iteration's clusters (STONNE: 1)",
                                default=1, minimum=0, maximum=1 << 20)
    drain_cycles: int = _param(
        "cycles from an iteration's last streamed vector to its last output written; -1: derived as "
        "1 (distribution) + 1 (multipliers) + ceil(log2 P) (adder levels) + 1 (output bus)",
        default=-1, minimum=-1, maximum=1 << 20)


@dataclass(frozen=True, slots=True, kw_only=True)
class EnergyConfig:
    """Which energy/area table prices a run, and at which technology node
    (:func:`sparsesim.hardware.energy.energy_table_name`; docs/energy.md)."""

    node: int = _param("technology node in nm (45, 32, 22, 16, 7, 5): the table derived from the energy table's "
                       "45 nm base at that node by Stillmaker & Baas scaling; 0: the table's own node", default=0,
                       choices=(0, 45, 32, 22, 16, 7, 5), recorded_at_default=False)
    table: str = _param("energy/area table name or YAML file (see `sparsesim list`); empty: energy_table",
                        default="", recorded_at_default=False)
    sram: str = _param("SRAM fit over word width and banks (built-in cacti7_45nm, or a YAML file) that scales the "
                       "table's SRAM energy per byte and area to each buffer's word_bytes and banks "
                       "(sparsesim.hardware.sram_fit); empty: the table's 64-bit access at every word and bank count",
                       default="", recorded_at_default=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class L2Config:
    """The on-chip L2 (global buffer) the cores of a chip share (``chip.cores > 1``;
    docs/scale-out.md). Size 0: no L2, every core fetches from DRAM over its share of the
    DRAM bandwidth."""

    size_bytes: int = _param("capacity in bytes; 0: no shared L2 (cores share the DRAM bandwidth directly)",
                             default=0, minimum=0, maximum=2**40)
    bandwidth_bytes_per_cycle: float = _param("bytes per array clock cycle the L2 delivers to all cores "
                                              "together (each active core gets an equal share)", default=0.0,
                                              minimum=0.0, maximum=1e9)
    latency_cycles: int = _param("latency of one L2 request, array clock cycles", default=0, minimum=0,
                                 maximum=1 << 20)
    energy_pj_per_byte: float = _param("energy of one byte read from or written to the L2, pJ; 0: the energy "
                                       "table's SRAM energy at the L2's capacity", default=0.0, minimum=0.0,
                                       maximum=1e6)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChipConfig:
    """Many identical cores on a chip (docs/scale-out.md): each core is the ``array``, ``buffers``
    and sparsity hardware of this config; the cores share the L2 and the DRAM. A GEMM is split
    over the cores along M, N, K and its repetitions by the partition search."""

    cores: int = _param("identical cores (arrays with their own buffers) on the chip; 1: today's single array",
                        default=1, minimum=1, maximum=1 << 16, recorded_at_default=False)
    l2: L2Config = _param("the L2 shared by the cores", default_factory=L2Config, recorded_at_default=False)
    partition: str = _param("how a GEMM is split over the cores: search (the partition with the fewest cycles "
                            "among grids over M, N, K and repetitions) or one dimension only", default="search",
                            choices=("search", "M", "N", "K", "count"), recorded_at_default=False)
    max_waves: int = _param("partition search: at most this many parts per core (waves of parts run one "
                            "after another)", default=64, minimum=1, maximum=1 << 16, recorded_at_default=False)
    max_evaluations: int = _param("partition search: candidate partitions timed exactly after the lower-bound "
                                  "ranking, for a GEMM whose best bound is its DRAM traffic (branch and bound stops "
                                  "earlier when it can; a GEMM of small dimensions is searched whole)", default=4,
                                  minimum=1, maximum=1 << 20, recorded_at_default=False)
    max_evaluations_compute_bound: int = _param(
        "partition search: the same budget for a dense GEMM whose best bound is its compute, where wave and "
        "tile quantization set the cycles and more candidates pay off (sparse work keeps max_evaluations: "
        "each candidate replays every part's masks)", default=64, minimum=1, maximum=1 << 20,
        recorded_at_default=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class InterconnectConfig:
    """The chip-to-chip links of a system (``system.chips > 1``; docs/scale-out.md)."""

    topology: str = _param("ring: each chip linked to its two neighbours; switch: every chip reaches every other "
                           "through a non-blocking switch at its full link bandwidth", default="ring",
                           choices=("ring", "switch"))
    link_bandwidth_bytes_per_s: float = _param("bandwidth of one link in one direction, bytes per second",
                                               default=0.0, minimum=0.0, maximum=1e15)
    links: int = _param("links per chip (ring: split between its two neighbours; switch: all to the switch)",
                        default=1, minimum=1, maximum=1024)
    link_latency_s: float = _param("latency of one step of a collective (one message over one hop), seconds",
                                   default=0.0, minimum=0.0, maximum=1.0)
    energy_pj_per_bit: float = _param("energy of one bit sent over a link, pJ", default=0.0, minimum=0.0,
                                      maximum=1e6)
    algorithm: str = _param("all-reduce algorithm: ring (2(p-1) steps, 2(p-1)/p of the bytes per chip), tree "
                            "(2 log2 p steps of the whole message) or auto (the faster)", default="ring",
                            choices=("ring", "tree", "auto"))


@dataclass(frozen=True, slots=True, kw_only=True)
class SystemConfig:
    """Several chips running one model (docs/scale-out.md): ``chips = tensor_parallel x
    pipeline_parallel x data_parallel``; a mixture of experts spread over ``expert_parallel``
    of the replicas."""

    chips: int = _param("chips of the system; 1: one chip, today's rows", default=1, minimum=1, maximum=1 << 20)
    tensor_parallel: int = _param("chips sharing each layer (Megatron-style: column-parallel QKV/gate/up, "
                                  "row-parallel out/down, an all-reduce after each)", default=1, minimum=1,
                                  maximum=1 << 16)
    pipeline_parallel: int = _param("pipeline stages, each a contiguous run of layers", default=1, minimum=1,
                                    maximum=1 << 16)
    data_parallel: int = _param("model replicas, each on its share of the batch", default=1, minimum=1,
                                maximum=1 << 16)
    expert_parallel: int = _param("MoE: replicas the experts are spread over (DeepSpeed-MoE style: each "
                                  "holds experts/expert_parallel of them, tokens sent to their experts by an "
                                  "all-to-all and back by another); must divide data_parallel", default=1,
                                  minimum=1, maximum=1 << 16)
    micro_batches: int = _param("micro-batches of each replica's batch flowing through the pipeline",
                                default=1, minimum=1, maximum=1 << 16)
    interconnect: InterconnectConfig = _param("the chip-to-chip links", default_factory=InterconnectConfig)


@dataclass(frozen=True, slots=True, kw_only=True)
class AccelConfig:
    """A whole accelerator: array, buffers, DRAM, clock, energy table and sparsity features."""

    name: str = _param("preset or design name", default="custom")
    description: str = _param("free text", default="")
    clock_hz: float = _param("array clock frequency in Hz", default=1e9, minimum=1e3, maximum=1e11)
    array: ArrayConfig
    buffers: BuffersConfig
    dram: DramConfig
    training: TrainingConfig = _param("N:M training support", default_factory=TrainingConfig)
    mapper: MapperConfig = _param("SRAM-level mapping of each GEMM", default_factory=MapperConfig)
    chip: ChipConfig = _param("cores on the chip and the L2 they share", default_factory=ChipConfig,
                              recorded_at_default=False)
    system: SystemConfig = _param("chips of the system and how the model is split over them",
                                  default_factory=SystemConfig, recorded_at_default=False)
    eyeriss: EyerissConfig = _param("Eyeriss v2 PEs and clusters (array.kind: eyeriss_v2)",
                                    default_factory=EyerissConfig, recorded_at_default=False)
    dstc: DstcConfig = _param("dual-side sparse tensor core (array.kind: dstc)", default_factory=DstcConfig,
                              recorded_at_default=False)
    sigma: SigmaConfig = _param("SIGMA array keys (array.kind: sigma)", default_factory=SigmaConfig,
                                recorded_at_default=False)
    energy_table: str = _param("name of the energy/area table (see `sparsesim list`); energy.table is the same "
                               "key in the energy section", default="horowitz45")
    energy: EnergyConfig = _param("energy table and technology node", default_factory=EnergyConfig,
                                  recorded_at_default=False)
    sparsity: tuple = _param("sparsity features switched on for this run (list of mappings)",
                             default_factory=tuple)
    seed: int = _param("seed for every random choice of a run", default=0, minimum=0, maximum=2**63 - 1)

    def __post_init__(self) -> None:
        default_table = AccelConfig.__dataclass_fields__["energy_table"].default
        if self.energy.table and self.energy_table != default_table and self.energy.table != self.energy_table:
            raise field_error("energy.table", f"{self.energy.table!r} conflicts with energy_table "
                                              f"{self.energy_table!r}: set one of them")
        chip = self.chip
        if chip.l2.size_bytes and chip.cores == 1:
            raise field_error("chip.l2.size_bytes", "an L2 shared by cores needs chip.cores > 1")
        if chip.l2.size_bytes and not chip.l2.bandwidth_bytes_per_cycle:
            raise field_error("chip.l2.bandwidth_bytes_per_cycle", "must be > 0 where chip.l2.size_bytes is set")
        if chip.cores > 1 and self.array.kind != "systolic":
            raise field_error("chip.cores", f"more than one core is modelled for array.kind systolic, not "
                                            f"{self.array.kind!r}")
        system = self.system
        split = system.tensor_parallel * system.pipeline_parallel * system.data_parallel
        if split != system.chips:
            raise field_error("system.chips", f"{system.chips} chips but tensor_parallel x pipeline_parallel x "
                                              f"data_parallel = {split}")
        if system.data_parallel % system.expert_parallel:
            raise field_error("system.expert_parallel", f"{system.expert_parallel} does not divide "
                                                        f"data_parallel={system.data_parallel}")
        if system.chips > 1 and not system.interconnect.link_bandwidth_bytes_per_s:
            raise field_error("system.interconnect.link_bandwidth_bytes_per_s", "must be > 0 with system.chips > 1")
        if chip.cores > 1 and self.dram.model != "simple":
            raise field_error("chip.cores", f"more than one core is modelled with dram.model simple, not "
                                            f"{self.dram.model!r}")


def _check_value(path: str, tp: Any, value: Any, meta: dict) -> Any:
    """Validate one scalar ``value`` against type ``tp`` and the field's metadata."""
    if tp is bool:
        if not isinstance(value, bool):
            raise field_error(path, f"expected true or false, got {value!r}")
    elif tp is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise field_error(path, f"expected an integer, got {value!r}")
    elif tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e9" (no exponent sign) as a string
            try:
                value = float(value)
            except ValueError:
                raise field_error(path, f"expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise field_error(path, f"expected a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise field_error(path, f"must be finite, got {value!r}")
    elif tp is str:
        choices = meta.get("choices") or ()
        if isinstance(value, bool) and str(value).lower() in choices:  # YAML reads `true` as a bool
            value = str(value).lower()
        if not isinstance(value, str):
            raise field_error(path, f"expected a string, got {value!r}")
    elif tp is tuple:
        if isinstance(value, dict) or isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise field_error(path, f"expected a list, got {value!r}")
        return tuple(value)
    else:  # pragma: no cover - a schema bug, not user input
        raise TypeError(f"unsupported config type {tp!r} at {path}")
    lo, hi, choices = meta.get("min"), meta.get("max"), meta.get("choices")
    if choices is not None and value not in choices:
        raise field_error(path, f"{value!r} is not one of {', '.join(map(str, choices))}")
    if lo is not None and value < lo:
        raise field_error(path, f"must be >= {lo:g}, got {value!r}")
    if hi is not None and value > hi:
        raise field_error(path, f"must be <= {hi:g}, got {value!r}")
    return value


def build(cls: type, data: Any, path: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, validating every key and value."""
    where = path or "config"
    if not isinstance(data, dict):
        raise field_error(where, f"expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            raise field_error(f"{path}.{key}" if path else str(key), f"unknown key{suggest(str(key), fields)}")
    kwargs = {}
    for name, f in fields.items():
        sub = f"{path}.{name}" if path else name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise field_error(sub, "missing required key")
            continue
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = build(tp, data[name], sub)
        else:
            kwargs[name] = _check_value(sub, tp, data[name], dict(f.metadata))
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict:
    """The plain-mapping form of a config (round-trips through :func:`build`).

    A key declared ``recorded_at_default=False`` (see :func:`_param`) is left out while it
    holds its default; :func:`build` restores it, so the round trip still holds."""
    out = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if not f.metadata.get("recorded_at_default", True) and (
                value == f.default or (f.default_factory is not dataclasses.MISSING and value == f.default_factory())):
            continue  # a later key (or section of them) at its default: records stay what they were
        if dataclasses.is_dataclass(value):
            out[f.name] = to_dict(value)
        elif isinstance(value, tuple):
            out[f.name] = [dict(v) if isinstance(v, dict) else v for v in value]
        else:
            out[f.name] = value
    return out


def flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    """``{"array": {"rows": 32}}`` -> ``{"array.rows": 32}``; lists become their YAML text."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            flat[name] = yaml.safe_dump(list(value), default_flow_style=True, sort_keys=True).strip()
        else:
            flat[name] = value
    return flat


def schema_paths(cls: type = AccelConfig, prefix: str = "") -> dict[str, dataclasses.Field]:
    """Every dotted leaf path of the config schema mapped to its field (for ``--set`` and sweeps)."""
    hints = typing.get_type_hints(cls)
    paths: dict[str, dataclasses.Field] = {}
    for f in dataclasses.fields(cls):
        name = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hints[f.name]):
            paths.update(schema_paths(hints[f.name], f"{name}."))
        else:
            paths[name] = f
    return paths


def parse_override(text: str, field: str = "--set") -> tuple[str, Any]:
    """Split ``"array.rows=64"`` into a path and a YAML-parsed value (errors name ``field``)."""
    if "=" not in text:
        raise field_error(field, f"expected dotted.key=value, got {text!r}")
    key, raw = text.split("=", 1)
    key = key.strip()
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def apply_overrides(data: dict, overrides: list[tuple[str, Any]], cls: type = AccelConfig) -> dict:
    """Return a copy of ``data`` with each ``(dotted.path, value)`` set; paths must exist."""
    data = copy.deepcopy(data)
    paths = schema_paths(cls)
    for key, value in overrides:
        if key not in paths:
            raise field_error(key, f"no such config field{suggest(key, paths)}")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise field_error(key, "parent is not a mapping")
        node[parts[-1]] = value
    return data


def read_mapping(path: Path) -> dict:
    """Read a YAML or TOML file into a mapping, with errors that name the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start}); a config is a YAML or TOML file") from None
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        else:
            data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: malformed YAML: {_yaml_problem(exc)}") from None
    except tomllib.TOMLDecodeError as exc:  # its message ends with "(at line L, column C)"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "syntax error"
        raise InputError(f"{path}: malformed TOML: {first}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping at the top level")
    return data


def _yaml_problem(exc: Exception) -> str:
    """``line L, column C: <problem>`` of a YAML error (1-based, as editors count)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or (str(exc).strip().splitlines() or ["syntax error"])[0]
    if mark is None:
        return problem
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
