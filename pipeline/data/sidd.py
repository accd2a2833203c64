"""SIDD (sRGB denoising; Abdelhamed et al., 2018) indexing and validation: SIDD-Medium for training, the validation
blocks for scoring.

Layout (the HINet release's README): ``Data/<scene>/NOISY_SRGB_<n>.PNG`` + ``Data/<scene>/GT_SRGB_<n>.PNG`` (SIDD-Medium
sRGB, 160 scenes x 2 pairs) and, beside ``Data/``, ``ValidationNoisyBlocksSrgb.mat`` + ``ValidationGtBlocksSrgb.mat``
holding the arrays ``ValidationNoisyBlocksSrgb`` / ``ValidationGtBlocksSrgb`` of shape (40, 32, 256, 256, 3) uint8
(40 images x 32 blocks, RGB). ``BenchmarkNoisyBlocksSrgb.mat`` (``BenchmarkNoisyBlocksSrgb``, same shape, no ground
truth), when present, is the packaged split.

Split mapping: SIDD-Medium pairs -> ``train`` (frame ``<scene>_<n>``; the release crops them to 512 px sub-images,
stride 384, in ``scripts/data_preparation/sidd.py``: ``data.store: patches``, ``data.patch_size: 512``,
``data.patch_stride: 384``); the 1280 validation blocks -> the scored split (``val300``, and ``val``), named
``<image>_<block>`` (``0007_31``) so the leaderboard resamples whole images; the benchmark blocks -> ``test300`` (empty
without the file). The blocks are written as PNG files under ``IndexOptions.derived_dir`` (``prepare`` puts them in
``paths.data/blocks/``, atomically with the index) so the rest of the pipeline reads image paths; their paths in the
index are absolute (they are not under ``data.root``), so moving the repository reindexes.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from pipeline.data.layouts import IndexOptions, LayoutError, fill_probes, tables_from_rows, wrong_layout
from pipeline.data.reds import DatasetError
from pipeline.fileio import write_image

__all__ = ["BENCHMARK", "TEST_SET", "VALIDATION", "index_sidd", "load_blocks"]

TEST_SET = "SIDD"  # pipeline.tasks' test set name of the scored rows
VALIDATION = ("ValidationNoisyBlocksSrgb", "ValidationGtBlocksSrgb")  # file stem = array key
BENCHMARK = "BenchmarkNoisyBlocksSrgb"
_PAIR_FILE = re.compile(r"(GT|NOISY)_SRGB_(\d+)\.png", re.IGNORECASE)
_EXPECTED = "Data/<scene>/{NOISY,GT}_SRGB_<n>.PNG and ValidationNoisyBlocksSrgb.mat + ValidationGtBlocksSrgb.mat"


def load_blocks(path: Path, block: int, problems: list[str]) -> np.ndarray | None:
    """The (images, blocks, block, block, 3) uint8 array of a SIDD ``.mat`` (array key = file stem).

    A missing, unreadable or truncated file is a problem (None returned); a readable file without that array, or
    with another shape or dtype, is a ``LayoutError`` naming the file, the key and what was expected.
    """
    from scipy.io import loadmat, whosmat
    from scipy.io.matlab import MatReadError

    key = path.stem
    if not path.is_file():
        problems.append(f"{path}: missing file (expected array {key!r})")
        return None
    try:
        arrays = loadmat(path, variable_names=[key])
    except NotImplementedError:  # MATLAB v7.3 (HDF5) files
        problems.append(f"{path}: unreadable .mat (MATLAB v7.3/HDF5; scipy reads v4-v7.2)")
        return None
    except (MatReadError, OSError, ValueError, TypeError, EOFError) as exc:
        problems.append(f"{path}: unreadable or truncated .mat ({exc})")
        return None
    expected = f"(images, blocks, {block}, {block}, 3) uint8"
    if key not in arrays:
        found = [name for name, _, _ in whosmat(path)]  # loading was limited to the expected key
        raise LayoutError(f"{path}: no array {key!r} (found {found or 'none'}); expected {key} of shape {expected}")
    array = arrays[key]
    if array.ndim != 5 or array.shape[2:] != (block, block, 3) or array.dtype != np.uint8 or 0 in array.shape:
        raise LayoutError(f"{path}: array {key!r} has shape {array.shape} {array.dtype}; expected {expected}")
    return array


def _write_blocks(array: np.ndarray, kind: str, options: IndexOptions) -> list[tuple[str, str, str, str]]:
    """Write every block as ``<derived_dir>/<kind>/<image>_<block>.png``: (seq, frame, recorded path, md5)."""
    out = []
    images, blocks = array.shape[:2]
    where = Path(options.derived_dir).resolve()
    with tqdm(total=images * blocks, desc=f"write SIDD {kind} blocks", unit="block", disable=None) as bar:
        for i in range(images):
            for j in range(blocks):
                seq, frame = f"{i:04d}", f"{j:02d}"
                path = Path(options.derived_dir) / kind / f"{seq}_{frame}.png"
                write_image(path, np.ascontiguousarray(array[i, j]))
                out.append((seq, frame, str(where / kind / path.name), hashlib.md5(path.read_bytes()).hexdigest()))
                bar.update(1)
    return out


def _train_rows(data_dir: Path, problems: list[str]) -> list[dict]:
    """SIDD-Medium pairs of every scene folder, paired by their number; stray entries and lone halves are problems."""
    if not data_dir.is_dir():
        problems.append(f"{data_dir}: missing folder (SIDD-Medium sRGB scenes)")
        return []
    rows = []
    scenes = [d for d in sorted(data_dir.iterdir()) if not d.name.startswith(".")]
    for scene in scenes:
        if not scene.is_dir():
            problems.append(f"{scene}: unexpected entry (expected a scene folder)")
            continue
        halves: dict[str, dict[str, Path]] = {"GT": {}, "NOISY": {}}
        for path in sorted(scene.iterdir()):
            match = _PAIR_FILE.fullmatch(path.name)
            if path.name.startswith("."):
                continue
            if not (match and path.is_file()):
                problems.append(f"{path}: unexpected entry (expected GT_SRGB_<n>.PNG or NOISY_SRGB_<n>.PNG)")
                continue
            halves[match.group(1).upper()][match.group(2)] = path
        noisy, gt = halves["NOISY"], halves["GT"]
        for n in sorted(set(noisy) - set(gt)):
            problems.append(f"{noisy[n]}: noisy image without its ground truth GT_SRGB_{n}.PNG")
        for n in sorted(set(gt) - set(noisy)):
            problems.append(f"{gt[n]}: ground truth without its noisy image NOISY_SRGB_{n}.PNG")
        if not noisy and not gt:
            problems.append(f"{scene}: empty scene folder")
        for n in sorted(set(noisy) & set(gt)):
            rows.append(
                {
                    "split": "train",
                    "seq": scene.name,
                    "frame": n,
                    "name": f"{scene.name}_{n}",
                    "blur_path": str(noisy[n]),
                    "sharp_path": str(gt[n]),
                    "test_set": "",
                }
            )
    if not scenes:
        problems.append(f"{data_dir}: no scene folders (empty train split)")
    return rows


def _block_rows(split: str, noisy: list, gt: list | None, block: int) -> list[dict]:
    rows = []
    for k, (seq, frame, path, md5) in enumerate(noisy):
        rows.append(
            {
                "split": split,
                "seq": seq,
                "frame": frame,
                "name": f"{seq}_{frame}",
                "blur_path": path,
                "sharp_path": gt[k][2] if gt else "",
                "height": block,
                "width": block,
                "blur_md5": md5,
                "sharp_md5": gt[k][3] if gt else "",
                "test_set": TEST_SET,
            }
        )
    return rows


def index_sidd(root: Path, options: IndexOptions) -> dict[str, pd.DataFrame]:
    """Validate a SIDD tree and index it: ``train`` (SIDD-Medium), the validation blocks as ``val`` and ``val300``,
    the benchmark blocks (if any) as ``test300``; blocks are written under ``options.derived_dir``.

    Not a SIDD tree (a GoPro or Rain13K tree): one ``LayoutError`` line; a ``.mat`` without the expected array or
    shape: one ``LayoutError`` line naming file and key. Missing files and partners, unreadable or truncated images
    and ``.mat`` files, size mismatches and an empty split are listed together in one ``DatasetError``.
    """
    root = Path(root)
    if options.derived_dir is None:
        raise ValueError("index_sidd: IndexOptions.derived_dir must name where the blocks are written")
    if not root.is_dir():
        raise LayoutError(f"{root}: SIDD root folder does not exist")
    if not ((root / "Data").is_dir() or any((root / f"{k}.mat").exists() for k in VALIDATION)):
        raise wrong_layout(root, "sidd", _EXPECTED)
    problems: list[str] = []
    train = _train_rows(root / "Data", problems)
    block = options.sidd_block
    noisy, gt = (load_blocks(root / f"{k}.mat", block, problems) for k in VALIDATION)
    bench_path = root / f"{BENCHMARK}.mat"
    bench = load_blocks(bench_path, block, problems) if bench_path.exists() else None
    if noisy is not None and gt is not None and noisy.shape != gt.shape:
        problems.append(
            f"{root / VALIDATION[0]}.mat: blocks {noisy.shape} differ from {root / VALIDATION[1]}.mat {gt.shape}"
        )
    fill_probes(train, options.workers, problems, "SIDD")
    if problems:
        raise DatasetError(root, problems, what="SIDD")
    val = _block_rows("val", _write_blocks(noisy, "noisy", options), _write_blocks(gt, "gt", options), block)
    test = _block_rows("test", _write_blocks(bench, "benchmark", options), None, block) if bench is not None else []
    return tables_from_rows({"train": train, "val": val, "val300": val, "test300": test}, "sidd")
