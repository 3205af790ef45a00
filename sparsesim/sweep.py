"""Design-space sweeps: a YAML spec becomes a validated plan, run on a Dask cluster, resumably.

A sweep spec names a base accelerator, axes over dotted config paths, workloads, dataflows and
sparsity settings; :func:`load_spec` expands it into a :class:`SweepPlan` of points, each one
(config, workload, dataflow) with a stable id, and validates every point's config with
:func:`sparsesim.accel.config.build` *before* anything runs. :func:`run_sweep` computes the points that
are missing from the output directory on a Dask cluster (an embedded ``LocalCluster`` or an
existing scheduler) and writes each finished point atomically to its own Parquet file as it
completes, so killing the client or a worker loses at most the points in flight, and running
the same command again computes only what is missing. Output directory layout::

    sweep.json              normalized spec, its hash, the point list, status of the last run
    points/<id>.parquet     one file per finished point (rows of sparsesim.results.to_frame)
    failed/<id>.json        error of a point that raised (retried on the next run)
    results.parquet         every point of the plan concatenated, rebuilt at the end of a run

Spec (paths are relative to the spec file)::

    name: array-buffer
    base: {accel: edge32, set: {array.fold_overlap: false}}   # or just  base: edge32
    seed: 0                                  # for random axes
    axes:                                    # a mapping is one grid; a list holds groups
      - {kind: grid, values: {buffers.a.size_bytes: [65536, 262144]}}
      - {kind: zip, values: {array.rows: [16, 32], array.cols: [16, 32]}}
      - {kind: random, samples: 10, values: {dram.bandwidth_bytes_per_cycle: {min: 4, max: 64, log: true},
                                              array.rows: {choices: [16, 32, 64]}}}
    workloads: [{network: resnet18, batch: 1, phases: [fwd]}, {gemm: [64, 64, 64]},
                {topology: layers.csv}, {trace: traces/run1}]
    dataflows: [os, ws, is]
    sparsity: [dense, [{kind: nm, target: weight, n: 2, m: 4}], "nm:2:8"]

Groups combine as a cartesian product, as do sparsity settings, workloads and dataflows. The
point id hashes the *fully resolved* config (defaults filled in), the workload (including a
digest of a topology file or trace manifest) and the dataflow, so equal points share results
and a changed preset or trace yields new points rather than stale ones.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import enum
import hashlib
import itertools
import json
import logging
import math
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sparsesim.accel.config import AccelConfig, apply_overrides, build, parse_override, read_mapping, schema_paths, to_dict
from sparsesim.workloads.errors import InputError
from sparsesim.workloads.gemm import PHASES, Phase, parse_phase
from sparsesim.workloads.registry import suggest

log = logging.getLogger(__name__)

SPEC_KEYS = ("name", "description", "base", "seed", "axes", "workloads", "dataflows", "sparsity")
AXIS_KINDS = ("grid", "zip", "random")
WORKLOAD_KINDS = ("network", "gemm", "topology", "trace")
FORMAT_VERSION = 1
CONNECT_TIMEOUT_S = 5.0
"""How long ``--scheduler`` may take to answer before the address is reported unreachable."""
WORKER_WAIT_S = 30.0
"""How long to wait for an existing cluster with no workers to get one."""


# ---------------------------------------------------------------------------------------------
# plan


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadSpec:
    """One workload entry of a spec, normalized; small and picklable (workers build it)."""

    kind: str  # one of WORKLOAD_KINDS
    source: str  # network name, or absolute path of a topology file / trace directory
    batch: int = 1
    gemms: tuple[tuple[int, int, int], ...] = ()
    phases: tuple[str, ...] = ("fwd",)
    digest: str = ""  # content digest of a topology file or trace manifest ("" otherwise)

    @property
    def label(self) -> str:
        """Short human name, e.g. ``resnet18 b1 fwd``."""
        if self.kind == "network":
            base = f"{self.source} b{self.batch}"
        elif self.kind == "gemm":
            base = ("gemm " + "x".join(map(str, self.gemms[0])) if len(self.gemms) == 1
                    else f"{len(self.gemms)} gemms " + "x".join(map(str, self.gemms[0])) + ",...")
        else:
            base = Path(self.source).name
        phases = "train" if self.phases == tuple(str(p) for p in PHASES) else "+".join(self.phases)
        return f"{base} {phases}"

    def identity(self) -> dict:
        """Everything that defines the workload's result (hashed into the point id)."""
        return {"kind": self.kind, "source": self.source, "batch": self.batch,
                "gemms": [list(g) for g in self.gemms], "phases": list(self.phases), "digest": self.digest}

    def build(self):
        """The :class:`~sparsesim.workloads.ops.Workload` (on a worker: reads topology/trace files itself)."""
        from sparsesim.workloads.ops import Workload, gemm_op

        phases = tuple(Phase(p) for p in self.phases)
        if self.kind == "network":
            from sparsesim.workloads.networks import NETWORKS

            return Workload(self.source, tuple(NETWORKS.get(self.source, "network")(self.batch)), phases)
        if self.kind == "gemm":
            ops = tuple(gemm_op(f"gemm{i}", *g) for i, g in enumerate(self.gemms))
            return Workload("gemm", ops, phases)
        if self.kind == "topology":
            from sparsesim.workloads.topology import read_topology

            path = Path(self.source)
            return Workload(path.stem, tuple(read_topology(path)), phases)
        from sparsesim.workloads.trace import load_trace

        return load_trace(Path(self.source)).workload(phases)


