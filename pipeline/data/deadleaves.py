"""Dead-leaves images: the procedural training content of the embedded data set.

A dead-leaves image stacks random occluding shapes whose sizes follow a power law (``p(r) ~ r^-3``, scale invariant,
like the edge statistics of natural images). It is the standard synthetic prior of image-restoration research
(Achddou et al. train denoisers and SR networks on such images alone within ~0.3 dB of natural-image training). Here
each leaf is a disk, an ellipse or a convex polygon filled with a flat colour, a colour gradient, stripes or a
grey-level texture from scikit-image (``brick``, ``grass``, ``gravel``: photographs of textures, never used for
validation or test), and some leaves have soft (defocused) edges. Shapes are drawn at twice the output resolution and
area-downsampled, so edges are anti-aliased as in a photo.

With ``photos`` (the training photos of the pool), the leaves are *textured* in the manner of VibrantLeaves (Achddou,
Gousseau, Ladjal, Suesstrunk): colours are drawn from the photos' pixels, and leaves are also filled with 1/f^s
micro-textures (``s ~ U[0.5, 2.5]``, colour-modulated) and with colour patches cut from the photos (never upsampled,
so they stay sharp). Only training photos may be passed: what a leaf shows is training content. Depth-of-field layers
are left out on purpose: a defocused ground truth would teach a deblurring network to keep blur.

Everything is a pure function of the seed (and the photos), so a rendered tree is byte-reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache

import cv2
import numpy as np

__all__ = ["TEXTURES", "dead_leaves"]

TEXTURES: tuple[str, ...] = ("brick", "grass", "gravel")  # scikit-image grey textures (training content only)
_SUPER = 2  # supersampling factor for anti-aliased edges


@cache
def _texture(name: str) -> np.ndarray:
    """A scikit-image grey texture as float32 with zero mean and unit standard deviation."""
    from skimage import data

    img = getattr(data, name)().astype(np.float32)
    if img.ndim != 2:
        raise ValueError(f"skimage.data.{name}: expected a grey image, got shape {img.shape}")
    return (img - img.mean()) / max(float(img.std()), 1e-6)


def _radius(rng: np.random.Generator, rmin: float, rmax: float) -> float:
    """Inverse-CDF draw from p(r) ~ r^-3 on [rmin, rmax]."""
    a, b = rmin**-2, rmax**-2
    return float((a - rng.random() * (a - b)) ** -0.5)


def _colour(rng: np.random.Generator) -> np.ndarray:
    """A random RGB colour in [0, 1] with natural-looking saturation (HSV with a bias to muted colours)."""
    hsv = np.array([[[rng.uniform(0, 180), 255 * rng.beta(1.2, 2.0), 255 * rng.uniform(0.08, 1.0)]]], np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255.0


_NOISE_SIDE = 256  # side of the 1/f^s noise fields a textured image precomputes (supersampled pixels)
_NOISE_FIELDS = 4


def _noise_field(rng: np.random.Generator, side: int) -> np.ndarray:
    """A ``side`` x ``side`` 1/f^s noise field, s ~ U[0.5, 2.5], zero mean and unit standard deviation."""
    s = rng.uniform(0.5, 2.5)
    fy = np.fft.fftfreq(side)[:, None]
    fx = np.fft.rfftfreq(side)[None, :]
    f = np.hypot(fy, fx)
    f[0, 0] = 1.0
    spectrum = (rng.standard_normal(f.shape) + 1j * rng.standard_normal(f.shape)) / f ** (s / 2 + 0.5)
    spectrum[0, 0] = 0.0
    field = np.fft.irfft2(spectrum, s=(side, side)).astype(np.float32)
    return (field - field.mean()) / max(float(field.std()), 1e-6)


class _Palette:
    """What textured leaves draw from: the training photos (float RGB) and a few 1/f^s noise fields."""

    def __init__(self, rng: np.random.Generator, photos: Sequence[np.ndarray]):
        self.photos = [p.astype(np.float32) / 255.0 for p in photos]
        self.noise = [_noise_field(rng, _NOISE_SIDE) for _ in range(_NOISE_FIELDS)]

    def colour(self, rng: np.random.Generator) -> np.ndarray:
        photo = self.photos[int(rng.integers(len(self.photos)))]
        return photo[int(rng.integers(photo.shape[0])), int(rng.integers(photo.shape[1]))].copy()

    def noise_fill(self, rng: np.random.Generator, base: np.ndarray, h: int, w: int) -> np.ndarray:
        field = self.noise[int(rng.integers(len(self.noise)))]
        reps = (math.ceil(h / _NOISE_SIDE), math.ceil(w / _NOISE_SIDE))
        tiled = np.tile(field, reps) if reps != (1, 1) else field
        y0, x0 = int(rng.integers(0, tiled.shape[0] - h + 1)), int(rng.integers(0, tiled.shape[1] - w + 1))
        t = tiled[y0 : y0 + h, x0 : x0 + w, None]
        other = self.colour(rng)
        mix = np.clip(0.5 + rng.uniform(0.15, 0.5) * t, 0.0, 1.0)  # contrast of the micro-texture
        return base * (1 - mix) + other * mix

    def photo_fill(self, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
        photo = self.photos[int(rng.integers(len(self.photos)))]
        zoom = rng.uniform(1.0, 2.0)  # photo pixels per supersampled pixel: downscaled or 1:1, never upsampled
        ph, pw = min(photo.shape[0], math.ceil(h * zoom)), min(photo.shape[1], math.ceil(w * zoom))
        y0, x0 = int(rng.integers(0, photo.shape[0] - ph + 1)), int(rng.integers(0, photo.shape[1] - pw + 1))
        patch = photo[y0 : y0 + ph, x0 : x0 + pw]
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        if (ph, pw) == (h, w):
            return patch.copy()
        interp = cv2.INTER_AREA if ph >= h and pw >= w else cv2.INTER_CUBIC  # a photo smaller than the box
        return np.clip(cv2.resize(np.ascontiguousarray(patch), (w, h), interpolation=interp), 0.0, 1.0)


def _fill(rng: np.random.Generator, h: int, w: int, palette: _Palette | None = None) -> np.ndarray:
    """The content of one leaf's bounding box (h x w x 3, float32 in [0, 1])."""
    if palette is not None:
        base = palette.colour(rng)
        kind = rng.choice(6, p=[0.15, 0.1, 0.1, 0.15, 0.25, 0.25])
        if kind == 4:
            return palette.noise_fill(rng, base, h, w)
        if kind == 5:
            return palette.photo_fill(rng, h, w)
    else:
        base = _colour(rng)
        kind = rng.choice(4, p=[0.35, 0.2, 0.15, 0.3])
    colour = palette.colour if palette is not None else _colour
    if kind == 0:  # flat
        return np.broadcast_to(base, (h, w, 3)).copy()
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = rng.uniform(0, math.pi)
    u = xx * math.cos(theta) + yy * math.sin(theta)
    if kind == 1:  # linear gradient between two colours
        other = colour(rng)
        t = (u - u.min()) / max(float(u.max() - u.min()), 1.0)
        return base * (1 - t[..., None]) + other * t[..., None]
    if kind == 2:  # stripes of a random period
        period = rng.uniform(3.0, 40.0) * _SUPER
        other = colour(rng)
        t = 0.5 + 0.5 * np.sin(2 * math.pi * u / period)
        if rng.random() < 0.5:
            t = (t > 0.5).astype(np.float32)
        return base * (1 - t[..., None]) + other * t[..., None]
    tex = _texture(TEXTURES[int(rng.integers(len(TEXTURES)))])
    zoom = rng.uniform(0.5, 2.0) * _SUPER
    th, tw = min(tex.shape[0], math.ceil(h / zoom) + 1), min(tex.shape[1], math.ceil(w / zoom) + 1)
    y0, x0 = int(rng.integers(0, tex.shape[0] - th + 1)), int(rng.integers(0, tex.shape[1] - tw + 1))
    patch = cv2.resize(tex[y0 : y0 + th, x0 : x0 + tw], (w, h), interpolation=cv2.INTER_LINEAR)
    contrast = rng.uniform(0.1, 0.35)
    return np.clip(base * (1.0 + contrast * patch[..., None]), 0.0, 1.0)


