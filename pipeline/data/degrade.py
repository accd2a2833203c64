"""The embedded set's degradations: what the input frame of each task shows, given the rendered clip.

The renderer (``pipeline.data.synth``) films a sharp scene with a moving camera; this module turns one frame of it into
the input of ``SynthConfig.task``. Each function is pure: a deterministic function of its image, its explicit
parameters and the generator it is handed, so a tree is byte-reproducible and the degradations are testable alone.

- ``deblur_jpeg`` (REDS Track 2) and ``deblur`` (GoPro-like): the clip averaged in linear light, then the camera curve;
  the first is stored as JPEG (``SynthConfig.jpeg_quality``), the second losslessly (PNG).
- ``denoise`` (SIDD-like): no blur; heteroscedastic Poisson-Gaussian sensor noise on the sharp frame in *linear* light,
  ``a * Poisson(x / a) + N(0, b)`` (variance ``a * x + b``, per channel), before the camera curve and 8-bit
  quantisation, as a camera adds it before its pipeline. Shadows end up noisier than highlights after the curve.
- ``derain`` (Rain13K-like): 1-3 layers of rain streaks (sparse random seeds smeared along a line of random angle,
  length and width, at random density and brightness), combined and composited onto the sharp display-space frame by
  a screen blend (or an add, clipped), so rain only ever brightens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.config import SYNTH_TASKS, SynthConfig

__all__ = [
    "INPUT_LABELS",
    "TASKS",
    "NoiseParams",
    "RainLayer",
    "add_rain",
    "add_sensor_noise",
    "camera_curve",
    "degrade_frame",
    "draw_noise",
    "draw_rain",
    "draw_sequence",
    "input_suffix",
    "needs_blur",
    "rain_layer",
    "streak_kernel",
]

TASKS = SYNTH_TASKS
# Below every real streak value (kernel taps >= 1/255 times a seed >= 0.5); what filter2D leaves elsewhere.
_RAIN_FLOOR = 1e-3
INPUT_LABELS = {"deblur_jpeg": "blurry+JPEG", "deblur": "blurry", "denoise": "noisy", "derain": "rainy"}


@dataclass(frozen=True)
class NoiseParams:
    """One sequence's sensor: per-channel shot gain ``a`` and read variance ``b`` (variance ``a * x + b``)."""

    shot: tuple[float, float, float]
    read: tuple[float, float, float]


@dataclass(frozen=True)
class RainLayer:
    """One rain layer of a sequence: seed density, streak length / width (pixels), angle from vertical, brightness."""

    density: float
    length: float
    width: int
    angle_deg: float
    brightness: float


def needs_blur(task: str) -> bool:
    """Whether the task's input averages the clip (the blur tasks) or shows the sharp frame degraded otherwise."""
    return task in ("deblur_jpeg", "deblur")


def input_suffix(task: str) -> str:
    """File suffix of the stored input frame: JPEG for REDS Track 2, lossless PNG for every other task."""
    return ".jpg" if task == "deblur_jpeg" else ".png"


def camera_curve(linear: np.ndarray, gamma: float) -> np.ndarray:
    """Linear light -> display uint8: clip to [0, 1], the ``1 / gamma`` power curve, round to 8 bits."""
    return np.round(np.power(np.clip(linear, 0.0, 1.0), 1.0 / gamma) * 255.0).astype(np.uint8)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def draw_noise(
    rng: np.random.Generator, shot: tuple[float, float], read: tuple[float, float], channel_spread: float
) -> NoiseParams:
    """Draw a sequence's sensor: ``a`` and ``b`` log-uniform in their ranges (noise levels span decades, as ISO
    settings do), each times a per-channel gain uniform in ``[1 - spread, 1 + spread]`` (white-balance gains)."""
    a, b = _log_uniform(rng, *shot), _log_uniform(rng, *read)
    gains = rng.uniform(1.0 - channel_spread, 1.0 + channel_spread, 3)
    return NoiseParams(tuple(float(a * g) for g in gains), tuple(float(b * g) for g in gains))


def add_sensor_noise(linear: np.ndarray, rng: np.random.Generator, noise: NoiseParams) -> np.ndarray:
    """Poisson-Gaussian noise on a linear-light RGB float image in [0, 1]: ``a * Poisson(x / a) + N(0, b)`` per
    channel, so the variance is exactly ``a * x + b``. Returned unclipped (float64); the camera curve clips."""
    x = np.clip(np.asarray(linear, np.float64), 0.0, 1.0)
    shot = np.asarray(noise.shot, np.float64)
    read = np.asarray(noise.read, np.float64)
    photons = rng.poisson(x / shot)
    return photons * shot + rng.standard_normal(x.shape) * np.sqrt(read)


