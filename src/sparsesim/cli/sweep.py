"""The ``sweep`` and ``report`` subcommands (docs/design.md section 3.1), added to the ``sparsesim`` parser.

``sparsesim sweep SPEC.yaml --out DIR`` validates the whole spec, then computes the points
missing from ``DIR`` on a Dask cluster (resuming by default); ``sparsesim report DIR --out
DIR`` turns a sweep directory into a self-contained Markdown/HTML report with PNG figures.
Bad input raises :class:`~sparsesim.core.errors.InputError` (exit 2); points that failed leave the
sweep incomplete and make the command exit 1 after everything else finished.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sparsesim.core.errors import InputError
from sparsesim.api import run_sweep_spec


def cmd_sweep(args) -> int:
    """Run (or resume) a sweep through :func:`sparsesim.api.run_sweep_spec`; exit 1 if any point failed."""
    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers: must be a positive integer, got {args.workers}")
    out = Path(args.out)
    plan, summary = run_sweep_spec(args.spec, out, args.scheduler, workers=args.workers,
                                   force_new_spec=args.force_new_spec, progress=not args.quiet, out_field="--out")
    done = summary.already_done + summary.computed
    print(f"# {done}/{summary.total} points done ({summary.computed} computed now, {summary.already_done} "
          f"reused), {len(summary.failed)} failed, {summary.elapsed_s:.1f} s; wrote {summary.results_path}")
    if summary.failed:
        print(f"error: {len(summary.failed)} points failed (see {out / 'failed'}); run the same command again "
              "to retry them", file=sys.stderr)
        return 1
    return 0


def cmd_report(args) -> int:
    """Write the report of a sweep directory."""
    from sparsesim.report import write_report  # pandas and the sweep package: only for `report`

    path = write_report(Path(args.dir), Path(args.out), overwrite=args.overwrite)
    print(f"# wrote {path}")
    return 0


def add_sweep_commands(subparsers) -> None:
    """Add ``sweep`` and ``report`` to the ``sparsesim`` subcommand parsers."""
    sw = subparsers.add_parser("sweep", help="run a design-space sweep on a Dask cluster (resumable)",
                               description="Expand SPEC.yaml into design points and compute those missing "
                                           "from --out; rerunning the same command resumes.")
    sw.add_argument("spec", metavar="SPEC.yaml", help="sweep spec (see configs/sweeps/)")
    sw.add_argument("--out", required=True, metavar="DIR", help="sweep directory (created, or resumed)")
    sw.add_argument("--scheduler", metavar="ADDRESS",
                    help="use an existing Dask scheduler (tcp://host:port or a scheduler file) instead of "
                         "an embedded local cluster")
    sw.add_argument("--workers", type=int, metavar="N",
                    help="worker processes of the embedded cluster (default: one per core)")
    sw.add_argument("--force-new-spec", action="store_true",
                    help="accept a spec that differs from the one DIR was started with (points with "
                         "identical config, workload and dataflow are reused)")
    sw.add_argument("--quiet", action="store_true", help="no progress bar")
    sw.set_defaults(func=cmd_sweep)

    rp = subparsers.add_parser("report", help="write a Markdown/HTML report with figures for a sweep",
                               description="Plots and tables of a sweep directory: speedup, energy "
                                           "breakdown, utilization, Pareto front, roofline.")
    rp.add_argument("dir", metavar="DIR", help="sweep directory (the --out of `sparsesim sweep`)")
    rp.add_argument("--out", required=True, metavar="DIR", help="report directory to create")
    rp.add_argument("--overwrite", action="store_true",
                    help="replace an existing report directory (one holding nothing but a report)")
    rp.set_defaults(func=cmd_report)
