"""Ensembles average the 16-bit predictions with normalised weights, fit weights honestly, and sum the runtime."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest

from pipeline.config import EnsembleConfig, PathsConfig
from pipeline.ensemble import (
    EnsembleError,
    average_predictions,
    fit_weights,
    normalise_weights,
    project_to_simplex,
    run_ensemble,
    split_fit_heldout,
)
from pipeline.evaluate import evaluate_model
from pipeline.fileio import read_image, read_image16, to_uint8, write_image, write_image16
from pipeline.layout import Layout
from pipeline.predictions import PredictionFolder, Runtime
from pipeline.records import EnsembleRecord, EvalRecord
from pipeline.scoring import score_inputs, write_input_scores

H, W = 16, 24


def write_member(split_dir, images: dict, spf: float, device: str = "cpu"):
    """A member's prediction folder: png16 + png8 of float images in [0, 1], and its runtime record."""
    folder = PredictionFolder(split_dir)
    for name, img in images.items():
        folder.write(name, img)
    folder.write_runtime(Runtime(spf, len(images), device, "bf16", "x8"))


def const(level_255: float) -> np.ndarray:
    return np.full((H, W, 3), level_255 / 255.0, np.float32)


def test_average_is_from_16_bit_not_8_bit(tmp_path):
    # 100.4 and 101.4 grey levels: their 16-bit mean is 100.9 -> 101, but the 8-bit files (100, 101) average to 100.5,
    # which rounds (half to even) to 100. Only the 16-bit path gives 101.
    write_member(tmp_path / "a", {"f": const(100.4)}, 1.0)
    write_member(tmp_path / "b", {"f": const(101.4)}, 1.0)
    eight_bit = (read_image(tmp_path / "a/png8/f.png").astype(float) + read_image(tmp_path / "b/png8/f.png")) / 2
    assert np.all(to_uint8(eight_bit / 255.0) == 100)
    [(name, img)] = list(average_predictions([tmp_path / "a", tmp_path / "b"], ["f"], None))
    assert name == "f" and img.dtype == np.float32 and img.shape == (H, W, 3)
    expected = (read_image16(tmp_path / "a/png16/f.png") + read_image16(tmp_path / "b/png16/f.png")) / 2
    np.testing.assert_allclose(img, expected, rtol=0, atol=1e-7)
    assert abs(float(img[0, 0, 0]) * 255 - 100.9) < 255 / 65535
    assert np.all(to_uint8(img) == 101)


def test_weights_are_normalised(tmp_path):
    write_member(tmp_path / "a", {"f": const(40)}, 1.0)
    write_member(tmp_path / "b", {"f": const(200)}, 1.0)
    [(_, img)] = list(average_predictions([tmp_path / "a", tmp_path / "b"], ["f"], [1.0, 3.0]))
    a16, b16 = round(40 / 255 * 65535) / 65535, round(200 / 255 * 65535) / 65535
    np.testing.assert_allclose(img, 0.25 * a16 + 0.75 * b16, rtol=0, atol=1e-7)
    np.testing.assert_allclose(normalise_weights([2, 2, 4], 3), [0.25, 0.25, 0.5])
    np.testing.assert_allclose(normalise_weights(None, 4), [0.25] * 4)


def test_bad_inputs_are_named(tmp_path):
    write_member(tmp_path / "a", {"f": const(40), "g": const(40)}, 1.0)
    write_member(tmp_path / "b", {"f": const(40)}, 1.0)
    write_image16(tmp_path / "c" / "png16" / "f.png", np.zeros((H, W + 8, 3), np.float32))
    dirs = [tmp_path / "a", tmp_path / "b"]
    with pytest.raises(EnsembleError, match=r"b/png16/g\.png: member prediction missing"):
        list(average_predictions(dirs, ["f", "g"], None))
    with pytest.raises(EnsembleError, match=r"c/png16/f\.png: size \(16, 32\) differs"):
        list(average_predictions([tmp_path / "a", tmp_path / "c"], ["f"], None))
    with pytest.raises(EnsembleError, match=r"got 3 weight\(s\) for 2 member\(s\)"):
        list(average_predictions(dirs, ["f"], [1, 1, 1]))
    with pytest.raises(EnsembleError, match="non-negative"):
        list(average_predictions(dirs, ["f"], [1, -0.5]))
    with pytest.raises(EnsembleError, match="all be zero"):
        normalise_weights([0, 0], 2)