@dataclass(frozen=True, slots=True, kw_only=True)
class Point:
    """One design point: a fully resolved config, a workload and a dataflow."""

    point_id: str
    index: int
    config: dict = field(compare=False)  # plain mapping of the validated AccelConfig
    workload: WorkloadSpec
    dataflow: str
    sparsity: str  # human label of the sparsity setting ("dense", "nm2:4", ...)
    sparsity_kinds: tuple[str, ...] = ()  # feature kinds switched on ("nm", "zero_skip", ...)
    axes: tuple[tuple[str, Any], ...]  # the swept values that define this point, in axis order

    def describe(self) -> dict:
        """JSON-ready summary (``sweep.json`` and failure records)."""
        return {"point_id": self.point_id, "index": self.index, "workload": self.workload.label,
                "dataflow": self.dataflow, "sparsity": self.sparsity,
                "sparsity_kinds": list(self.sparsity_kinds), "axes": {k: _plain(v) for k, v in self.axes}}


@dataclass(frozen=True, slots=True, kw_only=True)
class AxisGroup:
    """A group of axes: ``grid`` paths vary independently, ``zip``/``random`` paths together."""

    kind: str
    paths: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]  # for zip/random: one tuple per step; for grid: unused

    def assignments(self, grid_values: dict[str, list]) -> list[tuple[tuple[str, Any], ...]]:
        if self.kind == "grid":
            combos = itertools.product(*(grid_values[p] for p in self.paths))
            return [tuple(zip(self.paths, c)) for c in combos]
        return [tuple(zip(self.paths, row)) for row in self.rows]


@dataclass(frozen=True, slots=True, kw_only=True)
class SweepPlan:
    """A validated sweep: the normalized spec, its hash and every point."""

    name: str
    spec_path: Path
    spec: dict = field(compare=False)
    spec_hash: str
    groups: tuple[dict, ...]  # [{"kind", "paths"}] in spec order, for reports
    points: tuple[Point, ...]

    def __len__(self) -> int:
        return len(self.points)


