"""Metric values against hand computations, scikit-image and the public HINet 3D-SSIM definition."""

import math
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from pipeline.metrics import psnr, rgb_to_y, ssim, ssim_hinet3d


def _photos():
    """Three natural photos, cropped small so the tests stay fast."""
    return {
        "astronaut": data.astronaut()[96:256, 160:352],
        "chelsea": data.chelsea()[40:200, 80:272],
        "coffee": data.coffee()[100:260, 200:392],
    }


def _degrade(img: np.ndarray, kind: str, seed: int = 0) -> np.ndarray:
    if kind == "blur":
        return cv2.GaussianBlur(img, (0, 0), 1.8)
    if kind == "noise":
        rng = np.random.default_rng(seed)
        return np.clip(img.astype(np.float64) + rng.normal(0, 12, img.shape), 0, 255).round().astype(np.uint8)
    if kind == "jpeg":
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 20])
        assert ok
        return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    raise AssertionError(kind)


def _sk_ssim(a, b):
    return structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=2
    )


@pytest.mark.parametrize("d", [1, 3, 17])
def test_psnr_constant_difference_matches_hand_formula(d):
    a = np.full((20, 30, 3), 100, np.uint8)
    b = a + np.uint8(d)
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / d**2), abs=1e-12)


def test_psnr_identical_is_inf_and_crop_border_excludes_edges():
    a = np.full((20, 30, 3), 50, np.uint8)
    assert psnr(a, a) == math.inf
    b = a.copy()
    b[:2] = 0  # differences only within 2 pixels of the top edge
    assert math.isfinite(psnr(a, b))
    assert psnr(a, b, crop_border=2) == math.inf


def test_psnr_agrees_with_skimage_on_photos():
    for img in _photos().values():
        for kind in ("blur", "noise", "jpeg"):
            deg = _degrade(img, kind)
            assert psnr(img, deg) == pytest.approx(peak_signal_noise_ratio(img, deg, data_range=255), abs=1e-10)


def test_psnr_y_channel_hand_case():
    a = np.zeros((8, 8, 3), np.uint8)
    b = a.copy()
    b[..., 1] = 10  # only green changes: dY = 128.553 * 10 / 255
    dy = 128.553 * 10 / 255
    assert psnr(a, b, test_y_channel=True) == pytest.approx(10 * math.log10(255**2 / dy**2), abs=1e-10)
    assert rgb_to_y(np.array([[[255, 255, 255]]], np.uint8))[0, 0, 0] == pytest.approx(235.0, abs=1e-3)
    assert rgb_to_y(np.zeros((1, 1, 3), np.uint8))[0, 0, 0] == 16.0


def test_ssim_agrees_with_skimage_on_photos():
    for name, img in _photos().items():
        for kind in ("blur", "noise", "jpeg"):
            deg = _degrade(img, kind)
            ours, ref = ssim(img, deg), _sk_ssim(img, deg)
            assert abs(ours - ref) < 1e-4, (name, kind, ours, ref)
            assert ours < 0.99  # the degradation is visible to the metric


