"""Overlapping sub-images extracted once from the training frames, so training input does not decode full frames.

Decoding a 720p PNG + JPEG pair to crop one 256x256 sample costs far more than decoding a stored 256x256 patch
(``bench/bench_data.py`` measures it). Patches are stored losslessly: blurry patches keep the decoded JPEG pixels
exactly. Two storage formats: ``png`` (one file per patch, compact) and ``npy`` (one uncompressed ``(N, P, P, 3)``
array per side, read through a memory map: no decoding at all, but raw-size on disk).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from pipeline.errors import PipelineError
from pipeline.fileio import read_image, read_table, write_image

__all__ = ["PATCH_COLUMNS", "PatchError", "extract_patches", "grid_positions", "load_pair", "read_patch_index"]

PATCH_COLUMNS = ["split", "seq", "frame", "name", "blur_path", "sharp_path", "height", "width", "y", "x", "offset"]
FORMATS = ("png", "npy")


class PatchError(PipelineError):
    """Training crops cannot be cut from a frame: the patch size (``data.patch_size``, ``models.<m>.patch_size``)
    exceeds it, or its blurry and sharp images (or its index entry) disagree in size; the message names the file."""


def grid_positions(size: int, patch: int, stride: int) -> list[int]:
    """Start offsets of patches of ``patch`` pixels every ``stride`` pixels, plus one flush with the far edge."""
    if patch > size:
        raise ValueError(f"patch size {patch} exceeds the image size {size}")
    if stride <= 0:
        raise ValueError(f"patch stride must be positive, got {stride}")
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return starts


def _frame_patches(row: dict, patch: int, stride: int) -> tuple[list[tuple[int, int]], np.ndarray, np.ndarray]:
    blur, sharp = read_image(row["blur_path"]), read_image(row["sharp_path"])
    h, w = blur.shape[:2]
    if patch > h or patch > w:
        raise PatchError(f"{row['blur_path']}: patch size {patch} exceeds the frame size {w}x{h}")
    pos = [(y, x) for y in grid_positions(h, patch, stride) for x in grid_positions(w, patch, stride)]
    b = np.stack([blur[y : y + patch, x : x + patch] for y, x in pos])
    s = np.stack([sharp[y : y + patch, x : x + patch] for y, x in pos])
    return pos, b, s


def _extract_chunk(rows: list[dict], patch: int, stride: int, fmt: str, out_dir: Path, starts: list[int]) -> None:
    """Cut the patches of a few frames and store them (PNG files, or slices of the shared .npy memmaps)."""
    if fmt == "npy":
        blur_mm = np.load(out_dir / "blur.npy", mmap_mode="r+")
        sharp_mm = np.load(out_dir / "sharp.npy", mmap_mode="r+")
    for row, start in zip(rows, starts, strict=True):
        pos, b, s = _frame_patches(row, patch, stride)
        if fmt == "npy":
            blur_mm[start : start + len(pos)] = b
            sharp_mm[start : start + len(pos)] = s
        else:
            for i, (y, x) in enumerate(pos):
                write_image(out_dir / "blur" / f"{row['name']}_{y:04d}_{x:04d}.png", b[i])
                write_image(out_dir / "sharp" / f"{row['name']}_{y:04d}_{x:04d}.png", s[i])
    if fmt == "npy":
        blur_mm.flush()
        sharp_mm.flush()


def extract_patches(
    table: pd.DataFrame,
    out_dir: str | Path,
    *,
    patch_size: int,
    stride: int,
    fmt: str = "png",
    workers: int = 2,
    final_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Extract overlapping ``patch_size`` sub-images of every pair in ``table`` into ``out_dir``; return their index.

    The index has ``PATCH_COLUMNS`` (``name`` = ``<seq>_<frame>_<y>_<x>``, ``offset`` = row in the .npy, -1 for PNG)
    and is also written to ``out_dir/index.csv``. Paths in it point under ``final_dir`` (default ``out_dir``), so a
    caller building into a temporary directory can record where the files will live after the rename.
    """
    if fmt not in FORMATS:
        raise ValueError(f"patch format must be one of {FORMATS}, got {fmt!r}")
    if table.empty:
        raise ValueError("extract_patches: the frame table is empty")
    if (table["sharp_path"] == "").any():
        raise ValueError("extract_patches: every frame needs a sharp partner (test frames cannot be patched)")
    out_dir, final_dir = Path(out_dir), Path(final_dir if final_dir is not None else out_dir)
    rows = table.to_dict("records")
    counts = []
    for r in rows:
        h, w = int(r["height"]), int(r["width"])
        if patch_size > h or patch_size > w:
            raise PatchError(f"{r['blur_path']}: patch size {patch_size} exceeds the frame size {w}x{h}")
        counts.append(len(grid_positions(h, patch_size, stride)) * len(grid_positions(w, patch_size, stride)))
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(int).tolist()
    out_dir.mkdir(parents=True, exist_ok=True)
    if fmt == "npy":
        for side in ("blur", "sharp"):
            np.lib.format.open_memmap(
                out_dir / f"{side}.npy", mode="w+", dtype=np.uint8, shape=(starts[-1], patch_size, patch_size, 3)
            ).flush()
    else:
        (out_dir / "blur").mkdir(exist_ok=True)
        (out_dir / "sharp").mkdir(exist_ok=True)
    chunk = 4
    jobs = [(rows[i : i + chunk], starts[i : i + min(chunk, len(rows) - i)]) for i in range(0, len(rows), chunk)]
    results = Parallel(n_jobs=workers, return_as="generator")(
        delayed(_extract_chunk)(rs, patch_size, stride, fmt, out_dir, st) for rs, st in jobs
    )
    with tqdm(total=len(rows), desc="extract patches", unit="frame", disable=None) as bar:
        for (rs, _), _ in zip(jobs, results, strict=True):
            bar.update(len(rs))
    index = []
    for r, start in zip(rows, starts, strict=False):
        h, w = int(r["height"]), int(r["width"])
        pos = [(y, x) for y in grid_positions(h, patch_size, stride) for x in grid_positions(w, patch_size, stride)]
        for i, (y, x) in enumerate(pos):
            stem = f"{r['name']}_{y:04d}_{x:04d}"
            if fmt == "npy":
                paths = (str(final_dir / "blur.npy"), str(final_dir / "sharp.npy"))
                offset = start + i
            else:
                paths = (str(final_dir / "blur" / f"{stem}.png"), str(final_dir / "sharp" / f"{stem}.png"))
                offset = -1
            index.append((r["split"], r["seq"], r["frame"], stem, *paths, patch_size, patch_size, y, x, offset))
    result = pd.DataFrame(index, columns=PATCH_COLUMNS)
    stored = result.copy()  # on disk: paths relative to the patch folder, so the file is the same wherever it lives
    for col in ("blur_path", "sharp_path"):
        stored[col] = [Path(p).relative_to(final_dir).as_posix() for p in stored[col]]
    stored.to_csv(out_dir / "index.csv", index=False)
    return result


def read_patch_index(path: str | Path) -> pd.DataFrame:
    """Read ``patches/index.csv`` keeping ``seq``/``frame`` as strings; paths are joined with the index's folder."""
    path = Path(path)
    table = read_table(path, PATCH_COLUMNS, "patch index")
    for col in ("blur_path", "sharp_path"):
        table[col] = [p if not p or Path(p).is_absolute() else str(path.parent / p) for p in table[col]]
    return table


@cache
def _memmap(path: str) -> np.ndarray:
    return np.load(path, mmap_mode="r")


def load_pair(blur_path: str, sharp_path: str, offset: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Load one (blurry, sharp) RGB uint8 pair: image files, or row ``offset`` of .npy patch arrays."""
    if offset >= 0:
        return np.asarray(_memmap(str(blur_path))[offset]), np.asarray(_memmap(str(sharp_path))[offset])
    return read_image(blur_path), read_image(sharp_path)
