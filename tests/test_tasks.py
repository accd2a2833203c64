"""Task definitions and their scoring protocols: the Y channel and Y SSIM of the public code on hand-computed cases,
the reported averages, and unknown names as one-line errors."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pandas as pd
import pytest

from pipeline import metrics
from pipeline.cli import is_user_error
from pipeline.config import ConfigError, DataConfig
from pipeline.tasks import TASKS, TaskError, get_task, task_of_index


def test_every_data_source_has_a_task_and_back():
    assert set(DataConfig.SOURCES) == set(TASKS)


def test_unknown_task_and_source_are_one_line_errors():
    with pytest.raises(TaskError, match=r"^unknown task 'gopro2' \(known: reds, synthetic, gopro, sidd, rain13k\)$"):
        get_task("gopro2")
    assert is_user_error(TaskError("x"))  # printed as one line by the stage scripts
    with pytest.raises(ConfigError, match="data.source"):
        DataConfig(source="rain14k", root="/x")
    with pytest.raises(ConfigError, match=r"must be the folder of a Rain13K download when data.source is 'rain13k'"):
        DataConfig(source="rain13k")
    with pytest.raises(ConfigError, match=r"data\.sidd_block: got 8, must be >= 16"):
        DataConfig(sidd_block=8)


def test_protocol_facts_per_task():
    assert [(t.name, t.channel, t.crop_border, t.average, t.results) for t in TASKS.values()] == [
        ("reds", "rgb", 0, "frames", "ntire_zip"),
        ("synthetic", "rgb", 0, "frames", "ntire_zip"),
        ("gopro", "rgb", 0, "frames", "test_set_folders"),
        ("sidd", "rgb", 0, "frames", "test_set_folders"),
        ("rain13k", "y", 0, "test_sets", "test_set_folders"),
    ]
    assert get_task("rain13k").test_set_names == ("Rain100H", "Rain100L", "Test100", "Test1200", "Test2800")
    # The paper's average row: the plain mean of the five set PSNRs, (30.65 + 37.28 + 30.29 + 33.05 + 33.91) / 5.
    assert get_task("rain13k").published_average == pytest.approx(165.18 / 5, abs=1e-12)
    assert get_task("gopro").published_average == 32.71
    assert get_task("sidd").published_average == 39.99 and not get_task("sidd").rounded_output
    assert get_task("synthetic").published_average is None


def test_y_psnr_by_hand_2x2():
    # pred: white, black / red, blue; target: black everywhere.
    # Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255: white 235.0, black 16.0, red 81.481, blue 40.966; target 16.
    # Differences 219, 0, 65.481, 24.966 -> MSE = (47961 + 0 + 4287.761361 + 623.301156) / 4 = 13218.01562925
    # PSNR = 10 log10(255^2 / 13218.01562925) = 10 log10(4.9194222) = 6.919141 dB
    pred = np.array([[[255, 255, 255], [0, 0, 0]], [[255, 0, 0], [0, 0, 255]]], np.uint8)
    target = np.zeros_like(pred)
    expected = 10 * math.log10(65025 / 13218.01562925)
    assert expected == pytest.approx(6.919141, abs=1e-6)
    assert metrics.psnr(pred, target, test_y_channel=True) == pytest.approx(expected, abs=1e-9)
    assert get_task("rain13k").score(pred, target, with_ssim=False)["psnr"] == pytest.approx(expected, abs=1e-9)
    # RGB instead (REDS): squared errors 3 * 65025 (white), 0, 65025 (red), 65025 (blue) over 12 values.
    rgb = 10 * math.log10(65025 / (5 * 65025 / 12))
    assert get_task("reds").score(pred, target, with_ssim=False)["psnr"] == pytest.approx(rgb, abs=1e-9)


def test_y_is_not_rounded():
    # One red level: Y differs by 65.481 / 255 = 0.25679 (rounded Y would be 16 on both sides: an infinite PSNR).
    # MSE over the 1x2 image = 0.256788^2 / 2 = 0.0329701 -> PSNR = 10 log10(65025 / 0.0329701) = 62.9496 dB.
    pred = np.array([[[1, 0, 0], [0, 0, 0]]], np.uint8)
    target = np.zeros_like(pred)
    d = 65.481 / 255
    assert metrics.psnr(pred, target, test_y_channel=True) == pytest.approx(10 * math.log10(65025 / (d * d / 2)))
    assert metrics.psnr(pred, target, test_y_channel=True) == pytest.approx(62.9496, abs=1e-4)


def _release_y(img: np.ndarray) -> np.ndarray:
    """The public code's to_y_channel, restated: float32 [0,1] BGR, bgr2ycbcr y_only, /255 to float32, *255."""
    bgr = img[..., ::-1].astype(np.float64).astype(np.float32) / 255.0
    y = np.dot(bgr, [24.966, 128.553, 65.481]) + 16.0
    return (y / 255.0).astype(np.float32) * 255.0


