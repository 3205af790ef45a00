"""Sweep specs: a YAML spec becomes a validated :class:`SweepPlan` of design points.

A sweep spec names a base accelerator, axes over dotted config paths, workloads, dataflows and
sparsity settings; :func:`load_spec` expands it into a :class:`SweepPlan` of points, each one
(config, workload, dataflow) with a stable id, and validates every point's config with
:func:`sparsesim.accel.config.build` *before* anything runs. Nothing here runs a simulation or
touches an output directory (:mod:`.runner` and :mod:`.store` do).

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

A workload's ``phases`` default to ``fwd`` for every kind, traces included (unlike ``run
--trace``, which replays every recorded phase), so a point's id does not depend on what a
trace happens to hold; give ``phases: training`` to replay all three.
A trace workload's files are checked against their recorded SHA-256 as a point first reads
them; ``verify: false`` skips that (``run --no-verify``) and gives its points ids of their own,
so a verified sweep never reuses what an unverified one computed.

Groups combine as a cartesian product, as do sparsity settings, workloads and dataflows. The
point id hashes the *fully resolved* config (defaults filled in), the workload (including a
digest of a topology file or trace manifest) and the dataflow, so equal points share results
and a changed preset or trace yields new points rather than stale ones.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sparsesim.accel.config import AccelConfig, apply_overrides, build, parse_override, read_mapping, schema_paths, to_dict
from sparsesim.accel.sparsity import check_hardware, feature_labels, feature_list, parse_features
from sparsesim.workload_args import LLM_KEYS, WORKLOAD_KINDS, WorkloadSpec
from sparsesim.workloads.errors import InputError
from sparsesim.workloads.gemm import PHASES, parse_phase
from sparsesim.workloads.registry import suggest

SPEC_KEYS = ("name", "description", "base", "seed", "axes", "workloads", "dataflows", "sparsity")
AXIS_KINDS = ("grid", "zip", "random")
FORMAT_VERSION = 1
"""Version of the normalized spec and of ``sweep.json``."""

__all__ = ["AXIS_KINDS", "FORMAT_VERSION", "SPEC_KEYS", "WORKLOAD_KINDS", "AxisGroup", "Point", "SweepPlan",
           "WorkloadSpec", "load_spec", "stable_hash", "plain", "plan_sweep", "sparsity_label"]


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
                "sparsity_kinds": list(self.sparsity_kinds), "axes": {k: plain(v) for k, v in self.axes}}


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
        "base": {"accel": base_name, "set": [[k, plain(v)] for k, v in base_set]},
        "seed": seed,
        "axes": [{"kind": g.kind, "paths": list(g.paths),
                  "values": ([plain(grid_values[p]) for p in g.paths] if g.kind == "grid"
                             else [plain(list(r)) for r in g.rows])} for g in groups],
        "sparsity": None if sparsity is None else [plain(s) for s in sparsity],
        # file digests stay out of the spec hash: a re-captured trace makes new points, not a new spec
        "workloads": [{k: v for k, v in w.identity().items() if k != "digest"} for w in workloads],
        "dataflows": list(dataflows),
    }
    spec_hash = stable_hash(normalized)

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
                    pid = stable_hash({"config": config, "workload": wl.identity(), "dataflow": df})[:16]
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


def _parse_sparsity(raw: Any, where: str) -> list[list] | None:
    """A list of settings; each ``dense``, a CLI string, a feature mapping, or a list of those."""
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw:
        raise InputError(f"{where}: sparsity: expected a non-empty list of settings, got {raw!r}")
    settings = []
    for i, setting in enumerate(raw):
        at = f"{where}: sparsity[{i}]"
        if setting in (None, "dense", "none"):
            setting = []
        if not isinstance(setting, (str, dict, list)):
            raise InputError(f"{at}: expected dense, a feature mapping or a list of them, got {setting!r}")
        settings.append(feature_list(setting, at))
    return settings


def sparsity_label(features: Sequence) -> str:
    """Label of a sparsity setting, via the feature registry when available."""
    if not features:
        return "dense"
    return feature_labels(parse_features(tuple(features)))


def _resolve_config(base: dict, pairs: list[tuple[str, Any]], where: str) -> tuple[dict, str]:
    """Apply one point's axis values to the base config and validate the result."""
    try:
        data = apply_overrides(base, pairs)
        cfg = build(AccelConfig, data)
        if cfg.sparsity:
            check_hardware(parse_features(cfg.sparsity), cfg)
    except InputError as exc:
        shown = ", ".join(f"{k}={_short(v)}" for k, v in pairs) or "the base config"
        raise InputError(f"{where}: point with {shown}: {exc}") from None
    return plain(to_dict(cfg)), sparsity_label(cfg.sparsity)


def _short(value: Any) -> str:
    text = json.dumps(plain(value), sort_keys=True)
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
        allowed = WORKLOAD_KINDS + ("batch", "phases", "verify") + LLM_KEYS
        for key in item:
            if key not in allowed:
                raise InputError(f"{at}.{key}: unknown key{suggest(str(key), allowed)}")
        if len(kinds) != 1:
            raise InputError(f"{at}: give exactly one of {', '.join(WORKLOAD_KINDS)}")
        kind = kinds[0]
        phases = _parse_phases(item.get("phases"), f"{at}.phases")
        if "batch" in item and kind != "network":
            raise InputError(f"{at}.batch: only network workloads take a batch size")
        verify = item.get("verify", True)
        if "verify" in item and kind != "trace":
            raise InputError(f"{at}.verify: only trace workloads have checksums to verify")
        if not isinstance(verify, bool):
            raise InputError(f"{at}.verify: expected true or false, got {verify!r}")
        value = item[kind]
        llm = {key: item[key] for key in LLM_KEYS if key in item}
        if llm and kind != "network":
            raise InputError(f"{at}.{next(iter(llm))}: only for the LLM networks")
        if kind == "network":
            from sparsesim.workloads.llm_networks import DECODERS
            from sparsesim.workloads.networks import NETWORKS

            names = NETWORKS.names() + DECODERS.names()
            if not isinstance(value, str) or value not in names:
                raise InputError(f"{at}.network: unknown network {value!r}{suggest(str(value), names)}")
            if llm and value not in DECODERS:
                raise InputError(f"{at}.{next(iter(llm))}: only for the LLM networks ({', '.join(DECODERS.names())})")
            batch = item.get("batch", 1)
            if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
                raise InputError(f"{at}.batch: expected a positive integer, got {batch!r}")
            for key in ("prompt_len", "gen_len"):
                v = llm.get(key)
                if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0 or (key == "prompt_len" and v < 1)):
                    raise InputError(f"{at}.{key}: expected a {'positive' if key == 'prompt_len' else 'non-negative'} "
                                     f"integer, got {v!r}")
            zeros = llm.get("act_sparsity")
            if zeros is not None and (isinstance(zeros, bool) or not isinstance(zeros, (int, float)) or not 0 <= zeros < 1):
                raise InputError(f"{at}.act_sparsity: expected a number in [0, 1), got {zeros!r}")
            if value in DECODERS and item.get("phases") is None:
                phases = None  # an LLM network's own phases: prefill and decode
            out.append(WorkloadSpec(kind=kind, source=value, batch=batch, phases=phases, **llm))
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
            out.append(WorkloadSpec(kind=kind, source=str(path), phases=phases, digest=digest, verify=verify))
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


def plain(value: Any) -> Any:
    """A JSON-ready copy: dataclasses to mappings, tuples to lists, enums to values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, np.generic):
        return value.item()
    return value




def stable_hash(data: Any) -> str:
    blob = json.dumps(plain(data), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()
