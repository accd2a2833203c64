"""Torch datasets: paired random training crops with dihedral augmentation, and full val-300 frames.

Randomness comes from ``numpy.random.default_rng([seed, index])`` only, so a sample depends on nothing but those
integers: the same under any number of DataLoader workers, after a resume, and from frames, patches or shards holding
the same frames.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from pipeline.data.patches import PatchError, load_pair, read_patch_index
from pipeline.data.reds import DatasetError, read_index
from pipeline.data.shards import INDEX, ShardSet, read_shard_index
from pipeline.records import InputSummary
from pipeline.scoring import score_inputs

__all__ = ["PairedPatchDataset", "ValFrames", "dihedral", "to_tensor"]


def dihedral(img: np.ndarray, t: int) -> np.ndarray:
    """Dihedral transform ``t`` in 0..7 of an HWC array: flip W if ``t >= 4``, then rot90 by ``t % 4`` (TTA order)."""
    if t >= 4:
        img = img[:, ::-1]
    return np.rot90(img, t % 4, axes=(0, 1))


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """HWC uint8 RGB -> CHW float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div_(255.0)


def _pair_columns(table: pd.DataFrame, where: str) -> None:
    missing = [c for c in ("name", "blur_path", "sharp_path") if c not in table.columns]
    if missing:
        raise ValueError(f"{where}: table lacks column(s) {missing}")
    if table.empty:
        raise ValueError(f"{where}: table is empty")
    if (table["sharp_path"].fillna("") == "").any():
        raise ValueError(f"{where}: rows without a sharp frame (e.g. test frames) cannot be used")


