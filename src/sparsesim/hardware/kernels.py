"""Numba kernels of the sparse datapaths, each beside its plain-NumPy reference twin.

Every kernel takes arrays and scalars only. ``foo`` is the fast version, ``foo_ref`` the
readable one; property tests check that they agree. The kernels work on *masks* (uint8,
1 = nonzero) and on per-block summaries of them, so the cost of a replay grows with tensor
sizes, never with simulated cycles x PEs.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# ---------------------------------------------------------------- block "any" over a span


def block_any_ref(nz: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """``out[b, t] = any(nz[starts[b]:ends[b], t])`` for a ``(S, T)`` uint8 mask."""
    out = np.zeros((starts.size, nz.shape[1]), dtype=np.uint8)
    for b in range(starts.size):
        out[b] = nz[starts[b]:ends[b]].any(axis=0)
    return out


@njit(cache=True, nogil=True)
def block_any(nz: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Fast :func:`block_any_ref`."""
    nb, t_len = starts.size, nz.shape[1]
    out = np.zeros((nb, t_len), dtype=np.uint8)
    for b in range(nb):
        for s in range(starts[b], ends[b]):
            row = nz[s]
            for t in range(t_len):
                if row[t]:
                    out[b, t] = 1
    return out


# ---------------------------------------------------------------- lockstep stream lengths