def load_spec(path: str | Path) -> SweepPlan:
    """Read a sweep spec file and expand it into a validated :class:`SweepPlan`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such sweep spec file")
    return plan_sweep(read_mapping(path), path)


def plan_sweep(data: dict, spec_path: Path) -> SweepPlan:
    """Validate spec mapping ``data`` (read from ``spec_path``) and expand every point."""
    spec_path = Path(spec_path)
    where = spec_path.name
    base_dir = spec_path.resolve().parent
    for key in data:
        if key not in SPEC_KEYS:
            raise InputError(f"{where}: {key}: unknown key{suggest(str(key), SPEC_KEYS)}")
    name = data.get("name", spec_path.stem)
    if not isinstance(name, str) or not name:
        raise InputError(f"{where}: name: expected a non-empty string, got {name!r}")
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"{where}: seed: expected a non-negative integer, got {seed!r}")

    base_name, base_data, base_set = _parse_base(data.get("base"), base_dir, where)
    paths = schema_paths(AccelConfig)
    groups, grid_values = _parse_axes(data.get("axes"), paths, seed, where)
    sparsity = _parse_sparsity(data.get("sparsity"), where)
    if sparsity is not None and any("sparsity" in g.paths for g in groups):
        raise InputError(f"{where}: sparsity: given both as a top-level list and as an axis; use one")
    workloads = _parse_workloads(data.get("workloads"), base_dir, where)
    dataflows = _parse_dataflows(data.get("dataflows", ["best"]), where)

    normalized = {
        "format": FORMAT_VERSION,
        "name": name,
        "description": str(data.get("description", "")),
        "base": {"accel": base_name, "set": [[k, _plain(v)] for k, v in base_set]},
        "seed": seed,
        "axes": [{"kind": g.kind, "paths": list(g.paths),
                  "values": ([_plain(grid_values[p]) for p in g.paths] if g.kind == "grid"
                             else [_plain(list(r)) for r in g.rows])} for g in groups],
        "sparsity": None if sparsity is None else [_plain(s) for s in sparsity],
        # file digests stay out of the spec hash: a re-captured trace makes new points, not a new spec
        "workloads": [{k: v for k, v in w.identity().items() if k != "digest"} for w in workloads],
        "dataflows": list(dataflows),
    }
    spec_hash = _digest(normalized)

    config_steps = [g.assignments(grid_values) for g in groups]
    sparsity_steps = [None] if sparsity is None else sparsity
    points: list[Point] = []
    seen: set[str] = set()
    for combo in itertools.product(*config_steps):
        assignment = tuple(pair for step in combo for pair in step)
        for setting in sparsity_steps:
            pairs = list(assignment) + ([] if setting is None else [("sparsity", setting)])
            config, label = _resolve_config(base_data, pairs, where)
            kinds = tuple(str(f.get("kind")) for f in config.get("sparsity", []) if isinstance(f, dict))
            axes = assignment + ((("sparsity", label),) if setting is not None else ())
            for wl in workloads:
                for df in dataflows:
                    pid = _digest({"config": config, "workload": wl.identity(), "dataflow": df})[:16]
                    if pid in seen:  # e.g. two random samples that drew the same values
                        continue
                    seen.add(pid)
                    points.append(Point(point_id=pid, index=len(points), config=config, workload=wl,
                                        dataflow=df, sparsity=label, sparsity_kinds=kinds, axes=axes))
    if not points:
        raise InputError(f"{where}: the sweep has no points")
    group_info = tuple({"kind": g.kind, "paths": list(g.paths)} for g in groups)
    if sparsity is not None and len(sparsity) > 1:
        group_info += ({"kind": "grid", "paths": ["sparsity"]},)
    return SweepPlan(name=name, spec_path=spec_path.resolve(), spec=normalized, spec_hash=spec_hash,
                     groups=group_info, points=tuple(points))


def _parse_base(raw: Any, base_dir: Path, where: str) -> tuple[str, dict, list[tuple[str, Any]]]:
    """``base: edge32`` or ``base: {accel: FILE|NAME, set: {path: value} | [path=value, ...]}``."""
    from sparsesim.accel.presets import preset_mapping, preset_names

    if raw is None:
        raise InputError(f"{where}: base: missing (a preset name or {{accel: ..., set: ...}})")
    if isinstance(raw, str):
        raw = {"accel": raw}
    if not isinstance(raw, dict):
        raise InputError(f"{where}: base: expected a preset name or a mapping, got {raw!r}")
    for key in raw:
        if key not in ("accel", "set"):
            raise InputError(f"{where}: base.{key}: unknown key{suggest(str(key), ('accel', 'set'))}")
    accel = raw.get("accel")
    if not isinstance(accel, str) or not accel:
        raise InputError(f"{where}: base.accel: expected a preset name or a config file, got {accel!r}")
    if Path(accel).suffix in (".yaml", ".yml", ".toml"):
        file = (base_dir / accel).resolve()
        if not file.is_file():
            raise InputError(f"{where}: base.accel: no such file {str(file)!r}")
        accel = str(file)
        data = read_mapping(file)
    else:
        names = preset_names()
        if accel not in names:
            raise InputError(f"{where}: base.accel: unknown preset {accel!r}{suggest(accel, names)}")
        data = preset_mapping(accel)
    sets = raw.get("set") or {}
    if isinstance(sets, dict):
        pairs = list(sets.items())
    elif isinstance(sets, list) and all(isinstance(s, str) for s in sets):
        pairs = [parse_override(s) for s in sets]
    else:
        raise InputError(f"{where}: base.set: expected a mapping of dotted.path: value, got {sets!r}")
    try:
        data = apply_overrides(data, [(str(k), v) for k, v in pairs])
        build(AccelConfig, data)
    except InputError as exc:
        raise InputError(f"{where}: base: {exc}") from None
    return accel, data, [(str(k), v) for k, v in pairs]


def _check_path(path: Any, paths: dict, where: str) -> str:
    if not isinstance(path, str) or path not in paths:
        raise InputError(f"{where}: {path}: no such config field{suggest(str(path), paths)}")
    return path


def _parse_axes(raw: Any, paths: dict, seed: int, where: str) -> tuple[list[AxisGroup], dict[str, list]]:
    """Axis groups in spec order plus the value list of every grid path."""
    if raw is None or raw == {} or raw == []:
        return [], {}
    if isinstance(raw, dict):  # shorthand: one grid group
        raw = [{"kind": "grid", "values": raw}]
    if not isinstance(raw, list):
        raise InputError(f"{where}: axes: expected a list of axis groups or a mapping path: [values]")
    groups: list[AxisGroup] = []
    grid_values: dict[str, list] = {}
    used: set[str] = set()
    for gi, group in enumerate(raw):
        at = f"{where}: axes[{gi}]"
        if not isinstance(group, dict):
            raise InputError(f"{at}: expected a mapping with kind and values, got {group!r}")
        for key in group:
            if key not in ("kind", "values", "samples"):
                raise InputError(f"{at}.{key}: unknown key{suggest(str(key), ('kind', 'values', 'samples'))}")
        kind = group.get("kind", "grid")
        if kind not in AXIS_KINDS:
            raise InputError(f"{at}.kind: unknown axis kind {kind!r}{suggest(str(kind), AXIS_KINDS)}")
        values = group.get("values")
        if not isinstance(values, dict) or not values:
            raise InputError(f"{at}.values: expected a non-empty mapping of dotted.path: values")
        for path in values:
            _check_path(path, paths, at + ".values")
            if path in used:
                raise InputError(f"{at}.values: {path}: swept by two axis groups")
            used.add(path)
        group_paths = tuple(values)
        if kind == "random":
            samples = group.get("samples")
            if isinstance(samples, bool) or not isinstance(samples, int) or samples < 0:
                raise InputError(f"{at}.samples: expected a non-negative integer, got {samples!r}")
            # one generator per group, seeded by (spec seed, group index): adding a group never
            # changes the samples of another (no global RNG, STYLE: seeds in the config)
            rng = np.random.default_rng([seed, gi])
            columns = [_sample(values[p], samples, rng, f"{at}.values.{p}") for p in group_paths]
            groups.append(AxisGroup(kind=kind, paths=group_paths, rows=tuple(zip(*columns))))
            continue
        if "samples" in group:
            raise InputError(f"{at}.samples: only random axes take samples")
        lists = {}
        for path in group_paths:
            vals = values[path]
            if not isinstance(vals, list):
                raise InputError(f"{at}.values.{path}: expected a list of values, got {vals!r}")
            lists[path] = vals
        if kind == "zip":
            lengths = {len(v) for v in lists.values()}
            if len(lengths) > 1:
                raise InputError(f"{at}.values: zip lists must have one length, got "
                                 + ", ".join(f"{p}: {len(v)}" for p, v in lists.items()))
            groups.append(AxisGroup(kind=kind, paths=group_paths, rows=tuple(zip(*lists.values()))))
        else:
            grid_values.update(lists)
            groups.append(AxisGroup(kind=kind, paths=group_paths, rows=()))
    return groups, grid_values


def _sample(dist: Any, n: int, rng: np.random.Generator, at: str) -> list:
    """``n`` draws from a list (uniform choice), ``{choices: [...]}`` or ``{min, max[, log]}``."""
    if isinstance(dist, list):
        dist = {"choices": dist}
    if not isinstance(dist, dict):
        raise InputError(f"{at}: expected a list of choices or {{min, max[, log]}}, got {dist!r}")
    for key in dist:
        if key not in ("choices", "min", "max", "log"):
            raise InputError(f"{at}.{key}: unknown key{suggest(str(key), ('choices', 'min', 'max', 'log'))}")
    if "choices" in dist:
        choices = dist["choices"]
        if not isinstance(choices, list) or not choices or len(dist) > 1:
            raise InputError(f"{at}.choices: expected a non-empty list (and no min/max), got {choices!r}")
        return [choices[int(i)] for i in rng.integers(0, len(choices), size=n)]
    lo, hi, use_log = dist.get("min"), dist.get("max"), dist.get("log", False)
    for name, value in (("min", lo), ("max", hi)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InputError(f"{at}.{name}: expected a number, got {value!r}")
    if not isinstance(use_log, bool):
        raise InputError(f"{at}.log: expected true or false, got {use_log!r}")
    if lo > hi:
        raise InputError(f"{at}: min {lo} is above max {hi}")
    if use_log and lo <= 0:
        raise InputError(f"{at}.min: must be > 0 for a log range, got {lo}")
    integer = isinstance(lo, int) and isinstance(hi, int)
    if use_log:
        draws = np.exp(rng.uniform(math.log(lo), math.log(hi), size=n))
    else:
        draws = rng.uniform(lo, hi, size=n)
    if integer:
        return [int(min(max(round(float(d)), lo), hi)) for d in draws]
    return [float(f"{float(d):.6g}") for d in draws]


def _sparsity_tools():
    """``(cli_sparsity, parse_features, feature_labels)`` from :mod:`sparsesim.accel.sparsity`, if present."""
    try:
        from sparsesim.accel.sparsity import cli_sparsity, feature_labels, parse_features
    except ImportError:
        return None
    return cli_sparsity, parse_features, feature_labels


def _parse_sparsity(raw: Any, where: str) -> list[list] | None:
    """A list of settings; each ``dense``, a CLI string, a feature mapping, or a list of those."""
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw:
        raise InputError(f"{where}: sparsity: expected a non-empty list of settings, got {raw!r}")
    tools = _sparsity_tools()
    settings = []
    for i, setting in enumerate(raw):
        at = f"{where}: sparsity[{i}]"
        if setting in (None, "dense", "none"):
            setting = []
        if isinstance(setting, (str, dict)):
            setting = [setting]
        if not isinstance(setting, list):
            raise InputError(f"{at}: expected dense, a feature mapping or a list of them, got {setting!r}")
        features = []
        for feat in setting:
            if isinstance(feat, str):
                if tools is None:
                    raise InputError(f"{at}: {feat!r}: the short form needs accel.sparsity; give a mapping")
                features.extend(tools[0]([feat]))
            elif isinstance(feat, dict):
                features.append(dict(feat))
            else:
                raise InputError(f"{at}: expected a feature mapping like {{kind: nm, n: 2, m: 4}}, got {feat!r}")
        settings.append(features)
    return settings


def sparsity_label(features: Sequence) -> str:
    """Label of a sparsity setting, via the feature registry when available."""
    if not features:
        return "dense"
    tools = _sparsity_tools()
    if tools is not None:
        return tools[2](tools[1](tuple(features)))
    return "+".join(":".join(str(v) for k, v in f.items() if k != "target") if isinstance(f, dict) else str(f)
                    for f in features)


def _resolve_config(base: dict, pairs: list[tuple[str, Any]], where: str) -> tuple[dict, str]:
    """Apply one point's axis values to the base config and validate the result."""
    try:
        data = apply_overrides(base, pairs)
        cfg = build(AccelConfig, data)
        tools = _sparsity_tools()
        if tools is not None and cfg.sparsity:
            from sparsesim.accel.sparsity import check_hardware

            check_hardware(tools[1](cfg.sparsity), cfg)
    except InputError as exc:
        shown = ", ".join(f"{k}={_short(v)}" for k, v in pairs) or "the base config"
        raise InputError(f"{where}: point with {shown}: {exc}") from None
    return _plain(to_dict(cfg)), sparsity_label(cfg.sparsity)


