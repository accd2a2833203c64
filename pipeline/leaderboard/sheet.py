"""The comparison sheet: look, don't read. A few val-300 crops as blurry input | restorations | sharp, with PSNRs.

Frames are spread evenly over val-300 and each crop is the frame's centre, fixed before any score is known, so the
sheet shows typical frames, not picked ones. Each tile is labelled with its PSNR on that crop (8-bit, under the
index's task protocol: RGB for REDS, the luma for Rain13K; ``pipeline.tasks``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from pipeline.fileio import read_image
from pipeline.tasks import task_of_index

__all__ = ["comparison_sheet", "sheet_frames"]

_LABEL_H = 34
_GAP = 4


def sheet_frames(names: Sequence[str], count: int) -> list[str]:
    """``count`` frame names spread evenly over ``names`` (first and last included): a rule, not a choice."""
    if count < 1 or not names:
        raise ValueError(f"sheet_frames: need names and count >= 1, got {len(names)} names, count {count}")
    picks = np.unique(np.linspace(0, len(names) - 1, min(count, len(names))).round().astype(int))
    return [names[int(i)] for i in picks]


def _centre(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    ch, cw = min(size, h), min(size, w)
    y, x = (h - ch) // 2, (w - cw) // 2
    return img[y : y + ch, x : x + cw]


def _label(tile: np.ndarray, title: str, score: str) -> np.ndarray:
    strip = np.full((_LABEL_H, tile.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, title, (3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(strip, score, (3, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 120), 1, cv2.LINE_AA)
    return np.vstack([strip, tile])


def comparison_sheet(
    index: pd.DataFrame,
    columns: Sequence[tuple[str, str | Path]],
    *,
    frames: int = 4,
    crop: int = 128,
    zoom: int = 2,
) -> np.ndarray:
    """An RGB uint8 grid: per frame, the degraded input, each ``(label, png8 folder)`` of ``columns``, then sharp.

    ``index`` is the val-300 index (name, blur_path, sharp_path). Every restoration must exist for every shown frame
    (a missing file is an error naming it). Crops are enlarged ``zoom`` times (nearest) so pixels stay visible.
    """
    task = task_of_index(index)
    rows = []
    for name in sheet_frames(list(index["name"]), frames):
        r = index.set_index("name").loc[name]
        sharp = _centre(read_image(r["sharp_path"]), crop)
        tiles = []
        for title, img in [(f"{task.input_label} input", _centre(read_image(r["blur_path"]), crop))] + [
            (label, _centre(read_image(Path(folder) / f"{name}.png"), crop)) for label, folder in columns
        ]:
            title = f"{name} {title}" if not tiles else title
            score = task.score(img, sharp, with_ssim=False)["psnr"]
            tiles.append(_label(_zoom(img, zoom), title, f"{score:.2f} dB"))
        tiles.append(_label(_zoom(sharp, zoom), "sharp", "ground truth"))
        gap = np.full((tiles[0].shape[0], _GAP, 3), 255, np.uint8)
        row = tiles[0]
        for t in tiles[1:]:
            row = np.hstack([row, gap, t])
        rows.append(row)
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, _GAP), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.vstack(rows)


def _zoom(img: np.ndarray, zoom: int) -> np.ndarray:
    return cv2.resize(img, (img.shape[1] * zoom, img.shape[0] * zoom), interpolation=cv2.INTER_NEAREST)
