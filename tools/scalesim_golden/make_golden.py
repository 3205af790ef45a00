#!/usr/bin/env python3
"""Regenerate SCALE-Sim v3 dense cycle-count golden files.

Run with the *separate* SCALE-Sim virtual environment (scalesim is never a
dependency of sparsesim itself)::

    python3 -m venv .venv-scalesim
    .venv-scalesim/bin/pip install scalesim==3.0.0 'numpy<2.4'
    .venv-scalesim/bin/python tools/scalesim_golden/make_golden.py

For every case below and every dataflow (os, ws, is) the script writes a
SCALE-Sim config, a topology file (GEMM "M,N,K" format or conv format) and an
empty layout file into a temporary directory, runs SCALE-Sim through its
Python API with verbose output off, and reads "Total Cycles" back from the
COMPUTE_REPORT.csv that SCALE-Sim writes.  SCALE-Sim runs in CALC
("estimate bandwidth") mode, where it never stalls; the script checks that
the reported "Stall Cycles" value is 0.

Output columns (one row per case x dataflow; (case, dataflow) is the key):

    case,kind,rows,cols,dataflow,M,N,K,ifmap_h,ifmap_w,filter_h,filter_w,
    channels,num_filters,stride,scalesim_total_cycles,cycles

* gemm rows: conv columns are empty.
* conv rows: M, N, K are SCALE-Sim's own lowering (batch 1):
  M = ofmap_h * ofmap_w, N = num_filters, K = filter_h * filter_w * channels,
  with ofmap_h = ceil((ifmap_h - filter_h + stride) / stride) (SCALE-Sim has
  no padding: ifmap_h/ifmap_w are the already-padded input sizes).
* cycles = scalesim_total_cycles + 1 (SCALE-Sim reports the 0-based index of
  the last cycle).

After writing, the script compares every row with the closed-form dense
formulas and prints a summary.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import math
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_GOLDEN = os.path.join(REPO_ROOT, "tests", "golden", "scalesim_dense.csv")
DEFAULT_HELDOUT = os.path.join(REPO_ROOT, "tools", "scalesim_golden", "heldout.csv")

DATAFLOWS = ("os", "ws", "is")

COLUMNS = [
    "case", "kind", "rows", "cols", "dataflow", "M", "N", "K",
    "ifmap_h", "ifmap_w", "filter_h", "filter_w", "channels", "num_filters", "stride",
    "scalesim_total_cycles", "cycles",
]


# ----------------------------------------------------------------------------
# Case definitions
# ----------------------------------------------------------------------------

def gemm(name, arr, m, n, k):
    """GEMM Out[m x n] = A[m x k] . B[k x n] on an arr=(rows, cols) array."""
    return {"case": name, "kind": "gemm", "rows": arr[0], "cols": arr[1],
            "M": m, "N": n, "K": k}


def conv(name, arr, ifmap_h, ifmap_w, filter_h, filter_w, channels, num_filters, stride):
    """Conv layer in SCALE-Sim's own terms (ifmap sizes already include padding)."""
    return {"case": name, "kind": "conv", "rows": arr[0], "cols": arr[1],
            "ifmap_h": ifmap_h, "ifmap_w": ifmap_w, "filter_h": filter_h,
            "filter_w": filter_w, "channels": channels, "num_filters": num_filters,
            "stride": stride}


A8 = (8, 8)
A32 = (32, 32)
A16x64 = (16, 64)
A64x16 = (64, 16)
A128 = (128, 128)
A12x20 = (12, 20)
A4x4 = (4, 4)

