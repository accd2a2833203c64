"""REDS indexing: the val-300 rule, every validation failure named with its path, and prepare leaving no outputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.config import DataConfig, PathsConfig
from pipeline.data.prepare import prepare
from pipeline.data.reds import (
    COLUMNS,
    HASH_COLUMNS,
    DatasetError,
    index_reds,
    is_val300_frame,
    read_index,
    select_val300,
)
from pipeline.fileio import write_image

H, W = 32, 48


def _frame(seed: int, h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def make_reds(root: Path, frames: dict[str, int]) -> Path:
    """A tiny REDS tree: one sequence ``000`` per split with ``frames[split]`` frames (test has no sharp frames)."""
    for split, n in frames.items():
        for k in range(n):
            sharp = _frame(1000 * ["train", "val", "test"].index(split) + k)
            blur = cv2.GaussianBlur(sharp, (5, 5), 1.5)
            write_image(root / split / f"{split}_blur_jpeg" / "000" / f"{k:08d}.jpg", blur, jpeg_quality=90)
            if split != "test":
                write_image(root / split / f"{split}_sharp" / "000" / f"{k:08d}.png", sharp)
    return root


@pytest.fixture
def reds(tmp_path: Path) -> Path:
    return make_reds(tmp_path / "REDS", {"train": 3, "val": 10, "test": 10})


def test_val300_rule_exact_frames():
    frames = [f"{k:08d}" for k in range(100)]
    assert [f for f in frames if is_val300_frame(f)] == [f"{k:08d}" for k in (9, 19, 29, 39, 49, 59, 69, 79, 89, 99)]
    assert [k for k in range(100) if is_val300_frame(k)] == list(range(9, 100, 10))


def test_index_good_tree(reds: Path):
    tables = index_reds(reds, workers=1)
    assert set(tables) == {"train", "val", "val300", "test300"}
    for table in tables.values():
        assert list(table.columns) == COLUMNS + HASH_COLUMNS
    import hashlib

    first = tables["train"].iloc[0]
    assert first["blur_md5"] == hashlib.md5(Path(first["blur_path"]).read_bytes()).hexdigest()
    assert first["sharp_md5"] == hashlib.md5(Path(first["sharp_path"]).read_bytes()).hexdigest()
    assert tables["test300"]["sharp_md5"].tolist() == [""]
    assert tables["train"]["name"].tolist() == ["000_00000000", "000_00000001", "000_00000002"]
    assert len(tables["val"]) == 10
    assert tables["val300"]["name"].tolist() == ["000_00000009"]
    assert tables["test300"]["name"].tolist() == ["000_00000009"]
    assert tables["test300"]["sharp_path"].tolist() == [""]
    assert tables["val300"]["blur_path"][0] == str(reds / "val/val_blur_jpeg/000/00000009.jpg")
    assert tables["val300"]["sharp_path"][0] == str(reds / "val/val_sharp/000/00000009.png")
    assert set(tables["train"]["height"]) == {H} and set(tables["train"]["width"]) == {W}
    assert select_val300(tables["val"]).equals(tables["val300"])


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


def _break(root: Path, case: str) -> str:
    """Damage the tree one way; return the path the error message must name."""
    val_blur, val_sharp = root / "val/val_blur_jpeg/000", root / "val/val_sharp/000"
    if case == "missing split":
        for f in sorted((root / "val/val_sharp").rglob("*"), reverse=True):
            f.unlink() if f.is_file() else f.rmdir()
        (root / "val/val_sharp").rmdir()
        return str(root / "val/val_sharp")
    if case == "blur without sharp":
        (val_sharp / "00000004.png").unlink()
        return str(val_blur / "00000004.jpg")
    if case == "sharp without blur":
        (root / "train/train_blur_jpeg/000/00000001.jpg").unlink()
        return str(root / "train/train_sharp/000/00000001.png")
    if case == "size mismatch":
        write_image(val_sharp / "00000003.png", _frame(1, H + 16, W))
        return str(val_sharp / "00000003.png")
    if case == "truncated png":
        _truncate(val_sharp / "00000009.png")
        return str(val_sharp / "00000009.png")
    if case == "truncated jpeg":
        _truncate(root / "test/test_blur_jpeg/000/00000005.jpg")
        return str(root / "test/test_blur_jpeg/000/00000005.jpg")
    if case == "frame gap":
        (val_blur / "00000002.jpg").unlink()
        (val_sharp / "00000002.png").unlink()
        return f"{val_blur}: frame-name gap, missing 1 frame(s): 00000002"
    if case == "gray image":
        cv2.imwrite(str(val_sharp / "00000006.png"), _frame(2)[..., 0])
        return str(val_sharp / "00000006.png")
    raise AssertionError(case)


CASES = [
    "missing split",
    "blur without sharp",
    "sharp without blur",
    "size mismatch",
    "truncated png",
    "truncated jpeg",
    "frame gap",
    "gray image",
]


@pytest.mark.parametrize("case", CASES)
def test_index_rejects_bad_tree(reds: Path, case: str):
    expected = _break(reds, case)
    with pytest.raises(DatasetError) as info:
        index_reds(reds, workers=1)
    assert expected in str(info.value)
    assert len(info.value.problems) == 1, info.value.problems


def test_all_problems_reported_together(reds: Path):
    expected = [_break(reds, case) for case in ("blur without sharp", "truncated png", "truncated jpeg")]
    with pytest.raises(DatasetError) as info:
        index_reds(reds, workers=2)
    assert len(info.value.problems) == 3
    for e in expected:
        assert e in str(info.value)


def _paths(tmp: Path) -> PathsConfig:
    return PathsConfig(
        data=str(tmp / "out/data"),
        synthetic_reds=str(tmp / "out/data/reds"),
        metrics=str(tmp / "out/metrics"),
        plots=str(tmp / "out/plots"),
    )


@pytest.mark.parametrize("case", ["blur without sharp", "truncated png", "frame gap"])
def test_prepare_leaves_no_outputs(reds: Path, tmp_path: Path, case: str):
    paths = _paths(tmp_path)
    cfg = DataConfig(
        source="reds", root=str(reds), workers=1, store="patches", patch_size=16, patch_stride=16, contact_sheet_pairs=1
    )
    prepare(cfg, paths)  # a good run first: its outputs must not survive the failing one
    assert (Path(paths.metrics) / "data.json").is_file()
    expected = _break(reds, case)
    with pytest.raises(DatasetError, match=re.escape(expected.split(":")[0])):
        prepare(cfg, paths)
    leftovers = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert leftovers == []


def test_prepare_reds_outputs(reds: Path, tmp_path: Path):
    from pipeline.metrics import psnr, ssim

    paths = _paths(tmp_path)
    cfg = DataConfig(
        source="reds", root=str(reds), workers=1, store="patches", patch_size=16, patch_stride=8, contact_sheet_pairs=2
    )
    stats = prepare(cfg, paths)
    tables = index_reds(reds, workers=1)
    for split in ("train", "val", "val300", "test300"):
        assert read_index(Path(paths.data) / "index" / f"{split}.csv").equals(tables[split])
    # 32x48 frames, 16-pixel patches every 8: 3 rows x 5 columns per training frame.
    assert stats.counts.to_json() == {
        "train_sequences": 1,
        "train": 3,
        "val_sequences": 1,
        "val": 10,
        "val300": 1,
        "test300": 1,
        "patches": 45,
    }
    from pipeline.fileio import read_image

    row = tables["val300"].iloc[0]
    blur, sharp = read_image(row["blur_path"]), read_image(row["sharp_path"])
    assert stats.input.psnr == pytest.approx(psnr(blur, sharp))
    assert stats.input.ssim == pytest.approx(ssim(blur, sharp))
    # The per-frame input scores are written once, here, for evaluate / ensemble / leaderboard to read.
    from pipeline.layout import Layout
    from pipeline.metrics import ssim_hinet3d
    from pipeline.scoring import read_input_scores

    assert stats.input.ssim3d == pytest.approx(ssim_hinet3d(blur, sharp))
    per_frame = read_input_scores(Layout(paths).input_scores)
    assert list(per_frame["name"]) == [row["name"]] and per_frame["psnr"].iloc[0] == stats.input.psnr
    assert json.loads((Path(paths.metrics) / "data.json").read_text()) == stats.to_json()
    sheet = cv2.imread(str(Path(paths.plots) / "data_contact_sheet.png"))
    assert sheet is not None and sheet.shape[1] == 2 * 320 + 4


def test_moving_the_data_set_changes_only_the_root_record(reds: Path, tmp_path: Path):
    """Index paths are relative to data.root: a moved REDS copy (same files) gives byte-identical index, input scores
    and patches, so no stage after `prepare` reruns; only index/root.json names the new place."""
    import shutil

    from pipeline.config import DataConfig, PathsConfig
    from pipeline.data.prepare import prepare

    def run(root: Path, name: str) -> dict[str, bytes]:
        paths = PathsConfig(
            data=str(tmp_path / name / "data"), metrics=str(tmp_path / name / "m"), plots=str(tmp_path / name / "p")
        )
        cfg = DataConfig(source="reds", root=str(root), workers=1, store="patches", patch_size=16, patch_stride=16)
        prepare(cfg, paths)
        out = Path(paths.data)
        return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}

    first = run(reds, "a")
    moved = shutil.copytree(reds, tmp_path / "elsewhere" / "REDS")
    second = run(moved, "b")
    assert first.keys() == second.keys()
    differ = sorted(k for k in first if first[k] != second[k])
    assert differ == ["index/root.json"]
    train = (tmp_path / "b" / "data" / "index" / "train.csv").read_text()
    assert "train/train_blur_jpeg/000/00000000.jpg" in train and str(reds) not in train
    table = read_index(tmp_path / "b" / "data" / "index" / "train.csv")
    assert table["blur_path"][0] == str(moved / "train/train_blur_jpeg/000/00000000.jpg")


def test_development_phase_without_test_folder(reds: Path, tmp_path: Path, caplog):
    """No test/ yet (the development phase): a note, train/val indexed, empty test-300; a broken test/ still fails."""
    import shutil

    from pipeline.data.reds import has_frames

    dev = shutil.copytree(reds, tmp_path / "dev")
    shutil.rmtree(dev / "test")
    with caplog.at_level("WARNING"):
        tables = index_reds(dev, workers=1)
    assert "no test/ folder yet (development phase)" in caplog.text
    assert len(tables["train"]) == 3 and len(tables["val300"]) == 1 and tables["test300"].empty
    tables["test300"].to_csv(tmp_path / "test300.csv", index=False)
    assert not has_frames(tmp_path / "test300.csv")
    (dev / "test").mkdir()  # present but without test_blur_jpeg: an error naming the folder
    with pytest.raises(DatasetError, match="test_blur_jpeg: missing split folder"):
        index_reds(dev, workers=1)
