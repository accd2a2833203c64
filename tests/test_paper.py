"""The paper's table from public checkpoints: random-weight HINets of the public architecture (saved as the release
saves them) evaluated on tiny trees in each real layout; the table's rows, our scores against scoring frame by frame,
the paper and difference columns, the files written, and one-line errors for bad checkpoints and trees."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from layout_trees import BLOCK, make_gopro, make_rain13k, make_sidd

from pipeline.data.layouts import IndexOptions
from pipeline.fileio import read_image, to_uint8
from pipeline.metrics import psnr_float
from pipeline.models.hinet import HINet
from pipeline.paper import COLUMNS, RELEASE, Run, _release_of, evaluate_runs, main, release_grid, write_outputs
from pipeline.tasks import get_task

RAIN_SETS = ["Rain100H", "Rain100L", "Test100", "Test1200", "Test2800"]


def _checkpoint(path: Path, seed: int, hin: tuple[int, int], drop: str | None = None) -> Path:
    """A tiny-width HINet (wf 8) with random weights, saved as the release does: ``torch.save({'params': sd})``."""
    torch.manual_seed(seed)
    sd = HINet(wf=8, hin_position_left=hin[0], hin_position_right=hin[1]).state_dict()
    if drop:
        sd.pop(drop)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"params": sd}, path)
    return path


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    tmp = tmp_path_factory.mktemp("paper")
    return {
        "gopro": (make_gopro(tmp / "GoPro", "flat"), _checkpoint(tmp / "w" / "gopro.pth", 1, (3, 4))),
        "sidd": (make_sidd(tmp / "SIDD"), _checkpoint(tmp / "w" / "sidd.pth", 2, (0, 4))),
        "rain13k": (make_rain13k(tmp / "Rain13k"), _checkpoint(tmp / "w" / "rain.pth", 3, (0, 4))),
    }


@pytest.fixture(scope="module")
def evaluated(trees):
    runs = [Run(task, root, weights) for task, (root, weights) in trees.items()]
    return evaluate_runs(runs, device="cpu", workers=1, sidd_block=BLOCK)


def _one_by_one(task_name: str, root: Path, weights: Path, tmp: Path) -> pd.DataFrame:
    """Each scored frame restored by a whole-image forward of the loaded model and scored alone under the protocol."""
    task = get_task(task_name)
    frames = task.index(root, IndexOptions(workers=1, derived_dir=tmp, sidd_block=BLOCK))["val300"]
    model = HINet(wf=8, hin_position_left=3 if task_name == "gopro" else 0, hin_position_right=4)
    model.load_state_dict(torch.load(weights, weights_only=True)["params"])
    model.eval()
    rows = []
    for r in frames.itertuples():
        image, target = read_image(r.blur_path), read_image(r.sharp_path)
        with torch.no_grad():
            x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
            out = model(x)[-1][0].permute(1, 2, 0).clamp(0, 1).numpy()
        scores = task.score(to_uint8(out), target)
        scores["psnr8"] = scores["psnr"]
        if task_name == "sidd":  # the release scores SIDD's PSNR on the unrounded output
            scores["psnr"] = psnr_float(out, target)
        rows.append({"test_set": r.test_set, "name": r.name, **scores})
    return pd.DataFrame(rows)


def test_table_rows_and_columns(evaluated):
    table, per_frame = evaluated
    assert list(table.columns) == COLUMNS
    got = list(table[["task", "test_set", "checkpoint", "frames", "tta", "release"]].itertuples(index=False))
    assert got == [
        ("gopro", "GoPro", "gopro.pth", 2, "plain", ""),
        ("sidd", "SIDD", "sidd.pth", 6, "plain", ""),
        *[("rain13k", s, "rain.pth", n, "plain", "") for s, n in zip(RAIN_SETS, [2, 1, 1, 1, 2], strict=True)],
        ("rain13k", "average", "rain.pth", 7, "plain", ""),
    ]
    assert table["model"].tolist()[:2] == ["wf8 depth5 HIN 3..4", "wf8 depth5 HIN 0..4"]
    assert len(per_frame) == 2 + 6 + 7 and per_frame["name"].is_unique


def test_ours_equals_scoring_frames_one_by_one(evaluated, trees, tmp_path):
    table, per_frame = evaluated
    for task, (root, weights) in trees.items():
        ref = _one_by_one(task, root, weights, tmp_path / task)
        mine = per_frame[per_frame["task"] == task].set_index("name")
        for r in ref.itertuples():
            for k in ("psnr", "ssim", "ssim3d"):
                assert mine.loc[r.name, k] == pytest.approx(getattr(r, k), abs=1e-6), (task, r.name, k)
        rows = table[table["task"] == task].set_index("test_set")
        for name, group in ref.groupby("test_set"):
            for k in ("psnr", "ssim", "ssim3d"):
                assert rows.loc[name, k] == pytest.approx(group[k].mean(), abs=1e-6)
        if task == "rain13k":  # the reported average is the plain mean of the five set means, not the frame mean
            means = [ref[ref["test_set"] == s]["psnr"].mean() for s in RAIN_SETS]
            assert rows.loc["average", "psnr"] == pytest.approx(np.mean(means), abs=1e-6)
            assert abs(rows.loc["average", "psnr"] - ref["psnr"].mean()) > 1e-3
        if task == "sidd":  # the unrounded output's PSNR, not the 8-bit one
            assert abs(rows.loc["SIDD", "psnr"] - ref["psnr8"].mean()) > 1e-4


def test_paper_and_difference_columns(evaluated):
    table = evaluated[0].set_index(["task", "test_set"])
    expected = {("gopro", "GoPro"): 32.71, ("sidd", "SIDD"): 39.99, ("rain13k", "Rain100H"): 30.65}
    expected |= {("rain13k", "Rain100L"): 37.28, ("rain13k", "Test100"): 30.29, ("rain13k", "Test1200"): 33.05}
    expected |= {("rain13k", "Test2800"): 33.91, ("rain13k", "average"): (30.65 + 37.28 + 30.29 + 33.05 + 33.91) / 5}
    assert table["paper_psnr"].to_dict() == pytest.approx(expected, abs=1e-12)
    assert table.loc[("rain13k", "average"), "paper_psnr"] == pytest.approx(33.036, abs=1e-9)
    assert (table["diff_psnr"] == table["psnr"] - table["paper_psnr"]).all()


def test_outputs_written(evaluated, tmp_path):
    table, per_frame = evaluated
    paths = write_outputs(table, per_frame, tmp_path / "out" / "paper_table.csv")
    assert [p.name for p in paths] == ["paper_table.csv", "paper_table.md", "paper_table_frames.csv"]
    back = pd.read_csv(paths[0], keep_default_na=False)
    assert list(back.columns) == COLUMNS and len(back) == len(table)
    assert back["psnr"].tolist() == pytest.approx(table["psnr"].round(4).tolist(), abs=1e-12)
    md = paths[1].read_text().splitlines()
    assert md[0].startswith("| task | test set | checkpoint |") and len(md) == 2 + len(table)
    gopro = table.iloc[0]
    assert md[2] == (
        f"| gopro | GoPro | gopro.pth | wf8 depth5 HIN 3..4 | plain | 2 | {gopro.psnr:.2f} | {gopro.ssim:.4f} | "
        f"{gopro.ssim3d:.4f} | 32.71 | {gopro.diff_psnr:+.2f} |"
    )
    assert "| **average** |" in md[-1]
    assert len(pd.read_csv(paths[2])) == 15


def test_cli_prints_the_table(trees, tmp_path, capsys):
    root, weights = trees["gopro"]
    out = tmp_path / "t.csv"
    args = ["--task", "gopro", "--root", str(root), "--weights", str(weights), "--out", str(out)]
    assert main([*args, "--device", "cpu", "--workers", "1", "--tta", "x8"]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[2].startswith("| gopro | GoPro | gopro.pth | wf8 depth5 HIN 3..4 | x8 | 2 |")
    assert printed.endswith(f"wrote {out}, {out.with_suffix('.md')}, {tmp_path / 't_frames.csv'}\n")


def _error(capsys, args) -> str:
    with pytest.raises(SystemExit) as info:
        main([*args, "--device", "cpu", "--workers", "1", "--sidd-block", str(BLOCK)])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    return err


def test_bad_input_is_one_line_naming_the_file_before_any_work(trees, tmp_path, capsys):
    root, weights = trees["gopro"]
    sidd_root, _ = trees["sidd"]
    out = tmp_path / "t.csv"
    good = ["--task", "gopro", "--root", str(root), "--weights", str(weights), "--out", str(out)]
    missing = tmp_path / "HINet-GoPro.pth"
    err = _error(capsys, [*good, "--task", "gopro", "--root", str(root), "--weights", str(missing)])
    assert err == f"error: {missing}: no such checkpoint file\n"
    cut = _checkpoint(tmp_path / "cut.pth", 1, (3, 4), drop="last.bias")
    err = _error(capsys, [*good, "--task", "gopro", "--root", str(root), "--weights", str(cut)])
    assert err.startswith(f"error: {cut}: checkpoint does not match the model; 1 missing keys: last.bias")
    torch.save({"params": {"encoder.weight": torch.zeros(3)}}, tmp_path / "other.pth")
    err = _error(capsys, [*good, "--task", "gopro", "--root", str(root), "--weights", str(tmp_path / "other.pth")])
    assert err == f"error: {tmp_path / 'other.pth'}: state dict has no 'conv_01.weight': not a HINet checkpoint\n"
    err = _error(capsys, [*good, "--task", "sidd", "--root", str(root), "--weights", str(weights)])
    assert err.startswith(f"error: {root}: not a sidd tree: expected ") and "looks like a gopro tree" in err
    err = _error(capsys, [*good, "--task", "gopro", "--root", str(sidd_root), "--weights", str(weights)])
    assert err.startswith(f"error: {sidd_root}: not a gopro tree") and "looks like a sidd tree" in err
    err = _error(capsys, ["--task", "hide", "--root", str(root), "--weights", str(weights)])
    assert err.startswith("error: unknown task 'hide' (known: reds, synthetic, gopro, sidd, rain13k)")
    assert not out.exists()  # every run is checked before the first one is evaluated
    err = _error(capsys, ["--task", "gopro", "--root", str(root)])
    assert err == "error: give --task, --root and --weights once per run (got 1 --task, 1 --root, 0 --weights)\n"


def test_release_checkpoints_and_grids():
    cfg = {"in_chn": 3, "wf": 32, "depth": 5, "hin_position_left": 0, "hin_position_right": 4, "extra_blocks": 0}
    sidd_half = _release_of(get_task("sidd"), cfg)
    assert sidd_half.file == "HINet-SIDD-0.5x.pth" and dict(sidd_half.published) == {"SIDD": 39.82}
    assert _release_of(get_task("sidd"), cfg | {"wf": 64}).file == "HINet-SIDD-1x.pth"
    assert _release_of(get_task("gopro"), cfg | {"wf": 64, "hin_position_left": 3}).file == "HINet-GoPro.pth"
    assert _release_of(get_task("gopro"), cfg | {"wf": 64}) is None  # SIDD's HIN positions are not GoPro's release
    assert _release_of(get_task("reds"), cfg | {"wf": 64, "hin_position_left": 3}).file == "HINet-REDS.pth"
    assert _release_of(get_task("rain13k"), cfg | {"wf": 64, "extra_blocks": 1}) is None
    assert [r.file for r in RELEASE] == [
        "HINet-GoPro.pth", "HINet-SIDD-1x.pth", "HINet-SIDD-0.5x.pth", "HINet-Rain13k.pth", "HINet-REDS.pth"
    ]  # fmt: skip
    assert [release_grid(get_task(t)) for t in ("gopro", "reds", "rain13k", "sidd")] == [256, 256, 256, None]
    assert math.isclose(get_task("rain13k").published_average, 33.036)
