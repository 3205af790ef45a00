"""The mapper's search: which nest of a :class:`~.space.NestSpace` a run uses.

:func:`search` *picks*: candidates ranked by a closed-form lower bound of the objective
(:mod:`.cost`) are evaluated in that order until the next bound cannot beat the best (branch
and bound, at most ``mapper.max_evaluations`` evaluations), so the chosen nest is the best of
all legal nests when the budget is not exhausted (the tests check it against brute force).
:func:`choose` is the run's entry: a nest pinned by the config or a mapping file, else the
search, cached by shape, hardware, dataflow and sparse sizes. The legacy schedule
(``mapper.policy: legacy``) competes with the searched nest in
:meth:`~sparsesim.dataflows.base.SystolicDataflow.plan` (:func:`pick_plan` judges them), unless
a nest is pinned.
"""

from __future__ import annotations

import dataclasses
import math
from functools import lru_cache
from pathlib import Path

import numpy as np

from sparsesim.core.errors import field_error
from sparsesim.hardware.config import AccelConfig, read_mapping
from sparsesim.hardware.dataflow_kind import DataflowKind
from sparsesim.hardware.memory import memory_model
from sparsesim.mapping.cost import Evaluation, _timed, cycles_bound, energy_bound, evaluate, score, traffic
from sparsesim.mapping.space import DIMS, ORDERS, Mapping, NestSpace
from sparsesim.workloads.gemm import Gemm

_ORDER_RANK = np.array([sorted(ORDERS).index(o) for o in ORDERS], dtype=np.int64)
"""Rank of each loop order of ORDERS as text (the search's tie-break compares orders as text)."""


def search(space: NestSpace, *, reference: bool = False) -> Evaluation | None:
    """The best nest of ``space`` for ``mapper.objective``.

    ``cycles``: fewest cycles, where nests within ``mapper.cycles_tolerance`` of the fastest
    count as equally fast and the one moving the fewest DRAM bytes (then the fewest tiles)
    among them wins (a compute-bound GEMM has many nests of the same speed; fewer bytes is less
    energy). ``dram_bytes``: fewest bytes (closed form), ties to fewer cycles. ``energy``:
    least nest-dependent energy (DRAM traffic plus leakage over the run; the DRAM's events,
    activates, bursts, I/O, refresh and standby, where the memory model prices events).

    Branch and bound: candidates are ranked by a closed-form lower bound of the objective
    (:func:`_cycles_bound`) and evaluated exactly in that order until the next bound cannot
    beat the best found, at most ``mapper.max_evaluations`` of them (so on small spaces the
    result is the best of all legal nests; on large ones the budget can end the search first).

    The candidates are scored in one array pass (:func:`score`) and ranked with ``np.lexsort``
    on the same keys as the reference (:func:`_search_reference`, per-nest scoring and Python
    sorts; ``reference=True`` runs it), so both pick the same nest (the tests check it); only
    the nests evaluated exactly become :class:`Mapping` objects.
    """
    if reference:
        return _search_reference(space)
    mc = space.cfg.mapper
    budget = mc.max_evaluations
    tm, tn, tk, oi = space.candidate_table()
    if not tm.size:
        return None
    s = score(space, tm, tn, tk, oi)
    bound, total, tiles = s["bound"], s["total"], s["tiles"]
    tie = (tk, tn, tm, _ORDER_RANK[oi], tiles)  # np.lexsort keys, last primary: tiles, order, M, N, K
    done: dict[Mapping, Evaluation] = {}

    def exact(i: int) -> Evaluation:
        m = Mapping(int(tm[i]), int(tn[i]), int(tk[i]), ORDERS[oi[i]])
        if m not in done:
            done[m] = evaluate(space, m)
        return done[m]

    def ranked(keys: tuple, pool: np.ndarray | None = None) -> list[int]:
        """Candidate indices sorted by ``keys`` (primary first), then the tie keys."""
        idx = np.arange(tm.size) if pool is None else np.flatnonzero(pool)
        order = np.lexsort(tuple(k[idx] for k in tie + tuple(reversed(keys))))
        return idx[order].tolist()

    def fastest_of(pool: np.ndarray | None) -> Evaluation:
        best = None
        for i in ranked((bound, total), pool):
            if best is not None and (int(bound[i]) > best.cycles or len(done) >= budget):
                break
            ev = exact(i)
            if best is None or (ev.cycles, ev.dram_bytes, len(ev.schedule)) < (best.cycles, best.dram_bytes,
                                                                               len(best.schedule)):
                best = ev
        return best

    if mc.objective == "dram_bytes":
        return fastest_of(total == total.min())
    if mc.objective == "energy":
        energy = np.array([energy_bound(space, r, w, b) for r, w, b in
                           zip(s["reads"].tolist(), s["writes"].tolist(), bound.tolist())], dtype=np.float64)
        best = None
        for i in ranked((energy, total)):
            if best is not None and (energy[i] > best.energy_pj or len(done) >= budget):
                break
            ev = exact(i)
            if best is None or (ev.energy_pj, ev.dram_bytes) < (best.energy_pj, best.dram_bytes):
                best = ev
        return best
    # cycles: the fastest time first, then the fewest bytes (and tiles) within the tolerance
    fastest = fastest_of(None)
    limit = fastest.cycles * (1.0 + mc.cycles_tolerance)
    own = (fastest.dram_bytes, len(fastest.schedule))
    spent = 0
    for i in ranked((total, tiles), bound <= limit):
        if (int(total[i]), int(tiles[i])) >= own or spent >= budget:
            break
        m = Mapping(int(tm[i]), int(tn[i]), int(tk[i]), ORDERS[oi[i]])
        spent += m not in done
        ev = exact(i)
        if ev.cycles <= limit:
            return ev
    return fastest


