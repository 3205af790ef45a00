"""The ``validate reference`` subcommand, added to the ``sparsesim`` parser.

``sparsesim validate reference --cases N --seed S [--json]`` runs the fast model and the
cycle-by-cycle reference on ``N`` drawn cases (:mod:`sparsesim.validate`), prints how many agree
(or, with ``--json``, ``{"cases": [...]}``) and exits 1 if any case disagrees.

``sparsesim validate architectures [--only NAME] [--json]`` runs the published references the
non-systolic array kinds are held against (:mod:`sparsesim.references`), prints each one's
agreement and exits 1 if any case is outside its tolerance.

``sparsesim validate silicon [--group G] [--json] [--plot FILE]`` runs the GPU-class preset on the
published A100 measurements (:mod:`sparsesim.references.silicon`) and prints each case's
measured and modelled latency and error, and each group's mean; it is a report (exit 0), the
tolerance marks the cases within it.
"""

from __future__ import annotations

import json
import sys
import time

from sparsesim.core.errors import InputError
from sparsesim.core.outputs import check_output_path
from sparsesim.references import REFERENCES
from sparsesim.validate import validate_reference


def cmd_validate_reference(args) -> int:
    if args.cases < 1:
        raise InputError(f"--cases: must be a positive integer, got {args.cases}")
    if args.seed < 0:
        raise InputError(f"--seed: must be a non-negative integer, got {args.seed}")
    start = time.perf_counter()
    outcomes = validate_reference(args.cases, args.seed)
    elapsed = time.perf_counter() - start
    failed = [o for o in outcomes if not o.agree]
    if args.json:
        print(json.dumps({"cases": [o.as_dict() for o in outcomes]}))
    else:
        for o in failed:
            d = o.as_dict()
            print(f"case {d['case']}: {d['dataflow']} {d['M']}x{d['N']}x{d['K']} on {d['rows']}x{d['cols']} "
                  f"overlap={d['fold_overlap']} lanes={d['lanes']}/{d['sync_window_steps']} {d['phase']} "
                  f"{' '.join(d['features']) or 'dense'}: {'; '.join(d['problems'])}")
        closed = [o for o in outcomes if o.closed_form_ok is not None]
        print(f"{len(outcomes) - len(failed)}/{len(outcomes)} cases agree (seed {args.seed}); "
              f"{sum(o.closed_form_ok for o in closed)}/{len(closed)} dense non-overlapped cases equal "
              f"SCALE-Sim's closed form; {elapsed:.1f} s")
    if failed:
        print(f"error: {len(failed)} of {len(outcomes)} cases disagree", file=sys.stderr)
        return 1
    return 0


def cmd_validate_architectures(args) -> int:
    names = REFERENCES.names() if not args.only else [REFERENCES.get(n, "--only").name for n in args.only]
    start = time.perf_counter()
    report, bad = [], 0
    for name in names:
        check = REFERENCES.get(name)
        cases = check.run()
        bad += sum(not c.agrees for c in cases)
        report.append({"reference": name, "array_kind": check.array_kind, "source": check.source,
                       "cases": [c.as_dict() for c in cases]})
        if not args.json:
            errors = [abs(c.error) for c in cases]
            print(f"{name} [{check.array_kind}]: {sum(c.agrees for c in cases)}/{len(cases)} cases agree; "
                  f"error mean {100 * sum(errors) / max(len(errors), 1):.2f}%, max {100 * max(errors, default=0):.2f}%"
                  f" ({check.source})")
            for c in cases:
                if not c.agrees:
                    print(f"  {c.case}: reference {c.reference:g} {c.unit}, model {c.model:g} "
                          f"({100 * c.error:+.2f}%, tolerance {100 * c.tolerance:g}%)")
    if args.json:
        print(json.dumps({"references": report}))
    else:
        print(f"{len(names)} references; {time.perf_counter() - start:.1f} s")
    if bad:
        print(f"error: {bad} cases disagree with their reference", file=sys.stderr)
        return 1
    return 0


def cmd_validate_silicon(args) -> int:
    from sparsesim.references import silicon

    if args.plot:
        check_output_path(args.plot, field="--plot", kind="file")
    start = time.perf_counter()
    data = silicon.load_data()
    cases = silicon.run(args.group or silicon.GROUPS)
    groups = silicon.summary(cases)
    if args.json:
        print(json.dumps({"source": data["source"], "preset": data["preset"], "harness_s": data["harness_s"],
                          "tolerance": data["tolerance"], "groups": groups, "cases": [c.as_dict() for c in cases]}))
    else:
        print(f"{data['preset']} against {data['source']}; harness {1e6 * data['harness_s']:g} us per kernel call, "
              f"within: |error| <= {100 * data['tolerance']:g}%")
        print(f"{'group':<13} {'case':<20} {'measured_us':>12} {'kernel_us':>11} {'model_us':>11} "
              f"{'kernel_err':>10} {'error':>8}")
        for c in cases:
            print(f"{c.group:<13} {c.case:<20} {1e6 * c.measured_s:>12.1f} {1e6 * c.kernel_s:>11.1f} "
                  f"{1e6 * c.model_s:>11.1f} {100 * c.kernel_error:>+9.1f}% {100 * c.error:>+7.1f}%"
                  f"{'' if c.within else '  outside'}")
        for g in groups:
            print(f"{g['group']}: {g['within']}/{g['cases']} within; mean |error| {100 * g['mean_abs_error']:.1f}% "
                  f"(kernel alone {100 * g['mean_abs_kernel_error']:.1f}%); summed latency "
                  f"{100 * (g['model_s'] / g['measured_s'] - 1):+.1f}%")
        print(f"{len(cases)} cases; {time.perf_counter() - start:.1f} s")
    if args.plot:
        from sparsesim.plots import plot_silicon

        plot_silicon(cases, args.plot, title=f"{data['preset']} against measured A100 (LLMCompass)",
                     tolerance=data["tolerance"])
    return 0


def add_validate_commands(sub) -> None:
    """Register ``validate reference`` on the top-level subparsers ``sub``."""
    validate = sub.add_parser("validate", help="check the fast model against the cycle-by-cycle reference")
    which = validate.add_subparsers(dest="validate_command", required=True, parser_class=type(validate))
    ref = which.add_parser("reference", help="random small cases through both array models")
    ref.add_argument("--cases", type=int, default=200, help="cases to draw (default 200)")
    ref.add_argument("--seed", type=int, default=0, help="seed of the draw (default 0)")
    ref.add_argument("--json", action="store_true", help='print {"cases": [...]}')
    ref.set_defaults(func=cmd_validate_reference)
    arch = which.add_parser("architectures", help="the array kinds against their published references")
    arch.add_argument("--only", action="append", metavar="NAME", help="run only this reference (repeatable)")
    arch.add_argument("--json", action="store_true", help='print {"references": [...]}')
    arch.set_defaults(func=cmd_validate_architectures)
    sil = which.add_parser("silicon", help="the GPU-class presets against published measurements of real chips")
    sil.add_argument("--group", action="append", metavar="G",
                     help="run only this group: matmul, gpt3_prefill, gpt3_decode, all_reduce (repeatable)")
    sil.add_argument("--json", action="store_true", help='print {"groups": [...], "cases": [...]}')
    sil.add_argument("--plot", metavar="FILE", help="also draw measured against modelled latency (PNG)")
    sil.set_defaults(func=cmd_validate_silicon)