class PairedPatchDataset:
    """Random ``patch_size`` crops of (blurry, sharp) pairs with the same flip/rot90 applied to both.

    Pairs come from a frame index (``index/train.csv``), a patch index (``patches/index.csv``) or shards
    (:class:`pipeline.data.shards.ShardSet`, which decode only the tiles a crop touches). :meth:`sample` returns
    ``(blur, sharp)`` float32 CHW tensors in [0, 1]; the crop position and transform depend only on the seed and index,
    and are the same for every source holding the same frames.
    """

    def __init__(self, table: pd.DataFrame, patch_size: int, *, augment: bool = True):
        _pair_columns(table, "PairedPatchDataset")
        self._check_size(patch_size)
        if {"height", "width"} <= set(table.columns):
            small = table[(table["height"] < patch_size) | (table["width"] < patch_size)]
            if len(small):
                r = small.iloc[0]
                raise PatchError(
                    f"{r['blur_path']}: patch_size {patch_size} exceeds the image size {r['width']}x{r['height']}"
                    f" ({len(small)} of {len(table)} images are too small)"
                )
            self.sizes = list(zip(table["height"].astype(int), table["width"].astype(int), strict=True))
        else:
            self.sizes = None  # known only after decoding
        self.rows = table[["blur_path", "sharp_path"]].astype(str).values.tolist()
        self.offsets = table["offset"].astype(int).tolist() if "offset" in table.columns else [-1] * len(table)
        self.shards: ShardSet | None = None
        self.patch_size = patch_size
        self.augment = augment

    @staticmethod
    def _check_size(patch_size: int) -> None:
        if patch_size <= 0:
            raise ValueError(f"PairedPatchDataset: patch_size must be positive, got {patch_size}")

    @classmethod
    def from_shards(cls, shards: ShardSet, patch_size: int, *, augment: bool = True) -> PairedPatchDataset:
        """Crops read from shards (the same crops as from the frames they store)."""
        cls._check_size(patch_size)
        small = [(n, s) for n, s in zip(shards.names, shards.sizes, strict=True) if min(s) < patch_size]
        if small:
            name, (h, w) = small[0]
            raise PatchError(
                f"{shards.dir}: patch_size {patch_size} exceeds the size {w}x{h} of frame {name}"
                f" ({len(small)} of {len(shards)} frames are too small)"
            )
        ds = cls.__new__(cls)
        ds.rows, ds.offsets, ds.sizes, ds.shards = None, None, list(shards.sizes), shards
        ds.patch_size, ds.augment = patch_size, augment
        return ds

    @classmethod
    def from_prepared(cls, data_dir: str | Path, patch_size: int, *, augment: bool = True) -> PairedPatchDataset:
        """Training pairs of a prepared data dir: its shards when it has them, else its patches when they are at least
        ``patch_size``, else the frames."""
        data_dir = Path(data_dir)
        if (data_dir / "shards" / INDEX).is_file() and read_shard_index(data_dir / "shards")["frames"]:
            return cls.from_shards(ShardSet(data_dir / "shards"), patch_size, augment=augment)
        patch_csv = data_dir / "patches" / "index.csv"
        if patch_csv.is_file():
            table = read_patch_index(patch_csv)
            if len(table) and int(table["height"].min()) >= patch_size and int(table["width"].min()) >= patch_size:
                return cls(table, patch_size, augment=augment)
        return cls(read_index(data_dir / "index" / "train.csv"), patch_size, augment=augment)

    def __len__(self) -> int:
        return len(self.sizes) if self.shards is not None else len(self.rows)

    def sample(self, index: int, *, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Pair ``index`` cropped and transformed by ``numpy.random.default_rng([seed, index])``."""
        rng = np.random.default_rng([seed, index])
        p = self.patch_size
        if self.sizes is None:  # no stored size: decode, then draw
            blur, sharp = self._load(index)
            h, w = blur.shape[:2]
            y, x = self._position(rng, h, w, index)
            blur, sharp = blur[y : y + p, x : x + p], sharp[y : y + p, x : x + p]
        else:
            h, w = self.sizes[index]
            y, x = self._position(rng, h, w, index)
            if self.shards is not None:
                blur, sharp = self.shards.crop(index, y, x, p)
            else:
                blur, sharp = self._load(index)
                if blur.shape[:2] != (h, w):
                    raise PatchError(f"{self.rows[index][0]}: size {blur.shape[1]}x{blur.shape[0]}, index says {w}x{h}")
                blur, sharp = blur[y : y + p, x : x + p], sharp[y : y + p, x : x + p]
        t = int(rng.integers(0, 8)) if self.augment else 0
        return to_tensor(dihedral(blur, t)), to_tensor(dihedral(sharp, t))

    def _position(self, rng: np.random.Generator, h: int, w: int, index: int) -> tuple[int, int]:
        p = self.patch_size
        if p > h or p > w:
            where = self.rows[index][0] if self.rows is not None else f"{self.shards.dir} frame {index}"
            raise PatchError(f"{where}: patch_size {p} exceeds the image size {w}x{h}")
        return int(rng.integers(0, h - p + 1)), int(rng.integers(0, w - p + 1))

    def _load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        blur_path, sharp_path = self.rows[index]
        blur, sharp = load_pair(blur_path, sharp_path, self.offsets[index])
        if blur.shape != sharp.shape:
            raise PatchError(f"{blur_path}: shape {blur.shape} differs from {sharp_path} {sharp.shape}")
        return blur, sharp


class ValFrames(Dataset):
    """Full frames of an index table (val-300) as ``(name, blur, sharp)``: HWC RGB uint8 arrays, the metrics format.

    ``input_scores`` may carry the precomputed mean input PSNR/SSIM (the data stage's ``index/val300.json``).
    """

    def __init__(self, table: pd.DataFrame, *, input_scores: dict | None = None):
        _pair_columns(table, "ValFrames")
        self.rows = table[["name", "blur_path", "sharp_path"]].astype(str).values.tolist()
        self.table = table.reset_index(drop=True)
        self._input_scores = input_scores

    @classmethod
    def from_prepared(cls, data_dir: str | Path, split: str = "val300") -> ValFrames:
        """The ``index/<split>.csv`` frames of a prepared data dir, with the stage's stored input scores (its
        :class:`pipeline.records.InputSummary`, when there is one)."""
        data_dir = Path(data_dir)
        scores = None
        summary = data_dir / "index" / f"{split}.json"
        if summary.is_file():
            scores = InputSummary.read(summary, error=DatasetError).input.to_json()
        return cls(read_index(data_dir / "index" / f"{split}.csv"), input_scores=scores)

    def input_scores(self, workers: int = 1) -> dict:
        """Mean PSNR/SSIM of the blurry inputs against the sharp frames (``psnr``, ``ssim``, ``frames``)."""
        if self._input_scores is None or self._input_scores.get("frames") != len(self):
            per_image = score_inputs(self.table, workers=workers)
            self._input_scores = {
                "psnr": float(per_image["psnr"].mean()),
                "ssim": float(per_image["ssim"].mean()),
                "frames": len(per_image),
            }
        return dict(self._input_scores)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[str, np.ndarray, np.ndarray]:
        name, blur_path, sharp_path = self.rows[index]
        blur, sharp = load_pair(blur_path, sharp_path)
        return name, blur, sharp