def _search_reference(space: NestSpace) -> Evaluation | None:
    """:func:`search` as first written: every candidate scored one nest at a time and ranked
    with Python sorts (slow; the tests hold the fast path to it)."""
    cfg = space.cfg
    mc = cfg.mapper
    budget = mc.max_evaluations
    rows = _rows_reference(space)
    if not rows:
        return None
    done: dict[Mapping, Evaluation] = {}

    def exact(m: Mapping) -> Evaluation:
        if m not in done:
            done[m] = evaluate(space, m)
        return done[m]

    def tie(r):
        return (r[2], r[3].order, r[3].tile_M, r[3].tile_N, r[3].tile_K)

    def fastest_of(pool) -> Evaluation:
        best = None
        for r in sorted(pool, key=lambda r: (r[0], r[1], tie(r))):
            if best is not None and (r[0] > best.cycles or len(done) >= budget):
                break
            ev = exact(r[3])
            if best is None or (ev.cycles, ev.dram_bytes, len(ev.schedule)) < (best.cycles, best.dram_bytes,
                                                                               len(best.schedule)):
                best = ev
        return best

    if mc.objective == "dram_bytes":
        least = min(r[1] for r in rows)
        return fastest_of([r for r in rows if r[1] == least])
    if mc.objective == "energy":
        bounds = {r[3]: energy_bound(space, r[4], r[5], r[0]) for r in rows}

        def bound_of(r):
            return bounds[r[3]]
        best = None
        for r in sorted(rows, key=lambda r: (bound_of(r), r[1], tie(r))):
            if best is not None and (bound_of(r) > best.energy_pj or len(done) >= budget):
                break
            ev = exact(r[3])
            if best is None or (ev.energy_pj, ev.dram_bytes) < (best.energy_pj, best.dram_bytes):
                best = ev
        return best
    # cycles: the fastest time first, then the fewest bytes (and tiles) within the tolerance
    fastest = fastest_of(rows)
    limit = fastest.cycles * (1.0 + mc.cycles_tolerance)
    own = (fastest.dram_bytes, len(fastest.schedule))
    spent = 0
    for r in sorted((r for r in rows if r[0] <= limit), key=lambda r: (r[1], r[2], tie(r))):
        if (r[1], r[2]) >= own or spent >= budget:
            break
        spent += r[3] not in done
        ev = exact(r[3])
        if ev.cycles <= limit:
            return ev
    return fastest


def _rows(space: NestSpace) -> list[tuple]:
    """``(cycle bound, total bytes, tiles, nest, read bytes, write bytes)`` of every candidate,
    scored in one array pass."""
    tm, tn, tk, oi = space.candidate_table()
    if not tm.size:
        return []
    s = score(space, tm, tn, tk, oi)
    nests = [Mapping(a, b, c, ORDERS[o]) for a, b, c, o in zip(tm.tolist(), tn.tolist(), tk.tolist(), oi.tolist())]
    return list(zip(s["bound"].tolist(), s["total"].tolist(), s["tiles"].tolist(), nests, s["reads"].tolist(),
                    s["writes"].tolist()))


