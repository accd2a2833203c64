"""What the folder-layout indexers (GoPro, SIDD, Rain13K) share: pairing input and target folders by file name,
decoding every image to catch truncation, telling which benchmark a tree looks like, and the error for a wrong one.

Every indexer produces the table REDS produces (``pipeline.data.reds.COLUMNS`` + ``HASH_COLUMNS``: ``blur_path`` is
the degraded input, ``sharp_path`` the target) plus ``TASK_COLUMNS`` (which task's protocol scores the row and which
test set it belongs to), mapped onto the pipeline's splits ``train``, ``val``, ``val300`` (the scored split) and
``test300`` (the packaged split). Frame names are ``<seq>_<frame>`` so the leaderboard's cluster bootstrap
(``pipeline.leaderboard.stats.sequence_of``) resamples whole scenes or source images.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline.data.reds import COLUMNS, HASH_COLUMNS, DatasetError, probe_images

__all__ = [
    "IMAGE_EXTENSIONS",
    "INDEX_COLUMNS",
    "SPLIT_NAMES",
    "TASK_COLUMNS",
    "IndexOptions",
    "LayoutError",
    "fill_probes",
    "guess_layout",
    "list_images",
    "pair_folders",
    "split_stem",
    "tables_from_rows",
    "wrong_layout",
]

TASK_COLUMNS = ["task", "test_set"]  # the protocol that scores a row (pipeline.tasks) and its test set ("" in train)
INDEX_COLUMNS = COLUMNS + HASH_COLUMNS + TASK_COLUMNS
SPLIT_NAMES = ("train", "val", "val300", "test300")  # what prepare writes: index/<split>.csv
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")  # compared lower-case (SIDD writes .PNG)


class LayoutError(DatasetError):
    """A tree that is not the layout its ``data.source`` names (or mixes two): one line naming the path and what was
    expected. A ``DatasetError``, so the command line reports it as a user error."""

    def __init__(self, message: str):
        self.problems = [message]
        ValueError.__init__(self, message)


@dataclass(frozen=True)
class IndexOptions:
    """What an indexer may need beyond the root: processes, a folder for files it derives (SIDD's blocks; the tables
    name them there, absolute, and ``prepare`` rewrites the prefix to where its atomic rename puts them) and SIDD's
    block side (256 in the benchmark; tests use tiny blocks); the REDS layout's input suffix (``.jpg`` for Track 2,
    ``.png`` for the embedded set's lossless tasks)."""

    workers: int = 2
    derived_dir: Path | None = None
    sidd_block: int = 256
    blur_ext: str = ".jpg"


def split_stem(stem: str, separators: str = "-_") -> tuple[str, str]:
    """(sequence, frame) of a file stem, split at the last separator followed by digits only:
    ``GOPR0372_07_00-000047`` -> (``GOPR0372_07_00``, ``000047``), ``901_1`` -> (``901``, ``1``); a stem without
    such a tail is its own one-frame sequence (``rain`` -> (``rain``, ``0``))."""
    match = re.fullmatch(rf"(.+)[{re.escape(separators)}](\d+)", stem)
    return (match.group(1), match.group(2)) if match else (stem, "0")


def list_images(folder: Path, problems: list[str]) -> dict[str, Path]:
    """Stem -> path of the images in ``folder`` (hidden files ignored); any other entry, or two images with one stem,
    is a problem naming the path."""
    images: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if not (path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS):
            problems.append(f"{path}: unexpected entry (expected an image file: {', '.join(IMAGE_EXTENSIONS)})")
        elif path.stem in images:
            problems.append(f"{path}: a second image named {path.stem!r} (also {images[path.stem].name})")
        else:
            images[path.stem] = path
    return images