GOLDEN_CASES = [
    # --- GEMMs -------------------------------------------------------------
    gemm("gemm_64x64x64_a8x8", A8, 64, 64, 64),
    gemm("gemm_64x64x64_a32x32", A32, 64, 64, 64),
    gemm("gemm_100x70x50_a32x32", A32, 100, 70, 50),
    gemm("gemm_37x53x29_a12x20", A12x20, 37, 53, 29),
    gemm("gemm_256x128x96_a16x64", A16x64, 256, 128, 96),
    gemm("gemm_256x128x96_a64x16", A64x16, 256, 128, 96),
    gemm("gemm_200x300x150_a128x128", A128, 200, 300, 150),
    gemm("gemm_129x65x33_a128x128", A128, 129, 65, 33),
    gemm("gemm_tiny_3x5x7_a8x8", A8, 3, 5, 7),
    gemm("gemm_tiny_10x20x30_a128x128", A128, 10, 20, 30),
    gemm("gemm_1x1x1_a8x8", A8, 1, 1, 1),
    gemm("gemm_m1_1x256x128_a32x32", A32, 1, 256, 128),
    gemm("gemm_n1_128x1x64_a16x64", A16x64, 128, 1, 64),
    gemm("gemm_k1_64x48x1_a12x20", A12x20, 64, 48, 1),
    gemm("gemm_96x40x200_a12x20", A12x20, 96, 40, 200),
    gemm("gemm_50x90x17_a16x64", A16x64, 50, 90, 17),
    gemm("gemm_500x20x64_a8x8", A8, 500, 20, 64),
    gemm("gemm_9x17x33_a8x8", A8, 9, 17, 33),
    gemm("gemm_48x80x24_a4x4", A4x4, 48, 80, 24),
    gemm("gemm_33x31x65_a32x32", A32, 33, 31, 65),
    # --- convs -------------------------------------------------------------
    conv("conv3x3_s1_16x16_c8_f16_a8x8", A8, 16, 16, 3, 3, 8, 16, 1),
    conv("conv3x3_s1_14x10_c3_f20_a12x20", A12x20, 14, 10, 3, 3, 3, 20, 1),
    conv("conv3x3_s2_15x15_c16_f32_a32x32", A32, 15, 15, 3, 3, 16, 32, 2),
    conv("conv3x3_s2_16x16_c8_f24_a16x64", A16x64, 16, 16, 3, 3, 8, 24, 2),
    conv("conv1x1_s1_14x14_c64_f64_a32x32", A32, 14, 14, 1, 1, 64, 64, 1),
    conv("conv1x1_s2_28x28_c32_f64_a16x64", A16x64, 28, 28, 1, 1, 32, 64, 2),
    conv("conv1x1_s1_7x7_c256_f100_a128x128", A128, 7, 7, 1, 1, 256, 100, 1),
    conv("conv7x7_s1_20x20_c4_f16_a32x32", A32, 20, 20, 7, 7, 4, 16, 1),
    conv("conv7x7_s2_29x29_c3_f64_a128x128", A128, 29, 29, 7, 7, 3, 64, 2),
    conv("conv7x7_s2_22x22_c3_f8_a8x8", A8, 22, 22, 7, 7, 3, 8, 2),
    conv("dwlike3x3_s1_18x18_c1_f1_a8x8", A8, 18, 18, 3, 3, 1, 1, 1),
    conv("dwlike5x5_s1_12x12_c1_f1_a12x20", A12x20, 12, 12, 5, 5, 1, 1, 1),
    conv("dwlike3x3_s2_17x17_c1_f1_a32x32", A32, 17, 17, 3, 3, 1, 1, 2),
    conv("conv3x3_c1_f8_10x10_a128x128", A128, 10, 10, 3, 3, 1, 8, 1),
    conv("conv_tiny3x3_4x4_c2_f3_a32x32", A32, 4, 4, 3, 3, 2, 3, 1),
    conv("conv_tiny2x2_3x3_c1_f2_a8x8", A8, 3, 3, 2, 2, 1, 2, 1),
    conv("conv5x5_s1_12x12_c6_f16_a16x64", A16x64, 12, 12, 5, 5, 6, 16, 1),
    conv("conv3x1_s1_12x12_c4_f8_a12x20", A12x20, 12, 12, 3, 1, 4, 8, 1),
    conv("conv3x3_s3_13x13_c4_f10_a12x20", A12x20, 13, 13, 3, 3, 4, 10, 3),
    conv("conv3x3_s1_10x10_c16_f24_a64x16", A64x16, 10, 10, 3, 3, 16, 24, 1),
    conv("conv3x3_s1_9x12_c5_f7_a4x4", A4x4, 9, 12, 3, 3, 5, 7, 1),
    # --- mid-size, real-network layers (ifmap sizes include padding) -------
    gemm("gemm_512x512x512_a32x32", A32, 512, 512, 512),
    # 229 = 224 + 2*3 - 1: SCALE-Sim rounds the ofmap size up, so the padded
    # 230-wide input would give 113, not 112, output pixels per row.
    conv("resnet_stem7x7_s2_229x229_c3_f64_a128x128", A128, 229, 229, 7, 7, 3, 64, 2),
    conv("resnet_conv2_3x3_s1_58x58_c64_f64_a128x128", A128, 58, 58, 3, 3, 64, 64, 1),
]

