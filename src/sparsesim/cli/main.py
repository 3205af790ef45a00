"""The ``sparsesim`` command line (docs/design.md section 3.1).

Exit codes: 0 ok; 2 bad input, with one ``error: ...`` line on stderr and no traceback;
1 internal error. Bare ``sparsesim`` prints the help and exits 0. Progress of long commands
goes to stderr (:mod:`sparsesim.progress`). Outputs are written only after the whole simulation succeeded.

The case studies and the demo (pandas, matplotlib, and torch when they capture) are imported
by their own commands only; what the other commands need is imported here (the parser needs
the simulation's dataflow names anyway, so Numba and SimPy load for every command).
"""

from __future__ import annotations

import argparse
import re
import sys
import traceback
from pathlib import Path

from sparsesim import __version__
from sparsesim.api import simulate
from sparsesim.cli.codesign import add_codesign_command
from sparsesim.cli.sweep import add_sweep_commands
from sparsesim.cli.trace import add_trace_commands
from sparsesim.cli.validate import add_validate_commands
from sparsesim.core.errors import InputError
from sparsesim.core.outputs import check_output_path
from sparsesim.dataflows import ARRAY_KINDS, DATAFLOWS
from sparsesim.hardware.config import parse_override
from sparsesim.hardware.energy import energy_table, energy_table_name, energy_table_names
from sparsesim.hardware.sram_fit import sram_fit, sram_fit_names
from sparsesim.hardware.memory import MEMORY_MODELS
from sparsesim.hardware.memory.banked import standard_names, standard_summary
from sparsesim.hardware.presets import load_accel, preset_names
from sparsesim.progress import show_progress
from sparsesim.simulation.engine import dataflow_choices
from sparsesim.simulation.results import check_writable, write_table
from sparsesim.sparsity import FEATURES
from sparsesim.workload_args import spec_from_args
from sparsesim.workloads.capture import MODELS
from sparsesim.workloads.capture.zoo_stats import zoo_stats
from sparsesim.workloads.llm_networks import DECODERS, SHAPE_ONLY
from sparsesim.workloads.networks import NETWORKS


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one ``error:`` line and exit code 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise InputError(f"{self.prog}: {message}")


def _ratio(value: float) -> str:
    """``1.23x``; ``inf`` for a ratio over nothing (``work_ratio`` when no MAC is effectual)."""
    return "inf" if value == float("inf") else f"{value:.2f}x"


