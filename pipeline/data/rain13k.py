"""Rain13K (deraining, as MPRNet and the HINet release package it) indexing and validation.

Layout (the release's README): ``train/input`` + ``train/target`` (JPEGs in the release, paired by file name) and
``test/<set>/input`` + ``test/<set>/target`` for the five test sets Rain100H (100), Rain100L (100), Test100 (100),
Test1200 (1200) and Test2800 (2800) (``pipeline.tasks``' ``rain13k`` names them).

Split mapping: ``train/`` -> ``train``; the five test sets together -> the scored split (``val300``, and ``val``) and
the packaged split (``test300``), each row carrying its ``test_set``: the paper scores each set and reports their
average, and the results layout is one folder per set. A frame is ``<set>-<image>_<n>``: a stem ``901_1`` (Test2800:
one clean image under 14 rain types) splits into image ``901`` and ``n`` 1, any other stem is its own image (``n``
0), so the leaderboard resamples clean images, not single rain renderings. Sets share file names; the set prefix keeps
names unique.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.data.layouts import (
    IndexOptions,
    LayoutError,
    fill_probes,
    guess_layout,
    pair_folders,
    split_stem,
    tables_from_rows,
    wrong_layout,
)
from pipeline.data.reds import DatasetError
from pipeline.tasks import get_task

__all__ = ["index_rain13k"]

_EXPECTED = "train/input + train/target and test/<set>/input + test/<set>/target"


def _rows(split: str, test_set: str, pairs, prefix: str) -> list[dict]:
    out = []
    for stem, blur, sharp in pairs:
        image, n = split_stem(stem, "_")
        seq = f"{prefix}{image}"
        out.append(
            {
                "split": split,
                "seq": seq,
                "frame": n,
                "name": f"{seq}_{n}",
                "blur_path": str(blur),
                "sharp_path": str(sharp),
                "test_set": test_set,
            }
        )
    return out


def index_rain13k(root: Path, options: IndexOptions) -> dict[str, pd.DataFrame]:
    """Validate a Rain13K tree and index it: ``train``, and the five test sets as ``val``, ``val300`` and ``test300``.

    Not a Rain13K tree (a GoPro or SIDD tree), or ``test/`` holding ``input/`` beside set folders: one
    ``LayoutError`` line. A missing or unknown test set, a missing partner, a size mismatch, an unreadable or
    truncated image and an empty folder are listed together in one ``DatasetError``.
    """
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"{root}: Rain13K root folder does not exist")
    guesses = guess_layout(root)
    if not ((root / "train").is_dir() or (root / "test").is_dir()) or ("rain13k" not in guesses and guesses):
        raise wrong_layout(root, "rain13k", _EXPECTED)
    test_dir = root / "test"
    if (test_dir / "input").exists() or (test_dir / "target").exists():
        raise LayoutError(
            f"{test_dir}: mixed layouts: input/ or target/ directly under test/ (a GoPro-style test folder); "
            "expected one folder per test set (test/<set>/input, test/<set>/target)"
        )
    sets = get_task("rain13k").test_set_names
    problems: list[str] = []
    train = _rows("train", "", pair_folders(root / "train" / "input", root / "train" / "target", problems), "")
    test: list[dict] = []
    if not test_dir.is_dir():
        problems.append(f"{test_dir}: missing split folder (test)")
    else:
        for entry in sorted(test_dir.iterdir()):
            if not entry.name.startswith(".") and entry.name not in sets:
                problems.append(f"{entry}: unexpected entry (expected the test set folders {', '.join(sets)})")
        for name in sets:
            pairs = pair_folders(test_dir / name / "input", test_dir / name / "target", problems)
            test.extend(_rows("test", name, pairs, f"{name}-"))
    for split_rows in (train, test):
        seen: dict[str, str] = {}
        for r in split_rows:
            if r["name"] in seen:
                problems.append(f"{r['blur_path']}: frame name {r['name']!r} also given by {seen[r['name']]}")
            seen[r["name"]] = r["blur_path"]
    fill_probes(train + test, options.workers, problems, "Rain13K")
    if problems:
        raise DatasetError(root, problems, what="Rain13K")
    return tables_from_rows({"train": train, "val": test, "val300": test, "test300": test}, "rain13k")