def test_simplex_projection_and_split():
    np.testing.assert_allclose(project_to_simplex(np.array([0.2, 0.3, 0.5])), [0.2, 0.3, 0.5])
    np.testing.assert_allclose(project_to_simplex(np.array([2.0, 0.0, 0.0])), [1.0, 0.0, 0.0])
    np.testing.assert_allclose(project_to_simplex(np.array([1.0, 1.0, -5.0])), [0.5, 0.5, 0.0])
    names = [f"{i:03d}" for i in range(10)]
    fit, held = split_fit_heldout(names, 0.3, seed=1)
    assert len(fit) == 3 and len(held) == 7 and sorted(fit + held) == names
    assert (fit, held) == split_fit_heldout(list(reversed(names)), 0.3, seed=1)
    with pytest.raises(EnsembleError, match="fit_fraction must be in"):
        split_fit_heldout(names, 1.0, 0)


def make_val(tmp_path, n=8, sigma_a=2.0, sigma_b=20.0, spf=(0.5, 1.25), devices=("cpu", "cpu")):
    """Sharp frames plus two members: 'good' (small noise) and 'bad' (large noise), and the val300 index."""
    rng = np.random.default_rng(3)
    rows, good, bad = [], {}, {}
    for i in range(n):
        name = f"000_{i:08d}"
        sharp = rng.integers(40, 215, size=(H, W, 3)).astype(np.uint8)
        write_image(tmp_path / "sharp" / f"{name}.png", sharp)
        write_image(tmp_path / "blur" / f"{name}.png", np.clip(sharp.astype(int) + 30, 0, 255).astype(np.uint8))
        good[name] = np.clip((sharp + rng.normal(0, sigma_a, sharp.shape)) / 255, 0, 1).astype(np.float32)
        bad[name] = np.clip((sharp + rng.normal(0, sigma_b, sharp.shape)) / 255, 0, 1).astype(np.float32)
        rows.append(
            {"split": "val300", "seq": "000", "frame": f"{i:08d}", "name": name,
             "blur_path": str(tmp_path / "blur" / f"{name}.png"),
             "sharp_path": str(tmp_path / "sharp" / f"{name}.png"), "height": H, "width": W}
        )  # fmt: skip
    write_member(tmp_path / "pred/good/x8/val300", good, spf[0], devices[0])
    write_member(tmp_path / "pred/bad/x8/val300", bad, spf[1], devices[1])
    return pd.DataFrame(rows)


def test_fit_weights_prefers_the_better_member(tmp_path):
    index = make_val(tmp_path)
    dirs = [tmp_path / "pred/good/x8/val300", tmp_path / "pred/bad/x8/val300"]
    w, report = fit_weights(dirs, index, fit_fraction=0.5, seed=0, member_names=["good", "bad"])
    assert sum(w) == pytest.approx(1.0) and min(w) >= 0
    # Independent noise of sigma 2 and 20: the MSE-optimal weight of the good member is 400 / 404.
    assert w[0] == pytest.approx(400 / 404, abs=0.02)
    assert set(report.to_json()) == {
        "fit_frames", "heldout_frames", "fit_fraction", "seed", "weights", "fit_psnr_fitted", "fit_psnr_equal",
        "heldout_psnr_fitted", "heldout_psnr_equal", "heldout_gain_db",
    }  # fmt: skip
    assert report.fit_frames == 4 and report.heldout_frames == 4
    assert list(report.weights) == ["good", "bad"]
    # Equal weights halve the bad member's noise only: sigma ~ sqrt(4 + 400) / 2 ~ 10 -> ~28.1 dB; fitted ~ 42 dB.
    assert report.heldout_gain_db > 10
    assert report.heldout_gain_db == pytest.approx(report.heldout_psnr_fitted - report.heldout_psnr_equal, abs=2e-4)
    assert report.heldout_psnr_equal == pytest.approx(20 * math.log10(255 / (math.sqrt(404) / 2)), abs=0.5)