def pair_folders(input_dir: Path, target_dir: Path | None, problems: list[str]) -> list[tuple[str, Path, Path | None]]:
    """(stem, input, target) for the images of two folders paired by file stem; a missing folder, a missing partner
    and an empty folder are problems naming the path. ``target_dir`` None: inputs only (a test set without targets)."""
    missing = [d for d in (input_dir, target_dir) if d is not None and not d.is_dir()]
    for d in missing:
        problems.append(f"{d}: missing folder")
    if missing:
        return []
    inputs = list_images(input_dir, problems)
    targets = list_images(target_dir, problems) if target_dir is not None else {}
    if not inputs:
        problems.append(f"{input_dir}: no images")
    if target_dir is None:
        return [(stem, inputs[stem], None) for stem in sorted(inputs)]
    for stem in sorted(set(inputs) - set(targets)):
        problems.append(f"{inputs[stem]}: input without a target image {target_dir / stem}.*")
    for stem in sorted(set(targets) - set(inputs)):
        problems.append(f"{targets[stem]}: target without an input image {input_dir / stem}.*")
    return [(stem, inputs[stem], targets[stem]) for stem in sorted(set(inputs) & set(targets))]


def fill_probes(rows: list[dict], workers: int, problems: list[str], what: str) -> None:
    """Decode every input and target image of ``rows`` (in parallel) and fill ``height``, ``width`` and the md5s in
    place; an unreadable or truncated file and an input/target size mismatch are problems naming the file."""
    paths = [r[k] for r in rows for k in ("blur_path", "sharp_path") if r[k]]
    probed = probe_images(paths, workers, desc=f"validate {what} images") if paths else {}
    for r in rows:
        if "blur_md5" in r:  # derived files (SIDD blocks) come with their facts
            continue
        bh, bw, r["blur_md5"], berr = probed[r["blur_path"]]
        r["height"], r["width"], r["sharp_md5"] = bh, bw, ""
        if berr:
            problems.append(berr)
        if r["sharp_path"]:
            sh, sw, r["sharp_md5"], serr = probed[r["sharp_path"]]
            if serr:
                problems.append(serr)
            elif not berr and (sh, sw) != (bh, bw):
                problems.append(
                    f"{r['blur_path']}: size {bw}x{bh} differs from its target {r['sharp_path']} ({sw}x{sh})"
                )


def tables_from_rows(rows: dict[str, list[dict]], task: str) -> dict[str, pd.DataFrame]:
    """One ``INDEX_COLUMNS`` table per split from row dicts, with the ``task`` column set; rows keep their order (and
    their ``split`` value: the folder they come from, as REDS's val-300 rows say ``val``)."""
    tables = {}
    for split in SPLIT_NAMES:
        table = pd.DataFrame(rows.get(split, []), columns=INDEX_COLUMNS)
        table["task"] = task
        tables[split] = table.reset_index(drop=True)
    return tables


def _has(root: Path, *parts: str) -> bool:
    return (root.joinpath(*parts)).exists()


def guess_layout(root: Path) -> list[str]:
    """Which benchmark layouts ``root`` looks like (``data.source`` names), from its top-level folders only: the hint
    a wrong-layout error gives."""
    root = Path(root)
    found = []
    if _has(root, "train", "train_blur_jpeg") or _has(root, "val", "val_blur_jpeg"):
        found.append("reds")
    if _has(root, "Data") or any(_has(root, f"{k}BlocksSrgb.mat") for k in ("ValidationNoisy", "ValidationGt")):
        found.append("sidd")
    test_dir = root / "test"
    rain_sets = test_dir.is_dir() and any(
        (d / "input").is_dir() for d in test_dir.iterdir() if d.is_dir() and d.name not in ("input", "target")
    )
    if rain_sets and not _scene_folders(root / "train"):
        found.append("rain13k")
    if _has(root, "test", "input") or _scene_folders(root / "train") or _scene_folders(root / "test"):
        found.append("gopro")
    return found


def _scene_folders(split_dir: Path) -> bool:
    """Whether a split folder holds GoPro scene folders (``<scene>/blur`` and ``<scene>/sharp``)."""
    return split_dir.is_dir() and any((d / "blur").is_dir() for d in split_dir.iterdir() if d.is_dir())


def wrong_layout(root: Path, source: str, expected: str) -> LayoutError:
    """The one-line error for a tree that is not a ``source`` tree, naming what it looks like instead."""
    others = [g for g in guess_layout(root) if g != source]
    hint = f"; it looks like a {' / '.join(others)} tree (data.source: {others[0]})" if others else ""
    return LayoutError(f"{root}: not a {source} tree: expected {expected}{hint}")
