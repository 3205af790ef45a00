"""SIGMA (Qin et al., HPCA 2020): stationary nonzeros packed into P multipliers, the other operand streamed.

A flexible dot-product engine of P multipliers fed by a distribution network and reduced by a
forwarding adder network maps irregular sparse GEMMs so that only the stationary operand's
nonzeros occupy multipliers.

The cycle rule (docs/architectures/sigma.md, the research memo's section 1.3 on STONNE's
``SparseSDMemory``), per on-chip block of the GEMM:

* The stationary operand's vectors (rows of A for ``sigma_sta_a``, columns of B for
  ``sigma_sta_b``) are packed *whole* and greedily, in index order (or reordered,
  ``sigma.reorder``), into the P multipliers: an *iteration* holds the next vectors while the
  sum of their mapped elements fits P. A vector's mapped elements are its nonzeros where that
  operand's zeros are skipped, all K elements otherwise, padded to ``sigma.min_cluster``. A
  vector of z > P elements is *folded* alone over ``1 + ceil((z - P) / (P - 1))`` passes, one
  multiplier of each later pass carrying the partial sum back in.
* Each iteration then streams every vector of the other operand, one per cycle when the
  distribution and reduction bandwidths suffice (``sigma.dn_bandwidth``, ``rn_bandwidth``),
  more when they do not; with ``sigma.skip_streaming_zeros`` the streaming operand's zeros are
  not sent and a vector without an effectual product is skipped.
* An iteration costs its configuration and stationary load, its streaming and its drain
  (``sigma.drain_cycles``), one after another (STONNE), or with ``sigma.overlap_iterations``
  the load hidden behind the previous iteration's streaming and one drain at the end.

The buffer-level nest is the shared one (:func:`~sparsesim.dataflows.tiled.choose_nest`),
with the reduction never split (a stationary vector is mapped whole or folded) and the
streaming dimension never split (an iteration streams all of the other operand).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from sparsesim.core.errors import field_error
from sparsesim.dataflows.array_kind import ARRAY_KINDS, ArrayKind
from sparsesim.dataflows.base import DATAFLOWS, Plan
from sparsesim.dataflows.tiled import ArrayWork, TiledDataflow, choose_nest, dense_work, tiled_plan
from sparsesim.hardware.config import AccelConfig, SigmaConfig
from sparsesim.hardware.schedule import EventCounts
from sparsesim.workloads.gemm import Gemm

KIND = "sigma"

STONNE_COMPATIBLE = {"sigma.skip_streaming_zeros": False, "sigma.min_cluster": 3, "sigma.reorder": False,
                     "sigma.overlap_iterations": False, "sigma.distribution": "tree", "sigma.reduction": "art",
                     "sigma.config_cycles": 1}
"""The ``--set`` values that make the model STONNE's SIGMA (``SIGMA_SPARSE_GEMM`` controller). Its
``sigma.drain_cycles`` is measured from dense STONNE runs (references/data/README.md); ``dn_bandwidth``
and ``rn_bandwidth`` are STONNE's ``dn_bw`` and ``rn_bw``."""


def stonne_overrides(drain_cycles: int, dn_bandwidth: int = 0, rn_bandwidth: int = 0,
                     reorder: bool = False) -> list[str]:
    """``--set`` strings of the STONNE-compatible mode (see :data:`STONNE_COMPATIBLE`)."""
    values = dict(STONNE_COMPATIBLE, **{"sigma.drain_cycles": drain_cycles, "sigma.dn_bandwidth": dn_bandwidth,
                                        "sigma.rn_bandwidth": rn_bandwidth, "sigma.reorder": reorder})
    return [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in values.items()]