def _range(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def draw_rain(
    rng: np.random.Generator,
    layers: tuple[int, int],
    density: tuple[float, float],
    length: tuple[float, float],
    width: tuple[int, int],
    angle_deg: tuple[float, float],
    brightness: tuple[float, float],
) -> tuple[RainLayer, ...]:
    """Draw a sequence's rain: a layer count in ``layers`` (inclusive), then each layer's values in their ranges."""
    count = int(rng.integers(layers[0], layers[1] + 1))
    return tuple(
        RainLayer(
            density=_range(rng, density),
            length=_range(rng, length),
            width=int(rng.integers(width[0], width[1] + 1)),
            angle_deg=_range(rng, angle_deg),
            brightness=_range(rng, brightness),
        )
        for _ in range(count)
    )


def streak_kernel(length: float, width: int, angle_deg: float) -> np.ndarray:
    """A float32 kernel with peak 1: an anti-aliased line of ``length`` pixels and ``width`` thickness through the
    centre, ``angle_deg`` from vertical (positive leans right going down). Symmetric about its centre."""
    theta = math.radians(angle_deg)
    dx, dy = 0.5 * length * math.sin(theta), 0.5 * length * math.cos(theta)
    half = math.ceil(max(abs(dx), abs(dy)) + width)
    side = 2 * half + 1
    canvas = np.zeros((side, side), np.uint8)
    shift = 4  # cv2 fixed-point sub-pixel bits: the end points keep their fractional positions
    p0 = (round((half - dx) * 16), round((half - dy) * 16))
    p1 = (round((half + dx) * 16), round((half + dy) * 16))
    cv2.line(canvas, p0, p1, 255, thickness=int(width), lineType=cv2.LINE_AA, shift=shift)
    kernel = canvas.astype(np.float32) / 255.0
    kernel = 0.5 * (kernel + kernel[::-1, ::-1])  # exactly centre-symmetric: correlation == convolution
    return kernel / kernel.max()


def rain_layer(shape: tuple[int, int], rng: np.random.Generator, layer: RainLayer) -> np.ndarray:
    """One float32 (H, W) rain layer in [0, brightness]: seeds (each pixel with probability ``density``, strength
    uniform in [0.5, 1]) on a canvas padded by the kernel radius, so streaks enter from outside the frame, smeared by
    :func:`streak_kernel`, overlaps clipped at full strength, scaled by ``brightness``."""
    kernel = streak_kernel(layer.length, layer.width, layer.angle_deg)
    pad = kernel.shape[0] // 2
    h, w = shape[0] + 2 * pad, shape[1] + 2 * pad
    seeds = (rng.random((h, w)) < layer.density) * rng.uniform(0.5, 1.0, (h, w))
    streaks = cv2.filter2D(seeds.astype(np.float32), -1, kernel, borderType=cv2.BORDER_CONSTANT)
    streaks = streaks[pad : pad + shape[0], pad : pad + shape[1]]
    streaks[streaks < _RAIN_FLOOR] = 0.0  # the FFT path of large kernels leaves +-1e-7 residue where no streak lies
    return np.minimum(streaks, 1.0) * np.float32(layer.brightness)


def add_rain(
    frame: np.ndarray, rng: np.random.Generator, layers: tuple[RainLayer, ...], blend: str = "screen"
) -> np.ndarray:
    """Composite rain layers onto an RGB uint8 frame in display space (as Rain13K's sets were made), grey streaks.

    ``screen``: layers combine as ``1 - prod(1 - s_i)`` and blend as ``1 - (1 - frame)(1 - rain)``; ``add``: the sum of
    the layers is added and clipped. Either way no pixel gets darker, and a pixel no streak touches is unchanged.
    """
    if blend not in ("screen", "add"):
        raise ValueError(f"add_rain: blend must be 'screen' or 'add', got {blend!r}")
    shape = frame.shape[:2]
    base = frame.astype(np.float64) / 255.0
    rain = [rain_layer(shape, rng, layer).astype(np.float64) for layer in layers]
    if blend == "screen":
        total = 1.0 - np.prod([1.0 - r for r in rain], axis=0) if rain else np.zeros(shape)
        out = 1.0 - (1.0 - base) * (1.0 - total[..., None])
    else:
        total = np.sum(rain, axis=0) if rain else np.zeros(shape)
        out = base + total[..., None]
    return np.round(np.clip(out, 0.0, 1.0) * 255.0).astype(np.uint8)


def draw_sequence(cfg: SynthConfig, rng: np.random.Generator) -> NoiseParams | tuple[RainLayer, ...] | None:
    """A sequence's degradation parameters for ``cfg.task`` (None for the blur tasks, which draw nothing)."""
    if cfg.task == "denoise":
        return draw_noise(rng, cfg.noise_shot, cfg.noise_read, cfg.noise_channel_spread)
    if cfg.task == "derain":
        return draw_rain(
            rng,
            cfg.rain_layers,
            cfg.rain_density,
            cfg.rain_length,
            cfg.rain_width,
            cfg.rain_angle_deg,
            cfg.rain_brightness,
        )
    return None


def degrade_frame(
    cfg: SynthConfig,
    drawn: NoiseParams | tuple[RainLayer, ...] | None,
    blurred: np.ndarray,
    sharp: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """The task's input frame as RGB uint8 (before any JPEG) from the clip average ``blurred`` and the middle
    sub-frame ``sharp`` (both linear light), with the sequence's ``drawn`` parameters (:func:`draw_sequence`)."""
    if needs_blur(cfg.task):
        return camera_curve(blurred, cfg.gamma)
    if cfg.task == "denoise":
        return camera_curve(add_sensor_noise(sharp, rng, drawn), cfg.gamma)
    if cfg.task == "derain":
        return add_rain(camera_curve(sharp, cfg.gamma), rng, drawn, cfg.rain_blend)
    raise ValueError(f"degrade_frame: unknown task {cfg.task!r} (one of {list(TASKS)})")