def test_y_psnr_and_ssim_match_the_release_convention():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    ya, yb = _release_y(a), _release_y(b)
    release_psnr = 20 * np.log10(255.0 / np.sqrt(np.mean((ya - yb) ** 2)))  # float32, as the release computes
    assert metrics.psnr(a, b, test_y_channel=True) == pytest.approx(float(release_psnr), abs=1e-4)
    # _ssim_cly: 2D 11x11 Gaussian window (outer product), replicate borders, whole map.
    win = np.outer(cv2.getGaussianKernel(11, 1.5), cv2.getGaussianKernel(11, 1.5).T)
    ya64, yb64 = ya.astype(np.float64), yb.astype(np.float64)

    def f(x):
        return cv2.filter2D(x, -1, win, borderType=cv2.BORDER_REPLICATE)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    m1, m2 = f(ya64), f(yb64)
    s1, s2, s12 = f(ya64**2) - m1**2, f(yb64**2) - m2**2, f(ya64 * yb64) - m1 * m2
    ref = ((2 * m1 * m2 + c1) * (2 * s12 + c2) / ((m1**2 + m2**2 + c1) * (s1 + s2 + c2))).mean()
    assert metrics.ssim_hinet_y(a, b) == pytest.approx(float(ref), abs=1e-5)
    assert get_task("rain13k").score(a, b)["ssim3d"] == metrics.ssim_hinet_y(a, b)
    # BasicSR's Y SSIM keeps the valid region only: a different number, kept under "ssim".
    assert abs(metrics.ssim(a, b, test_y_channel=True) - metrics.ssim_hinet_y(a, b)) > 1e-4
    assert get_task("rain13k").score(a, b)["ssim"] == metrics.ssim(a, b, test_y_channel=True)


def test_identical_y_is_inf_and_one():
    a = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert metrics.psnr(a, a, test_y_channel=True) == math.inf
    assert metrics.ssim_hinet_y(a, a) == pytest.approx(1.0)


def test_rain13k_reports_the_mean_of_set_means_not_of_frames():
    task = get_task("rain13k")
    per_image = pd.DataFrame(
        {"name": list("abcde"), "psnr": [30.0, 32.0, 40.0, 20.0, 22.0], "ssim": [0.5] * 5, "ssim3d": [0.6] * 5}
    )
    sets = ["Rain100H", "Rain100H", "Rain100L", "Test2800", "Test2800"]
    out = task.report(per_image, sets)
    # Set means: Rain100H (30 + 32) / 2 = 31, Rain100L 40, Test2800 (20 + 22) / 2 = 21; reported (31 + 40 + 21) / 3.
    assert {k: v["psnr"] for k, v in out["test_sets"].items()} == {"Rain100H": 31.0, "Rain100L": 40.0, "Test2800": 21.0}
    assert out["reported"]["psnr"] == pytest.approx(92 / 3)
    assert out["reported"]["sets"] == ["Rain100H", "Rain100L", "Test2800"]
    assert per_image["psnr"].mean() == pytest.approx(28.8)  # the frame mean, which the paper does not report
    with pytest.raises(TaskError, match=r"unknown test set\(s\) \['Rain200H'\]"):
        task.report(per_image, ["Rain200H"] * 5)
    # A one-set task averages frames.
    assert get_task("gopro").report(per_image)["reported"]["psnr"] == pytest.approx(28.8)


def test_task_of_index():
    assert task_of_index(pd.DataFrame({"name": ["000_00000009"]})).name == "reds"  # REDS indexes have no column
    assert task_of_index(pd.DataFrame({"name": ["a_0"], "task": ["rain13k"]})).name == "rain13k"
    with pytest.raises(TaskError, match=r"rows of several tasks \['gopro', 'sidd'\]"):
        task_of_index(pd.DataFrame({"name": ["a_0", "b_0"], "task": ["gopro", "sidd"]}))


def test_result_paths():
    gopro = get_task("gopro")  # GOPRO_Large frame stems repeat across scenes: named as the flat form names them
    assert gopro.result_path("S_000001", "GoPro", "/g/test/GOPR0384_11_00/blur/000001.png") == (
        "GoPro/GOPR0384_11_00-000001.png"
    )
    assert gopro.result_path("S_000001", "GoPro", "/g/test/input/GOPR0384_11_00-000001.png") == (
        "GoPro/GOPR0384_11_00-000001.png"
    )
    assert get_task("sidd").result_path("0000_01", "SIDD", "/d/blocks/noisy/0000_01.png") == "SIDD/0000_01.png"
    assert get_task("reds").result_path("000_00000009", "val300", "/x/000/00000009.jpg") == "000_00000009.png"
    assert get_task("rain13k").result_path("Test2800-901_1", "Test2800", "/r/test/Test2800/input/901_1.jpg") == (
        "Test2800/901_1.png"
    )