# Different shapes from the golden file; used only for a manual spot check.
HELDOUT_CASES = [
    gemm("ho_gemm_77x41x23_a8x8", A8, 77, 41, 23),
    gemm("ho_gemm_130x130x130_a128x128", A128, 130, 130, 130),
    gemm("ho_gemm_60x200x12_a16x64", A16x64, 60, 200, 12),
    gemm("ho_gemm_25x7x90_a12x20", A12x20, 25, 7, 90),
    gemm("ho_gemm_2x3x300_a32x32", A32, 2, 3, 300),
    gemm("ho_gemm_45x45x45_a24x8", (24, 8), 45, 45, 45),
    conv("ho_conv3x3_s1_11x13_c6_f9_a8x8", A8, 11, 13, 3, 3, 6, 9, 1),
    conv("ho_conv3x3_s2_19x19_c12_f40_a32x32", A32, 19, 19, 3, 3, 12, 40, 2),
    conv("ho_conv1x1_s1_8x8_c48_f30_a12x20", A12x20, 8, 8, 1, 1, 48, 30, 1),
    conv("ho_conv5x5_s2_20x20_c3_f12_a16x64", A16x64, 20, 20, 5, 5, 3, 12, 2),
    conv("ho_dwlike3x3_s1_21x21_c1_f1_a128x128", A128, 21, 21, 3, 3, 1, 1, 1),
    conv("ho_conv7x7_s1_13x13_c2_f5_a64x16", A64x16, 13, 13, 7, 7, 2, 5, 1),
]


# ----------------------------------------------------------------------------
# SCALE-Sim input files
# ----------------------------------------------------------------------------

# sparsesim reads this file back as `--accel FILE.cfg` (src/sparsesim/hardware/scalesim_config.py), and
# tests/hardware/test_scalesim_config.py runs every golden case through it: keep the two in step.
CONFIG_TEMPLATE = """\
[general]
run_name = {run_name}

[architecture_presets]
ArrayHeight = {rows}
ArrayWidth = {cols}
IfmapSramSzkB = 6144
FilterSramSzkB = 6144
OfmapSramSzkB = 6144
IfmapOffset = 0
FilterOffset = 100000000
OfmapOffset = 200000000
Dataflow = {dataflow}
ReadRequestBuffer = 32
WriteRequestBuffer = 32

[layout]
IfmapCustomLayout = False
FilterCustomLayout = False
IfmapSRAMBankBandwidth = 10
IfmapSRAMBankNum = 10
IfmapSRAMBankPort = 2
FilterSRAMBankBandwidth = 10
FilterSRAMBankNum = 10
FilterSRAMBankPort = 2

[sparsity]
SparsitySupport = false
SparseRep = ellpack_block
OptimizedMapping = false
BlockSize = 8
RandomNumberGeneratorSeed = 40

[run_presets]
InterfaceBandwidth = CALC
UseRamulatorTrace = False
"""