class Sigma(ArrayKind):
    name = KIND
    summary = ("SIGMA: P = rows x cols multipliers, distribution network + forwarding adder network, "
               "stationary nonzeros packed whole per iteration, the other operand streamed")

    def check(self, cfg: AccelConfig) -> None:
        P = cfg.array.pes
        if cfg.array.nm_ratios:
            raise field_error("array.nm_ratios", "a sigma array has no N:M MAC units: set array.nm_ratios: []")
        if cfg.array.lanes != "systolic":
            raise field_error("array.lanes", "a sigma array has no decoupled lanes: set array.lanes: systolic")
        s = cfg.sigma
        for key, value in (("dn_bandwidth", s.dn_bandwidth), ("rn_bandwidth", s.rn_bandwidth)):
            if value > P:
                raise field_error(f"sigma.{key}", f"must be <= the {P} multipliers, got {value}")
        dn = s.dn_bandwidth or P
        if s.distribution == "tree" and P % dn:
            raise field_error("sigma.dn_bandwidth", f"a tree distribution splits the {P} multipliers evenly "
                                                    f"among its ports, got {dn} ports")
        if s.reduction == "art" and P & (P - 1):
            raise field_error("array.cols", f"an art reduction tree needs a power-of-two number of multipliers, "
                                            f"got rows x cols = {P}")
        if P < 2:
            raise field_error("array.cols", "a sigma array needs at least 2 multipliers (folding keeps one "
                                            "for the partial sum)")


ARRAY_KINDS.add(KIND, Sigma())


@dataclass(frozen=True, slots=True)
class Params:
    """The cycle rule's parameters, resolved from a config."""

    P: int
    dn: int
    rn: int
    skip_streaming_zeros: bool
    min_cluster: int
    reorder: bool
    overlap: bool
    tree: bool
    art: bool
    config_cycles: int
    drain_cycles: int

    @staticmethod
    def of(cfg: AccelConfig) -> Params:
        s: SigmaConfig = cfg.sigma
        P = cfg.array.pes
        drain = s.drain_cycles if s.drain_cycles >= 0 else 3 + math.ceil(math.log2(P))
        return Params(P, s.dn_bandwidth or P, s.rn_bandwidth or P, s.skip_streaming_zeros, s.min_cluster,
                      s.reorder, s.overlap_iterations, s.distribution == "tree", s.reduction == "art", s.config_cycles,
                      drain)


def pad_clusters(mapped: np.ndarray, min_cluster: int) -> np.ndarray:
    """STONNE's ``generateBitMapFromDense`` rule: a vector with fewer than ``min_cluster`` set
    bits gets its first clear bits among positions ``0 .. min_cluster-1`` set (explicit zeros
    then occupy multipliers). ``mapped``: (vectors, K) bool."""
    if min_cluster <= 1:
        return mapped
    out = mapped.copy()
    for j in range(min(min_cluster, mapped.shape[1])):
        short = out.sum(axis=1) < min_cluster
        out[short, j] = True
    return out


def reorder_vectors(sizes: np.ndarray, P: int) -> np.ndarray:
    """STONNE's ``calculateOrdering`` (``-optimize=1``), swap for swap: vectors wider than P
    first, then each iteration filled with the largest vector that still fits (first found
    among equals), a new iteration when none does. Returns the visiting order."""
    size = sizes.astype(np.int64).copy()
    order = np.arange(size.size)
    n = 0
    for i in range(size.size):
        if size[i] > P:
            size[[i, n]], order[[i, n]] = size[[n, i]], order[[n, i]]
            n += 1
    used = 0
    while n < size.size:
        rest = size[n:]
        fits = rest + used <= P
        if fits.any():
            g = n + int(np.argmax(np.where(fits, rest, -1)))
            used += int(size[g])
            size[[g, n]], order[[g, n]] = size[[n, g]], order[[n, g]]
            n += 1
        else:
            used = 0
    return order


