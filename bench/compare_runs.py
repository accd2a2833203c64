"""Compare the outputs of two runs of the pipeline: what a refactor must leave byte-identical.

Run: ``python bench/compare_runs.py BEFORE_TREE AFTER_TREE`` (two checkouts that each ran ``dvc repro``).
Weights, 16- and 8-bit predictions, ensemble PNGs, index CSVs, shards and the submission zip's members are compared
by sha256; per-frame eval CSVs and the leaderboard's CSVs cell by cell; metrics JSONs key by key. Timing fields
(``seconds_per_frame``, wall times, the readme's runtime line, the ``pareto`` flags derived from timing) and the
machine's description are left out. Prints the identical count and every difference; exits 1 when any score or file
differs.
"""

from __future__ import annotations

import hashlib
import json
import sys
import zipfile
from pathlib import Path

import pandas as pd

from pipeline.leaderboard.experiments import flatten as _flat  # dotted keys, lists as JSON text

TIMING = ("second", "wall_time", "git_commit", "cpu", "threads", "torch", "pareto")
BYTES = (
    "models/*.safetensors",
    "outputs/predictions/**/png16/*.png",
    "outputs/predictions/**/png8/*.png",
    "outputs/ensemble/**/*.png",
    "data/prepared/index/*.csv",
    "data/prepared/shards/*",
)
TABLES = ("outputs/eval/**/*.csv", "submissions/*.csv")
RECORDS = ("metrics/**/*.json",)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _timing(key: str) -> bool:
    return any(t in key.lower() for t in TIMING)


def _zip_members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {
            n: b"\n".join(line for line in z.read(n).splitlines() if not line.startswith(b"runtime"))
            for n in z.namelist()
        }


def compare(before: Path, after: Path) -> tuple[int, list[str]]:
    """(identical count, differences) between two trees."""
    same, diff = 0, []

    def pairs(patterns):
        for pattern in patterns:
            for p in sorted(before.glob(pattern)):
                q = after / p.relative_to(before)
                if not q.exists():
                    diff.append(f"{q}: missing")
                    continue
                yield p, q

    for p, q in pairs(BYTES):
        ok = _sha(p) == _sha(q)
        same += ok
        diff += [] if ok else [f"{p.relative_to(before)}: bytes differ"]
    for p, q in pairs(("submissions/*.zip",)):
        a, b = _zip_members(p), _zip_members(q)
        bad = sorted(n for n in set(a) | set(b) if a.get(n) != b.get(n))
        same += not bad
        diff += [f"{p.relative_to(before)}: members {bad[:5]} differ"] if bad else []
    for p, q in pairs(TABLES):
        x, y = pd.read_csv(p), pd.read_csv(q)
        cols = [c for c in x.columns if not _timing(c)]
        ok = list(x.columns) == list(y.columns) and x[cols].equals(y[cols])
        same += ok
        diff += [] if ok else [f"{p.relative_to(before)}: cells differ"]
    for p, q in pairs(RECORDS):
        x, y = _flat(json.loads(p.read_text())), _flat(json.loads(q.read_text()))
        bad = sorted(k for k in set(x) | set(y) if not _timing(k) and x.get(k) != y.get(k))
        same += not bad
        diff += [f"{p.relative_to(before)}: keys {bad[:5]} differ"] if bad else []
    return same, diff


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.splitlines()[2])
        return 2
    same, diff = compare(Path(sys.argv[1]), Path(sys.argv[2]))
    print(f"{same} identical, {len(diff)} different")
    for line in diff:
        print(f"  {line}")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