def test_ssim_y_channel_matches_skimage_on_luma_and_crop():
    img = _photos()["coffee"]
    deg = _degrade(img, "blur")
    ya, yb = rgb_to_y(img)[..., 0], rgb_to_y(deg)[..., 0]
    ref = structural_similarity(ya, yb, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    assert ssim(img, deg, test_y_channel=True) == pytest.approx(ref, abs=1e-4)
    ref_crop = _sk_ssim(img[4:-4, 4:-4], deg[4:-4, 4:-4])
    assert ssim(img, deg, crop_border=4) == pytest.approx(ref_crop, abs=1e-4)
    assert ssim(img, img) == pytest.approx(1.0, abs=1e-12)


def _hinet3d_reference(a: np.ndarray, b: np.ndarray) -> float:
    """The public release's definition, written out with torch's Conv3d (float64 here)."""
    g = cv2.getGaussianKernel(11, 1.5)
    kernel = torch.tensor(np.stack([np.outer(g, g) * k for k in g[:, 0]], axis=0))
    conv = torch.nn.Conv3d(1, 1, 11, padding=5, bias=False, padding_mode="replicate").double()
    with torch.no_grad():
        conv.weight[0, 0] = kernel

        def f(z):
            return conv(z[None, None])[0, 0]

        x, y = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
        m1, m2 = f(x), f(y)
        s1, s2, s12 = f(x * x) - m1 * m1, f(y * y) - m2 * m2, f(x * y) - m1 * m2
        c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
        return float((((2 * m1 * m2 + c1) * (2 * s12 + c2)) / ((m1 * m1 + m2 * m2 + c1) * (s1 + s2 + c2))).mean())


def test_ssim_hinet3d_matches_conv3d_definition_and_differs_from_2d():
    img = _photos()["astronaut"][:48, :40]
    deg = _degrade(img, "jpeg")
    ours = ssim_hinet3d(img, deg)
    assert ours == pytest.approx(_hinet3d_reference(img, deg), abs=1e-9)
    assert ssim_hinet3d(img, img) == pytest.approx(1.0, abs=1e-12)
    # Channel order does not matter (the release scores BGR): the 3D Gaussian is symmetric along C.
    assert ssim_hinet3d(img[..., ::-1].copy(), deg[..., ::-1].copy()) == pytest.approx(ours, abs=1e-12)
    two_d = ssim(img, deg)
    assert abs(ours - two_d) > 1e-3  # a different convention ...
    assert abs(ours - two_d) < 0.1  # ... of the same quantity


@pytest.mark.parametrize(
    ("a", "b", "kwargs", "match"),
    [
        (np.zeros((16, 16, 3), np.uint8), np.zeros((16, 17, 3), np.uint8), {}, "shapes differ"),
        (np.zeros((16, 16, 3), np.float32), np.zeros((16, 16, 3), np.float32), {}, "uint8"),
        (np.zeros((16, 16), np.uint8), np.zeros((16, 16), np.uint8), {}, r"\(H, W, 3\)"),
        (np.zeros((16, 16, 4), np.uint8), np.zeros((16, 16, 4), np.uint8), {}, r"\(H, W, 3\)"),
        (np.zeros((0, 16, 3), np.uint8), np.zeros((0, 16, 3), np.uint8), {}, "empty"),
        (np.zeros((16, 16, 3), np.uint8), np.zeros((16, 16, 3), np.uint8), {"crop_border": 8}, "crop_border"),
        (np.zeros((16, 16, 3), np.uint8), np.zeros((16, 16, 3), np.uint8), {"crop_border": -1}, "crop_border"),
    ],
)
def test_bad_input_raises_value_error(a, b, kwargs, match):
    for fn in (psnr, ssim, ssim_hinet3d):
        with pytest.raises(ValueError, match=match):
            fn(a, b, **kwargs)


def test_ssim_needs_an_11_pixel_window():
    a = np.zeros((10, 40, 3), np.uint8)
    with pytest.raises(ValueError, match="11x11"):
        ssim(a, a)


@pytest.mark.parametrize(
    "module",
    [
        "pipeline.metrics",
        "pipeline.evaluate",
        "pipeline.scoring",
        "pipeline.tasks",
        "pipeline.data.reds",
        "pipeline.data.gopro",
        "pipeline.data.sidd",
        "pipeline.data.rain13k",
        "pipeline.data.synth",
        "pipeline.data.degrade",
        "pipeline.data.shards",
    ],
)
def test_worker_modules_do_not_import_torch(module):
    # joblib's loky workers are reused across the data stage's jobs; one that imports torch (~0.5 GB) after its first
    # job is taken for a memory leak and restarted ("A worker stopped while some jobs were given to the executor").
    code = f"import sys, {module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False", f"{module} imports torch"