@functools.lru_cache(maxsize=1 << 16)
def art_output(start: int, size: int, P: int) -> tuple[int, int]:
    """The switch (level from the root, index in the level) of MAERI's augmented reduction tree
    that sends the result of a cluster on multipliers ``start .. start+size-1`` to memory, as
    STONNE's ``CompilerART::generate_art_signals_sparse`` decides it: going up from the leaves,
    the first level at which one switch alone carries the cluster (forwarding links joining the
    two halves of a cluster that straddles neighbouring subtrees).

    The rule is re-implemented in Python from STONNE (github:stonne-simulator/stonne@22634b8b,
    ``stonne/src/CompilerART.cpp``; MIT licence, Copyright (c) 2020 Francisco Muñoz Martinez) so that
    the STONNE-compatible mode counts its collection-bus conflicts; no STONNE source is included."""
    levels = int(round(math.log2(P)))
    vb = [start <= j < start + size for j in range(P)]
    num = P
    for level in range(levels - 1, -1, -1):
        num //= 2
        pb = [False] * P
        for a in range(num):
            c = 2 * a
            if a == 0 or a == num - 1:  # no forwarding link
                pb[a] = vb[c] or vb[c + 1]
            elif a % 2 == 1:  # the left switch of a forwarding pair (a, a + 1)
                last = c + 1
                s = last if vb[last] else c
                left = 0
                while s >= 0 and vb[s]:
                    left, s = left + 1, s - 1
                s = last + 1 if vb[last + 1] else last + 2
                right = 0
                while s < P and vb[s]:
                    right, s = right + 1, s + 1
                if left == 0 or right == 0:
                    pb[a], pb[a + 1] = left > 0, right > 0
                elif left >= right:
                    if vb[last + 3] or vb[last + 4]:  # the right switch's neighbour needs the parent
                        pb[a] = pb[a + 1] = True
                    else:
                        vb[c + 2:] = [False] * (P - c - 2)
                        pb[a], pb[a + 1] = True, False
                elif vb[last - 2] or vb[last - 3]:
                    pb[a] = pb[a + 1] = True
                else:
                    vb[:c + 2] = [False] * (c + 2)
                    pb[a], pb[a + 1] = False, True
        on = [i for i in range(num) if pb[i]]
        if len(on) == 1:
            return level, on[0]
        vb = pb
    return 0, 0


@functools.lru_cache(maxsize=64)
def _bus_lines(P: int, lines: int) -> dict[tuple[int, int], int]:
    """STONNE's ``ASNetwork::setMemoryConnections``: the collection-bus line of every switch. The
    two switches of a forwarding pair share a line; pairs take lines in order, root to leaves,
    then the switches without a forwarding link."""
    levels = int(round(math.log2(P)))
    pairs, singles = [], []
    for level in range(levels):
        n = 1 << level
        for j in range(n):
            if j and j % 2 == 0:
                pairs.append((level, j - 1, j))
            elif j == 0 or j == n - 1:
                singles.append((level, j))
    out = {}
    for q, (level, a, b) in enumerate(pairs):
        out[(level, a)] = out[(level, b)] = q % lines
    for i, sw in enumerate(singles):
        out[sw] = (i + 2 * len(pairs)) % lines
    return out


def art_collection_cycles(sizes: list[int], P: int, lines: int) -> int:
    """Cycles a streamed vector's outputs take on STONNE's collection bus: clusters of ``sizes``
    laid out from multiplier 0; each bus line sends one output a cycle."""
    bus = _bus_lines(P, lines)
    load: dict[int, int] = {}
    start = 0
    for size in sizes:
        line = bus[art_output(start, size, P)]
        load[line] = load.get(line, 0) + 1
        start += size
    return max(load.values(), default=1)


@dataclass(frozen=True, slots=True)
class Iterations:
    """The iterations of one block: ``need`` (iterations, K) bool, the elements some mapped
    multiplier of the iteration needs from each streamed vector; ``mapped`` products mapped
    (psum carrier excluded); ``vns`` clusters (outputs per streamed vector); ``folded`` later
    passes of a folded vector (one psum in per streamed vector); ``port_load`` the most elements
    one tree port sends per streamed vector (tree distribution)."""

    need: np.ndarray
    mapped: np.ndarray
    vns: np.ndarray
    folded: np.ndarray
    port_load: np.ndarray
    collect: np.ndarray | None = None  # art reduction: cycles of one vector's outputs on the bus
    port_need: tuple = ()  # tree distribution: per iteration, (ports, K) bool, the indices each port sends


