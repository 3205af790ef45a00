"""Sweep specs: a YAML spec becomes a validated :class:`SweepPlan` of design points.

A sweep spec names a base accelerator, axes over dotted config paths, workloads, dataflows and
sparsity settings; :func:`load_spec` expands it into a :class:`SweepPlan` of points, each one
(config, workload, dataflow) with a stable id, and validates every point's config with
:func:`sparsesim.hardware.config.build` *before* anything runs. Nothing here runs a simulation or
touches an output directory (:mod:`.runner` and :mod:`.store` do).

Spec (paths are relative to the spec file)::

    name: array-buffer
    base: {accel: edge32, set: {array.fold_overlap: false}}   # or just  base: edge32
    seed: 0                                  # for random axes
    max_points: 100000                       # refuse a larger plan (the default; raise it if you mean it)
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

Size. The plan counts its points before building any: the product of every group's length (a
grid group's value lists multiplied, a zip group's list length, a random group's ``samples``)
times the sparsity settings, the workloads and the dataflows (a workload's phases are rows of
its points, not points). A spec above ``max_points`` (default 100000, :data:`DEFAULT_MAX_POINTS`)
is refused with that count; give ``max_points: N`` in the spec to raise the limit. The points
themselves are produced lazily, in a fixed order, by :meth:`SweepPlan.iter_points`; building a
point resolves and validates its config, so a bad value is reported when the point is reached
(:func:`sparsesim.sweeps.runner.run_sweep` walks every point once before it writes or runs
anything). Random row ``i`` of group ``g`` is drawn from its own generator seeded with
``(seed, g, i)``: the same spec and seed give the same samples, whoever reads how many of them.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sparsesim.core.errors import InputError
from sparsesim.core.registry import suggest
from sparsesim.hardware.config import AccelConfig, apply_overrides, build, parse_override, read_mapping, schema_paths, to_dict
from sparsesim.hardware.presets import FILE_SUFFIXES, preset_mapping, preset_names
from sparsesim.simulation.assemble import build_config
from sparsesim.simulation.engine import dataflow_choices
from sparsesim.sparsity import feature_labels, feature_list, parse_features
from sparsesim.workload_args import LLM_KEYS, WORKLOAD_KINDS, WorkloadSpec
from sparsesim.workloads.gemm import PHASES, parse_phase
from sparsesim.workloads.llm_networks import DECODERS
from sparsesim.workloads.networks import NETWORKS

SPEC_KEYS = ("name", "description", "base", "seed", "max_points", "axes", "workloads", "dataflows", "sparsity")
AXIS_KINDS = ("grid", "zip", "random")
FORMAT_VERSION = 1
"""Version of the normalized spec and of ``sweep.json``."""
DEFAULT_MAX_POINTS = 100_000
"""Largest plan a spec may expand to unless it sets ``max_points`` (a guard against a typo in
``samples`` or a grid that multiplies out to millions of points, not a limit of the runner)."""

__all__ = ["AXIS_KINDS", "DEFAULT_MAX_POINTS", "FORMAT_VERSION", "SPEC_KEYS", "WORKLOAD_KINDS", "AxisGroup",
           "Distribution", "Point", "SweepPlan", "WorkloadSpec", "load_spec", "stable_hash", "plain", "plan_sweep",
           "sparsity_label"]


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
class Distribution:
    """What a random axis draws for one path: one of ``choices``, or a number in [low, high]
    (uniform, or uniform in log space when ``log``; rounded to an integer when ``integer``)."""

    choices: tuple[Any, ...] | None = None
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    integer: bool = False

    def draw(self, rng: np.random.Generator) -> Any:
        if self.choices is not None:
            return self.choices[int(rng.integers(0, len(self.choices)))]
        if self.log:
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            value = float(rng.uniform(self.low, self.high))
        if self.integer:
            return int(min(max(round(value), self.low), self.high))
        return float(f"{value:.6g}")

    def normalized(self) -> dict:
        if self.choices is not None:
            return {"choices": plain(list(self.choices))}
        return {"min": self.low, "max": self.high, "log": self.log}


@dataclass(frozen=True, slots=True, kw_only=True)
class AxisGroup:
    """A group of axes: ``grid`` paths vary independently, ``zip``/``random`` paths together.

    Nothing is expanded: :meth:`step` computes the group's ``i``-th assignment on demand, so a
    group of a billion random samples costs no more memory than one of ten.
    """

    kind: str
    paths: tuple[str, ...]
    values: tuple[tuple[Any, ...], ...] = ()  # grid: each path's value list
    rows: tuple[tuple[Any, ...], ...] = ()  # zip: one tuple per step
    dists: tuple[Distribution, ...] = ()  # random: one distribution per path
    samples: int = 0  # random
    seed: tuple[int, ...] = ()  # random: (spec seed, group index)

    @property
    def size(self) -> int:
        """How many steps the group has (a grid's value lists multiplied)."""
        if self.kind == "grid":
            return math.prod(len(v) for v in self.values)
        if self.kind == "zip":
            return len(self.rows)
        return self.samples

    def step(self, i: int) -> tuple[tuple[str, Any], ...]:
        """The ``i``-th assignment ``((path, value), ...)``, in ``itertools.product`` order for a grid."""
        if self.kind == "grid":
            picked = []
            for vals in reversed(self.values):  # the last path varies fastest
                i, j = divmod(i, len(vals))
                picked.append(vals[j])
            return tuple(zip(self.paths, reversed(picked)))
        if self.kind == "zip":
            return tuple(zip(self.paths, self.rows[i]))
        # a generator per sample, seeded by (spec seed, group index, sample index): a sample never
        # depends on how many were drawn before it, and adding a group never changes another's
        # (no global RNG, STYLE: seeds in the config)
        rng = np.random.default_rng([*self.seed, i])
        return tuple(zip(self.paths, (d.draw(rng) for d in self.dists)))

    def normalized(self) -> dict:
        """The group as it enters the normalized spec (and its hash)."""
        if self.kind == "grid":
            return {"kind": self.kind, "paths": list(self.paths), "values": [plain(list(v)) for v in self.values]}
        if self.kind == "zip":
            return {"kind": self.kind, "paths": list(self.paths), "values": [plain(list(r)) for r in self.rows]}
        return {"kind": self.kind, "paths": list(self.paths), "samples": self.samples,
                "values": [d.normalized() for d in self.dists]}


@dataclass(frozen=True, slots=True, kw_only=True)
class SweepPlan:
    """A sweep: the normalized spec, its hash, its size, and the parts its points are made of.

    :meth:`iter_points` yields the points one at a time; :attr:`points` holds them all (for
    small plans: tests, examples).
    """

    name: str
    spec_path: Path
    spec: dict = field(compare=False)
    spec_hash: str
    groups: tuple[dict, ...]  # [{"kind", "paths"}] in spec order, for reports
    count: int  # combinations the spec expands to; equal points among them are produced once
    axes: tuple[AxisGroup, ...] = field(compare=False, repr=False)
    base: dict = field(compare=False, repr=False)  # base config mapping the axes are applied to
    sparsity_steps: tuple[Any, ...] = field(compare=False, repr=False)  # (None,) without a sparsity list
    workloads: tuple[WorkloadSpec, ...] = field(compare=False, repr=False)
    dataflows: tuple[str, ...] = field(compare=False, repr=False)
    where: str = field(compare=False, repr=False)  # the spec's file name, for messages

    def iter_points(self) -> Iterator[Point]:
        """Every point in plan order (``index`` 0, 1, ...), built as it is reached.

        Resolving a point's config validates it, so this raises :class:`InputError` at the first
        bad one. Besides the point being built, the only state is the set of ids already
        produced (equal configs are one point): about a hundred bytes a point.
        """
        seen: set[str] = set()
        for assignment in _combinations(self.axes):
            for setting in self.sparsity_steps:
                pairs = list(assignment) + ([] if setting is None else [("sparsity", setting)])
                config, label = _resolve_config(self.base, pairs, self.where)
                kinds = tuple(str(f.get("kind")) for f in config.get("sparsity", []) if isinstance(f, dict))
                axes = assignment + ((("sparsity", label),) if setting is not None else ())
                for wl in self.workloads:
                    for df in self.dataflows:
                        pid = stable_hash({"config": config, "workload": wl.identity(), "dataflow": df})[:16]
                        if pid in seen:  # e.g. two random samples that drew the same values
                            continue
                        seen.add(pid)
                        yield Point(point_id=pid, index=len(seen) - 1, config=config, workload=wl,
                                    dataflow=df, sparsity=label, sparsity_kinds=kinds, axes=axes)

    @property
    def points(self) -> tuple[Point, ...]:
        """Every point, in memory (each holds its whole config): for small plans only."""
        return tuple(self.iter_points())


def _combinations(groups: Sequence[AxisGroup]) -> Iterator[tuple[tuple[str, Any], ...]]:
    """The cartesian product of the groups' steps (last group fastest), one at a time;
    ``itertools.product`` would first expand every group into a list."""
    if not groups:
        yield ()
        return
    first, rest = groups[0], groups[1:]
    for i in range(first.size):
        head = first.step(i)
        for tail in _combinations(rest):
            yield head + tail


def load_spec(path: str | Path) -> SweepPlan:
    """Read a sweep spec file and turn it into a :class:`SweepPlan` (no point is built yet)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such sweep spec file")
    return plan_sweep(read_mapping(path), path)


def plan_sweep(data: dict, spec_path: Path) -> SweepPlan:
    """Validate spec mapping ``data`` (read from ``spec_path``), count its points and refuse
    more than ``max_points``; the points are built by :meth:`SweepPlan.iter_points`."""
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
    max_points = data.get("max_points", DEFAULT_MAX_POINTS)
    if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 1:
        raise InputError(f"{where}: max_points: expected a positive integer, got {max_points!r}")

    base_name, base_data, base_set = _parse_base(data.get("base"), base_dir, where)
    paths = schema_paths(AccelConfig)
    groups = _parse_axes(data.get("axes"), paths, seed, where)
    sparsity = _parse_sparsity(data.get("sparsity"), where)
    if sparsity is not None and any("sparsity" in g.paths for g in groups):
        raise InputError(f"{where}: sparsity: given both as a top-level list and as an axis; use one")
    workloads = _parse_workloads(data.get("workloads"), base_dir, where)
    dataflows = _parse_dataflows(data.get("dataflows", ["best"]), where)
    sparsity_steps = (None,) if sparsity is None else tuple(sparsity)

    factors = [(f"axes[{gi}] {g.kind}", g.size) for gi, g in enumerate(groups)]
    factors += [("sparsity settings", len(sparsity_steps))] if sparsity is not None else []
    factors += [("workloads", len(workloads)), ("dataflows", len(dataflows))]
    count = math.prod(n for _, n in factors)
    if count == 0:
        raise InputError(f"{where}: the sweep has no points")
    if count > max_points:
        shown = " x ".join(f"{what} {n:,}" for what, n in factors)
        raise InputError(f"{where}: the sweep expands to {count:,} points ({shown}), above max_points "
                         f"{max_points:,}; set max_points: {count} in the spec if you mean it")

    normalized = {
        "format": FORMAT_VERSION,
        "name": name,
        "description": str(data.get("description", "")),
        "base": {"accel": base_name, "set": [[k, plain(v)] for k, v in base_set]},
        "seed": seed,
        "axes": [g.normalized() for g in groups],
        "sparsity": None if sparsity is None else [plain(s) for s in sparsity],
        # file digests stay out of the spec hash: a re-captured trace makes new points, not a new spec
        "workloads": [{k: v for k, v in w.identity().items() if k != "digest"} for w in workloads],
        "dataflows": list(dataflows),
    }  # max_points stays out: raising the limit does not change a point
    spec_hash = stable_hash(normalized)

    group_info = tuple({"kind": g.kind, "paths": list(g.paths)} for g in groups)
    if sparsity is not None and len(sparsity) > 1:
        group_info += ({"kind": "grid", "paths": ["sparsity"]},)
    return SweepPlan(name=name, spec_path=spec_path.resolve(), spec=normalized, spec_hash=spec_hash,
                     groups=group_info, count=count, axes=tuple(groups), base=base_data,
                     sparsity_steps=sparsity_steps, workloads=tuple(workloads), dataflows=dataflows, where=where)


def _parse_base(raw: Any, base_dir: Path, where: str) -> tuple[str, dict, list[tuple[str, Any]]]:
    """``base: edge32`` or ``base: {accel: FILE|NAME, set: {path: value} | [path=value, ...]}``."""
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
    if Path(accel).suffix.lower() in FILE_SUFFIXES:
        file = (base_dir / accel).resolve()
        if not file.is_file():
            raise InputError(f"{where}: base.accel: no such file {str(file)!r}")
        accel = str(file)
        data = preset_mapping(accel)  # with its extends chain
    else:
        names = preset_names()
        if accel not in names:
            raise InputError(f"{where}: base.accel: unknown preset {accel!r}{suggest(accel, names)}")
        data = preset_mapping(accel)
    sets = raw.get("set") or {}
    if isinstance(sets, dict):
        pairs = list(sets.items())
    elif isinstance(sets, list) and all(isinstance(s, str) for s in sets):
        pairs = [parse_override(s, f"{where}: base.set") for s in sets]
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


def _parse_axes(raw: Any, paths: dict, seed: int, where: str) -> list[AxisGroup]:
    """Axis groups in spec order (nothing sampled or expanded)."""
    if raw is None or raw == {} or raw == []:
        return []
    if isinstance(raw, dict):  # shorthand: one grid group
        raw = [{"kind": "grid", "values": raw}]
    if not isinstance(raw, list):
        raise InputError(f"{where}: axes: expected a list of axis groups or a mapping path: [values]")
    groups: list[AxisGroup] = []
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
            dists = tuple(_distribution(values[p], f"{at}.values.{p}") for p in group_paths)
            groups.append(AxisGroup(kind=kind, paths=group_paths, dists=dists, samples=samples, seed=(seed, gi)))
            continue
        if "samples" in group:
            raise InputError(f"{at}.samples: only random axes take samples")
        lists = {}
        for path in group_paths:
            vals = values[path]
            if not isinstance(vals, list):
                raise InputError(f"{at}.values.{path}: expected a list of values, got {vals!r}")
            lists[path] = tuple(vals)
        if kind == "zip":
            lengths = {len(v) for v in lists.values()}
            if len(lengths) > 1:
                raise InputError(f"{at}.values: zip lists must have one length, got "
                                 + ", ".join(f"{p}: {len(v)}" for p, v in lists.items()))
            groups.append(AxisGroup(kind=kind, paths=group_paths, rows=tuple(zip(*lists.values()))))
        else:
            groups.append(AxisGroup(kind=kind, paths=group_paths, values=tuple(lists.values())))
    return groups


def _distribution(dist: Any, at: str) -> Distribution:
    """A list (uniform choice), ``{choices: [...]}`` or ``{min, max[, log]}``."""
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
        return Distribution(choices=tuple(choices))
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
    return Distribution(low=lo, high=hi, log=use_log, integer=isinstance(lo, int) and isinstance(hi, int))


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
        cfg = build_config(base, pairs)
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