# NB: SCALE-Sim drops the last comma-separated field of every row, so each row
# must end with a trailing comma.  A layer name containing "DP" would be split
# into per-channel depthwise layers, so the layer is always called "L0".
GEMM_TOPO_TEMPLATE = "Layer, M, N, K,\nL0, {M}, {N}, {K},\n"
CONV_TOPO_TEMPLATE = (
    "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, "
    "Channels, Num Filter, Strides,\n"
    "L0, {ifmap_h}, {ifmap_w}, {filter_h}, {filter_w}, {channels}, {num_filters}, {stride},\n"
)
# The layout file is only read when a custom layout is enabled, but SCALE-Sim
# always opens it; a header-only file is enough.
LAYOUT_TEXT = "Layer name,\n"


def _parse_compute_report(path):
    with open(path, newline="") as f:
        rows = [[c.strip() for c in r] for r in csv.reader(f) if r]
    header, data = rows[0], rows[1:]
    if len(data) != 1:
        raise RuntimeError(f"expected 1 layer in {path}, got {len(data)}")
    rec = dict(zip(header, data[0]))
    return int(rec["Total Cycles"]), int(rec["Stall Cycles"])


def run_one(task):
    """Run one (case, dataflow) through SCALE-Sim; executed in a worker process."""
    case, dataflow = task
    from scalesim.scale_sim import scalesim  # only available in .venv-scalesim

    with tempfile.TemporaryDirectory(prefix="scalesim_golden_") as tmp:
        run_name = "run"
        cfg_path = os.path.join(tmp, "scale.cfg")
        topo_path = os.path.join(tmp, "topology.csv")
        layout_path = os.path.join(tmp, "layout.csv")
        with open(cfg_path, "w") as f:
            f.write(CONFIG_TEMPLATE.format(run_name=run_name, rows=case["rows"],
                                           cols=case["cols"], dataflow=dataflow))
        with open(topo_path, "w") as f:
            if case["kind"] == "gemm":
                f.write(GEMM_TOPO_TEMPLATE.format(**case))
            else:
                f.write(CONV_TOPO_TEMPLATE.format(**case))
        with open(layout_path, "w") as f:
            f.write(LAYOUT_TEXT)

        out_dir = os.path.join(tmp, "out")
        with open(os.devnull, "w") as devnull, \
                contextlib.redirect_stdout(devnull), contextlib.redirect_stderr(devnull):
            sim = scalesim(save_disk_space=True, verbose=False, config=cfg_path,
                           topology=topo_path, layout=layout_path,
                           input_type_gemm=(case["kind"] == "gemm"))
            sim.run_scale(top_path=out_dir)

        total, stalls = _parse_compute_report(
            os.path.join(out_dir, run_name, "COMPUTE_REPORT.csv"))

        # SCALE-Sim's own lowering to GEMM dimensions, straight from its
        # operand matrices: ifmap operand is M x K, filter operand is K x N.
        layer = sim.runner.single_layer_sim_object_list[0]
        m, k = layer.op_mat_obj.ifmap_addr_matrix.shape
        k2, n = layer.op_mat_obj.filter_addr_matrix.shape
        if k != k2:
            raise RuntimeError(f"{case['case']}: operand K mismatch {k} vs {k2}")

    return {"total": total, "stalls": stalls, "M": int(m), "N": int(n), "K": int(k)}


# ----------------------------------------------------------------------------
# Closed-form reference (the design-doc formulas) for the summary check
# ----------------------------------------------------------------------------

def formula_cycles(dataflow, rows, cols, m, n, k):
    if dataflow == "os":
        return math.ceil(m / rows) * math.ceil(n / cols) * (k + rows + cols - 2)
    if dataflow == "ws":
        return math.ceil(k / rows) * math.ceil(n / cols) * (m + 2 * rows + cols - 2)
    if dataflow == "is":
        return math.ceil(k / rows) * math.ceil(m / cols) * (n + 2 * rows + cols - 2)
    raise ValueError(dataflow)


def expected_conv_mnk(case):
    oh = math.ceil((case["ifmap_h"] - case["filter_h"] + case["stride"]) / case["stride"])
    ow = math.ceil((case["ifmap_w"] - case["filter_w"] + case["stride"]) / case["stride"])
    return oh * ow, case["num_filters"], case["filter_h"] * case["filter_w"] * case["channels"]


# ----------------------------------------------------------------------------

