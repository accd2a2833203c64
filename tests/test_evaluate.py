"""Scoring of 8-bit predictions and the per-model summary JSON, on tiny synthetic frames with known PSNR."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from pipeline import metrics
from pipeline.config import PathsConfig
from pipeline.evaluate import evaluate_model, summarize
from pipeline.fileio import write_image
from pipeline.layout import Layout
from pipeline.predictions import PredictionFolder, PredictionsError, Runtime
from pipeline.records import EvalRecord
from pipeline.scoring import EvaluationError, read_input_scores, score_dir, score_inputs, write_input_scores

NAMES = ["000_00000009", "000_00000019", "001_00000009"]


def psnr_of_offset(offset: int) -> float:
    """PSNR (peak 255) of an image against itself shifted by a constant: 20 log10(255 / |offset|)."""
    return 20 * math.log10(255 / abs(offset))


@pytest.fixture()
def frames(tmp_path):
    """Three 24x32 sharp frames, blurry inputs at +10 grey levels, and an index CSV describing them."""
    rng = np.random.default_rng(0)
    rows, sharp = [], {}
    for name in NAMES:
        img = rng.integers(20, 230, size=(24, 32, 3), dtype=np.uint8)
        sharp[name] = img
        write_image(tmp_path / "sharp" / f"{name}.png", img)
        write_image(tmp_path / "blur" / f"{name}.png", img + 10)
        seq, frame = name.split("_")
        rows.append(
            {
                "split": "val300",
                "seq": seq,
                "frame": frame,
                "name": name,
                "blur_path": str(tmp_path / "blur" / f"{name}.png"),
                "sharp_path": str(tmp_path / "sharp" / f"{name}.png"),
                "height": 24,
                "width": 32,
            }
        )
    index = pd.DataFrame(rows)
    index.to_csv(tmp_path / "val300.csv", index=False)
    return tmp_path, index, sharp


def write_preds(pred_dir, sharp, offset):
    for name, img in sharp.items():
        write_image(pred_dir / f"{name}.png", (img.astype(np.int16) + offset).astype(np.uint8))


def test_score_dir_exact_psnr_and_ssim(frames):
    root, index, sharp = frames
    write_preds(root / "pred", sharp, 5)
    df = score_dir(root / "pred", index)
    assert list(df.columns) == ["name", "psnr", "ssim", "ssim3d"]
    assert list(df["name"]) == NAMES
    np.testing.assert_allclose(df["psnr"], psnr_of_offset(5), rtol=0, atol=1e-9)
    expected_ssim = [metrics.ssim(sharp[n] + 5, sharp[n]) for n in NAMES]
    np.testing.assert_allclose(df["ssim"], expected_ssim, rtol=0, atol=1e-12)
    assert all(0.9 < s < 1.0 for s in expected_ssim)


def test_score_dir_parallel_matches_serial(frames):
    root, index, sharp = frames
    write_preds(root / "pred", sharp, -3)
    serial = score_dir(root / "pred", index)
    parallel = score_dir(root / "pred", index, workers=2)
    pd.testing.assert_frame_equal(serial, parallel)


def test_missing_predictions_are_all_named(frames):
    root, index, sharp = frames
    write_preds(root / "pred", sharp, 5)
    (root / "pred" / f"{NAMES[0]}.png").unlink()
    (root / "pred" / f"{NAMES[2]}.png").unlink()
    with pytest.raises(EvaluationError, match=rf"2 of 3 prediction\(s\) missing: {NAMES[0]}, {NAMES[2]}"):
        score_dir(root / "pred", index)


def test_size_mismatch_names_file(frames):
    root, index, sharp = frames
    write_preds(root / "pred", sharp, 5)
    write_image(root / "pred" / f"{NAMES[1]}.png", np.zeros((16, 32, 3), np.uint8))
    with pytest.raises(EvaluationError, match=rf"{NAMES[1]}\.png: size \(16, 32\) differs"):
        score_dir(root / "pred", index)


def test_test_split_without_sharp_is_rejected(frames):
    root, index, sharp = frames
    write_preds(root / "pred", sharp, 5)
    index = index.assign(sharp_path="")
    with pytest.raises(EvaluationError, match="'sharp_path' is empty for 3 frame"):
        score_dir(root / "pred", index)


def test_summarize_gain(frames):
    root, index, sharp = frames
    write_preds(root / "pred", sharp, 5)
    inputs = score_inputs(index)
    np.testing.assert_allclose(inputs["psnr"], psnr_of_offset(10), atol=1e-9)
    summary = summarize(score_dir(root / "pred", index), inputs)
    assert set(summary) == {"psnr", "ssim", "ssim3d", "gain_db", "frames"}
    assert summary["frames"] == 3
    assert summary["psnr"] == pytest.approx(psnr_of_offset(5), abs=1e-4)
    # Halving the error gains 20 log10(2) dB.
    assert summary["gain_db"] == pytest.approx(20 * math.log10(2), abs=1e-4)


def _layout(root, index):
    """A layout under ``root`` holding the val-300 index and the per-frame input scores the data stage writes."""
    layout = Layout(PathsConfig(data=str(root / "data"), predictions=str(root / "predictions"),
                                eval=str(root / "eval"), metrics=str(root / "metrics")))  # fmt: skip
    layout.index("val300").parent.mkdir(parents=True)
    index.to_csv(layout.index("val300"), index=False)
    write_input_scores(layout.input_scores, score_inputs(index))
    return layout


def test_input_scores_round_trip_bit_exact(frames, tmp_path):
    _, index, _ = frames
    inputs = score_inputs(index).assign(psnr=[1 / 3, 2 / 3, np.pi])  # floats that a short format would round
    write_input_scores(tmp_path / "in.csv", inputs)
    back = read_input_scores(tmp_path / "in.csv")
    assert list(back["name"]) == NAMES and list(back["psnr"]) == [1 / 3, 2 / 3, np.pi]  # bit for bit
    (tmp_path / "bad.csv").write_text("name,psnr\n000_00000009,1\n")
    with pytest.raises(EvaluationError, match=r"bad\.csv: not a table of input scores, missing column\(s\)"):
        read_input_scores(tmp_path / "bad.csv")
    with pytest.raises(EvaluationError, match=r"absent\.csv: per-frame input scores not found"):
        read_input_scores(tmp_path / "absent.csv")


def test_evaluate_model_writes_csvs_and_dvc_shaped_json(frames):
    root, index, sharp = frames
    layout = _layout(root, index)
    for mode, offset, spf in [("plain", 5, 0.25), ("x8", 2, 2.0)]:
        split_dir = layout.predictions("m1", mode, "val300")
        write_preds(split_dir / "png8", sharp, offset)
        PredictionFolder(split_dir).write_runtime(Runtime(spf, 3, "cpu", "bf16", mode))
    out = evaluate_model("m1", layout, ["plain", "x8"])
    on_disk = json.loads(layout.eval_metrics("m1").read_text())
    assert on_disk == out.to_json() and EvalRecord.read(layout.eval_metrics("m1"), error=EvaluationError) == out
    assert list(on_disk) == [
        "model",
        "task",
        "frames",
        "tta",
    ]  # input scores: the data stage's files; model facts: train's
    assert out.model == "m1" and out.task == "reds" and out.frames == 3  # no task column: REDS
    assert set(out.tta) == {"plain", "x8"}
    assert set(on_disk["tta"]["x8"]) == {
        "psnr",
        "ssim",
        "ssim3d",
        "gain_db",
        "seconds_per_frame",
        "device",
        "precision",
        "settings",
    }
    # HINet's 3D SSIM is scored beside the 2D one (mean of the per-frame values in the CSV).
    assert 0.99 < out.tta["x8"].ssim3d <= 1
    assert out.tta["plain"].psnr == pytest.approx(psnr_of_offset(5), abs=1e-4)
    assert out.tta["x8"].psnr == pytest.approx(psnr_of_offset(2), abs=1e-4)
    assert out.tta["x8"].gain_db == pytest.approx(20 * math.log10(5), abs=1e-4)
    assert out.tta["x8"].seconds_per_frame == 2.0
    assert out.tta["plain"].device == "cpu"
    csv = pd.read_csv(layout.eval_csv("m1", "x8"), dtype={"name": str})
    assert list(csv.columns) == ["name", "psnr", "ssim", "ssim3d", "input_psnr", "gain_db"]
    assert csv["ssim3d"].mean() == pytest.approx(out.tta["x8"].ssim3d, abs=1e-5)
    assert list(csv["name"]) == NAMES
    np.testing.assert_allclose(csv["input_psnr"], psnr_of_offset(10), atol=1e-5)
    np.testing.assert_allclose(csv["gain_db"], 20 * math.log10(5), atol=1e-4)


def test_evaluate_model_reads_the_input_scores_instead_of_rescoring(frames):
    """The input column comes from the data stage's file: a (deliberately wrong) stored value shows through."""
    root, index, sharp = frames
    layout = _layout(root, index)
    write_input_scores(layout.input_scores, score_inputs(index).assign(psnr=10.0))
    split_dir = layout.predictions("m1", "plain", "val300")
    write_preds(split_dir / "png8", sharp, 5)
    PredictionFolder(split_dir).write_runtime(Runtime(1.0, 3, "cpu", "bf16", "plain"))
    out = evaluate_model("m1", layout, ["plain"])
    assert out.tta["plain"].gain_db == pytest.approx(psnr_of_offset(5) - 10.0, abs=1e-4)


def test_evaluate_model_missing_runtime_and_input_scores(frames):
    root, index, sharp = frames
    layout = _layout(root, index)
    write_preds(layout.predictions("m1", "plain", "val300") / "png8", sharp, 5)
    with pytest.raises(PredictionsError, match=r"runtime\.json: runtime record not found"):
        evaluate_model("m1", layout, ["plain"])
    layout.input_scores.unlink()
    with pytest.raises(EvaluationError, match=r"val300_inputs\.csv: per-frame input scores not found"):
        evaluate_model("m1", layout, ["plain"])