def iterations(mapped: np.ndarray, p: Params) -> Iterations:
    """Pack the stationary vectors ``mapped`` ((vectors, K) bool, padded) into iterations."""
    V, K = mapped.shape
    P = p.P
    sizes = mapped.sum(axis=1)
    order = reorder_vectors(sizes, P) if p.reorder else np.arange(V)
    if not (p.tree or p.art) and V and int(sizes.max()) <= P:
        return _packed(mapped[order], sizes[order], P)
    groups: list[tuple[np.ndarray, int, bool]] = []  # (mask rows of the iteration, clusters, folded pass)
    i = 0
    while i < V:
        v = order[i]
        z = int(sizes[v])
        if z > P:  # folded alone: P elements, then P - 1 per pass beside the psum carrier
            cols = np.flatnonzero(mapped[v])
            first = True
            start = 0
            while start < z:
                take = P if first else P - 1
                row = np.zeros(K, dtype=bool)
                row[cols[start:start + take]] = True
                groups.append((row[None, :], 1, not first))
                start += take
                first = False
            i += 1
            continue
        used, j = 0, i
        while j < V and used + int(sizes[order[j]]) <= P and int(sizes[order[j]]) <= P:
            used += int(sizes[order[j]])
            j += 1
        if used:  # an iteration of empty vectors only is skipped (its outputs are zero)
            groups.append((mapped[order[i:j]], int(np.count_nonzero(sizes[order[i:j]])), False))
        i = j
    n = len(groups)
    need = np.zeros((n, K), dtype=bool)
    mapped_count = np.zeros(n, dtype=np.int64)
    vns = np.zeros(n, dtype=np.int64)
    folded = np.zeros(n, dtype=bool)
    port_load = np.zeros(n, dtype=np.int64)
    collect = np.ones(n, dtype=np.int64)
    port_need = []
    width = P // p.dn if p.tree else 0
    for g, (rows, clusters, fold) in enumerate(groups):
        need[g] = rows.any(axis=0)
        mapped_count[g] = int(rows.sum())
        vns[g] = clusters
        folded[g] = fold
        if p.art:  # a folded pass's cluster includes the psum carrier
            sizes_g = [int(rows.sum()) + 1] if fold else [int(x) for x in rows.sum(axis=1) if x]
            collect[g] = art_collection_cycles(sizes_g, P, p.rn)
        if p.tree:
            # multiplier slot of each mapped element, row-major after the psum carrier; a port
            # sends one element per cycle, each needed index once (multicast within its tree)
            r, k = np.nonzero(rows)
            port = (np.arange(r.size) + (1 if fold else 0)) // width
            on_port = np.zeros((p.dn, K), dtype=bool)
            on_port[port, k] = True
            port_need.append(on_port)
            load = on_port.sum(axis=1)
            if fold:
                load[0] += 1  # the partial sum enters through port 0 (sent first, psum FIFO)
            port_load[g] = int(load.max())
    return Iterations(need, mapped_count, vns, folded, port_load, collect if p.art else None, tuple(port_need))


def _packed(rows: np.ndarray, sizes: np.ndarray, P: int) -> Iterations:
    """:func:`iterations` without folds, tree ports or ART (the common case), vectorised: the
    greedy packing in one pass over the sizes, the per-iteration unions by ``reduceat``."""
    starts, used = [], P + 1
    for i, z in enumerate(sizes.tolist()):
        if used + z > P:
            starts.append(i)
            used = 0
        used += z
    idx = np.array(starts, dtype=np.int64)
    need = np.logical_or.reduceat(rows, idx, axis=0)
    mapped = np.add.reduceat(sizes.astype(np.int64), idx)
    vns = np.add.reduceat((sizes > 0).astype(np.int64), idx)
    keep = mapped > 0  # an iteration of empty vectors only is skipped (its outputs are zero)
    n = int(keep.sum())
    return Iterations(need[keep], mapped[keep], vns[keep], np.zeros(n, dtype=bool), np.zeros(n, dtype=np.int64))