def _short(value: Any) -> str:
    text = json.dumps(_plain(value), sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


def _parse_workloads(raw: Any, base_dir: Path, where: str) -> list[WorkloadSpec]:
    if not isinstance(raw, list) or not raw:
        raise InputError(f"{where}: workloads: expected a non-empty list (the sweep has no points otherwise)")
    out = []
    for i, item in enumerate(raw):
        at = f"{where}: workloads[{i}]"
        if not isinstance(item, dict):
            raise InputError(f"{at}: expected a mapping like {{network: resnet18, batch: 1}}, got {item!r}")
        kinds = [k for k in item if k in WORKLOAD_KINDS]
        for key in item:
            if key not in WORKLOAD_KINDS + ("batch", "phases"):
                raise InputError(f"{at}.{key}: unknown key{suggest(str(key), WORKLOAD_KINDS + ('batch', 'phases'))}")
        if len(kinds) != 1:
            raise InputError(f"{at}: give exactly one of {', '.join(WORKLOAD_KINDS)}")
        kind = kinds[0]
        phases = _parse_phases(item.get("phases"), f"{at}.phases")
        if "batch" in item and kind != "network":
            raise InputError(f"{at}.batch: only network workloads take a batch size")
        value = item[kind]
        if kind == "network":
            from sparsesim.workloads.networks import NETWORKS

            if not isinstance(value, str) or value not in NETWORKS:
                raise InputError(f"{at}.network: unknown network {value!r}{suggest(str(value), NETWORKS.names())}")
            batch = item.get("batch", 1)
            if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
                raise InputError(f"{at}.batch: expected a positive integer, got {batch!r}")
            out.append(WorkloadSpec(kind=kind, source=value, batch=batch, phases=phases))
        elif kind == "gemm":
            gemms = value if isinstance(value, list) and value and isinstance(value[0], list) else [value]
            dims = []
            for g in gemms:
                if (not isinstance(g, list) or len(g) != 3
                        or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in g)):
                    raise InputError(f"{at}.gemm: expected [M, N, K] of positive integers, got {g!r}")
                dims.append(tuple(g))
            out.append(WorkloadSpec(kind=kind, source="gemm", gemms=tuple(dims), phases=phases))
        else:
            if not isinstance(value, str) or not value:
                raise InputError(f"{at}.{kind}: expected a path, got {value!r}")
            path = (base_dir / value).resolve()
            if kind == "topology":
                if not path.is_file():
                    raise InputError(f"{at}.topology: no such file {str(path)!r}")
                digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
            else:
                manifest = path / "manifest.json"
                if not manifest.is_file():
                    raise InputError(f"{at}.trace: {str(path)!r} is not a trace directory (no manifest.json)")
                digest = hashlib.sha256(manifest.read_bytes()).hexdigest()[:16]
            out.append(WorkloadSpec(kind=kind, source=str(path), phases=phases, digest=digest))
    return out


