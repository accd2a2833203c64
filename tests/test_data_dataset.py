"""Patches and datasets: exact patch contents (PNG and npy), aligned and deterministic augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.data.dataset import PairedPatchDataset, ValFrames, dihedral
from pipeline.data.patches import extract_patches, grid_positions, load_pair
from pipeline.fileio import read_image, write_image

H, W = 24, 40


def _table(tmp: Path, blur_fn, n: int = 2) -> pd.DataFrame:
    rows = []
    for k in range(n):
        sharp = np.random.default_rng(k).integers(0, 256, (H, W, 3), dtype=np.uint8)
        bp, sp = tmp / f"b{k}.png", tmp / f"s{k}.png"
        write_image(bp, blur_fn(sharp))
        write_image(sp, sharp)
        rows.append(("train", "000", f"{k:08d}", f"000_{k:08d}", str(bp), str(sp), H, W))
    return pd.DataFrame(rows, columns=["split", "seq", "frame", "name", "blur_path", "sharp_path", "height", "width"])


def test_grid_positions():
    assert grid_positions(24, 16, 8) == [0, 8]
    assert grid_positions(40, 16, 16) == [0, 16, 24]
    assert grid_positions(16, 16, 8) == [0]
    with pytest.raises(ValueError, match="exceeds"):
        grid_positions(15, 16, 8)


@pytest.mark.parametrize("fmt", ["png", "npy"])
def test_extract_patches_exact(tmp_path: Path, fmt: str):
    table = _table(tmp_path, lambda s: 255 - s)
    index = extract_patches(table, tmp_path / "p", patch_size=16, stride=8, fmt=fmt, workers=1)
    assert len(index) == 2 * 2 * 4  # y in (0, 8), x in (0, 8, 16, 24)
    assert pd.read_csv(tmp_path / "p" / "index.csv")["name"].tolist() == index["name"].tolist()
    for r in index.itertuples():
        blur, sharp = load_pair(r.blur_path, r.sharp_path, r.offset)
        frame = read_image(table.loc[table["name"] == f"{r.seq}_{r.frame}", "sharp_path"].item())
        assert np.array_equal(sharp, frame[r.y : r.y + 16, r.x : r.x + 16])
        assert np.array_equal(blur, 255 - sharp)


def test_dihedral_all_distinct():
    img = np.arange(6).reshape(2, 3, 1)
    outs = [dihedral(img, t) for t in range(8)]
    assert len({o.tobytes() + bytes(o.shape) for o in outs}) == 8
    assert np.array_equal(dihedral(img, 1)[..., 0], [[2, 5], [1, 4], [0, 3]])
    assert np.array_equal(dihedral(img, 4)[..., 0], [[2, 1, 0], [5, 4, 3]])


def test_pairs_stay_aligned_and_deterministic(tmp_path: Path):
    ds = PairedPatchDataset(_table(tmp_path, lambda s: 255 - s), 16)
    seen = set()
    for i in range(len(ds)):
        for seed in range(6):
            blur, sharp = ds.sample(i, seed=seed)
            assert blur.dtype == torch.float32 and tuple(blur.shape) == (3, 16, 16)
            assert torch.equal(blur, (255 - (sharp * 255).round()) / 255)  # same crop, same transform
            again = ds.sample(i, seed=seed)
            assert torch.equal(again[0], blur) and torch.equal(again[1], sharp)
            seen.add(sharp.numpy().tobytes())
    assert len(seen) == 12  # crops/transforms change with the seed


def test_crop_matches_frame_without_augmentation(tmp_path: Path):
    table = _table(tmp_path, lambda s: s)
    ds = PairedPatchDataset(table, 8, augment=False)
    blur, sharp = ds.sample(0, seed=0)
    frame = torch.from_numpy(read_image(table["sharp_path"][0])).permute(2, 0, 1).float() / 255
    hits = [(y, x) for y in range(H - 7) for x in range(W - 7) if torch.equal(frame[:, y : y + 8, x : x + 8], sharp)]
    assert len(hits) == 1 and torch.equal(blur, sharp)


def test_same_samples_with_or_without_stored_sizes(tmp_path: Path):
    table = _table(tmp_path, lambda s: 255 - s)
    a, b = PairedPatchDataset(table, 16), PairedPatchDataset(table.drop(columns=["height", "width"]), 16)
    for i in range(2):
        assert all(torch.equal(x, y) for x, y in zip(a.sample(i, seed=3), b.sample(i, seed=3), strict=True))


def test_patch_size_too_big(tmp_path: Path):
    table = _table(tmp_path, lambda s: s)
    with pytest.raises(ValueError, match=r"b0\.png: patch_size 32 exceeds the image size 40x24"):
        PairedPatchDataset(table, 32)


def test_val_frames(tmp_path: Path):
    table = _table(tmp_path, lambda s: 255 - s)
    frames = ValFrames(table)
    name, blur, sharp = frames[1]
    assert name == "000_00000001"
    assert np.array_equal(sharp, read_image(table["sharp_path"][1])) and np.array_equal(blur, 255 - sharp)
    scores = frames.input_scores()
    from pipeline.metrics import psnr

    expected = np.mean([psnr(frames[i][1], frames[i][2]) for i in range(2)])
    assert scores["frames"] == 2 and scores["psnr"] == pytest.approx(expected)
    with pytest.raises(ValueError, match="without a sharp frame"):
        ValFrames(table.assign(sharp_path=""))


def test_from_prepared_prefers_big_enough_patches(tmp_path: Path):
    table = _table(tmp_path, lambda s: s)
    (tmp_path / "data/index").mkdir(parents=True)
    table.to_csv(tmp_path / "data/index/train.csv", index=False)
    extract_patches(table, tmp_path / "data/patches", patch_size=16, stride=8, workers=1)
    assert len(PairedPatchDataset.from_prepared(tmp_path / "data", 12)) == 16  # patches
    assert len(PairedPatchDataset.from_prepared(tmp_path / "data", 20)) == 2  # frames: patches too small
