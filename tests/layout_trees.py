"""Tiny trees in the exact GoPro, SIDD and Rain13K layouts, shared by the layout, paper-table and packaging tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from scipy.io import savemat

from pipeline.fileio import write_image

H, W = 32, 48
BLOCK = 16  # tiny SIDD blocks (the benchmark's are 256)
SCENE = "0001_001_S6_00100_00060_3200_L"


def pair(seed: int, h: int = H, w: int = W) -> tuple[np.ndarray, np.ndarray]:
    sharp = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return cv2.GaussianBlur(sharp, (5, 5), 1.5), sharp


def make_gopro(root: Path, form: str = "scenes", size: tuple[int, int] = (H, W)) -> Path:
    """train: scene GOPR0372_07_00 (frames 000047, 000048) and GOPR0374_11_00 (000001); test: GOPR0384_11_00
    (000001, 000002). ``form`` "flat": the release's train|test/input|target with ``<scene>-<frame>.png`` files.
    ``size``: (height, width) of every frame (the CI's end-to-end run trains on larger ones)."""
    frames = {"train": [("GOPR0372_07_00", "000047"), ("GOPR0372_07_00", "000048"), ("GOPR0374_11_00", "000001")],
              "test": [("GOPR0384_11_00", "000001"), ("GOPR0384_11_00", "000002")]}  # fmt: skip
    for split, items in frames.items():
        for k, (scene, frame) in enumerate(items):
            blur, sharp = pair(100 * len(split) + k, *size)
            if form == "scenes":
                write_image(root / split / scene / "blur" / f"{frame}.png", blur)
                write_image(root / split / scene / "sharp" / f"{frame}.png", sharp)
            else:
                write_image(root / split / "input" / f"{scene}-{frame}.png", blur)
                write_image(root / split / "target" / f"{scene}-{frame}.png", sharp)
    return root


RAIN_TEST = {
    "Rain100H": ["1", "2"],
    "Rain100L": ["1"],
    "Test100": ["1"],
    "Test1200": ["7"],
    "Test2800": ["901_1", "901_2"],
}


def make_rain13k(root: Path, size: tuple[int, int] = (H, W)) -> Path:
    """train: two JPEG pairs (norain-1, norain-2); each test set a few PNG pairs (Test2800: one image, two rains)."""
    for k, stem in enumerate(["norain-1", "norain-2"]):
        blur, sharp = pair(k, *size)
        write_image(root / "train" / "input" / f"{stem}.jpg", blur, jpeg_quality=95)
        write_image(root / "train" / "target" / f"{stem}.jpg", sharp, jpeg_quality=95)
    for s, (name, stems) in enumerate(RAIN_TEST.items()):
        for k, stem in enumerate(stems):
            blur, sharp = pair(50 + 10 * s + k, *size)
            write_image(root / "test" / name / "input" / f"{stem}.png", blur)
            write_image(root / "test" / name / "target" / f"{stem}.png", sharp)
    return root


def sidd_blocks(images: int = 2, blocks: int = 3, block: int = BLOCK) -> tuple[np.ndarray, np.ndarray]:
    gt = np.random.default_rng(7).integers(0, 256, (images, blocks, block, block, 3), dtype=np.uint8)
    noise = np.random.default_rng(8).integers(-12, 13, gt.shape)
    return np.clip(gt.astype(int) + noise, 0, 255).astype(np.uint8), gt


def make_sidd(root: Path, benchmark: bool = False, size: tuple[int, int] = (H, W), block: int = BLOCK) -> Path:
    """Data/<scene>/{NOISY,GT}_SRGB_{010,011}.PNG and the two validation .mat files (2 images x 3 blocks of
    ``block`` px, 16 by default)."""
    for k, n in enumerate(["010", "011"]):
        noisy, gt = pair(200 + k, *size)
        write_image(root / "Data" / SCENE / f"NOISY_SRGB_{n}.PNG", noisy)
        write_image(root / "Data" / SCENE / f"GT_SRGB_{n}.PNG", gt)
    noisy, gt = sidd_blocks(block=block)
    savemat(root / "ValidationNoisyBlocksSrgb.mat", {"ValidationNoisyBlocksSrgb": noisy})
    savemat(root / "ValidationGtBlocksSrgb.mat", {"ValidationGtBlocksSrgb": gt})
    if benchmark:
        savemat(root / "BenchmarkNoisyBlocksSrgb.mat", {"BenchmarkNoisyBlocksSrgb": noisy[:1, :2]})
    return root