def _parse_phases(raw: Any, at: str) -> tuple[str, ...]:
    if raw is None:
        return ("fwd",)
    if raw in ("training", "all"):
        return tuple(str(p) for p in PHASES)
    if isinstance(raw, str):
        raw = [p.strip() for p in raw.split(",") if p.strip()]
    if not isinstance(raw, list) or not raw:
        raise InputError(f"{at}: expected a list of phases (fwd, bwd_data, bwd_weight) or 'training'")
    phases = []
    for p in raw:
        phase = str(parse_phase(str(p), at))
        if phase not in phases:
            phases.append(phase)
    return tuple(phases)


def _parse_dataflows(raw: Any, where: str) -> tuple[str, ...]:
    from sparsesim.engine import dataflow_choices

    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise InputError(f"{where}: dataflows: expected a non-empty list (the sweep has no points otherwise)")
    choices = dataflow_choices()
    out = []
    for i, df in enumerate(raw):
        if df not in choices:
            raise InputError(f"{where}: dataflows[{i}]: unknown dataflow {df!r}{suggest(str(df), choices)}")
        if df not in out:
            out.append(df)
    return tuple(out)


def _plain(value: Any) -> Any:
    """A JSON-ready copy: dataclasses to mappings, tuples to lists, enums to values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, np.generic):
        return value.item()
    return value




def _digest(data: Any) -> str:
    blob = json.dumps(_plain(data), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# the work of one point (runs on a Dask worker)


def run_point(point: Point):
    """Simulate one point and return its rows as a DataFrame (``to_frame`` plus sweep columns).

    Runs on a worker: it rebuilds the config from the plain mapping and reads any trace or
    topology file from the (shared) path itself, so no arrays travel through the scheduler.
    """
    from sparsesim.accel.energy import area_breakdown_um2, energy_table
    from sparsesim.results import stamp, to_frame
    from sparsesim.engine import run_id
    from sparsesim.simulation import simulate

    cfg = build(AccelConfig, point.config)
    workload = point.workload.build()
    rows = stamp(simulate(workload, cfg, point.dataflow), cfg, run_id(cfg, point.dataflow), workload.name)
    frame = to_frame(rows, cfg)
    area = area_breakdown_um2(cfg, energy_table(cfg.energy_table))
    extra = {"point_id": point.point_id, "sweep_workload": point.workload.label,
             "sweep_dataflow": point.dataflow, "sweep_sparsity": point.sparsity,
             "area_um2": float(sum(area.values()))}
    extra.update({f"area_um2.{k}": float(v) for k, v in area.items()})
    for key, value in extra.items():
        frame[key] = value
    front = ["point_id", "sweep_workload", "sweep_dataflow", "sweep_sparsity"]
    return frame[front + [c for c in frame.columns if c not in front]]


# ---------------------------------------------------------------------------------------------
# output directory


@dataclass(frozen=True, slots=True)
class SweepDir:
    """Paths of a sweep output directory."""

    root: Path

    @property
    def meta(self) -> Path:
        return self.root / "sweep.json"

    @property
    def points(self) -> Path:
        return self.root / "points"

    @property
    def failed(self) -> Path:
        return self.root / "failed"

    @property
    def results(self) -> Path:
        return self.root / "results.parquet"

    def point(self, point_id: str) -> Path:
        return self.points / f"{point_id}.parquet"

    def failure(self, point_id: str) -> Path:
        return self.failed / f"{point_id}.json"


def _atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename over ``path``: readers never see half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _write_json(path: Path, data: dict) -> None:
    _atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=1, default=str) + "\n"))


def read_meta(root: Path) -> dict:
    """The ``sweep.json`` of sweep directory ``root``."""
    meta = SweepDir(Path(root)).meta
    if not meta.is_file():
        raise InputError(f"{root}: not a sweep directory (no sweep.json)")
    try:
        data = json.loads(meta.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{meta}: unreadable ({exc})") from None
    if not isinstance(data, dict) or "spec_hash" not in data or "points" not in data:
        raise InputError(f"{meta}: not a sweep.json written by sparsesim (no spec_hash or points)")
    return data


def prepare_out_dir(plan: SweepPlan, root: Path, force_new_spec: bool) -> SweepDir:
    """Create or reopen ``root`` for ``plan``; refuse another spec's directory or a foreign one."""
    out = SweepDir(root)
    if root.exists() and not root.is_dir():
        raise InputError(f"--out: {root} exists and is not a directory")
    if out.meta.exists():
        old = read_meta(root)
        if old["spec_hash"] != plan.spec_hash and not force_new_spec:
            raise InputError(f"--out: {root} holds a different sweep spec ({old.get('name', '?')}, "
                             f"hash {old['spec_hash'][:12]}); use another --out or pass --force-new-spec")
    elif root.exists() and any(root.iterdir()):
        raise InputError(f"--out: {root} is not empty and holds no sweep.json; choose a new or empty directory")
    for d in (out.root, out.points, out.failed):
        d.mkdir(parents=True, exist_ok=True)
    for stale in itertools.chain(out.points.glob(".*.tmp"), out.failed.glob(".*.tmp"), out.root.glob(".*.tmp")):
        stale.unlink(missing_ok=True)  # left by a writer killed between write and rename
    return out