def test_fit_weights_score_the_task_channel(tmp_path):
    """Member 'chroma' errs only along a direction with zero BT.601 luma (large RGB error, exact Y); member 'grey'
    adds small grey noise (small RGB error, all of it in Y). A REDS index (RGB PSNR) weights 'grey'; a Rain13K index
    (Y PSNR, as its evaluation scores) weights 'chroma' - the fit ranks weights as ``evaluate`` ranks results."""
    rng = np.random.default_rng(5)
    chroma_dir = np.array([128.553, -65.481, 0.0]) / 145.0  # 65.481 * d_R + 128.553 * d_G + 24.966 * d_B = 0
    rows = []
    for i in range(6):
        name = f"000_{i:08d}"
        sharp = rng.integers(60, 195, size=(H, W, 3)).astype(np.uint8)
        write_image(tmp_path / "sharp" / f"{name}.png", sharp)
        write_image(tmp_path / "blur" / f"{name}.png", sharp)
        chroma = sharp + 20.0 * rng.choice([-1.0, 1.0], size=(H, W, 1)) * chroma_dir
        grey = sharp + rng.normal(0, 2.0, size=(H, W, 1))
        write_member(tmp_path / "chroma", {name: (chroma / 255).astype(np.float32)}, 1.0)
        write_member(tmp_path / "grey", {name: (grey / 255).astype(np.float32)}, 1.0)
        rows.append({"split": "val300", "seq": "000", "frame": f"{i:08d}", "name": name,
                     "blur_path": str(tmp_path / "blur" / f"{name}.png"),
                     "sharp_path": str(tmp_path / "sharp" / f"{name}.png")})  # fmt: skip
    rgb = pd.DataFrame(rows)
    dirs = [tmp_path / "chroma", tmp_path / "grey"]
    w_rgb, _ = fit_weights(dirs, rgb, fit_fraction=0.5, seed=0)
    w_y, report = fit_weights(dirs, rgb.assign(task="rain13k"), fit_fraction=0.5, seed=0)
    assert w_rgb[1] > 0.9 and w_y[0] > 0.99, (w_rgb, w_y)
    # Y of 'chroma' is exact up to 16-bit storage: the fitted held-out Y PSNR is far above ~42 dB of grey.
    assert report.heldout_psnr_fitted > 60


def ensemble_layout(tmp_path, index, *, test_frames: bool) -> Layout:
    """The files the ensemble stage reads, as the earlier stages write them: index CSVs, per-frame input scores, and
    each member's x8 predictions (``make_val``) scored by ``evaluate``."""
    layout = Layout(PathsConfig(data=str(tmp_path / "data"), predictions=str(tmp_path / "pred"),
                                eval=str(tmp_path / "eval"), ensemble=str(tmp_path / "ensemble"),
                                metrics=str(tmp_path / "metrics")))  # fmt: skip
    layout.index("val300").parent.mkdir(parents=True)
    index.to_csv(layout.index("val300"), index=False)
    test = pd.DataFrame({"name": [f"100_{i:08d}" for i in range(3)] if test_frames else []})
    test.to_csv(layout.index("test300"), index=False)
    write_input_scores(layout.input_scores, score_inputs(index))
    for member in ("good", "bad"):
        evaluate_model(member, layout, ["x8"])
    return layout