def _fmt_table(rows: list[dict], total: dict) -> str:
    head = ("name", "phase", "M", "N", "K", "dataflow", "cycles", "stall", "util", "speedup", "bound", "work",
            "DRAM_KiB", "energy_uJ")
    lines = [head]
    for r in rows + [total]:
        lines.append((str(r["name"]), str(r["phase"]), str(r["M"] or ""), str(r["N"] or ""), str(r["K"] or ""),
                      r["dataflow"], f"{r['cycles']:,}", f"{r['stall_cycles']:,}", f"{r['utilization']:.1%}",
                      _ratio(r["speedup"]), _ratio(r["bound_speedup"]), _ratio(r["work_ratio"]),
                      f"{r['dram_bytes'] / 1024:,.0f}", f"{r['energy_pj'] / 1e6:,.2f}"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = []
    for i, line in enumerate(lines):
        if i == len(lines) - 1:
            out.append("-" * (sum(widths) + 2 * len(widths)))
        out.append("  ".join(c.ljust(w) if j < 2 or j == 5 else c.rjust(w) for j, (c, w) in enumerate(zip(line, widths))))
    return "\n".join(out)


def cmd_run(args) -> int:
    """``sparsesim run``: a thin layer over :func:`sparsesim.api.simulate`."""
    out = Path(args.out) if args.out else None
    if out:
        check_writable(out, args.overwrite, inputs=[("--topology", args.topology), ("--trace", args.trace),
                                                    ("--accel", args.accel)])
    workload = spec_from_args(args)
    sets: dict = {}
    for text in args.set or []:
        key, value = parse_override(text)
        if key in sets:  # the last would win silently, the first one lost
            raise InputError(f"--set: {key} given twice ({key}={sets[key]!r} and {text!r}); give it once")
        sets[key] = value
    if args.sparsity and "sparsity" in sets:  # which one would win is not for the header to hide
        raise InputError(f"--sparsity: conflicts with --set sparsity={sets['sparsity']!r}; give the features "
                         "one way (repeated --sparsity, or one --set sparsity=[...])")
    res = simulate(workload, accel=args.accel, dataflow=args.dataflow, sparsity=args.sparsity, sets=sets,
                   scheduler=args.scheduler, workers=args.workers)
    rows, cfg = list(res.rows), res.config
    if out:
        write_table(res.to_pandas(), out)
    if args.json:
        print(res.to_json())
    else:
        accel = rows[0]["accel"] if rows else cfg.name
        print(f"# {res.workload} on {accel} ({cfg.array.rows}x{cfg.array.cols} {cfg.array.precision}), "
              f"dataflow {args.dataflow}, sparsity {rows[0]['sparsity'] if rows else '-'}, "
              f"energy table {energy_table_name(cfg)}")
        print(_fmt_table(rows, res.total))
        system = res.total.get("system")
        if system:  # the table sums the rows; a system's latency is its critical path
            rates = ", ".join(f"{label} {system[k]:,.1f} {unit}/s" for k, label, unit in
                              (("prefill_tokens_per_s", "prefill", "tokens"), ("decode_tokens_per_s", "decode", "tokens"),
                               ("samples_per_s", "training", "samples")) if k in system)
            print(f"# {system['chips']} chips: latency {system['latency_s']:.6g} s (critical path), "
                  f"{system['collective_share']:.1%} of the rows' time in collectives"
                  + (f"; {rates}" if rates else ""))
        if out:
            print(f"# wrote {out}")
    return 0


def cmd_list(args) -> int:
    print("presets:")
    for name in preset_names():
        cfg = load_accel(name)
        print(f"  {name:12s} {cfg.description}")
    print("array kinds (array.kind):")
    for name in ARRAY_KINDS.names():
        print(f"  {name:12s} {ARRAY_KINDS.get(name).summary}")
    print("dataflows (--dataflow; each runs on one array kind):")
    for name in DATAFLOWS.names():
        doc = (sys.modules[type(DATAFLOWS.get(name)).__module__].__doc__ or "").strip().splitlines()[0]
        print(f"  {name:12s} [{DATAFLOWS.get(name).array_kind}] {doc}")
    print(f"  {'best':12s} per op and phase, the dataflow of the array's kind with the fewest cycles")
    print("memory models (dram.model):")
    for name in MEMORY_MODELS.names():
        doc = (sys.modules[MEMORY_MODELS.get(name).__module__].__doc__ or "").strip().splitlines()[0]
        print(f"  {name:12s} {doc}")
    print("DRAM standards (dram.standard, read by dram.model=banked; docs/memory.md):")
    for name in standard_names():
        print(f"  {name:12s} {standard_summary(name)}")
    print("sparsity features (--sparsity):")
    for name in FEATURES.names():
        doc = (sys.modules[FEATURES.get(name).__module__].__doc__ or "").strip().splitlines()[0]
        print(f"  {name:12s} {doc}")
    print("energy tables:")
    for name in sorted(energy_table_names(), key=lambda n: -energy_table(n).technology_nm):  # 45 nm first
        print(f"  {name:14s} {energy_table(name).source}")
    print("SRAM fits (--set energy.sram=NAME: energy and area against each buffer's word width and banks):")
    for name in sram_fit_names():
        print(f"  {name:14s} {sram_fit(name).source}")
    print("networks (layer lists, --network):")
    for name in NETWORKS.names():
        print(f"  {name:12s} {(NETWORKS.get(name).__doc__ or '').strip()}")
    print("LLM networks (--network NAME --prompt-len P --gen-len G: prefill and decode rows; any decoder below):")
    for name in SHAPE_ONLY:
        shape = DECODERS.get(name)
        print(f"  {name:12s} {shape.summary}; {shape.params / 1e9:.2f}B params, "
              f"{shape.macs_per_token(0) / 1e9:.2f} GMACs per token plus attention")
    # the figures are the torch models', stored so that listing them imports no torch
    print("zoo models (trace capture --model; parameters and dense forward MACs of the torch model):")
    for name in MODELS.names():
        entry = MODELS.get(name)
        print(f"  {name:12s} {entry.summary}; input {entry.input}")
        for size in [None] + ([224] if "image_size" in entry.options else []):
            st = zoo_stats(entry, size)
            at = f" at --image-size {size}" if size else ""
            print(f"  {'':12s}   " + (f"{st.params:,} params, {st.macs:,} MACs per {st.per}{at}" if st else
                                      f"parameters and MACs{at} not yet stored (tools/zoo_stats.py)"))
    from sparsesim.studies import STUDIES  # pandas: the studies load only here

    print("case studies (study NAME --out reports/NAME):")
    for name in STUDIES.names():
        print(f"  {name:12s} {STUDIES.get(name).summary}")
    return 0


def cmd_demo(args) -> int:
    from sparsesim.demo import run_demo  # pandas and the studies: only for this command

    if args.out:
        check_output_path(args.out, field="--out", kind="dir")
    print(run_demo(Path(args.out) if args.out else None))
    return 0


def cmd_study(args) -> int:
    from sparsesim.studies import STUDIES  # pandas: only for this command
    from sparsesim.studies.common import prepare_out

    study = STUDIES.get(args.name, "study")
    options = {k: getattr(args, k) for k in ("steps", "seed") if getattr(args, k) is not None}
    for key in options:
        if key not in study.options:
            raise InputError(f"--{key}: study {args.name} does not take it (only: "
                             f"{', '.join('--' + o for o in study.options) or 'no options'})")
    out = Path(args.out)
    check_output_path(args.traces, field="--traces", kind="dir")  # captures are written there
    prepare_out(out, args.overwrite)
    report = study.run(out, Path(args.traces), args.quick, **options)
    print(f"wrote {report}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="sparsesim", description="Cycle-level simulator of sparse DNN accelerators.",
                epilog="`sparsesim COMMAND --help` describes a command. Without a command, prints this help.")
    p.add_argument("--version", action="version", version=f"sparsesim {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="simulate a workload on an accelerator")
    src = run.add_mutually_exclusive_group(required=True)
    src.add_argument("--trace", metavar="DIR", help="trace directory (see `sparsesim trace`)")
    src.add_argument("--gemm", metavar="M,N,K", action="append", help="a GEMM Out[MxN]=A[MxK].B[KxN]; repeatable")
    src.add_argument("--topology", metavar="FILE.csv", help="SCALE-Sim topology CSV (conv or GEMM rows)")
    src.add_argument("--network", metavar="NAME", help="built-in layer list (see `sparsesim list`)")
    run.add_argument("--batch", type=int, help="batch size for --network (default 1); refused with the other "
                                               "workloads, which fix their own")
    run.add_argument("--prompt-len", type=int, metavar="P",
                     help="LLM networks: prompt tokens per sequence, the prefill rows (default 128)")
    run.add_argument("--gen-len", type=int, metavar="G", help="LLM networks: generated tokens, the decode steps (default 32)")
    run.add_argument("--act-sparsity", type=float, metavar="S",
                     help="LLM networks: fraction of zero input activations in the synthetic operands of a sparse run")
    run.add_argument("--accel", required=True, metavar="PRESET|FILE.yaml|FILE.cfg",
                     help="accelerator preset (see `sparsesim list`), a YAML/TOML config file or a "
                          "SCALE-Sim v3 .cfg file")
    run.add_argument("--dataflow", default="best", choices=dataflow_choices(),
                     help="default: best, which picks per op and phase the dataflow with the fewest cycles "
                          "(it may cost more energy than another)")
    run.add_argument("--set", action="append", metavar="dotted.key=value", help="override a config field; repeatable")
    run.add_argument("--sparsity", action="append", metavar="FEATURE",
                     help="switch on a sparsity feature: nm:N:M, zero_skip:TARGET:ACTION, delta:THETA, "
                          "act_policy:METHOD[:VALUE]; repeatable; not with --set sparsity=[...]")
    run.add_argument("--phases", metavar="fwd,bwd_data,bwd_weight",
                     help="phases to simulate (default: fwd for --gemm, --network and --topology; "
                          "prefill,decode for the LLM networks; a --trace replays every phase it recorded); "
                          "a phase the workload does not have is refused, one listed twice runs once")
    run.add_argument("--training", action="store_true",
                     help="simulate all three training phases (not with --phases, nor with an LLM network)")
    run.add_argument("--no-verify", action="store_true",
                     help="--trace: skip checking each tensor file's SHA-256 against the manifest (checked by "
                          "default, once per file as the replay first reads it)")
    run.add_argument("--scheduler", metavar="ADDRESS",
                     help="split a run's ops over the Dask cluster at ADDRESS (or scheduler file), "
                          "the one `sweep` uses; same rows as in one process (dense runs, and replays split "
                          "by op or by layer; a replay with nm runs in one process)")
    run.add_argument("--workers", type=int, metavar="N",
                     help="split a run's ops over an embedded Dask cluster of N processes (as --scheduler)")
    run.add_argument("--out", metavar="FILE.parquet|.csv", help="write the result table")
    run.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    run.add_argument("--json", action="store_true",
                     help='print {"layers": [...], "total": {...}} (a ratio over nothing, work_ratio with no '
                          'effectual MAC, is null there and inf in the table)')
    run.set_defaults(func=cmd_run)

    lst = sub.add_parser("list", help="print every registry: presets, dataflows, energy tables, models")
    lst.set_defaults(func=cmd_list)

    demo = sub.add_parser("demo", help="run the built-in demonstration")
    demo.add_argument("--out", metavar="DIR", help="run directory (default runs/demo-<time>)")
    demo.set_defaults(func=cmd_demo)

    add_trace_commands(sub)
    add_sweep_commands(sub)
    add_validate_commands(sub)
    add_codesign_command(sub)

    study = sub.add_parser("study", help="regenerate a curated case-study report (reports/NAME)")
    study.add_argument("name", help="sat, zero-skip, delta, llm-decode, architectures, codesign or "
                                    "training-dynamics")
    study.add_argument("--out", required=True, metavar="DIR", help="report directory, e.g. reports/sat")
    study.add_argument("--traces", default="runs/traces", metavar="DIR",
                       help="where traces are captured and reused (default runs/traces; `study sat` "
                            "leaves about 8 GB there)")
    study.add_argument("--quick", action="store_true", help="smaller batches (for tests)")
    study.add_argument("--overwrite", action="store_true", help="regenerate into a non-empty directory")
    study.add_argument("--steps", type=int, metavar="N", help="training steps (training-dynamics only)")
    study.add_argument("--seed", type=int, metavar="S", help="random seed (training-dynamics only)")
    study.set_defaults(func=cmd_study)
    return p


FLAG_DESTS = {"sets": "set", "hf_dir": "hf"}
"""API argument names whose command-line flag is spelt otherwise (``sets`` is ``--set``)."""


def cli_message(exc: InputError, args) -> str:
    """The ``error:`` text of ``exc`` as the command line says it: a message that starts with a
    library argument (:func:`~sparsesim.core.errors.arg_error`, e.g. ``network.batch``)
    names the flag of this command instead (``--batch``); one the command has no flag for
    (a sweep spec's ``prompt_len``) keeps the library's name."""
    arg = getattr(exc, "arg", None)
    text = str(exc)
    if arg is None or args is None or not text.startswith(arg):
        return text
    dest = FLAG_DESTS.get(arg, arg.rsplit(".", 1)[-1])
    if not hasattr(args, dest):
        return text
    return "--" + dest.replace("_", "-") + text[len(arg):]


def negative_values(argv: list[str]) -> list[str]:
    """``--gemm -8,8,8`` as ``--gemm=-8,8,8``: argparse takes a value that starts with ``-`` for
    a flag unless it is a plain negative number, and says "expected one argument". No flag of
    ours starts with a digit, so such a value is the value of the flag before it, and the check
    of that flag says what is wrong with it (``--gemm[0].M: must be a positive integer``)."""
    out: list[str] = []
    for text in argv:
        if out and re.match(r"-\.?\d", text) and out[-1].startswith("--") and "=" not in out[-1]:
            out[-1] = f"{out[-1]}={text}"
        else:
            out.append(text)
    return out


def main(argv: list[str] | None = None) -> int:
    args = None
    try:
        parser = build_parser()
        args = parser.parse_args(negative_values(sys.argv[1:] if argv is None else list(argv)))
        if args.command is None:  # bare `sparsesim`: the help, on stdout, exit 0
            parser.print_help()
            return 0
        show_progress()
        return args.func(args)
    except InputError as exc:
        print(f"error: {cli_message(exc, args)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception:  # an internal bug: show everything, exit 1
        traceback.print_exc()
        print("internal error: please report this with the command line above", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
