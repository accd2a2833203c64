"""Torch datasets: paired random training crops with dihedral augmentation, and full val-300 frames.

Randomness comes from ``numpy.random.default_rng([seed, epoch, index])`` (or ``[seed, index]`` through ``sample``)
only, so a sample depends on nothing but those integers: the same under any number of DataLoader workers and after a
resume.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from pipeline.data.patches import load_pair, read_patch_index
from pipeline.data.reds import read_index

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


class PairedPatchDataset(Dataset):
    """Random ``patch_size`` crops of (blurry, sharp) pairs with the same flip/rot90 applied to both.

    ``table`` is a frame index (``index/train.csv``) or a patch index (``patches/index.csv``). Items are
    ``(blur, sharp)`` float32 CHW tensors in [0, 1]. Call ``set_epoch`` to draw new crops each epoch.
    """

    def __init__(self, table: pd.DataFrame, patch_size: int, *, seed: int = 0, augment: bool = True):
        _pair_columns(table, "PairedPatchDataset")
        if patch_size <= 0:
            raise ValueError(f"PairedPatchDataset: patch_size must be positive, got {patch_size}")
        if {"height", "width"} <= set(table.columns):
            small = table[(table["height"] < patch_size) | (table["width"] < patch_size)]
            if len(small):
                r = small.iloc[0]
                raise ValueError(
                    f"{r['blur_path']}: patch_size {patch_size} exceeds the image size {r['width']}x{r['height']}"
                    f" ({len(small)} of {len(table)} images are too small)"
                )
        self.rows = table[["blur_path", "sharp_path"]].astype(str).values.tolist()
        self.offsets = table["offset"].astype(int).tolist() if "offset" in table.columns else [-1] * len(table)
        self.patch_size = patch_size
        self.seed = seed
        self.augment = augment
        self.epoch = 0

    @classmethod
    def from_prepared(
        cls, data_dir: str | Path, patch_size: int, *, seed: int = 0, augment: bool = True
    ) -> PairedPatchDataset:
        """Training pairs of a prepared data dir: its patches when they are at least ``patch_size``, else frames."""
        data_dir = Path(data_dir)
        patch_csv = data_dir / "patches" / "index.csv"
        if patch_csv.is_file():
            table = read_patch_index(patch_csv)
            if len(table) and int(table["height"].min()) >= patch_size and int(table["width"].min()) >= patch_size:
                return cls(table, patch_size, seed=seed, augment=augment)
        return cls(read_index(data_dir / "index" / "train.csv"), patch_size, seed=seed, augment=augment)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._draw(index, np.random.default_rng([self.seed, self.epoch, index]))

    def sample(self, index: int, *, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Pair ``index`` cropped and transformed by ``default_rng([seed, index])`` (for samplers owning the seed)."""
        return self._draw(index, np.random.default_rng([seed, index]))

    def _draw(self, index: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        blur_path, sharp_path = self.rows[index]
        blur, sharp = load_pair(blur_path, sharp_path, self.offsets[index])
        if blur.shape != sharp.shape:
            raise ValueError(f"{blur_path}: shape {blur.shape} differs from {sharp_path} {sharp.shape}")
        h, w = blur.shape[:2]
        p = self.patch_size
        if p > h or p > w:
            raise ValueError(f"{blur_path}: patch_size {p} exceeds the image size {w}x{h}")
        y, x = int(rng.integers(0, h - p + 1)), int(rng.integers(0, w - p + 1))
        t = int(rng.integers(0, 8)) if self.augment else 0
        blur = dihedral(blur[y : y + p, x : x + p], t)
        sharp = dihedral(sharp[y : y + p, x : x + p], t)
        return to_tensor(blur), to_tensor(sharp)


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
        """The ``index/<split>.csv`` frames of a prepared data dir, with the stage's stored input scores."""
        data_dir = Path(data_dir)
        scores = None
        stats = data_dir / "index" / f"{split}.json"
        if stats.is_file():
            scores = json.loads(stats.read_text()).get("input")
        return cls(read_index(data_dir / "index" / f"{split}.csv"), input_scores=scores)

    def input_scores(self, workers: int = 1) -> dict:
        """Mean PSNR/SSIM of the blurry inputs against the sharp frames (``psnr``, ``ssim``, ``frames``)."""
        if self._input_scores is None or self._input_scores.get("frames") != len(self):
            from pipeline.evaluate import score_inputs

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