def _meta_record(plan: SweepPlan, status: dict) -> dict:
    from sparsesim import __version__

    return {"format": FORMAT_VERSION, "name": plan.name, "spec_path": str(plan.spec_path),
            "spec_hash": plan.spec_hash, "spec": plan.spec, "groups": list(plan.groups),
            "sparsesim_version": __version__, "status": status,
            "points": [p.describe() for p in plan.points]}


def collect_results(root: Path, point_ids: Sequence[str] | None = None):
    """Concatenate the point files of ``point_ids`` (default: every point of ``sweep.json``).

    Missing points are skipped; the frame holds each point exactly once, in plan order.
    """
    import pandas as pd

    out = SweepDir(Path(root))
    if point_ids is None:
        point_ids = [p["point_id"] for p in read_meta(out.root)["points"]]
    frames = []
    for pid in point_ids:
        path = out.point(pid)
        if not path.exists():
            continue
        try:
            frames.append(pd.read_parquet(path))
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: unreadable point file ({exc}); delete it and rerun the sweep") from None
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame({"point_id": pd.Series([], dtype=str)})
    return pd.concat(frames, ignore_index=True, sort=False)


# ---------------------------------------------------------------------------------------------
# the cluster


def numba_cache_dir() -> Path:
    """Numba's compile cache shared by every worker and run: ``$NUMBA_CACHE_DIR`` if set, else
    ``$XDG_CACHE_HOME/sparsesim/numba`` (``~/.cache/sparsesim/numba``)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sparsesim" / "numba"


def _numba_cache_plugin(cache_dir: str | None):
    """A worker plugin pointing Numba's cache at ``cache_dir`` (or the worker's own default)."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class NumbaCache(WorkerPlugin):
        """Sets ``NUMBA_CACHE_DIR`` on each worker, including workers that join later."""

        name = "sparsesim-numba-cache"

        def __init__(self, path: str | None) -> None:
            self.path = path

        def setup(self, worker) -> None:
            path = self.path or str(numba_cache_dir())
            try:
                Path(path).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                logging.getLogger(__name__).warning("numba cache %s unusable on worker (%s)", path, exc)
                return
            os.environ["NUMBA_CACHE_DIR"] = path
            if "numba" in sys.modules:  # already imported: make it re-read the environment
                from numba.core import config as numba_config

                numba_config.reload_config()

    return NumbaCache(cache_dir)


