"""GoPro, SIDD and Rain13K layouts: tiny trees in each exact layout are indexed into the exact table, each kind of
broken tree is rejected naming the file, wrong and mixed layouts are one line, and prepare / evaluate run on them."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from layout_trees import BLOCK, RAIN_TEST, SCENE, H, W, make_gopro, make_rain13k, make_sidd, sidd_blocks
from layout_trees import pair as _pair
from scipy.io import savemat

from pipeline.cli import is_user_error
from pipeline.config import DataConfig, PathsConfig
from pipeline.data.gopro import index_gopro
from pipeline.data.layouts import INDEX_COLUMNS, IndexOptions, LayoutError, guess_layout, split_stem
from pipeline.data.prepare import prepare
from pipeline.data.rain13k import index_rain13k
from pipeline.data.reds import DatasetError, read_index
from pipeline.data.sidd import index_sidd
from pipeline.evaluate import evaluate_model
from pipeline.fileio import read_image, to_uint8, write_image, write_image16
from pipeline.layout import Layout
from pipeline.metrics import psnr_float
from pipeline.predictions import PredictionFolder, Runtime
from pipeline.scoring import EvaluationError, read_input_scores, score_dir
from pipeline.tasks import get_task

SIDD_EXPECTED = "Data/<scene>/{NOISY,GT}_SRGB_<n>.PNG and ValidationNoisyBlocksSrgb.mat + ValidationGtBlocksSrgb.mat"


def _md5(path: str) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def _brief(table: pd.DataFrame) -> list[tuple]:
    return list(table[["split", "seq", "frame", "name", "test_set", "task", "height", "width"]].itertuples(index=False))


def _check_paths_and_hashes(table: pd.DataFrame) -> None:
    assert list(table.columns) == INDEX_COLUMNS
    for r in table.itertuples():
        assert r.blur_md5 == _md5(r.blur_path)
        assert (r.sharp_md5 == _md5(r.sharp_path)) if r.sharp_path else r.sharp_md5 == ""


def _opts(tmp: Path | None = None) -> IndexOptions:
    return IndexOptions(workers=1, derived_dir=tmp, sidd_block=BLOCK)


def test_split_stem():
    assert split_stem("GOPR0372_07_00-000047") == ("GOPR0372_07_00", "000047")
    assert split_stem("901_1", "_") == ("901", "1")
    assert split_stem("norain-1", "_") == ("norain-1", "0")
    assert split_stem("rain") == ("rain", "0")


# ---- GoPro ----


@pytest.mark.parametrize("form", ["scenes", "flat"])
def test_gopro_index_exact_table(tmp_path: Path, form: str):
    root = make_gopro(tmp_path / "GoPro", form)
    tables = index_gopro(root, _opts())
    assert _brief(tables["train"]) == [
        ("train", "GOPR0372_07_00", "000047", "GOPR0372_07_00_000047", "", "gopro", H, W),
        ("train", "GOPR0372_07_00", "000048", "GOPR0372_07_00_000048", "", "gopro", H, W),
        ("train", "GOPR0374_11_00", "000001", "GOPR0374_11_00_000001", "", "gopro", H, W),
    ]
    test = [
        ("test", "GOPR0384_11_00", "000001", "GOPR0384_11_00_000001", "GoPro", "gopro", H, W),
        ("test", "GOPR0384_11_00", "000002", "GOPR0384_11_00_000002", "GoPro", "gopro", H, W),
    ]
    for split in ("val", "val300", "test300"):  # test/ is both the scored and the packaged split
        assert _brief(tables[split]) == test
    first = tables["val300"].iloc[0]
    if form == "scenes":
        assert first["blur_path"] == str(root / "test" / "GOPR0384_11_00" / "blur" / "000001.png")
        assert first["sharp_path"] == str(root / "test" / "GOPR0384_11_00" / "sharp" / "000001.png")
    else:
        assert first["blur_path"] == str(root / "test" / "input" / "GOPR0384_11_00-000001.png")
        assert first["sharp_path"] == str(root / "test" / "target" / "GOPR0384_11_00-000001.png")
    for table in tables.values():
        _check_paths_and_hashes(table)


def _break_gopro(root: Path, case: str) -> str:
    """Damage a scenes-form GoPro tree; returns the path the error must name."""
    test_scene = root / "test" / "GOPR0384_11_00"
    if case == "missing partner":
        (test_scene / "sharp" / "000002.png").unlink()
        return str(test_scene / "blur" / "000002.png")
    if case == "size mismatch":
        write_image(test_scene / "sharp" / "000001.png", _pair(0, H + 16, W)[1])
        return str(test_scene / "blur" / "000001.png")
    if case == "truncated":
        path = root / "train" / "GOPR0374_11_00" / "sharp" / "000001.png"
        path.write_bytes(path.read_bytes()[:-40])
        return str(path)
    if case == "unreadable":
        path = root / "train" / "GOPR0372_07_00" / "blur" / "000048.png"
        path.write_bytes(b"not a png at all")
        return str(path)
    if case == "empty split":
        shutil.rmtree(test_scene)
        return str(root / "test")
    raise AssertionError(case)


CASES = ["missing partner", "size mismatch", "truncated", "unreadable", "empty split"]


@pytest.mark.parametrize("case", CASES)
def test_gopro_broken_tree_names_the_file(tmp_path: Path, case: str):
    root = make_gopro(tmp_path / "GoPro")
    named = _break_gopro(root, case)
    with pytest.raises(DatasetError) as info:
        index_gopro(root, _opts())
    assert any(p.startswith(named) for p in info.value.problems), info.value.problems
    assert str(info.value).startswith(f"{root}: GoPro validation found")


def test_gopro_every_problem_in_one_error(tmp_path: Path):
    root = make_gopro(tmp_path / "GoPro")
    named = [_break_gopro(root, c) for c in ("missing partner", "truncated", "unreadable")]
    with pytest.raises(DatasetError) as info:
        index_gopro(root, _opts())
    assert [any(p.startswith(n) for p in info.value.problems) for n in named] == [True, True, True]
    assert len(info.value.problems) == 3


def test_gopro_mixed_layout_is_one_line(tmp_path: Path):
    root = make_gopro(tmp_path / "GoPro")
    write_image(root / "train" / "input" / "GOPR0372_07_00-000047.png", _pair(0)[0])
    with pytest.raises(LayoutError) as info:
        index_gopro(root, _opts())
    assert str(info.value) == (
        f"{root / 'train'}: mixed GoPro layouts: input/ + target/ beside scene folders such as GOPR0372_07_00/ "
        "(expected one form per split)"
    )
    assert is_user_error(info.value)


# ---- Rain13K ----


def test_rain13k_index_exact_table(tmp_path: Path):
    root = make_rain13k(tmp_path / "Rain13k")
    tables = index_rain13k(root, _opts())
    assert _brief(tables["train"]) == [
        ("train", "norain-1", "0", "norain-1_0", "", "rain13k", H, W),
        ("train", "norain-2", "0", "norain-2_0", "", "rain13k", H, W),
    ]
    test = [
        ("test", "Rain100H-1", "0", "Rain100H-1_0", "Rain100H", "rain13k", H, W),
        ("test", "Rain100H-2", "0", "Rain100H-2_0", "Rain100H", "rain13k", H, W),
        ("test", "Rain100L-1", "0", "Rain100L-1_0", "Rain100L", "rain13k", H, W),
        ("test", "Test100-1", "0", "Test100-1_0", "Test100", "rain13k", H, W),
        ("test", "Test1200-7", "0", "Test1200-7_0", "Test1200", "rain13k", H, W),
        ("test", "Test2800-901", "1", "Test2800-901_1", "Test2800", "rain13k", H, W),
        ("test", "Test2800-901", "2", "Test2800-901_2", "Test2800", "rain13k", H, W),
    ]
    for split in ("val", "val300", "test300"):
        assert _brief(tables[split]) == test
    assert tables["val300"]["blur_path"].iloc[-1] == str(root / "test" / "Test2800" / "input" / "901_2.png")
    assert tables["train"]["sharp_path"].iloc[0] == str(root / "train" / "target" / "norain-1.jpg")
    for table in tables.values():
        _check_paths_and_hashes(table)


@pytest.mark.parametrize("case", CASES + ["missing test set", "unknown test set"])
def test_rain13k_broken_tree_names_the_file(tmp_path: Path, case: str):
    root = make_rain13k(tmp_path / "Rain13k")
    sets = root / "test"
    if case == "missing partner":
        (sets / "Test100" / "target" / "1.png").unlink()
        named = str(sets / "Test100" / "input" / "1.png")
    elif case == "size mismatch":
        write_image(sets / "Rain100L" / "input" / "1.png", _pair(0, H, W + 16)[0])
        named = str(sets / "Rain100L" / "input" / "1.png")
    elif case == "truncated":
        path = root / "train" / "input" / "norain-2.jpg"
        path.write_bytes(path.read_bytes()[:-30])
        named = str(path)
    elif case == "unreadable":
        path = sets / "Test2800" / "target" / "901_2.png"
        path.write_bytes(b"\x00" * 64)
        named = str(path)
    elif case == "empty split":
        for d in ("input", "target"):
            shutil.rmtree(root / "train" / d)
            (root / "train" / d).mkdir()
        named = str(root / "train" / "input")
    elif case == "missing test set":
        shutil.rmtree(sets / "Test1200")
        named = str(sets / "Test1200" / "input")
    else:
        shutil.copytree(sets / "Test100", sets / "Rain200H")
        named = str(sets / "Rain200H")
    with pytest.raises(DatasetError) as info:
        index_rain13k(root, _opts())
    assert any(p.startswith(named) for p in info.value.problems), info.value.problems


def test_rain13k_mixed_and_wrong_layouts_are_one_line(tmp_path: Path):
    gopro = make_gopro(tmp_path / "GoPro", "flat")
    with pytest.raises(LayoutError) as info:
        index_rain13k(gopro, _opts())
    assert str(info.value) == (
        f"{gopro}: not a rain13k tree: expected train/input + train/target and test/<set>/input + "
        "test/<set>/target; it looks like a gopro tree (data.source: gopro)"
    )
    rain = make_rain13k(tmp_path / "Rain13k")
    with pytest.raises(LayoutError, match="not a gopro tree: .* it looks like a rain13k tree"):
        index_gopro(rain, _opts())
    write_image(rain / "test" / "input" / "1.png", _pair(0)[0])
    with pytest.raises(LayoutError, match=r"test: mixed layouts: input/ or target/ directly under test/") as info:
        index_rain13k(rain, _opts())
    assert "\n" not in str(info.value)


# ---- SIDD ----


def test_sidd_index_exact_table(tmp_path: Path):
    root = make_sidd(tmp_path / "SIDD", benchmark=True)
    out = tmp_path / "blocks"
    tables = index_sidd(root, _opts(out))
    assert _brief(tables["train"]) == [
        ("train", SCENE, "010", f"{SCENE}_010", "", "sidd", H, W),
        ("train", SCENE, "011", f"{SCENE}_011", "", "sidd", H, W),
    ]
    assert tables["train"]["blur_path"].iloc[0] == str(root / "Data" / SCENE / "NOISY_SRGB_010.PNG")
    assert tables["train"]["sharp_path"].iloc[0] == str(root / "Data" / SCENE / "GT_SRGB_010.PNG")
    names = ["0000_00", "0000_01", "0000_02", "0001_00", "0001_01", "0001_02"]
    val = [("val", n[:4], n[5:], n, "SIDD", "sidd", BLOCK, BLOCK) for n in names]
    assert _brief(tables["val"]) == val and _brief(tables["val300"]) == val
    assert _brief(tables["test300"]) == [
        ("test", "0000", f, f"0000_{f}", "SIDD", "sidd", BLOCK, BLOCK) for f in ("00", "01")
    ]
    assert tables["test300"]["sharp_path"].tolist() == ["", ""]
    noisy, gt = sidd_blocks()
    for r in tables["val300"].itertuples():
        i, j = int(r.seq), int(r.frame)
        assert r.blur_path == str(out.resolve() / "noisy" / f"{r.name}.png")
        assert np.array_equal(read_image(r.blur_path), noisy[i, j])
        assert np.array_equal(read_image(r.sharp_path), gt[i, j])
    for table in tables.values():
        _check_paths_and_hashes(table)


def test_sidd_without_benchmark_has_no_packaged_frames(tmp_path: Path):
    tables = index_sidd(make_sidd(tmp_path / "SIDD"), _opts(tmp_path / "blocks"))
    assert tables["test300"].empty and list(tables["test300"].columns) == INDEX_COLUMNS


def test_sidd_mat_without_the_array_or_shape_is_one_line(tmp_path: Path):
    root = make_sidd(tmp_path / "SIDD")
    noisy, _ = sidd_blocks()
    savemat(root / "ValidationGtBlocksSrgb.mat", {"GtBlocks": noisy})
    with pytest.raises(LayoutError) as info:
        index_sidd(root, _opts(tmp_path / "blocks"))
    assert str(info.value) == (
        f"{root / 'ValidationGtBlocksSrgb.mat'}: no array 'ValidationGtBlocksSrgb' (found ['GtBlocks']); expected "
        f"ValidationGtBlocksSrgb of shape (images, blocks, {BLOCK}, {BLOCK}, 3) uint8"
    )
    savemat(root / "ValidationGtBlocksSrgb.mat", {"ValidationGtBlocksSrgb": noisy[:, :, :8]})
    with pytest.raises(
        LayoutError, match=r"array 'ValidationGtBlocksSrgb' has shape \(2, 3, 8, 16, 3\) uint8; expected"
    ):
        index_sidd(root, _opts(tmp_path / "blocks"))
    savemat(root / "ValidationGtBlocksSrgb.mat", {"ValidationGtBlocksSrgb": noisy.astype(np.float64)})
    with pytest.raises(LayoutError, match=r"has shape \(2, 3, 16, 16, 3\) float64"):
        index_sidd(root, _opts(tmp_path / "blocks"))
    # The benchmark's default block side is 256: these 16 px blocks are then the wrong shape.
    savemat(root / "ValidationGtBlocksSrgb.mat", {"ValidationGtBlocksSrgb": noisy})
    with pytest.raises(LayoutError, match=r"expected \(images, blocks, 256, 256, 3\) uint8"):
        index_sidd(root, IndexOptions(workers=1, derived_dir=tmp_path / "blocks"))


@pytest.mark.parametrize("case", ["missing partner", "size mismatch", "truncated png", "truncated mat", "missing mat",
                                  "blocks differ", "empty split"])  # fmt: skip
def test_sidd_broken_tree_names_the_file(tmp_path: Path, case: str):
    root = make_sidd(tmp_path / "SIDD")
    scene = root / "Data" / SCENE
    if case == "missing partner":
        (scene / "GT_SRGB_011.PNG").unlink()
        named = str(scene / "NOISY_SRGB_011.PNG")
    elif case == "size mismatch":
        write_image(scene / "GT_SRGB_010.PNG", _pair(0, H, W + 16)[1])
        named = str(scene / "NOISY_SRGB_010.PNG")
    elif case == "truncated png":
        path = scene / "NOISY_SRGB_011.PNG"
        path.write_bytes(path.read_bytes()[:-20])
        named = str(path)
    elif case == "truncated mat":
        path = root / "ValidationNoisyBlocksSrgb.mat"
        path.write_bytes(path.read_bytes()[:300])
        named = str(path)
    elif case == "missing mat":
        (root / "ValidationGtBlocksSrgb.mat").unlink()
        named = str(root / "ValidationGtBlocksSrgb.mat")
    elif case == "blocks differ":
        savemat(root / "ValidationGtBlocksSrgb.mat", {"ValidationGtBlocksSrgb": sidd_blocks(images=1)[1]})
        named = str(root / "ValidationNoisyBlocksSrgb.mat")
    else:
        shutil.rmtree(root / "Data")
        (root / "Data").mkdir()
        named = str(root / "Data")
    with pytest.raises(DatasetError) as info:
        index_sidd(root, _opts(tmp_path / "blocks"))
    assert any(p.startswith(named) for p in info.value.problems), info.value.problems
    assert not (tmp_path / "blocks").exists()  # nothing written before validation passes


def test_gopro_tree_given_as_sidd_is_one_line(tmp_path: Path):
    gopro = make_gopro(tmp_path / "GoPro")
    assert guess_layout(gopro) == ["gopro"]
    with pytest.raises(LayoutError) as info:
        index_sidd(gopro, _opts(tmp_path / "blocks"))
    assert str(info.value) == (
        f"{gopro}: not a sidd tree: expected {SIDD_EXPECTED}; it looks like a gopro tree (data.source: gopro)"
    )
    sidd = make_sidd(tmp_path / "SIDD")
    with pytest.raises(LayoutError, match="not a gopro tree: .* it looks like a sidd tree"):
        index_gopro(sidd, _opts())


def test_sidd_block_scoring_equals_scoring_blocks_one_by_one(tmp_path: Path):
    root = make_sidd(tmp_path / "SIDD")
    table = index_sidd(root, _opts(tmp_path / "blocks"))["val300"]
    noisy, gt = sidd_blocks()
    restored = (noisy.astype(np.float64) + gt) / 2 / 255  # a "denoiser", unrounded: halfway between noisy and clean
    pred = tmp_path / "pred"
    for r in table.itertuples():
        block = restored[int(r.seq), int(r.frame)]
        write_image(pred / "png8" / f"{r.name}.png", to_uint8(block))
        write_image16(pred / "png16" / f"{r.name}.png", block)
    scored = score_dir(pred / "png8", table, workers=1).set_index("name")
    sidd = get_task("sidd")
    for i in range(noisy.shape[0]):
        for j in range(noisy.shape[1]):
            # SSIM on the 8-bit block; PSNR on the unrounded output (the release's SIDD protocol), peak 1.
            one = sidd.score(to_uint8(restored[i, j]), gt[i, j])
            got = scored.loc[f"{i:04d}_{j:02d}"]
            assert (got["ssim"], got["ssim3d"]) == (one["ssim"], one["ssim3d"])
            assert got["psnr"] == pytest.approx(psnr_float(restored[i, j], gt[i, j]), abs=1e-3)  # 16-bit storage
            assert got["psnr"] != pytest.approx(one["psnr"], abs=1e-3)  # 8-bit rounding would change it
    mean = np.mean([psnr_float(restored[i, j], gt[i, j]) for i in range(2) for j in range(3)])
    assert scored["psnr"].mean() == pytest.approx(mean, abs=1e-3)
    (pred / "png16" / "0001_02.png").unlink()
    with pytest.raises(EvaluationError, match=r"png16: 1 of 6 prediction\(s\) missing: 0001_02"):
        score_dir(pred / "png8", table, workers=1)


def test_psnr_float_by_hand():
    # Prediction 0.5 everywhere against a black target: MSE 0.25, PSNR = 10 log10(1 / 0.25) = 6.020600 dB.
    assert psnr_float(np.full((2, 2, 3), 0.5), np.zeros((2, 2, 3), np.uint8)) == pytest.approx(6.020600, abs=1e-6)
    # Exact 8-bit values give the 8-bit PSNR: 128 / 255 against 0 -> 20 log10(255 / 128) = 5.986604 dB.
    assert psnr_float(np.full((2, 2, 3), 128 / 255), np.zeros((2, 2, 3), np.uint8)) == pytest.approx(5.986604, abs=1e-6)


# ---- prepare and evaluate on each layout ----


def _paths(tmp: Path) -> PathsConfig:
    return PathsConfig(
        data=str(tmp / "out/data"),
        synthetic_reds=str(tmp / "out/data/reds"),
        metrics=str(tmp / "out/metrics"),
        plots=str(tmp / "out/plots"),
        predictions=str(tmp / "out/predictions"),
        eval=str(tmp / "out/eval"),
    )


@pytest.mark.parametrize("source", ["gopro", "sidd", "rain13k"])
def test_prepare_end_to_end(tmp_path: Path, source: str):
    root = {"gopro": make_gopro, "sidd": make_sidd, "rain13k": make_rain13k}[source](tmp_path / source)
    paths = _paths(tmp_path)
    cfg = DataConfig(source=source, root=str(root), workers=1, contact_sheet_pairs=1, sidd_block=BLOCK)
    stats = prepare(cfg, paths)
    layout = Layout(paths)
    task = get_task(source)
    assert stats.task == source and stats.source == source
    val300 = read_index(layout.index("val300"))
    assert list(val300.columns) == INDEX_COLUMNS and set(val300["task"]) == {source}
    expected_counts = {"gopro": 2, "sidd": 6, "rain13k": 7}[source]
    assert len(val300) == stats.counts.val300 == expected_counts
    for r in val300.itertuples():
        assert Path(r.blur_path).is_file() and _md5(r.blur_path) == r.blur_md5
    # The inputs are scored under the task's protocol (Rain13K: Y channel).
    inputs = read_input_scores(layout.input_scores).set_index("name")
    first = val300.iloc[0]
    one = task.score(read_image(first["blur_path"]), read_image(first["sharp_path"]))
    assert inputs.loc[first["name"]].to_dict() == pytest.approx(one, abs=1e-12)
    assert (Path(paths.plots) / "data_contact_sheet.png").is_file()
    if source == "rain13k":
        assert stats.counts.test_sets == {k: len(v) for k, v in RAIN_TEST.items()}
    if source == "sidd":  # blocks live in paths.data, recorded absolute; train paths stay relative to the root
        assert first["blur_path"] == str((Path(paths.data) / "blocks" / "noisy" / "0000_00.png").resolve())
        raw = pd.read_csv(layout.index("train"), dtype=str)
        assert raw["blur_path"].iloc[0] == f"Data/{SCENE}/NOISY_SRGB_010.PNG"


def test_evaluate_reports_rain13k_sets_and_task(tmp_path: Path):
    root = make_rain13k(tmp_path / "rain13k")
    paths = _paths(tmp_path)
    prepare(DataConfig(source="rain13k", root=str(root), workers=1, contact_sheet_pairs=1), paths)
    layout = Layout(paths)
    val300 = read_index(layout.index("val300"))
    split_dir = layout.predictions("m1", "plain", "val300")
    for r in val300.itertuples():  # "predictions": the targets, except Rain100H's which are the inputs
        write_image(
            split_dir / "png8" / f"{r.name}.png", read_image(r.blur_path if r.test_set == "Rain100H" else r.sharp_path)
        )
    PredictionFolder(split_dir).write_runtime(Runtime(0.1, len(val300), "cpu", "bf16", "plain"))
    out = evaluate_model("m1", layout, ["plain"])
    assert out.task == "rain13k"
    plain = out.tta["plain"]
    inputs = read_input_scores(layout.input_scores)
    rain100h = inputs[inputs["name"].str.startswith("Rain100H-")]["psnr"].mean()
    assert plain.test_sets["Rain100H"].psnr == pytest.approx(rain100h, abs=1e-4)
    assert plain.test_sets["Rain100H"].frames == 2 and plain.test_sets["Test2800"].frames == 2
    assert all(plain.test_sets[s].psnr == float("inf") for s in ("Rain100L", "Test100", "Test1200", "Test2800"))
    assert plain.reported.average == "test_sets"
    assert json.loads(layout.eval_metrics("m1").read_text()) == out.to_json()


def test_prepare_stage_prints_a_wrong_layout_as_one_line(tmp_path: Path, monkeypatch, capsys):
    import runpy

    import yaml

    repo = Path(__file__).parents[1]
    gopro = make_gopro(tmp_path / "GoPro")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"].update(source="sidd", root=str(gopro), workers=1)
    params["paths"].update({k: str(tmp_path / "out" / k) for k in ("data", "metrics", "plots")})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        runpy.run_path(str(repo / "stages" / "prepare.py"), run_name="__main__")
    assert info.value.code == 1
    err = capsys.readouterr().err
    hint = "it looks like a gopro tree (data.source: gopro)"
    assert err == f"error: {gopro}: not a sidd tree: expected {SIDD_EXPECTED}; {hint}\n"


def test_prepare_gopro_with_the_release_crops(tmp_path: Path):
    """The release's 512 px / stride 256 sub-images, here 16 px / stride 16 of 32x48 frames: 2 x 3 per frame."""
    root = make_gopro(tmp_path / "GoPro", "flat")
    cfg = DataConfig(source="gopro", root=str(root), workers=1, store="patches", patch_size=16, patch_stride=16)
    stats = prepare(cfg, _paths(tmp_path))
    assert stats.counts.patches == 3 * 6 and stats.counts.train == 3


def test_comparison_sheet_on_rain13k(tmp_path: Path):
    from pipeline.leaderboard.sheet import comparison_sheet

    val300 = index_rain13k(make_rain13k(tmp_path / "rain13k"), _opts())["val300"]
    for r in val300.itertuples():
        write_image(tmp_path / "png8" / f"{r.name}.png", read_image(r.sharp_path))
    sheet = comparison_sheet(val300, [("m1", tmp_path / "png8")], frames=2, crop=16, zoom=1)
    # 2 frames x (34 px label + 16 px crop + 4 px gap) high; input | m1 | target: 3 x 16 px + 2 gaps of 4 wide.
    assert sheet.shape == (2 * (34 + 16 + 4), 3 * 16 + 2 * 4, 3)
