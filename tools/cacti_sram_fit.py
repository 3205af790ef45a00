"""Run CACTI 7 over a grid of scratchpad SRAMs and write the fit `energy.sram` reads.

Usage::

    python tools/cacti_sram_fit.py --cacti DIR [--out src/sparsesim/hardware/sram_fits/cacti7_45nm.yaml]
    python tools/cacti_sram_fit.py --plot docs/sram_fit.png [--out FIT.yaml]   # the file's points against its fit

``DIR`` is a built CACTI 7 checkout (github HewlettPackard/cacti; ``make`` in it builds the
``cacti`` binary in seconds). For every capacity (4 KiB to 16 MiB), word width (4 to 64 B) and
bank count (1 to 64) of the grid, the tool takes CACTI's own ``cache.cfg``, makes it a
direct-mapped scratch RAM ("ram": no tag array) of that size, word (block size and bus width)
and UCA bank count at 45 nm, without ECC, and keeps every other setting of that file
(ITRS high-performance cells and periphery, 360 K, ED^2 organisation search). It reads the
dynamic read and write energy per access and the height x width of each run; a geometry
CACTI cannot organise (too small a bank for the word) gives no output and no point.

It then fits ``log(value) = const + a log(size_bytes) + b log(word_bytes) + c log(banks)`` by
least squares to the read energy, the write energy and the area, and writes points, fit and
the fit's rms error in log space to the YAML file. Only the word and bank exponents are used
by the simulator (:mod:`sparsesim.hardware.sram_fit`); the capacity exponent is kept to hold
against the energy table's own capacity curve.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

from sparsesim.core.errors import InputError
from sparsesim.core.outputs import check_output_path

SIZES = (4096, 16384, 65536, 262144, 1048576, 4194304, 16777216)
WORDS = (4, 8, 16, 32, 64)
BANKS = (1, 4, 16, 64)
TECH_UM = 0.045
SETTINGS = {
    "size (bytes)": None, "block size (bytes)": None, "associativity": "1", "UCA bank count": None,
    "technology (u)": str(TECH_UM), "output/input bus width": None, "cache type": '"ram"',
    "Add ECC": '- "false"', "Print level (DETAILED, CONCISE)": '- "CONCISE"', "Print input parameters": '- "false"',
}


def config(template: str, size: int, word: int, banks: int) -> str:
    values = {**SETTINGS, "size (bytes)": str(size), "block size (bytes)": str(word), "UCA bank count": str(banks),
              "output/input bus width": str(8 * word)}
    lines = []
    for line in template.splitlines():
        for key, value in values.items():
            if line.startswith(f"-{key} "):
                line = f"-{key} {value}"
                break
        lines.append(line)
    return "\n".join(lines) + "\n"


def number(pattern: str, text: str) -> float | None:
    m = re.search(pattern, text)
    return float(m.group(1)) if m else None


def run(cacti: Path) -> list[list[float]]:
    template = (cacti / "cache.cfg").read_text()
    points = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in SIZES:
            for word in WORDS:
                for banks in BANKS:
                    cfg = Path(tmp) / "sram.cfg"
                    cfg.write_text(config(template, size, word, banks))
                    out = subprocess.run([str(cacti / "cacti"), "-infile", str(cfg)], capture_output=True, text=True,
                                         cwd=cacti, timeout=600).stdout
                    read = number(r"Total dynamic read energy per access \(nJ\): ([0-9.eE+-]+)", out)
                    write = number(r"Total dynamic write energy per access \(nJ\): ([0-9.eE+-]+)", out)
                    m = re.search(r"Cache height x width \(mm\): ([0-9.eE+-]+) x ([0-9.eE+-]+)", out)
                    if read is None or write is None or m is None:
                        print(f"no organisation: {size} B, {word} B words, {banks} banks", file=sys.stderr)
                        continue
                    area_um2 = float(m.group(1)) * float(m.group(2)) * 1e6
                    points.append([size, word, banks, round(read * 1e3, 5), round(write * 1e3, 5), round(area_um2, 1)])
    return points


def fit(points: np.ndarray, column: int) -> dict:
    x = np.column_stack([np.ones(len(points)), np.log(points[:, 0]), np.log(points[:, 1]), np.log(points[:, 2])])
    y = np.log(points[:, column])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    rms = float(np.sqrt(np.mean((y - x @ coef) ** 2)))
    return {"const": round(float(coef[0]), 5), "size_bytes": round(float(coef[1]), 5),
            "word_bytes": round(float(coef[2]), 5), "banks": round(float(coef[3]), 5), "rms_log": round(rms, 4)}


def plot(doc: dict, out: Path) -> None:
    """Read energy per byte against word width (one bank) and against banks (8-byte words), each
    capacity a colour: CACTI's points as markers, the fit as lines."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = np.array(doc["points"], dtype=float)
    f = doc["fit"]["read_pj"]

    def model(size, word, banks):
        return np.exp(f["const"] + f["size_bytes"] * np.log(size) + f["word_bytes"] * np.log(word)
                      + f["banks"] * np.log(banks)) / word

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4), sharey=True)
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(SIZES)))
    for size, colour in zip(SIZES, colours):
        label = f"{size // 1024} KiB" if size < 2**20 else f"{size // 2**20} MiB"
        for ax, (x_col, fixed_col, fixed, xs) in zip(axes, ((1, 2, 1, WORDS), (2, 1, 8, BANKS))):
            sel = pts[(pts[:, 0] == size) & (pts[:, fixed_col] == fixed)]
            ax.plot(sel[:, x_col], sel[:, 3] / sel[:, 1], "o", color=colour, label=label)
            grid = np.array(xs, dtype=float)
            line = model(size, grid, 1) if x_col == 1 else model(size, 8, grid)
            ax.plot(grid, line, "-", color=colour, alpha=0.7)
    for ax, xlabel in zip(axes, ("word width (bytes), one bank", "banks, 8-byte words")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("read energy per byte (pJ), 45 nm")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, title="capacity", fontsize=8, loc="center right")
    fig.suptitle(f"CACTI 7 scratch RAM (markers) and the fit (lines): per access "
                 f"size^{f['size_bytes']:.2f} word^{f['word_bytes']:.2f} banks^{f['banks']:.3f}, "
                 f"rms {100 * (np.exp(f['rms_log']) - 1):.0f}% in log")
    fig.tight_layout(rect=(0, 0, 0.9, 1))
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cacti", type=Path, help="a built CACTI 7 checkout (cacti binary, cache.cfg)")
    ap.add_argument("--out", type=Path, default=Path("src/sparsesim/hardware/sram_fits/cacti7_45nm.yaml"))
    ap.add_argument("--plot", type=Path, help="draw the fit file's points against its fit into this PNG, and stop")
    args = ap.parse_args(argv)
    try:  # an unwritable output or a missing fit file: one line, before any work
        for flag, path in (("--plot", args.plot), ("--out", None if args.plot else args.out)):
            if path is not None:
                check_output_path(path, field=flag, kind="file")
        if args.plot and not args.out.exists():
            raise InputError(f"--out: no such fit file {str(args.out)!r} to plot")
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.plot:
        plot(yaml.safe_load(args.out.read_text()), args.plot)
        print(f"wrote {args.plot}")
        return 0
    if args.cacti is None:
        ap.error("--cacti DIR or --plot PNG is required")
    if not (args.cacti / "cacti").exists() or not (args.cacti / "cache.cfg").exists():
        print(f"error: --cacti: {args.cacti} has no built cacti binary and cache.cfg", file=sys.stderr)
        return 2
    points = run(args.cacti)
    arr = np.array(points, dtype=float)
    doc = {
        "name": args.out.stem,
        "source": ("CACTI 7.0 (HP Labs, github HewlettPackard/cacti at 1ffd8df), scratch RAM (no tags), one read/write "
                   "port, no ECC, ITRS high-performance cells and periphery, 360 K, ED^2 organisation; "
                   "written by tools/cacti_sram_fit.py"),
        "technology_nm": int(round(TECH_UM * 1000)),
        "fit": {"read_pj": fit(arr, 3), "write_pj": fit(arr, 4), "area_um2": fit(arr, 5)},
        "points": points,
    }
    header = ("# SRAM energy and area against capacity, word width and bank count, from CACTI 7 runs\n"
              "# (tools/cacti_sram_fit.py). points: [size_bytes, word_bytes, banks, read_pj per access,\n"
              "# write_pj per access, area_um2]; fit: log(value) = const + a log(size) + b log(word) + c log(banks)\n"
              "# by least squares, rms_log its rms error in log space. `energy.sram: cacti7_45nm` scales the\n"
              "# energy table's SRAM (a 64-bit access, one bank) by (word/8)^b banks^c (docs/energy.md).\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=120))
    print(f"{len(points)} points -> {args.out}")
    for key, f in doc["fit"].items():
        print(f"  {key}: size^{f['size_bytes']} word^{f['word_bytes']} banks^{f['banks']}, rms log {f['rms_log']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