def _mask(rng: np.random.Generator, r: float) -> np.ndarray:
    """A leaf's coverage mask (float32 in [0, 1]) in a square box of side ~2r (supersampled pixels)."""
    side = max(3, int(math.ceil(2 * r)) + 3)
    mask = np.zeros((side, side), np.uint8)
    c = (side - 1) / 2
    kind = rng.choice(3, p=[0.4, 0.3, 0.3])
    if kind == 0:
        cv2.circle(mask, (round(c), round(c)), max(1, round(r)), 255, -1)
    elif kind == 1:
        axes = (max(1, round(r)), max(1, round(r * rng.uniform(0.3, 1.0))))
        cv2.ellipse(mask, (round(c), round(c)), axes, rng.uniform(0, 180), 0, 360, 255, -1)
    else:
        n = int(rng.integers(3, 7))
        angles = np.sort(rng.uniform(0, 2 * math.pi, n))
        pts = np.stack([c + r * np.cos(angles), c + r * np.sin(angles)], axis=1).round().astype(np.int32)
        cv2.fillConvexPoly(mask, pts, 255)
    out = mask.astype(np.float32) / 255.0
    if rng.random() < 0.15:  # a defocused leaf: soft edge
        sigma = rng.uniform(1.0, 4.0) * _SUPER
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    return out