def lockstep_steps_ref(row_alive: np.ndarray, col_alive: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Cycles each (row block, column block) fold streams when all PEs move in lockstep.

    ``row_alive[rb, u]`` says whether time unit ``u`` carries any effectual work for the PE
    rows of block ``rb`` (likewise ``col_alive`` for columns); a unit is skipped only when no
    PE of the fold needs it, and costs ``cost[u]`` cycles otherwise.
    """
    return (row_alive.astype(np.int64) * cost) @ col_alive.astype(np.int64).T


@njit(cache=True, nogil=True)
def lockstep_steps(row_alive: np.ndarray, col_alive: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Fast :func:`lockstep_steps_ref`."""
    nr, nc, n_units = row_alive.shape[0], col_alive.shape[0], cost.size
    out = np.zeros((nr, nc), dtype=np.int64)
    for r in range(nr):
        for c in range(nc):
            acc = 0
            for u in range(n_units):
                if row_alive[r, u] and col_alive[c, u]:
                    acc += cost[u]
            out[r, c] = acc
    return out


# ---------------------------------------------------------------- decoupled lanes


def decoupled_steps_ref(lane_nz: np.ndarray, block: int, col_alive: np.ndarray, window: int) -> np.ndarray:
    """Cycles per fold when each lane (PE row) advances on its own between sync points.

    ``lane_nz[s, t]``: lane ``s`` has effectual work at step ``t``. Lanes are grouped ``block``
    at a time (the PE rows of a fold). Every ``window`` steps all lanes of the fold
    synchronize, so a window costs the *largest* number of effectual steps any lane has in it
    (load imbalance). Steps dead for every PE column of the fold (``col_alive`` 0) are free.
    ``window = 1`` is lockstep.
    """
    s_len, t_len = lane_nz.shape
    n_rb = -(-s_len // block)
    out = np.zeros((n_rb, col_alive.shape[0]), dtype=np.int64)
    for rb in range(n_rb):
        lanes = lane_nz[rb * block:(rb + 1) * block].astype(np.int64)
        for cb in range(col_alive.shape[0]):
            eff = lanes * col_alive[cb].astype(np.int64)
            total = 0
            for w0 in range(0, t_len, window):
                total += int(eff[:, w0:w0 + window].sum(axis=1).max())
            out[rb, cb] = total
    return out


@njit(cache=True, nogil=True)
def decoupled_steps(lane_nz: np.ndarray, block: int, col_alive: np.ndarray, window: int) -> np.ndarray:
    """Fast :func:`decoupled_steps_ref`."""
    s_len, t_len = lane_nz.shape
    n_rb = (s_len + block - 1) // block
    n_cb = col_alive.shape[0]
    out = np.zeros((n_rb, n_cb), dtype=np.int64)
    for rb in range(n_rb):
        lo, hi = rb * block, min((rb + 1) * block, s_len)
        for cb in range(n_cb):
            total = 0
            for w0 in range(0, t_len, window):
                w1 = min(w0 + window, t_len)
                worst = 0
                for s in range(lo, hi):
                    cnt = 0
                    for t in range(w0, w1):
                        if lane_nz[s, t] and col_alive[cb, t]:
                            cnt += 1
                    if cnt > worst:
                        worst = cnt
                total += worst
            out[rb, cb] = total
    return out


# ---------------------------------------------------------------- N:M pruning


def nm_prune_ref(w: np.ndarray, n: int, m: int) -> np.ndarray:
    """Keep the ``n`` largest-magnitude of every ``m`` consecutive entries along the last axis.

    The last axis is padded with zeros to a multiple of ``m``; ties keep the lower index.
    """
    rows, k = w.shape
    groups = -(-k // m)
    padded = np.zeros((rows, groups * m), dtype=w.dtype)
    padded[:, :k] = w
    g = padded.reshape(rows, groups, m)
    order = np.argsort(-np.abs(g), axis=2, kind="stable")
    keep = np.zeros_like(g, dtype=bool)
    np.put_along_axis(keep, order[:, :, :n], True, axis=2)
    return np.where(keep, g, 0).reshape(rows, groups * m)[:, :k]


@njit(cache=True, nogil=True)
def nm_prune(w: np.ndarray, n: int, m: int) -> np.ndarray:
    """Fast :func:`nm_prune_ref` (same tie rule)."""
    rows, k = w.shape
    out = np.zeros_like(w)
    for r in range(rows):
        for g0 in range(0, k, m):
            g1 = min(g0 + m, k)
            taken = np.zeros(g1 - g0, dtype=np.bool_)
            for _ in range(min(n, g1 - g0)):
                best, best_i = -1.0, -1
                for i in range(g0, g1):
                    a = abs(w[r, i])
                    if not taken[i - g0] and a > best:
                        best, best_i = a, i
                taken[best_i - g0] = True
                out[r, best_i] = w[r, best_i]
    return out


def nm_group_max_nonzeros(w: np.ndarray, m: int) -> int:
    """Largest number of nonzeros in any group of ``m`` along the last axis."""
    rows, k = w.shape
    groups = -(-k // m)
    padded = np.zeros((rows, groups * m), dtype=bool)
    padded[:, :k] = w != 0
    return int(padded.reshape(rows, groups, m).sum(axis=2).max(initial=0))


# ---------------------------------------------------------------- delta encoding


def delta_step_ref(x: np.ndarray, ref: np.ndarray, theta: float) -> np.ndarray:
    """One step of delta encoding (Neil et al., ICML 2017) on flat arrays; updates ``ref``.

    The change ``d = x - ref`` is sent where ``d != 0 and |d| >= theta``; ``ref`` follows
    ``x`` only there. Returns the sent deltas (zero where nothing fired).
    """
    d = x.astype(np.float64) - ref
    fire = (d != 0) & (np.abs(d) >= theta)
    ref[fire] = x[fire]
    return np.where(fire, d, 0.0)


@njit(cache=True, nogil=True)
def delta_step(x: np.ndarray, ref: np.ndarray, theta: float) -> np.ndarray:
    """Fast :func:`delta_step_ref`."""
    out = np.zeros(x.size, dtype=np.float64)
    for i in range(x.size):
        d = x[i] - ref[i]
        if d != 0.0 and abs(d) >= theta:
            out[i] = d
            ref[i] = x[i]
    return out


# ---------------------------------------------------------------- tile packing


def pack_tiles_ref(loads: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """Greedy tiles over a fold sequence: ``loads[j, f]`` bytes of buffer ``j`` that fold ``f``
    brings in; a tile closes before the fold that would overflow any buffer's free half
    ``caps[j]`` (a fold larger than a half is a tile of its own). Returns the first fold of
    every tile."""
    starts = [0]
    used = np.zeros(loads.shape[0], dtype=np.int64)
    for f in range(loads.shape[1]):
        if f > 0 and np.any(used + loads[:, f] > caps):
            starts.append(f)
            used[:] = 0
        used += loads[:, f]
    return np.array(starts, dtype=np.int64)


@njit(cache=True, nogil=True)
def pack_tiles(loads: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """Fast :func:`pack_tiles_ref`."""
    n_ops, n_folds = loads.shape
    starts = np.empty(max(n_folds, 1), dtype=np.int64)
    starts[0] = 0
    count = 1
    used = np.zeros(n_ops, dtype=np.int64)
    for f in range(n_folds):
        if f > 0:
            over = False
            for j in range(n_ops):
                if used[j] + loads[j, f] > caps[j]:
                    over = True
            if over:
                starts[count] = f
                count += 1
                used[:] = 0
        for j in range(n_ops):
            used[j] += loads[j, f]
    return starts[:count]


# ---------------------------------------------------------------- pipeline timing (the simple channel's fast twin)


@njit(cache=True, nogil=True)
def pipeline_cycles(load: np.ndarray, compute: np.ndarray, store: np.ndarray, bandwidth: float,
                    latency: int, epilogue: int) -> int:
    """Cycles of the load -> compute -> store tile pipeline as an event recurrence.

    The same model as :func:`sparsesim.hardware.timing.simulate_tiles` (which is its reference):
    tile ``t`` loads once tile ``t - 2`` is consumed and computes once loaded, once tile ``t - 1``
    is done and once tile ``t - 2``'s store has left (double-buffered operand and output
    buffers); it stores once computed (the last one after the drain). Reads and writes share
    one channel granted in request order (on a tie, the request whose trigger fired first),
    each transfer taking ``ceil(bytes / bandwidth)`` cycles and arriving ``latency`` later.
    ``compute`` holds each tile's array cycles, SRAM-port stalls included. It is the fast form
    of the ``simple`` memory model (:meth:`sparsesim.hardware.memory.channel.SimpleChannel.cycles`,
    whose reference is the SimPy ``time``): the mapper scores candidate nests with it, runs are
    timed by SimPy. tests/hardware/test_memory_model.py holds it, compiled and as plain Python
    (``pipeline_cycles.py_func``), to SimPy through that class.
    """
    n = compute.size
    if n == 0:
        return 0
    loaded = np.zeros(n)
    done = np.zeros(n)
    stored = np.zeros(n)
    r = 0
    w = 0
    known = 0
    chan = 0.0
    rready = 0.0
    wready = 0.0
    last_store = 0.0
    while r < n or w < n:
        while known < r and (known < 2 or w > known - 2):
            prev = done[known - 1] if known > 0 else 0.0
            free = stored[known - 2] if known >= 2 else 0.0
            done[known] = max(max(prev, loaded[known]), free) + compute[known]
            known += 1
        rq = -1.0
        if r < n and r - 2 < known:
            rq = max(rready, done[r - 2] if r >= 2 else 0.0)
            if load[r] == 0:
                loaded[r] = rq
                rready = rq
                r += 1
                continue
        wq = -1.0
        if w < n and w < known:
            ready = done[w] + (epilogue if w == n - 1 else 0)
            if store[w] == 0:
                wready = max(wready, ready)
                stored[w] = wready
                w += 1
                continue
            wq = max(wready, ready)
        if rq >= 0 and (wq < 0 or rq < wq or (rq == wq and r - 2 <= w)):
            chan = max(chan, rq) + math.ceil(load[r] / bandwidth)
            loaded[r] = chan + latency
            rready = chan
            r += 1
        elif wq >= 0:
            chan = max(chan, wq) + math.ceil(store[w] / bandwidth)
            wready = chan
            stored[w] = chan
            last_store = chan + latency
            w += 1
        else:  # every state lets the reader or the writer move
            raise AssertionError("pipeline recurrence stuck")
    return int(math.ceil(max(done[n - 1] + epilogue, last_store)))


# ---------------------------------------------------------------- a loop nest's tiles (mapper)


@njit(cache=True, nogil=True)
def nest_tiles(n_loop: np.ndarray, dim_of_loop: np.ndarray, a_kind: np.ndarray, b_kind: np.ndarray,
               out_kind: np.ndarray, a_elems_kind: np.ndarray, flags: np.ndarray, half_a: int, half_b: int,
               acc: int, elem: int, total_a: int, spacing: np.ndarray, chunk_len: int, time_len: int,
               fold_groups: np.ndarray, spatial: np.ndarray):
    """Per-tile DRAM loads, compute cycles and stores of one loop nest, and its traffic sums.

    Tiles are visited in loop order: loop ``j`` (outermost first) runs ``n_loop[j]`` times over
    GEMM dimension ``dim_of_loop[j]`` (0 M, 1 N, 2 K). ``*_kind[i, j]`` is a tile's size by
    whether it is the last along its first (``i``) and second (``j``) dimension (A: M, K; B:
    K, N; Out and ``a_elems_kind``: M, N and M, K). ``flags``: A resident, A tile fits its
    half, B resident, B fits, Out resident, Out tile fits, conv input resident (its feature map
    is fetched once, spread over the first touches of its tiles by im2col share). ``chunk`` is
    the compute cycles per (row block, column block, time chunk) and ``spatial`` the GEMM
    dimensions of those three axes. The rules are those of
    :func:`sparsesim.mapping.cost._evaluate_reference`, its readable twin.

    Returns ``(load, compute, store, sums)`` with ``sums`` = A, B, partial-sum reads, output
    and spill writes (bytes)."""
    T = n_loop[0] * n_loop[1] * n_loop[2]
    n = np.zeros(3, dtype=np.int64)
    for j in range(3):
        n[dim_of_loop[j]] = n_loop[j]
    fr, fc = spacing.shape
    chunks = n[spatial[2]]
    chunk = np.zeros((n[spatial[0]], n[spatial[1]], chunks), dtype=np.int64)
    for r in range(fr):
        for c in range(fc):
            prev = 0
            for j in range(chunks):
                end = min((j + 1) * chunk_len, time_len)
                cut = (spacing[r, c] * end) // time_len
                chunk[r // fold_groups[0], c // fold_groups[1], j] += cut - prev
                prev = cut
    idx = np.zeros((T, 3), dtype=np.int64)
    c = np.zeros(3, dtype=np.int64)
    for t in range(T):
        for j in range(3):
            idx[t, dim_of_loop[j]] = c[j]
        j = 2
        while j >= 0:
            c[j] += 1
            if c[j] < n_loop[j]:
                break
            c[j] = 0
            j -= 1
    a_res, a_fit, b_res, b_fit, o_res, o_fit, conv_res = (flags[0], flags[1], flags[2], flags[3], flags[4],
                                                            flags[5], flags[6])
    load = np.zeros(T, dtype=np.int64)
    compute = np.zeros(T, dtype=np.int64)
    store = np.zeros(T, dtype=np.int64)
    sums = np.zeros(5, dtype=np.int64)
    share = np.zeros(T, dtype=np.int64)  # conv resident A: cumulative im2col elements fetched
    acc_share = 0
    for t in range(T):
        im, i_n, ik = idx[t, 0], idx[t, 1], idx[t, 2]
        lm, ln, lk = int(im == n[0] - 1), int(i_n == n[1] - 1), int(ik == n[2] - 1)
        first = t == 0
        # A (M, K)
        a_tile = a_kind[lm, lk]
        if a_res:
            new_a = i_n == 0
        else:
            new_a = first or idx[t - 1, 0] != im or idx[t - 1, 2] != ik
        if conv_res and a_res:
            if new_a:
                acc_share += a_elems_kind[lm, lk]
            share[t] = acc_share
            load_a = 0
        elif new_a:
            load_a = a_tile
        elif not (a_res or a_fit):
            load_a = max(a_tile - half_a, 0)
        else:
            load_a = 0
        # B (K, N)
        b_tile = b_kind[lk, ln]
        if b_res:
            new_b = im == 0
        else:
            new_b = first or idx[t - 1, 2] != ik or idx[t - 1, 1] != i_n
        if new_b:
            load_b = b_tile
        elif not (b_res or b_fit):
            load_b = max(b_tile - half_b, 0)
        else:
            load_b = 0
        # Out (M, N): partial sums in and out
        out_tile = out_kind[lm, ln]
        last_k = ik == n[2] - 1
        enter = False
        leave_spill = False
        if not o_res:
            if o_fit:
                enter = first or idx[t - 1, 0] != im or idx[t - 1, 1] != i_n
                leave = t == T - 1 or idx[t + 1, 0] != im or idx[t + 1, 1] != i_n
            else:
                enter = True
                leave = True
            enter = enter and ik > 0
            leave_spill = leave and not last_k
        psum = out_tile * acc if enter else 0
        out_w = out_tile * elem if last_k else 0
        spill_w = out_tile * acc if leave_spill else 0
        load[t] = load_a + load_b + psum
        store[t] = out_w + spill_w
        compute[t] = chunk[idx[t, spatial[0]], idx[t, spatial[1]], idx[t, spatial[2]]]
        sums[0] += load_a
        sums[1] += load_b
        sums[2] += psum
        sums[3] += out_w
        sums[4] += spill_w
    if conv_res and a_res:
        whole = max(acc_share, 1)
        prev = 0
        for t in range(T):
            cum = (total_a * share[t]) // whole
            load[t] += cum - prev
            sums[0] += cum - prev
            prev = cum
    return load, compute, store, sums
