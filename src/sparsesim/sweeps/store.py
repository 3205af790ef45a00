"""The output directory of a sweep: where each point's rows, failures and the metadata live.

Layout::

    sweep.json              normalized spec, its hash, the point list, status of the last run
    points/<id>.parquet     one file per finished point (rows of sparsesim.simulation.results.to_frame)
    failed/<id>.json        error of a point that raised (retried on the next run)
    results.parquet         every point of the plan concatenated, rebuilt at the end of a run

Every file is written atomically (:mod:`sparsesim.core.atomic`), so killing the client
or a worker loses at most the points in flight and never leaves a half-written point that
looks finished. Nothing here runs a simulation or talks to Dask.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import itertools
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sparsesim import __version__
from sparsesim.sweeps.spec import FORMAT_VERSION, Point, SweepPlan
from sparsesim.core.atomic import atomic_write, atomic_write_text
from sparsesim.core.errors import InputError
from sparsesim.core.outputs import check_output_path

log = logging.getLogger(__name__)


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


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` as JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(data, indent=1, default=str) + "\n")


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


_TEMPORARY = re.compile(r"\..+\.[0-9a-f]{12}\.tmp")
"""The names :mod:`sparsesim.core.atomic` gives its temporary files (a user's own are left alone)."""


def prepare_out_dir(plan: SweepPlan, root: Path, force_new_spec: bool, field: str = "out") -> SweepDir:
    """Create or reopen ``root`` for ``plan``; refuse another spec's directory or a foreign one.

    ``field`` names ``root`` in messages (``out`` in the Python API). Nothing the user put in
    a sweep directory is deleted: a resumed sweep adds and rewrites only its own files.
    """
    cli = field.startswith("--")
    out = SweepDir(root)
    check_output_path(root, field=field, kind="dir", inputs=[("spec", plan.spec_path)])
    if out.meta.exists():
        old = read_meta(root)
        if old["spec_hash"] != plan.spec_hash and not force_new_spec:
            raise InputError(f"{field}: {root} holds a different sweep spec ({old.get('name', '?')}, "
                             f"hash {old['spec_hash'][:12]}); use another {field} or pass "
                             f"{'--force-new-spec' if cli else 'force_new_spec=True'}")
    elif root.exists() and any(root.iterdir()):
        raise InputError(f"{field}: {root} is not empty and holds no sweep.json; choose a new or empty directory")
    for d in (out.root, out.points, out.failed):
        d.mkdir(parents=True, exist_ok=True)
    for stale in itertools.chain(out.points.glob(".*.tmp"), out.failed.glob(".*.tmp"), out.root.glob(".*.tmp")):
        if _TEMPORARY.fullmatch(stale.name):  # left by a writer killed between write and rename
            stale.unlink(missing_ok=True)
    return out


def meta_record(plan: SweepPlan, points: Sequence[dict], status: dict) -> dict:
    """The ``sweep.json`` of ``plan``: ``points`` are the summaries (``Point.describe()``) in plan order."""
    return {"format": FORMAT_VERSION, "name": plan.name, "spec_path": str(plan.spec_path),
            "spec_hash": plan.spec_hash, "spec": plan.spec, "groups": list(plan.groups),
            "sparsesim_version": __version__, "status": status,
            "points": list(points)}


def collect_results(root: Path, point_ids: Sequence[str] | None = None):
    """Concatenate the point files of ``point_ids`` (default: every point of ``sweep.json``).

    Missing points are skipped; the frame holds each point exactly once, in plan order.
    """
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


def write_point(out: SweepDir, point_id: str, frame) -> None:
    """Store a finished point's rows (and forget an earlier failure of it)."""
    atomic_write(out.point(point_id), lambda tmp: frame.to_parquet(tmp, index=False))
    out.failure(point_id).unlink(missing_ok=True)


def record_failure(out: SweepDir, point: Point, error: str, message: str, tb: str) -> None:
    """Write ``failed/<id>.json`` with the error; attempts are counted across runs."""
    path = out.failure(point.point_id)
    attempts = 0
    if path.exists():
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):  # a damaged record restarts the count
            attempts = int(json.loads(path.read_text())["attempts"])
    record = {**point.describe(), "error_type": error, "error": message.strip().splitlines()[0] if message.strip()
              else error, "message": message, "traceback": tb, "attempts": attempts + 1,
              "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    write_json(path, record)
    log.warning("point %s (%s, %s) failed: %s: %s", point.point_id, point.workload.label, point.dataflow,
                error, record["error"])