def dead_leaves(
    height: int,
    width: int,
    seed: int | list[int],
    *,
    rmin: float = 2.0,
    rmax: float | None = None,
    leaves: int | None = None,
    photos: Sequence[np.ndarray] = (),
) -> np.ndarray:
    """A ``height`` x ``width`` RGB uint8 dead-leaves image, a pure function of ``seed`` (and ``photos``).

    ``rmin`` / ``rmax`` bound the leaf radius in output pixels (default ``rmax``: a third of the shorter side);
    ``leaves`` defaults to enough shapes to cover the canvas about four times, so almost no background shows.
    ``photos`` (RGB uint8 training photos) turns on textured leaves (module doc).
    """
    if height < 8 or width < 8:
        raise ValueError(f"dead_leaves: image must be at least 8x8, got {width}x{height}")
    rng = np.random.default_rng(seed)
    rmax = rmax if rmax is not None else min(height, width) / 3
    if not 0 < rmin < rmax:
        raise ValueError(f"dead_leaves: need 0 < rmin < rmax, got rmin={rmin}, rmax={rmax}")
    mean_area = 2 * math.pi * rmin**2 * math.log(rmax / rmin) / (1 - (rmin / rmax) ** 2)
    n = leaves if leaves is not None else int(4 * height * width / mean_area)
    H, W = height * _SUPER, width * _SUPER
    palette = _Palette(rng, photos) if len(photos) else None
    canvas = np.broadcast_to(palette.colour(rng) if palette else _colour(rng), (H, W, 3)).copy()
    for _ in range(n):
        r = _radius(rng, rmin, rmax) * _SUPER
        mask = _mask(rng, r)
        side = mask.shape[0]
        cy, cx = int(rng.integers(-side // 2, H - side // 2)), int(rng.integers(-side // 2, W - side // 2))
        y0, x0, y1, x1 = max(cy, 0), max(cx, 0), min(cy + side, H), min(cx + side, W)
        if y1 <= y0 or x1 <= x0:
            continue
        m = mask[y0 - cy : y1 - cy, x0 - cx : x1 - cx, None]
        fill = _fill(rng, y1 - y0, x1 - x0, palette)
        region = canvas[y0:y1, x0:x1]
        region += m * (fill - region)
    small = cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA)
    return np.round(np.clip(small, 0.0, 1.0) * 255.0).astype(np.uint8)