def _cost(task):
    case, _ = task
    if case["kind"] == "gemm":
        m, n, k = case["M"], case["N"], case["K"]
    else:
        m, n, k = expected_conv_mnk(case)
    return m * n * k + case["rows"] * case["cols"] * (m + n + k)


def build_rows(cases, results):
    out = []
    for case in cases:
        for df in DATAFLOWS:
            res = results[(case["case"], df)]
            row = {c: "" for c in COLUMNS}
            row.update(case=case["case"], kind=case["kind"], rows=case["rows"],
                       cols=case["cols"], dataflow=df, M=res["M"], N=res["N"], K=res["K"],
                       scalesim_total_cycles=res["total"], cycles=res["total"] + 1)
            if case["kind"] == "conv":
                for c in ("ifmap_h", "ifmap_w", "filter_h", "filter_w",
                          "channels", "num_filters", "stride"):
                    row[c] = case[c]
            out.append(row)
    return out


def write_csv(path, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def check_rows(label, cases, rows):
    by_name = {c["case"]: c for c in cases}
    bad = 0
    for r in rows:
        case = by_name[r["case"]]
        if case["kind"] == "gemm":
            exp_mnk = (case["M"], case["N"], case["K"])
        else:
            exp_mnk = expected_conv_mnk(case)
        if (r["M"], r["N"], r["K"]) != exp_mnk:
            bad += 1
            print(f"  [{label}] {r['case']} {r['dataflow']}: lowering M,N,K="
                  f"{(r['M'], r['N'], r['K'])} expected {exp_mnk}")
        f = formula_cycles(r["dataflow"], r["rows"], r["cols"], r["M"], r["N"], r["K"])
        if f != r["cycles"]:
            bad += 1
            print(f"  [{label}] {r['case']} {r['dataflow']}: scalesim cycles={r['cycles']} "
                  f"formula={f}")
    print(f"{label}: {len(rows)} rows, {len(rows) - bad} match the dense formulas")
    return bad


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--golden-out", default=DEFAULT_GOLDEN)
    ap.add_argument("--heldout-out", default=DEFAULT_HELDOUT)
    ap.add_argument("--no-heldout", action="store_true", help="skip the held-out file")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    args = ap.parse_args(argv)

    try:
        import scalesim  # noqa: F401
    except ImportError:
        sys.exit("scalesim is not importable: run this script with .venv-scalesim/bin/python "
                 "(see tools/scalesim_golden/README.md)")

    groups = [("golden", GOLDEN_CASES, args.golden_out)]
    if not args.no_heldout:
        groups.append(("heldout", HELDOUT_CASES, args.heldout_out))

    names = [c["case"] for _, cases, _ in groups for c in cases]
    if len(names) != len(set(names)):
        sys.exit("duplicate case names")

    tasks = [(c, df) for _, cases, _ in groups for c in cases for df in DATAFLOWS]
    tasks.sort(key=_cost, reverse=True)  # longest first for load balance

    t0 = time.time()
    results = {}
    # One fresh process per run: SCALE-Sim keeps state in module-level defaults.
    with ProcessPoolExecutor(max_workers=args.jobs, max_tasks_per_child=1) as ex:
        for task, res in zip(tasks, ex.map(run_one, tasks)):
            case, df = task
            if res["stalls"] != 0:
                sys.exit(f"{case['case']} {df}: unexpected stall cycles {res['stalls']}")
            results[(case["case"], df)] = res
    elapsed = time.time() - t0

    bad = 0
    for label, cases, path in groups:
        rows = build_rows(cases, results)
        write_csv(path, rows)
        print(f"wrote {os.path.relpath(path, REPO_ROOT)} ({len(rows)} rows)")
        bad += check_rows(label, cases, rows)
    print(f"{len(tasks)} SCALE-Sim runs in {elapsed:.1f} s with {args.jobs} worker(s)")
    if bad:
        print(f"NOTE: {bad} disagreement(s) with the closed-form formulas (see above); "
              "the CSVs hold SCALE-Sim's own numbers.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