@dataclass(frozen=True, slots=True)
class BlockCost:
    """Cycles and on-chip events of one block."""

    cycles: int
    iterations: int
    slots: int  # multiplier operations issued (mapped multipliers receiving a streamed value)
    mapped: int  # stationary elements distributed (register writes)
    str_reads: int  # streaming elements read from the buffer (nonzeros only where compressed)
    psum_reads: int
    outputs: int  # partial/final sums written


def block_cost(sta: np.ndarray, stream: np.ndarray | None, n_stream: int, p: Params,
               stream_compressed: bool = False) -> BlockCost:
    """The cost of one block: ``sta`` (vectors, K) bool, the stationary elements mapped
    (before padding); ``stream`` (n_stream, K) bool, the streaming operand's nonzeros where
    its zeros are skipped, None where it is streamed dense."""
    mapped = pad_clusters(sta, p.min_cluster)
    it = iterations(mapped, p)
    n = it.mapped.size
    S = n_stream
    skip = p.skip_streaming_zeros and stream is not None
    sent = it.need.sum(axis=1) + it.folded  # elements into the network per streamed vector
    out_cost = it.collect if it.collect is not None else -(-it.vns // p.rn)
    if skip:
        counts = it.need.astype(np.float32) @ stream.T.astype(np.float32)  # needed nonzeros per (iteration, vector)
        counts = np.rint(counts).astype(np.int64)
        if p.tree:
            per_vec = _tree_skip_cost(it, stream)
        else:
            per_vec = -(-(counts + it.folded[:, None]) // p.dn)
        per_vec = np.where(counts > 0, np.maximum(per_vec, out_cost[:, None]), 0)
        stream_cycles = per_vec.sum(axis=1)
        nz_k = stream.sum(axis=0)
    else:
        per_vec = it.port_load if p.tree else -(-sent // p.dn)
        stream_cycles = S * np.maximum(np.maximum(per_vec, 1), out_cost)
        nz_k = None
    load = p.config_cycles + (np.minimum(it.mapped, p.P // p.dn) if p.tree else -(-it.mapped // p.dn))
    load = np.maximum(load, 1)
    if p.overlap:
        nxt = np.append(load[1:], 0)
        cycles = int(load[0] + np.maximum(stream_cycles, nxt).sum() + p.drain_cycles) if n else 0
    else:
        cycles = int((load + stream_cycles).sum() + n * p.drain_cycles)
    # events: a mapped multiplier issues a product for every element streamed to it
    sta_per_k = mapped.sum(axis=0)  # mapped elements per reduction index
    if skip:
        slots = int(sta_per_k @ nz_k)
    else:
        slots = int(it.mapped.sum()) * S
    need_per_k = it.need.sum(axis=0)
    if stream is not None and stream_compressed:
        str_reads = int(need_per_k @ stream.sum(axis=0))
    else:
        str_reads = int(need_per_k.sum()) * S
    return BlockCost(cycles, n, slots, int(it.mapped.sum()), str_reads, int(it.folded.sum()) * S,
                     int(it.vns.sum()) * S)


def _tree_skip_cost(it: Iterations, stream: np.ndarray) -> np.ndarray:
    """Tree distribution with streamed zeros skipped: per (iteration, vector) the most needed
    nonzeros one port sends (plus port 0's partial sum on a folded pass)."""
    out = np.zeros((it.mapped.size, stream.shape[0]), dtype=np.int64)
    st = stream.T.astype(np.float32)
    for g, on_port in enumerate(it.port_need):
        per_port = np.rint(on_port.astype(np.float32) @ st).astype(np.int64)
        if it.folded[g]:
            per_port[0] += 1
        out[g] = per_port.max(axis=0)
    return out


class SigmaDataflow(TiledDataflow):
    """One of SIGMA's two mappings: ``stationary`` is the operand whose vectors occupy the
    multipliers (``A``: rows of A, STONNE's MK_STA_KN_STR; ``B``: columns of B, the weights,
    STONNE's MK_STR_KN_STA)."""

    array_kind = KIND
    stationary: str = "A"
    text: str = ""

    @property
    def label(self) -> str:
        return self.text

    @property
    def rank(self) -> int:
        return 60 if self.stationary == "A" else 61

    def plan(self, gemm: Gemm, cfg: AccelConfig, work: ArrayWork | None = None) -> Plan:
        work = dense_work(gemm) if work is None else work
        p = Params.of(cfg)
        run = work.gemm
        M, N, K = run.M, run.N, run.K
        a = np.ones((M, K), dtype=bool) if work.a is None else work.a.astype(bool)
        b = np.ones((K, N), dtype=bool) if work.b is None else work.b.astype(bool)
        if self.stationary == "A":
            sta_all, str_all, str_skipped = a, b.T, work.b is not None
            per_vec = max(1.0, float(a.sum()) / max(M, 1))
            granule = (min(M, _pow2(math.ceil(p.P / per_vec))), N, K)
            str_compressed = work.compressed_b
        else:
            sta_all, str_all, str_skipped = b.T, a, work.a is not None
            per_vec = max(1.0, float(b.sum()) / max(N, 1))
            granule = (M, min(N, _pow2(math.ceil(p.P / per_vec))), K)
            str_compressed = work.compressed_a
        nest = choose_nest(gemm, cfg, work, granule)
        elem, acc = cfg.array.element_bytes, cfg.array.accumulator_bytes
        cycles = []
        slots = mapped = str_reads = psum_reads = outputs = iters = meta_sta = meta_str = 0
        for m0, m1, n0, n1, _k0, _k1 in nest.blocks:
            if self.stationary == "A":
                sta, strm = sta_all[m0:m1], str_all[n0:n1]
            else:
                sta, strm = sta_all[n0:n1], str_all[m0:m1]
            cost = block_cost(sta, strm if str_skipped else None, strm.shape[0], p, str_compressed)
            cycles.append(cost.cycles)
            slots += cost.slots
            mapped += cost.mapped
            str_reads += cost.str_reads
            psum_reads += cost.psum_reads
            outputs += cost.outputs
            iters += cost.iterations
            meta_sta += -(-sta.size // 8)  # the stationary bitmap, read once per block
            meta_str += cost.iterations * -(-strm.size // 8)  # the streaming bitmap, once per iteration
        sta_compressed = work.compressed_a if self.stationary == "A" else work.compressed_b
        if work.zero_aware:
            performed, gated = work.macs_effectual, max(slots - work.macs_effectual, 0)
        else:
            performed, gated = slots, 0
        sta_bytes, str_bytes = mapped * elem, str_reads * elem
        meta_sta = meta_sta if sta_compressed else 0
        meta_str = meta_str if str_compressed else 0
        a_bytes, b_bytes = (sta_bytes, str_bytes) if self.stationary == "A" else (str_bytes, sta_bytes)
        meta_a, meta_b = (meta_sta, meta_str) if self.stationary == "A" else (meta_str, meta_sta)
        counts = EventCounts(macs_performed=performed, macs_gated=gated, rf_accesses=slots + mapped,
                             sram_a_bytes=a_bytes + meta_a, sram_b_bytes=b_bytes + meta_b,
                             sram_out_bytes=(outputs + psum_reads) * acc,
                             metadata_a_bytes=meta_a, metadata_b_bytes=meta_b)
        return tiled_plan(self.name, gemm, cfg, work, nest, np.array(cycles, dtype=np.int64), counts, folds=iters)


def _pow2(x: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(x, 1))))


class SigmaStationaryA(SigmaDataflow):
    name = "sigma_sta_a"
    stationary = "A"
    text = "SIGMA A-stationary (MK_STA_KN_STR)"


class SigmaStationaryB(SigmaDataflow):
    name = "sigma_sta_b"
    stationary = "B"
    text = "SIGMA B-stationary, weights (MK_STR_KN_STA)"


DATAFLOWS.add(SigmaStationaryA.name, SigmaStationaryA())
DATAFLOWS.add(SigmaStationaryB.name, SigmaStationaryB())
