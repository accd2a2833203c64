"""Image-quality metrics with the conventions the published deblurring numbers use.

All image metrics take two RGB ``uint8`` arrays of shape (H, W, 3) and compute in float64, as the public code does
after quantising predictions to 8 bits. Two SSIM conventions exist and are NOT comparable, so both are offered under
different names:

- :func:`ssim`: BasicSR / scikit-image SSIM, a 2D 11x11 Gaussian (sigma 1.5) per channel over the valid region,
  averaged over the channels. Equals ``skimage.metrics.structural_similarity(a, b, gaussian_weights=True,
  sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=2)``.
- :func:`ssim_hinet3d`: the RGB SSIM of the HINet / NAFNet release, one 3D Gaussian over H, W and C.
- :func:`ssim_hinet_y`: the release's Y-channel SSIM (``test_y_channel: true``, the deraining protocol): one 2D
  Gaussian with replicate borders over the whole luma image, not BasicSR's valid region.

Numpy and OpenCV only, no torch: scoring runs in joblib workers that data preparation reuses, and a worker that
imports torch (~0.5 GB) after its first job looks to loky like a memory leak (it restarts it, warning each time).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = ["psnr", "psnr_float", "rgb_to_y", "ssim", "ssim_hinet3d", "ssim_hinet_y"]

_WIN = 11  # Gaussian window size of both SSIM conventions
_SIGMA = 1.5
_C1 = (0.01 * 255.0) ** 2
_C2 = (0.03 * 255.0) ** 2


def _gauss1d() -> np.ndarray:
    """The normalised 11-tap Gaussian (sigma 1.5) both SSIM conventions are built from."""
    return cv2.getGaussianKernel(_WIN, _SIGMA, cv2.CV_64F).ravel()


def _validate(img1: np.ndarray, img2: np.ndarray, crop_border: int, fn: str, min_size: int = 1) -> None:
    """Raise ValueError naming ``fn`` and the problem unless both are equal-shape HWC RGB uint8 arrays."""
    for arg, img in (("img1", img1), ("img2", img2)):
        if not isinstance(img, np.ndarray):
            raise ValueError(f"{fn}: {arg} must be a numpy array, got {type(img).__name__}")
        if img.dtype != np.uint8:
            raise ValueError(f"{fn}: {arg} must be uint8 (8-bit RGB), got dtype {img.dtype}")
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"{fn}: {arg} must have shape (H, W, 3) (HWC RGB), got {img.shape}")
        if img.size == 0:
            raise ValueError(f"{fn}: {arg} is empty, shape {img.shape}")
    if img1.shape != img2.shape:
        raise ValueError(f"{fn}: image shapes differ: {img1.shape} vs {img2.shape}")
    if isinstance(crop_border, bool) or not isinstance(crop_border, (int, np.integer)) or crop_border < 0:
        raise ValueError(f"{fn}: crop_border must be a non-negative integer, got {crop_border!r}")
    h, w = img1.shape[:2]
    if min(h, w) - 2 * crop_border < min_size:
        raise ValueError(
            f"{fn}: crop_border={crop_border} leaves {max(h - 2 * crop_border, 0)}x{max(w - 2 * crop_border, 0)} "
            f"pixels of a {h}x{w} image; at least {min_size}x{min_size} are needed"
        )


def _crop(img: np.ndarray, crop_border: int) -> np.ndarray:
    if crop_border == 0:
        return img
    return img[crop_border:-crop_border, crop_border:-crop_border]


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 luma of an RGB uint8 image as unrounded float64 (H, W, 1) in 0..255.

    Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 with R, G, B in 0..255. This is the
    BasicSR ``to_y_channel`` convention (MATLAB ``rgb2ycbcr``) used for ``test_y_channel``.
    """
    x = img.astype(np.float64)
    y = (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255.0 + 16.0
    return y[..., None]


def psnr(img1: np.ndarray, img2: np.ndarray, crop_border: int = 0, test_y_channel: bool = False) -> float:
    """PSNR in dB between two RGB uint8 images, peak 255, float64 MSE over all pixels and channels; equal -> inf."""
    _validate(img1, img2, crop_border, "psnr")
    a, b = _crop(img1, crop_border), _crop(img2, crop_border)
    if test_y_channel:
        a, b = rgb_to_y(a), rgb_to_y(b)
    else:
        a, b = a.astype(np.float64), b.astype(np.float64)
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(255.0**2 / mse)


def psnr_float(pred: np.ndarray, target: np.ndarray) -> float:
    """PSNR in dB of an unrounded float RGB prediction in [0, 1] against an 8-bit target, peak 1, float64 MSE.

    The release's SIDD protocol (``use_image: false``): the network output is scored before any 8-bit rounding, the
    target as ``uint8 / 255``. Here ``pred`` is read from the 16-bit predictions (within 7.7e-6 of the output).
    """
    if not isinstance(pred, np.ndarray) or not np.issubdtype(pred.dtype, np.floating) or pred.ndim != 3:
        raise ValueError(f"psnr_float: pred must be a float (H, W, 3) array, got {getattr(pred, 'dtype', type(pred))}")
    _validate(target, target, 0, "psnr_float")
    if pred.shape != target.shape:
        raise ValueError(f"psnr_float: image shapes differ: {pred.shape} vs {target.shape}")
    mse = float(np.mean((pred.astype(np.float64) - target.astype(np.float64) / 255.0) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(1.0 / mse)


def _ssim_map(a: np.ndarray, b: np.ndarray, blur) -> np.ndarray:
    """The SSIM map of two float64 arrays given a local-mean filter ``blur`` (same array shape in and out)."""
    mu1, mu2 = blur(a), blur(b)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s1 = blur(a * a) - mu1_sq
    s2 = blur(b * b) - mu2_sq
    s12 = blur(a * b) - mu12
    return ((2 * mu12 + _C1) * (2 * s12 + _C2)) / ((mu1_sq + mu2_sq + _C1) * (s1 + s2 + _C2))


def ssim(img1: np.ndarray, img2: np.ndarray, crop_border: int = 0, test_y_channel: bool = False) -> float:
    """BasicSR / scikit-image SSIM: per-channel 2D 11x11 Gaussian (sigma 1.5), valid region, mean over channels.

    ``test_y_channel`` scores the BT.601 luma (:func:`rgb_to_y`) instead of the three RGB channels.
    """
    _validate(img1, img2, crop_border, "ssim", min_size=_WIN)
    a, b = _crop(img1, crop_border), _crop(img2, crop_border)
    if test_y_channel:
        a, b = rgb_to_y(a), rgb_to_y(b)
    else:
        a, b = a.astype(np.float64), b.astype(np.float64)
    g = _gauss1d()
    r = _WIN // 2

    def blur(x: np.ndarray) -> np.ndarray:
        # Border handling is irrelevant: only the valid region (r pixels in from every edge) is kept.
        return cv2.sepFilter2D(x, cv2.CV_64F, g, g, borderType=cv2.BORDER_REFLECT)[r:-r, r:-r]

    scores = [_ssim_map(a[..., c], b[..., c], blur).mean() for c in range(a.shape[2])]
    return float(np.mean(scores))


def ssim_hinet_y(img1: np.ndarray, img2: np.ndarray, crop_border: int = 0) -> float:
    """The release's SSIM under ``test_y_channel: true`` (``_ssim_cly`` of its ``psnr_ssim.py``): the unrounded
    BT.601 luma (:func:`rgb_to_y`), an 11x11 Gaussian (sigma 1.5) with replicate borders, mean of the whole map.

    It differs from ``ssim(..., test_y_channel=True)`` (BasicSR: valid region only) at the borders.
    """
    _validate(img1, img2, crop_border, "ssim_hinet_y")
    a = rgb_to_y(_crop(img1, crop_border))[..., 0]
    b = rgb_to_y(_crop(img2, crop_border))[..., 0]
    g = _gauss1d()

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.sepFilter2D(x, cv2.CV_64F, g, g, borderType=cv2.BORDER_REPLICATE)

    return float(_ssim_map(a, b, blur).mean())


def _channel_mix_matrix(channels: int) -> np.ndarray:
    """The C x C matrix an 11-tap Gaussian with replicate padding applies along the channel axis."""
    g = _gauss1d()
    r = _WIN // 2
    m = np.zeros((channels, channels))
    for c in range(channels):
        for k in range(-r, r + 1):
            m[c, min(max(c + k, 0), channels - 1)] += g[k + r]
    return m


def ssim_hinet3d(img1: np.ndarray, img2: np.ndarray, crop_border: int = 0) -> float:
    """HINet's RGB SSIM: one 3D Gaussian over (H, W, C), 'same' output with replicate padding, mean of the whole map.

    The release builds an 11x11x11 Gaussian (sigma 1.5 on every axis) as a ``Conv3d`` with ``padding=5,
    padding_mode='replicate'`` and runs it over the (H, W, 3) image as a volume, so each channel's local statistics
    mix all three channels (the 11 channel taps collapse onto 3 channels through the replicate padding) and border
    pixels are included. The kernel is separable and the padding acts per axis, so this computes it exactly as a
    3x3 channel-mixing matrix followed by a 2D Gaussian with replicate borders, in float64 on the CPU (the release
    uses float32 on the GPU; the difference is ~1e-7). The release's ``max_value`` is 255 for any 8-bit image that is
    not all 0/1, which is what this uses. Symmetric in the channel order, so RGB and BGR give the same value.
    """
    _validate(img1, img2, crop_border, "ssim_hinet3d")
    a = _crop(img1, crop_border).astype(np.float64)
    b = _crop(img2, crop_border).astype(np.float64)
    g = _gauss1d()
    mix = _channel_mix_matrix(a.shape[2])

    def blur(x: np.ndarray) -> np.ndarray:
        x = x @ mix.T
        return cv2.sepFilter2D(x, cv2.CV_64F, g, g, borderType=cv2.BORDER_REPLICATE)

    return float(_ssim_map(a, b, blur).mean())