def default_workers() -> int:
    """Cores available to this process."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return os.cpu_count() or 1


@contextlib.contextmanager
def connect(scheduler: str | None, workers: int | None,
            connect_timeout_s: float = CONNECT_TIMEOUT_S) -> Iterator[Any]:
    """A Dask client: to the cluster at ``scheduler`` (address or scheduler file), or to an
    embedded ``LocalCluster`` of ``workers`` single-threaded processes (default: one per core)."""
    from distributed import Client, LocalCluster

    cache = numba_cache_dir()
    if scheduler is None:
        n = workers or default_workers()
        cache.mkdir(parents=True, exist_ok=True)
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0",
                               silence_logs=logging.ERROR, env={"NUMBA_CACHE_DIR": str(cache)})
        try:
            client = Client(cluster)
            try:
                client.register_plugin(_numba_cache_plugin(str(cache)))
                yield client
            finally:
                client.close()
        finally:
            cluster.close()
        return
    if workers is not None:
        raise InputError("--workers: applies to the embedded cluster only; the cluster at --scheduler "
                         "has its own workers")
    kwargs: dict[str, Any]
    if Path(scheduler).is_file():
        kwargs = {"scheduler_file": scheduler}
    else:
        kwargs = {"address": scheduler if "://" in scheduler else f"tcp://{scheduler}"}
    try:
        client = Client(timeout=connect_timeout_s, **kwargs)
    except (OSError, TimeoutError) as exc:
        raise InputError(f"--scheduler: cannot reach {scheduler} within {connect_timeout_s:g} s "
                         f"({type(exc).__name__})") from None
    except ValueError as exc:
        raise InputError(f"--scheduler: bad address {scheduler!r} ({exc})") from None
    try:
        try:
            client.wait_for_workers(1, timeout=WORKER_WAIT_S)
        except TimeoutError:
            raise InputError(f"--scheduler: the cluster at {scheduler} has no workers "
                             f"(waited {WORKER_WAIT_S:g} s)") from None
        # workers elsewhere use their own user cache directory
        client.register_plugin(_numba_cache_plugin(None))
        yield client
    finally:
        client.close()


# ---------------------------------------------------------------------------------------------
# the runner


@dataclass(frozen=True, slots=True, kw_only=True)
class SweepSummary:
    """What a run of :func:`run_sweep` did."""

    out_dir: Path
    total: int
    already_done: int
    computed: int
    failed: tuple[str, ...]
    elapsed_s: float
    results_path: Path

    @property
    def missing(self) -> int:
        return self.total - self.already_done - self.computed


def run_sweep(plan: SweepPlan, out_dir: str | Path, *, scheduler: str | None = None, workers: int | None = None,
              force_new_spec: bool = False, progress: bool = True,
              connect_timeout_s: float = CONNECT_TIMEOUT_S) -> SweepSummary:
    """Compute every point of ``plan`` missing from ``out_dir``, then rebuild ``results.parquet``.

    Points run as Dask futures, consumed with ``as_completed``; each finished point is written
    atomically as it completes, a point that raises is recorded in ``failed/`` and the others
    go on. Progress (points done/total, failures, ETA) goes to stderr when ``progress``.
    """
    if workers is not None and workers < 1:
        raise InputError(f"--workers: must be a positive integer, got {workers}")
    if workers is not None and scheduler is not None:
        raise InputError("--workers: applies to the embedded cluster only; the cluster at --scheduler "
                         "has its own workers")
    start = time.monotonic()
    out = prepare_out_dir(plan, Path(out_dir), force_new_spec)
    done = {p.point_id for p in plan.points if out.point(p.point_id).exists()}
    todo = [p for p in plan.points if p.point_id not in done]
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    _write_json(out.meta, _meta_record(plan, {"state": "running", "started": started,
                                              "done": len(done), "total": len(plan)}))
    failed: list[str] = []
    computed = 0
    if todo:
        log.info("sweep %s: %d of %d points to compute", plan.name, len(todo), len(plan))
        with connect(scheduler, workers, connect_timeout_s) as client:
            computed, failed = _compute(client, todo, out, len(plan), len(done), progress)
    frame = collect_results(out.root, [p.point_id for p in plan.points])
    from sparsesim.results import write_table

    write_table(frame, out.results)
    finished = len(done) + computed
    _write_json(out.meta, _meta_record(plan, {
        "state": "complete" if finished == len(plan) else "incomplete", "started": started,
        "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "done": finished, "failed": len(failed), "total": len(plan)}))
    return SweepSummary(out_dir=out.root, total=len(plan), already_done=len(done), computed=computed,
                        failed=tuple(failed), elapsed_s=time.monotonic() - start, results_path=out.results)


def _compute(client, todo: list[Point], out: SweepDir, total: int, done: int, progress: bool) -> tuple[int, list]:
    """Submit ``todo`` through a bounded window of futures and persist each as it completes."""
    from distributed import as_completed
    from tqdm import tqdm

    threads = sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()) or 1
    window = max(8, 4 * threads)  # keeps every worker busy; a kill loses at most this many
    by_key: dict[str, Point] = {}
    queue = iter(todo)

    def submit(point: Point):
        fut = client.submit(run_point, point, key=f"sparsesim-point-{point.point_id}", pure=False)
        by_key[fut.key] = point
        return fut

    failed: list[str] = []
    computed = 0
    bar = tqdm(total=total, initial=done, disable=not progress, file=sys.stderr, unit="pt",
               desc="sweep", dynamic_ncols=True, smoothing=0.05, postfix={"failed": 0})
    try:
        ac = as_completed([submit(p) for p in itertools.islice(queue, window)])
        for fut in ac:
            point = by_key.pop(fut.key)
            if fut.status == "finished":
                frame = fut.result()
                _atomic_write(out.point(point.point_id), lambda tmp, f=frame: f.to_parquet(tmp, index=False))
                out.failure(point.point_id).unlink(missing_ok=True)
                computed += 1
            else:
                _record_failure(out, point, fut)
                failed.append(point.point_id)
                bar.set_postfix(failed=len(failed), refresh=False)
            fut.release()
            bar.update(1)
            nxt = next(queue, None)
            if nxt is not None:
                ac.add(submit(nxt))
    finally:
        bar.close()
    return computed, failed


def _record_failure(out: SweepDir, point: Point, fut) -> None:
    """Write ``failed/<id>.json`` with the error; attempts are counted across runs."""
    if fut.status == "error":
        exc = fut.exception()
        tb = "".join(traceback.format_exception(type(exc), exc, fut.traceback()))
        error, message = type(exc).__name__, str(exc)
    else:  # cancelled: the scheduler dropped the task (lost cluster); not the point's fault
        error, message, tb = "Cancelled", f"task {fut.status}", ""
    path = out.failure(point.point_id)
    attempts = 0
    if path.exists():
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            attempts = int(json.loads(path.read_text())["attempts"])
    record = {**point.describe(), "error_type": error, "error": message.strip().splitlines()[0] if message.strip()
              else error, "message": message, "traceback": tb, "attempts": attempts + 1,
              "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    _write_json(path, record)
    log.warning("point %s (%s, %s) failed: %s: %s", point.point_id, point.workload.label, point.dataflow,
                error, record["error"])