def _rows_reference(space: NestSpace) -> list[tuple]:
    """:func:`_rows` one nest at a time with the per-nest closed forms (the slow reference)."""
    rows = []
    for m in space.candidates():
        tr = traffic(space, m)
        tiles = math.prod(-(-space.D[d] // m.tile(d)) for d in DIMS)
        rows.append((cycles_bound(space, m, tr), tr.total, tiles, m, tr.read_a + tr.read_b + tr.read_psum,
                     tr.write_out + tr.write_spill))
    return rows


@lru_cache(maxsize=8192)
def _search_cached(kind: DataflowKind, gemm: Gemm, cfg: AccelConfig, stream_key: tuple | None,
                   scale_a: float, scale_b: float, out_reserved: int) -> Mapping:
    stream = None
    if stream_key is not None:
        shape, length = stream_key
        stream = np.full(shape, length, dtype=np.int64)
    space = NestSpace(kind, gemm, cfg, stream, scale_a, scale_b, out_reserved)
    best = search(space)
    return None if best is None else best.mapping


def pinned(cfg: AccelConfig, space: NestSpace) -> bool:
    """Whether the config or a mapping file pins this GEMM's nest (then nothing competes)."""
    mc = cfg.mapper
    return bool(mc.order or mc.tiles.M or mc.tiles.N or mc.tiles.K or _from_file(space) is not None)


def pick_plan(space: NestSpace, plans: list):
    """The best of whole plans (the searched nest and the legacy schedules) by the same
    objective and rules as :func:`search`."""
    cfg = space.cfg
    mc = cfg.mapper

    mem = memory_model(cfg)

    def cycles(p) -> int:
        return mem.cycles(p.schedule)

    scored = [(cycles(p), p.counts.dram_read_bytes + p.counts.dram_write_bytes, i, p) for i, p in enumerate(plans)]
    if mc.objective == "dram_bytes":
        return min(scored, key=lambda r: (r[1], r[0], r[2]))[3]
    if mc.objective == "energy":
        return min(scored, key=lambda r: (_timed(space, r[3].schedule, r[3].counts)[1], r[1], r[2]))[3]
    limit = min(r[0] for r in scored) * (1.0 + mc.cycles_tolerance)
    return min((r for r in scored if r[0] <= limit), key=lambda r: (r[1], r[0], r[2]))[3]


def choose(space: NestSpace) -> Evaluation | None:
    """The nest the run uses: pinned by the mapping file or config, else searched (cached by
    shape, hardware, dataflow and sparse sizes)."""
    pinned = _from_file(space)
    if pinned is not None:
        space.check(pinned)
        return evaluate(space, pinned, timed=False)
    mc = space.cfg.mapper
    if mc.order and all((mc.tiles.M, mc.tiles.N, mc.tiles.K)):
        m = Mapping(min(mc.tiles.M, space.D["M"]), min(mc.tiles.N, space.D["N"]), min(mc.tiles.K, space.D["K"]),
                    mc.order)
        space.check(m)
        return evaluate(space, m, timed=False)
    for d, t in (("M", mc.tiles.M), ("N", mc.tiles.N), ("K", mc.tiles.K)):
        if t:
            probe = {x: space.D[x] for x in DIMS}
            probe[d] = min(t, space.D[d])
            space.check(Mapping(probe["M"], probe["N"], probe["K"], mc.order or "MNK"))
    # A sparse GEMM is searched with its stored sizes (rounded up to 1/8) and dense streaming,
    # so it shares the search of its dense twin where the sizes agree (zero-skipping without
    # compression); its real per-fold stream lengths are evaluated in the chosen nest.
    stream_key = None
    m = _search_cached(space.kind, dataclasses.replace(space.gemm, count=1), search_hardware(space.cfg), stream_key,
                       _rounded(space.width["A"] / space.elem), _rounded(space.width["B"] / space.elem),
                       space.cfg.buffers.out.size_bytes - space.full["Out"])
    if m is None:  # no affordable nest (more than MAX_TILES tiles in every one)
        return None
    return evaluate(space, m, timed=False)  # the run times it


def search_hardware(cfg: AccelConfig) -> AccelConfig:
    """The config as the search cache key: the fields a dense-streamed search never reads are
    set to fixed values, so runs that differ only there share their searches (the sparsity
    features, names, and the array's lane organisation, sync window, N:M ratios and dataflow
    list, which act only on sparse streams and the choice of dataflow, never on a nest's
    dense-streamed schedule, bytes, cycles or energy)."""
    array = dataclasses.replace(cfg.array, lanes="systolic", sync_window_steps=1, nm_ratios=(), dataflows=())
    return dataclasses.replace(cfg, sparsity=(), name="", description="", array=array)


def _rounded(scale: float) -> float:
    """A stored-size ratio rounded up to 1/8 (a search key; never below the real size, so the
    searched tiles still fit)."""
    return math.ceil(scale * 8) / 8


def _from_file(space: NestSpace) -> Mapping | None:
    """The nest a mapping file pins for this GEMM shape and dataflow, if any.

    File format (YAML)::

        mappings:
          - {M: 12544, N: 64, K: 147, dataflow: ws, order: NMK, tiles: {M: 1024, N: 64, K: 147}}

    ``dataflow`` may be omitted (any dataflow); shapes not listed are searched.
    """
    path = space.cfg.mapper.file
    if not path:
        return None
    data = _read_mapping_file(path)
    g, name = space.gemm, space.kind.name
    for i, entry in enumerate(data):
        if (entry["M"], entry["N"], entry["K"]) == (g.M, g.N, g.K) and entry.get("dataflow", name) == name:
            t = entry["tiles"]
            return Mapping(min(int(t["M"]), g.M), min(int(t["N"]), g.N), min(int(t["K"]), g.K), str(entry["order"]))
    return None


@lru_cache(maxsize=16)
def _read_mapping_file(path: str) -> tuple:
    data = read_mapping(Path(path))
    entries = data.get("mappings")
    if not isinstance(entries, list):
        raise field_error("mapper.file", f"{path}: expected a `mappings:` list")
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not {"M", "N", "K", "order", "tiles"} <= set(e) or not isinstance(e["tiles"], dict) \
                or not {"M", "N", "K"} <= set(e["tiles"]):
            raise field_error("mapper.file", f"{path}: mappings[{i}] needs M, N, K, order and tiles: {{M, N, K}}")
    return tuple(entries)