def test_run_ensemble_writes_splits_sums_runtime_and_scores(tmp_path):
    index = make_val(tmp_path)
    rng = np.random.default_rng(9)
    test_imgs = {f"100_{i:08d}": rng.random((H, W, 3), dtype=np.float32) for i in range(3)}
    write_member(tmp_path / "pred/good/x8/test300", test_imgs, 0.5)
    write_member(tmp_path / "pred/bad/x8/test300", test_imgs, 1.25)
    layout = ensemble_layout(tmp_path, index, test_frames=True)
    out_root = tmp_path / "ensemble"
    result = run_ensemble(EnsembleConfig(fit=True), layout, members=["good", "bad"], mode="x8")
    assert sorted(p.name for p in out_root.iterdir()) == ["test300", "val300"]  # no temporary leftovers
    assert sorted(p.stem for p in (out_root / "test300/png8").iterdir()) == sorted(test_imgs)
    assert len(list((out_root / "val300/png16").iterdir())) == 8
    rt = json.loads((out_root / "test300/runtime.json").read_text())
    assert rt["seconds_per_frame"] == 1.75 and rt["frames"] == 3 and rt["device"] == "cpu"
    assert rt["members"] == ["good", "bad"]
    # Identical members: the test-split ensemble equals each of them (up to 16-bit quantisation).
    np.testing.assert_allclose(
        read_image16(out_root / "test300/png16/100_00000001.png"), test_imgs["100_00000001"], atol=1 / 65535
    )
    assert json.loads(layout.ensemble_metrics.read_text()) == result.to_json()
    assert EnsembleRecord.read(layout.ensemble_metrics, error=EnsembleError) == result
    assert {"psnr", "ssim", "ssim3d", "gain_db", "frames", "members", "weights", "seconds_per_frame",
            "device", "member_psnr", "best_member", "best_member_psnr", "gain_over_best_member_db", "fit",
            "settings", "published", "variants"} == set(result.to_json())  # fmt: skip
    # The fitted ensemble is published; the equal-weight one is scored beside it, from the same members.
    assert result.published == "fitted" and set(result.variants) == {"fitted", "equal"}
    assert result.variants["fitted"].psnr == result.psnr
    assert result.variants["equal"].weights == {"good": 0.5, "bad": 0.5}
    assert result.variants["equal"].psnr < result.psnr - 5  # the bad member's noise drags the average down
    equal_csv = pd.read_csv(tmp_path / "eval/ensemble/ensemble_equal.csv")
    assert equal_csv["psnr"].mean() == pytest.approx(result.variants["equal"].psnr, abs=1e-3)
    assert result.seconds_per_frame == 1.75 and result.frames == 8
    assert result.best_member == "good"
    assert result.psnr >= result.best_member_psnr - 0.05
    assert result.member_psnr["good"] == pytest.approx(20 * math.log10(255 / 2), abs=0.5)
    assert result.weights["good"] > 0.95
    csv = pd.read_csv(layout.ensemble_eval_csv)
    assert len(csv) == 8 and csv["psnr"].mean() == pytest.approx(result.psnr, abs=1e-3)


def test_run_ensemble_reads_member_scores_from_their_evaluation(tmp_path):
    """Members' PSNRs are what evaluate@ recorded (not rescored); a missing record names its file."""
    index = make_val(tmp_path, n=3)
    layout = ensemble_layout(tmp_path, index, test_frames=False)
    record = EvalRecord.read(layout.eval_metrics("bad"), error=EnsembleError)
    dataclasses.replace(record, tta={"x8": dataclasses.replace(record.tta["x8"], psnr=99.0)}).write(
        layout.eval_metrics("bad")
    )
    result = run_ensemble(EnsembleConfig(), layout, members=["good", "bad"], mode="x8")
    assert result.member_psnr["bad"] == 99.0 and result.best_member == "bad"
    assert sorted(p.name for p in (tmp_path / "ensemble").iterdir()) == ["val300"]  # no test frames: val-300 only
    layout.eval_metrics("good").unlink()
    with pytest.raises(EnsembleError, match=r"eval/good\.json: evaluation metrics not found"):
        run_ensemble(EnsembleConfig(), layout, members=["good", "bad"], mode="x8")


def test_run_ensemble_fixed_weights_and_devices(tmp_path):
    index = make_val(tmp_path, n=3, devices=("cuda:0", "cpu"))
    layout = ensemble_layout(tmp_path, index, test_frames=False)
    kw = dict(members=["good", "bad"], mode="x8")
    result = run_ensemble(EnsembleConfig(), layout, **kw)
    assert result.published == "equal" and set(result.variants) == {"equal"}  # the default: equal weights
    result = run_ensemble(EnsembleConfig(weights=(3, 1)), layout, **kw)
    assert result.weights == {"good": 0.75, "bad": 0.25} and result.fit is None
    assert result.published == "weights" and set(result.variants) == {"weights", "equal"}
    assert result.device == "cuda:0,cpu"
    assert result.seconds_per_frame == 1.75
    # A member with weight 0 never has to run: it adds nothing to the ensemble's runtime.
    result = run_ensemble(EnsembleConfig(weights=(1, 0)), layout, **kw)
    assert result.weights == {"good": 1.0, "bad": 0.0} and result.seconds_per_frame == 0.5
    with pytest.raises(EnsembleError, match="no ensemble members"):
        run_ensemble(EnsembleConfig(), layout, members=[], mode="x8")
    pd.DataFrame({"name": ["100_00000009"]}).to_csv(layout.index("test300"), index=False)  # test frames appear
    with pytest.raises(EnsembleError, match=r"x8/test300/png16: 16-bit predictions of member 'good'"):
        run_ensemble(EnsembleConfig(), layout, **kw)
