"""Print what changed in the curated reports' tables between a git revision and the work tree.

Usage: ``python tools/compare_reports.py REV [reports/NAME ...]``

For every CSV of a report that exists at ``REV`` and now, rows are matched on their text
columns (model, layer, design, ...) and each numeric column present in both versions is
printed as ``old -> new`` where it differs by more than 0.5 %. This is how the "what changed"
notes in ``reports/CHANGES.md`` are computed: nothing there is typed in by hand.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pandas as pd


def _old_csv(rev: str, path: Path) -> pd.DataFrame | None:
    try:
        text = subprocess.run(["git", "show", f"{rev}:{path.as_posix()}"], check=True, capture_output=True,
                              text=True).stdout
    except subprocess.CalledProcessError:
        return None
    return pd.read_csv(io.StringIO(text))


def compare(rev: str, report: Path) -> list[str]:
    lines = [f"## {report.as_posix()}"]
    for path in sorted(report.glob("*.csv")):
        old, new = _old_csv(rev, path), pd.read_csv(path)
        if old is None:
            lines.append(f"- {path.name}: new table")
            continue
        # key columns: text (model, layer, design), or numeric settings whose values are the
        # same set in both versions (a threshold, a window); measured values rarely are
        keys = [c for c in new.columns if c in old.columns and (
            not pd.api.types.is_numeric_dtype(new[c])
            or (set(new[c].dropna()) == set(old[c].dropna()) and new[c].nunique() < len(new)))]
        values = [c for c in new.columns if c in old.columns and c not in keys
                  and pd.api.types.is_numeric_dtype(new[c]) and pd.api.types.is_numeric_dtype(old[c])]
        renamed = sorted(set(old.columns) ^ set(new.columns))
        if renamed:
            lines.append(f"- {path.name}: columns only in one version: {', '.join(renamed)}")
        if not keys:
            continue
        merged = old.merge(new, on=keys, suffixes=("_old", "_new"))
        for _, row in merged.iterrows():
            changes = []
            for col in values:
                a, b = row[f"{col}_old"], row[f"{col}_new"]
                if pd.isna(a) or pd.isna(b):
                    continue
                if abs(b - a) > 0.005 * max(abs(a), abs(b), 1e-12):
                    changes.append(f"{col} {a:.4g} -> {b:.4g}")
            if changes:
                label = ", ".join(f"{k}={row[k]}" for k in keys)
                lines.append(f"- {path.name} [{label}]: " + "; ".join(changes))
    return lines


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    rev, reports = argv[0], [Path(p) for p in argv[1:]] or sorted(Path("reports").iterdir())
    for report in reports:
        if report.is_dir():
            print("\n".join(compare(rev, report)))
            print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
