"""The public Python API: the command line's operations as functions (docs/design.md, "Python API").

Everything here is re-exported from the top-level package, so a script or notebook needs one
import::

    import sparsesim
    res = sparsesim.simulate(sparsesim.gemm(256, 128, 64), accel="edge32", dataflow="ws",
                             sparsity=["nm:2:4"], sets={"array.rows": 16})
    res.total["cycles"]; df = res.to_pandas()

The ``run`` and ``sweep`` commands are thin layers over :func:`simulate` and
:func:`run_sweep_spec` (what :func:`sweep` runs), so both give the same numbers. Bad input raises :class:`~sparsesim.core.errors.InputError`
(also ``sparsesim.InputError``) whose message is the command line's ``error:`` line, except that
it names this module's arguments (``prompt_len``, ``sets``) where the command line names its
flags (``--prompt-len``, ``--set``).

Workload constructors (:func:`gemm`, :func:`network`, :func:`topology`, :func:`trace`) return a
:class:`~sparsesim.workload_args.WorkloadSpec`: it names the workload and is built when it is
simulated, so a spec is cheap, picklable and reusable. :func:`simulate` also accepts a built
:class:`~sparsesim.workloads.ops.Workload` (e.g. ``load_trace(dir).workload(steps=(0,))``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparsesim.core.errors import arg_error, field_error
from sparsesim.core.outputs import check_output_path
from sparsesim.hardware.config import AccelConfig, to_dict
from sparsesim.hardware.presets import FILE_SUFFIXES, preset_mapping, preset_names
from sparsesim.simulation.results import to_frame, to_json
from sparsesim.workload_args import WorkloadSpec, build_workload, check_dims, phase_names
from sparsesim.workloads import capture as capture_package
from sparsesim.workloads.gemm import PHASES
from sparsesim.workloads.llm_networks import DECODERS
from sparsesim.workloads.networks import NETWORKS
from sparsesim.workloads.ops import Workload
from sparsesim.workloads.trace import load_trace as _load_trace

# The features, the simulation and the sweeps (which load Numba and SimPy) and pandas are
# imported by the functions that need them, so the workload constructors (sparsesim.gemm(...))
# stay cheap: a notebook or a script that only builds specs pays no JIT compiler.

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# workloads


def _phases(training: bool, phases, field: str) -> tuple[str, ...] | None:
    if training and phases is not None:
        raise field_error(field, "give training=True or phases, not both")
    if training:
        return tuple(str(p) for p in PHASES)
    return phase_names(phases, field)


def gemm(M: int, N: int, K: int, *, training: bool = False, phases: Iterable[str] | None = None) -> WorkloadSpec:
    """One GEMM ``Out[M x N] = A[M x K] . B[K x N]`` (``run --gemm M,N,K``).

    Like ``--gemm``, it is a linear layer whose weights are ``B`` (``tokens=M``,
    ``in_features=K``, ``out_features=N``), so weight sparsity and the training phases apply.
    ``training=True`` simulates fwd, bwd_data and bwd_weight; ``phases`` picks some.
    """
    dims = check_dims((M, N, K), "gemm")
    return WorkloadSpec(kind="gemm", source="gemm", gemms=(dims,), phases=_phases(training, phases, "gemm.phases"))


def network(name: str, *, training: bool = False, batch: int = 1, phases: Iterable[str] | None = None,
            prompt_len: int | None = None, gen_len: int | None = None,
            act_sparsity: float | None = None) -> WorkloadSpec:
    """A built-in layer list (``run --network NAME``; ``sparsesim list`` names them).

    The LLM networks (``llama2_7b``, ...) take ``prompt_len`` (prefill tokens, default 128),
    ``gen_len`` (decode steps, default 32) and ``act_sparsity`` (zero fraction of the synthetic
    input activations of a sparse run); their phases are ``prefill`` and ``decode``.
    """
    if str(name) in DECODERS:
        if training:
            raise arg_error("network.training", f"{name} is an LLM network: inference only (its phases are "
                                                "prefill and decode)")
    else:
        NETWORKS.get(str(name), "network")
        given = [key for key, value in (("prompt_len", prompt_len), ("gen_len", gen_len),
                                         ("act_sparsity", act_sparsity)) if value is not None]
        if given:
            raise arg_error(f"network.{given[0]}", f"only for the LLM networks ({', '.join(DECODERS.names())})")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise arg_error("network.batch", f"must be a positive integer, got {batch!r}")
    return WorkloadSpec(kind="network", source=str(name), batch=batch,
                        phases=_phases(training, phases, "network.phases"),
                        prompt_len=prompt_len, gen_len=gen_len, act_sparsity=act_sparsity)


def topology(csv: str | Path, *, training: bool = False, phases: Iterable[str] | None = None) -> WorkloadSpec:
    """The layers of a SCALE-Sim topology CSV (``run --topology FILE.csv``; the format is in
    :mod:`sparsesim.workloads.topology`, an example in ``configs/topologies/example.csv``)."""
    path = Path(csv)
    if not path.is_file():
        raise field_error("topology", f"no such file {str(path)!r}")
    return WorkloadSpec(kind="topology", source=str(path), phases=_phases(training, phases, "topology.phases"))


def trace(directory: str | Path, *, phases: Iterable[str] | None = None, verify: bool = True) -> WorkloadSpec:
    """A captured or imported trace (``run --trace DIR``): its real tensors, every recorded
    phase unless ``phases`` picks some. ``verify``: check each tensor file's recorded SHA-256
    on its first read and refuse a mismatch; ``False`` trusts the bytes (``run --no-verify``)."""
    path = Path(directory)
    if not (path / "manifest.json").is_file():
        raise field_error("trace", f"{str(path)!r} is not a trace directory (no manifest.json)")
    if not isinstance(verify, bool):
        raise field_error("trace.verify", f"expected True or False, got {verify!r}")
    return WorkloadSpec(kind="trace", source=str(path), phases=phase_names(phases, "trace.phases"), verify=verify)


def load_trace(directory: str | Path, *, verify: bool = True):
    """Open a trace directory: :func:`sparsesim.workloads.trace.load_trace` (checks its structure;
    with ``verify``, each file's SHA-256 on the first read from it)."""
    if not isinstance(verify, bool):
        raise field_error("load_trace.verify", f"expected True or False, got {verify!r}")
    return _load_trace(Path(directory), verify=verify)


# ---------------------------------------------------------------------------------------------
# the accelerator


def _sparsity(sparsity) -> list[dict] | None:
    """CLI strings (``"nm:2:4"``) and config mappings -> config mappings; ``None`` keeps the config's."""
    if sparsity is None:
        return None
    from sparsesim.sparsity import feature_list  # Numba: see the note at the imports

    return feature_list(sparsity, "sparsity", arg=True)


def _sets(sets) -> list[tuple[str, Any]]:
    if sets is None:
        return []
    if not isinstance(sets, Mapping):
        raise arg_error("sets", f"expected a mapping of dotted.key: value, got {sets!r}")
    return [(str(k), v) for k, v in sets.items()]


def accel_config(accel, *, sparsity=None, sets: Mapping[str, Any] | None = None):
    """A validated :class:`~sparsesim.hardware.config.AccelConfig` from a preset name, a YAML/TOML
    file, a SCALE-Sim ``.cfg`` file or a config object, with ``sets`` (``--set``) overrides and
    ``sparsity`` features."""
    from sparsesim.simulation.assemble import build_config  # Numba: see the note at the imports

    pairs = _sets(sets)
    features = _sparsity(sparsity)
    if features is not None:
        if any(key == "sparsity" for key, _ in pairs):
            raise arg_error("sparsity", "given twice: as sparsity= and as sets={'sparsity': ...}; give the "
                                        "features one way")
        pairs.append(("sparsity", features))
    if isinstance(accel, AccelConfig):
        data = to_dict(accel)
    elif isinstance(accel, (str, Path)):
        path = Path(accel)
        if path.suffix and path.suffix.lower() not in FILE_SUFFIXES and str(accel) not in preset_names():
            raise arg_error("accel", f"{accel}: only YAML (.yaml, .yml), TOML (.toml) or SCALE-Sim (.cfg) "
                                     "config files are accepted, or a preset name (see `sparsesim list`)")
        data = preset_mapping(str(accel))
    else:
        raise arg_error("accel", f"expected a preset name, a YAML/TOML/SCALE-Sim .cfg file or an AccelConfig, "
                                 f"got {accel!r}")
    return build_config(data, pairs)


def _accel_label(cfg, sets: list[tuple[str, Any]]) -> str:
    """The result's ``accel`` field: the design's name plus the overrides applied to it."""
    if not sets:
        return cfg.name
    return f"{cfg.name} ({', '.join(f'{k}={v}' for k, v in sets)})"


# ---------------------------------------------------------------------------------------------
# running


@dataclass(frozen=True, slots=True)
class Result:
    """The result of :func:`simulate`: one row per (op, phase) plus their total.

    ``rows`` are the ``layers`` of ``sparsesim run --json`` and ``total`` its ``total``;
    :meth:`to_pandas` is the table ``run --out`` writes (``energy_pj.*``, ``events.*`` and
    ``cfg.*`` columns flattened).
    """

    rows: tuple[dict, ...]
    total: dict
    config: Any = field(repr=False)  # the AccelConfig that ran
    workload: str
    dataflow: str

    def __repr__(self) -> str:  # short: a notebook shows this for every result
        accel = self.rows[0]["accel"] if self.rows else getattr(self.config, "name", "?")
        return (f"Result(workload={self.workload!r}, accel={accel!r}, dataflow={self.dataflow!r}, "
                f"rows={len(self.rows)}, cycles={self.total.get('cycles')}, speedup={self.total.get('speedup', 0):.3g})")

    def to_pandas(self):
        """The result table as a pandas DataFrame (one row per (op, phase))."""
        return to_frame(list(self.rows), self.config)

    def to_json(self) -> str:
        """``{"layers": [...], "total": {...}}``, exactly what ``run --json`` prints."""
        return to_json(list(self.rows), self.total)


def simulate(workload, *, accel, dataflow: str = "best", sparsity=None,
             sets: Mapping[str, Any] | None = None, scheduler: str | None = None,
             workers: int | None = None) -> Result:
    """Simulate ``workload`` on ``accel`` with ``dataflow`` (``os``, ``ws``, ``is`` or ``best``).

    ``workload``: from :func:`gemm`, :func:`network`, :func:`topology`, :func:`trace`, or a
    built :class:`~sparsesim.workloads.ops.Workload`. ``accel``: a preset name, a YAML/TOML
    file, a SCALE-Sim ``.cfg`` file (:mod:`sparsesim.hardware.scalesim_config`) or an
    :class:`~sparsesim.hardware.config.AccelConfig`. ``sparsity``: features as the command line
    writes them (``"nm:2:8"``, ``"zero_skip:input:skipping"``, ``"delta:0.05"``) or as config
    mappings (``{"kind": "nm", "n": 2, "m": 8}``); ``None`` keeps the config's own list,
    ``[]`` is dense. ``sets``: ``{"array.rows": 16}``, the ``--set`` overrides.
    ``scheduler`` (a Dask scheduler address or file) or ``workers`` (an embedded LocalCluster of
    that many processes): a dense run's ops are split over that cluster, the one sweeps use,
    with the same rows as in one process, and so is a sparse replay, in groups of the ops that
    share run state (by op for zero_skip and act_policy at site input, by layer for delta and
    the gated-MLP act_policy); one with nm, whose pruning unit's timeline spans every op, is
    refused there.
    """
    from sparsesim.simulation.assemble import assemble_run  # Numba, SimPy: see the note at the imports

    cfg = accel_config(accel, sparsity=sparsity, sets=sets)
    if isinstance(workload, WorkloadSpec):
        built = build_workload(workload)
    elif isinstance(workload, Workload):
        built = workload
    else:
        raise field_error("workload", "expected sparsesim.gemm(...), network(...), topology(...), trace(...) "
                                      f"or a Workload, got {type(workload).__name__}")
    if scheduler is None and workers is None:
        run = assemble_run(built, cfg, dataflow, accel_label=_accel_label(cfg, _sets(sets)))
    else:
        from sparsesim.simulation.run import unsplittable
        from sparsesim.sparsity import parse_features
        from sparsesim.sweeps.cluster import connect

        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise arg_error("workers", f"must be a positive integer, got {workers!r}")
        reason = unsplittable(built, parse_features(cfg.sparsity))
        if reason:
            raise arg_error("workers" if scheduler is None else "scheduler", reason)
        with connect(scheduler, workers) as client:
            run = assemble_run(built, cfg, dataflow, accel_label=_accel_label(cfg, _sets(sets)), client=client)
    return Result(rows=run.rows, total=run.total, config=cfg, workload=run.workload, dataflow=dataflow)


def sweep(spec: str | Path, out: str | Path, scheduler: str | None = None, *, workers: int | None = None,
          force_new_spec: bool = False, progress: bool = False):
    """Run (or resume) the sweep of spec file ``spec`` into directory ``out``; the results table.

    The table is ``out/results.parquet`` as a DataFrame: the rows of every finished point.
    Points that failed are recorded in ``out/failed/``, logged as a warning and missing from
    the table; running again retries them. ``scheduler``: the address of a running Dask
    scheduler (or a scheduler file); default an embedded local cluster of ``workers``
    processes. ``progress``: a bar (terminal) or progress lines on stderr.
    """
    import pandas as pd

    plan, summary = run_sweep_spec(spec, out, scheduler, workers=workers, force_new_spec=force_new_spec,
                                   progress=progress)
    if summary.failed:
        log.warning("sweep %s: %d of %d points failed (see %s); run again to retry them", plan.name,
                    len(summary.failed), summary.total, Path(out) / "failed")
    return pd.read_parquet(summary.results_path)


def run_sweep_spec(spec: str | Path, out: str | Path, scheduler: str | None = None, *, workers: int | None = None,
                   force_new_spec: bool = False, progress: bool = False, out_field: str = "out"):
    """What :func:`sweep` does, returning the validated plan and the run's
    :class:`~sparsesim.sweeps.runner.SweepSummary` instead of the table (the ``sweep`` command).

    ``out`` is checked before the spec is read (messages name it ``out_field``, ``--out``
    for the command line), so a bad output path costs nothing."""
    from sparsesim.sweeps import load_spec, run_sweep  # Numba: see the note at the imports

    check_output_path(out, field=out_field, kind="dir", inputs=[("spec", spec)])
    plan = load_spec(spec)
    summary = run_sweep(plan, Path(out), scheduler=scheduler, workers=workers, force_new_spec=force_new_spec,
                        progress=progress, out_field=out_field)
    return plan, summary


def capture(model, inputs, *, out: str | Path, mode: str = "train", **options) -> Path:
    """Capture a trace of your own PyTorch ``model`` on ``inputs`` into ``out``; its path.

    ``inputs``: one batch (a tensor or a tuple of tensors) or a list of batches. ``mode``:
    ``train`` (forward, backward and update: activations, weights and gradients) or ``infer``.
    Further settings (``steps``, ``nm``, ``seed``, ``overwrite``, ...) are those of
    :func:`sparsesim.workloads.capture.capture_model`, which this calls (torch is imported
    only there, on first use).
    """
    return capture_package.capture_model(model, inputs, out=out, mode=mode, **options)


def codesign(model: str | None = "smollm2_135m", *, settings, accels=("edge32",), text=None, calib_text=None,
             **options) -> dict:
    """Quality and hardware per sparsity setting: what ``sparsesim codesign --json`` prints.

    ``settings``: setting strings as ``--sparsity`` takes them (features joined by ``+``);
    ``accels``: preset names; ``text`` / ``calib_text``: a text file's path (default: the built-in
    corpus' evaluation / calibration part). ``options``: ``mode``, ``prompt_len``, ``gen_len``,
    ``context``, ``eval_tokens``, ``calib_tokens``, ``hf_dir``, ``gguf``, ``dataflow``, ``work_dir``,
    ``keep_traces``, ``progress`` (see :func:`sparsesim.quality.pipeline.codesign`).
    """
    from sparsesim.quality import codesign as run
    from sparsesim.workloads.corpus import TextPart, text_file

    def part(value, arg):
        return value if value is None or isinstance(value, TextPart) else text_file(value, arg)

    if isinstance(settings, str):
        settings = [settings]
    return run(model, settings=list(settings), accels=[accels] if isinstance(accels, str) else list(accels),
               text=part(text, "text"), calib_text=part(calib_text, "calib_text"), **options)
