"""Synthetic REDS: a small REDS-like blur + JPEG data set, procedural for training, real photos held out for val/test.

Content is held out by construction: a training sequence films either a training photo of the committed pool
(``pipeline.data.pool``, ``SynthConfig.train_photos``) or its own textured dead-leaves image
(``pipeline.data.deadleaves``, colours and texture samples from the training photos only), in the share
``SynthConfig.leaves_fraction``; validation and test sequences film other real photos, each photo in exactly one split
(``train_photos`` / ``val_photos`` / ``test_photos``, checked disjoint, and against the split ``sources.json`` gives
each pool photo). ``manifest.json`` lists the source of every sequence and the sha256 of every source's pixels, so the
separation can be checked on the rendered tree itself, by name and by content.

The rendering follows how REDS was made: a short high-frame-rate clip of a smooth random camera motion (translation,
small rotation and zoom) is rendered over a sharp scene; the sharp frame is the clip's middle sub-frame; the blurry
frame averages the clip in linear light (undo the display gamma, average, re-apply) and is then JPEG-compressed. The
tree is written in exactly the REDS layout and naming, so the real-REDS indexing code reads it unchanged.

``SynthConfig.task`` chooses what the input frame shows (``pipeline.data.degrade``): ``deblur_jpeg`` (the above, REDS
Track 2), ``deblur`` (the same blur stored as lossless PNG, GoPro-like), ``denoise`` (the sharp frame with sensor noise
in linear light, SIDD-like) or ``derain`` (the sharp frame with rain streaks, Rain13K-like). Every task films the same
scenes with the same camera (the degradation draws from its own generator), so every task has the same splits,
held-out content and sharp targets; the input folders keep the REDS names (``*_blur_jpeg``) and hold ``.png`` files
for every task but ``deblur_jpeg``; the manifest names the task (a manifest without ``task`` is a ``deblur_jpeg``
tree).

Pool photos: ``pipeline/data/photos/sources.json`` (package, file, licence, attribution, sha256 of each). Photos
bundled inside installed wheels (nothing is downloaded; licences as stated by the shipping package):

- ``astronaut`` (scikit-image): Eileen Collins, NASA Great Images; public domain.
- ``coffee`` (scikit-image): coffee cup, Rachel Michetti / Pikolo Espresso Bar; CC0.
- ``chelsea`` (scikit-image): Chelsea the cat, Stefan van der Walt; CC0.
- ``rocket`` (scikit-image): DSCOVR launch on Falcon 9, SpaceX; released into the public domain.
- ``grace_hopper`` (matplotlib ``sample_data``): Commodore Grace M. Hopper, official U.S. Navy photo; public domain.

Not used: the Middlebury motorcycle stereo pair (research licence); scikit-image's immunohistochemistry,
hubble_deep_field and retina (not scenes). scikit-image's grey textures (brick, grass, gravel) texture the training
leaves only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable
from functools import cache
from pathlib import Path

import cv2
import numpy as np
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from pipeline.config import SYNTH_PHOTOS, SynthConfig
from pipeline.data.degrade import camera_curve as _encode_gamma
from pipeline.data.degrade import degrade_frame, draw_sequence, input_suffix, needs_blur
from pipeline.fileio import atomic_dir, write_image, write_json
from pipeline.layout import MANIFEST_NAME

__all__ = [
    "DEAD_LEAVES",
    "TASK_FIELDS",
    "MANIFEST_NAME",
    "PHOTOS",
    "SYNTH_VERSION",
    "manifest_matches",
    "manifest_task",
    "render_sequence",
    "sequence_source",
    "source_sha256",
    "synthesize_reds",
]

SYNTH_VERSION = 5  # bump when the rendering changes, so a stored tree with the same config is rebuilt
_SPLITS = {"train": 0, "val": 1, "test": 2}
_HARMONICS = 3  # sinusoids summed per motion parameter: smooth, non-periodic-looking trajectories


DEAD_LEAVES = "dead_leaves"  # the source name of procedural training sequences
_DEGRADE_STREAM = 2  # the degradation's generator: [seed, split, seq, 2] (1 is the dead leaves'), camera untouched

# SynthConfig fields that came with the tasks, recorded in the manifest only for the tasks that read them: a
# deblur_jpeg manifest stays byte for byte the one of every tree rendered before (same data fingerprint), and any
# other task adds ``task`` (so ``manifest_matches`` tells the tasks apart) and its own parameters.
TASK_FIELDS: dict[str, tuple[str, ...]] = {
    "deblur_jpeg": (),
    "deblur": ("task",),
    "denoise": ("task", "noise_shot", "noise_read", "noise_channel_spread"),
    "derain": (
        "task",
        "rain_layers",
        "rain_density",
        "rain_length",
        "rain_width",
        "rain_angle_deg",
        "rain_brightness",
        "rain_blend",
    ),
}


def _grace_hopper() -> np.ndarray:
    import matplotlib.cbook

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        data = np.frombuffer(f.read(), np.uint8)
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _photo_loaders() -> dict[str, Callable[[], np.ndarray]]:
    from skimage import data

    return {
        "astronaut": data.astronaut,
        "coffee": data.coffee,
        "chelsea": data.chelsea,
        "rocket": data.rocket,
        "grace_hopper": _grace_hopper,
    }


PHOTOS: tuple[str, ...] = SYNTH_PHOTOS  # the names params may list (checked by SynthConfig)


@cache
def _photo(name: str) -> np.ndarray:
    """The photo as RGB uint8 (cached per process): a wheel's sample photo, else a pool photo."""
    loaders = _photo_loaders()
    if name not in loaders:
        from pipeline.data.pool import pool_photo

        return pool_photo(name)
    img = loaders[name]()
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"skimage.data.{name}: expected an RGB uint8 photo, got {img.dtype} {img.shape}")
    return np.ascontiguousarray(img)


class _Trajectory:
    """A smooth random 1-D signal: a sum of sinusoids whose peak rate of change is exactly ``peak`` per frame."""

    def __init__(self, rng: np.random.Generator, peak: float):
        self.omega = rng.uniform(0.4, 1.2, _HARMONICS)  # rad per frame interval
        self.phase = rng.uniform(0.0, 2 * math.pi, _HARMONICS)
        weight = rng.uniform(0.2, 1.0, _HARMONICS)
        self.amp = peak * weight / weight.sum() / self.omega  # sum(amp * omega) == peak bounds |d/dt|
        self.amp[~np.isfinite(self.amp)] = 0.0

    def __call__(self, t: float) -> float:
        return float(np.sum(self.amp * np.sin(self.omega * t + self.phase)))

    @property
    def extent(self) -> float:
        return float(np.sum(np.abs(self.amp)))


def _train_zoom(cfg: SynthConfig, rng: np.random.Generator, split: str) -> float:
    """A training sequence's zoom on its scene, m ~ log-uniform [1 / ``train_minify_max``, ``train_magnify_max``]; val
    and test sequences film at m = 1 and draw nothing, so their frames do not depend on either key.

    m > 1 magnifies: some sharp frames are then interpolated, soft at pixel level like real video ground truth, so the
    network learns to leave soft content soft instead of painting edges. m < 1 minifies (the scene is area-downscaled
    first, so it stays sharp and alias-free): denser fine texture per pixel than the photo holds at its own scale."""
    if split != "train" or (cfg.train_magnify_max == 1.0 and cfg.train_minify_max == 1.0):
        return 1.0
    return math.exp(rng.uniform(-math.log(cfg.train_minify_max), math.log(cfg.train_magnify_max)))


def _minified(photo: np.ndarray, zoom: float) -> np.ndarray:
    """The scene area-downscaled by ``zoom`` < 1 (unchanged for zoom >= 1)."""
    if zoom >= 1.0:
        return photo
    h, w = photo.shape[:2]
    size = (max(1, round(w * zoom)), max(1, round(h * zoom)))
    return np.ascontiguousarray(cv2.resize(photo, size, interpolation=cv2.INTER_AREA))


def _sequence_camera(cfg: SynthConfig, rng: np.random.Generator, photo_shape: tuple[int, int], magnify: float):
    """Draw one sequence's camera: base scale and centre in the photo (filmed magnified by ``magnify`` >= 1) plus
    smooth motion trajectories."""
    strength = rng.uniform(0.7, 1.0)  # per-sequence motion strength, so blur varies between sequences
    tx = _Trajectory(rng, cfg.max_translation * strength)
    ty = _Trajectory(rng, cfg.max_translation * strength)
    rot = _Trajectory(rng, math.radians(cfg.max_rotation_deg) * strength)
    zoom = _Trajectory(rng, math.log1p(cfg.max_zoom) * strength)
    ph, pw = photo_shape
    h, w = cfg.height, cfg.width
    # Margin in frame pixels the window may move, including the corners swept by rotation and zoom.
    radius = 0.5 * math.hypot(h, w)
    margin = max(tx.extent, ty.extent) + radius * (rot.extent + math.expm1(zoom.extent)) + 2.0
    scale = min(1.0, pw / (w + 2 * margin), ph / (h + 2 * margin)) / magnify  # photo px per frame px (<1 upsamples)
    free_x = max(0.0, pw - scale * (w + 2 * margin))
    free_y = max(0.0, ph - scale * (h + 2 * margin))
    cx = 0.5 * pw + rng.uniform(-0.5, 0.5) * free_x
    cy = 0.5 * ph + rng.uniform(-0.5, 0.5) * free_y
    return scale, (cx, cy), (tx, ty, rot, zoom)


def _warp_matrix(cfg: SynthConfig, scale: float, center, motion, t: float) -> np.ndarray:
    """2x3 matrix mapping frame pixel coordinates to photo coordinates at time ``t`` (frame intervals)."""
    tx, ty, rot, zoom = motion
    s = scale / math.exp(zoom(t))
    theta = rot(t)
    a = s * np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    c = np.array([center[0] + scale * tx(t), center[1] + scale * ty(t)])
    frame_center = np.array([(cfg.width - 1) / 2, (cfg.height - 1) / 2])
    return np.hstack([a, (c - a @ frame_center)[:, None]])


def _is_leaves(cfg: SynthConfig, seq: int) -> bool:
    """Whether training sequence ``seq`` films dead leaves: the leaves sequences are spread evenly over the split."""
    f = cfg.leaves_fraction
    return math.floor((seq + 1) * f + 1e-9) > math.floor(seq * f + 1e-9)


def sequence_source(cfg: SynthConfig, split: str, seq: int) -> str:
    """What sequence ``seq`` of ``split`` films: ``dead_leaves`` (its own textured image) or a photo's name."""
    if split == "train":
        if _is_leaves(cfg, seq):
            return DEAD_LEAVES
        photo_seq = seq - sum(_is_leaves(cfg, k) for k in range(seq))  # index among the photo sequences
        return cfg.train_photos[photo_seq % len(cfg.train_photos)]
    photos = cfg.val_photos if split == "val" else cfg.test_photos
    return photos[seq % len(photos)]


def _scene(cfg: SynthConfig, split: str, seq: int) -> np.ndarray:
    """The sharp RGB uint8 scene a sequence films: a fresh textured dead-leaves image, or a photo."""
    source = sequence_source(cfg, split, seq)
    if source != DEAD_LEAVES:
        return _photo(source)
    from pipeline.data.deadleaves import dead_leaves

    # Large enough that the camera (frame + motion margin) films it at scale 1, as a photo at native resolution.
    # Textured by the training photos only (never a val/test photo: checked by SynthConfig).
    return dead_leaves(
        2 * cfg.height,
        cfg.width * 8 // 5,
        [cfg.seed, _SPLITS[split], seq, 1],
        rmin=cfg.leaves_rmin,
        photos=[_photo(p) for p in cfg.train_photos],
    )


def source_sha256(name: str) -> str:
    """sha256 of a source photo's RGB pixels (shape included): one content under two names is caught."""
    img = _photo(name)
    h = hashlib.sha256(repr(img.shape).encode())
    h.update(np.ascontiguousarray(img).tobytes())
    return h.hexdigest()


def render_sequence(cfg: SynthConfig, split: str, seq: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Render one sequence as a list of (input uint8 before any JPEG, sharp uint8) RGB frames; pure and deterministic.

    The input is ``cfg.task``'s degradation (``pipeline.data.degrade``) of the clip; the sharp frames are the same for
    every task."""
    rng = np.random.default_rng([cfg.seed, _SPLITS[split], seq])
    degrade_rng = np.random.default_rng([cfg.seed, _SPLITS[split], seq, _DEGRADE_STREAM])
    drawn = draw_sequence(cfg, degrade_rng)
    photo = _scene(cfg, split, seq)
    if rng.random() < 0.5:
        photo = photo[:, ::-1]
    zoom = _train_zoom(cfg, rng, split)
    photo = _minified(photo, zoom)
    linear = np.power(photo.astype(np.float32) / 255.0, cfg.gamma)
    scale, center, motion = _sequence_camera(cfg, rng, photo.shape[:2], max(1.0, zoom))
    t0 = rng.uniform(0.0, 100.0)
    n = cfg.subframes
    frames = []
    for k in range(cfg.frames_per_sequence):
        acc = np.zeros((cfg.height, cfg.width, 3), np.float64)
        sharp = None
        for j in range(n) if needs_blur(cfg.task) else [(n - 1) // 2]:  # no blur: the middle sub-frame only
            t = t0 + k + (j - (n - 1) / 2) / n
            m = _warp_matrix(cfg, scale, center, motion, t)
            sub = cv2.warpAffine(
                linear,
                m,
                (cfg.width, cfg.height),
                flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_REFLECT_101,
            )
            np.clip(sub, 0.0, 1.0, out=sub)
            acc += sub
            if j == (n - 1) // 2:
                sharp = sub
        blurry = degrade_frame(cfg, drawn, acc / n, sharp, degrade_rng)
        frames.append((blurry, _encode_gamma(sharp, cfg.gamma)))
    return frames


def _write_sequence(cfg: SynthConfig, root: Path, split: str, seq: int) -> int:
    seq_name = f"{seq:03d}"
    blur_dir = root / split / f"{split}_blur_jpeg" / seq_name
    sharp_dir = root / split / f"{split}_sharp" / seq_name
    blur_dir.mkdir(parents=True, exist_ok=True)
    if split != "test":
        sharp_dir.mkdir(parents=True, exist_ok=True)
    frames = render_sequence(cfg, split, seq)
    suffix = input_suffix(cfg.task)
    for k, (blur, sharp) in enumerate(frames):
        write_image(blur_dir / f"{k:08d}{suffix}", blur, jpeg_quality=cfg.jpeg_quality)
        if split != "test":
            write_image(sharp_dir / f"{k:08d}.png", sharp)
    return len(frames)


def _manifest(cfg: SynthConfig) -> dict:
    sources = {
        split: {f"{seq:03d}": sequence_source(cfg, split, seq) for seq in range(getattr(cfg, f"{split}_sequences"))}
        for split in _SPLITS
    }
    photos = sorted({s for split in sources.values() for s in split.values() if s != DEAD_LEAVES})
    hashes = {name: source_sha256(name) for name in photos}
    later = {f for fields in TASK_FIELDS.values() for f in fields} - set(TASK_FIELDS[cfg.task])
    config = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in later}
    return {"synth_version": SYNTH_VERSION, "config": config, "sources": sources, "sha256": hashes}


def manifest_task(out_root: str | Path) -> str:
    """The task a rendered tree's manifest names (``deblur_jpeg`` when it names none: the trees before tasks)."""
    manifest = json.loads((Path(out_root) / MANIFEST_NAME).read_text())
    return manifest["config"].get("task", "deblur_jpeg")


def manifest_matches(cfg: SynthConfig, out_root: str | Path) -> bool:
    """True when ``out_root`` holds a finished synthetic REDS rendered with this exact config and renderer version."""
    path = Path(out_root) / MANIFEST_NAME
    try:
        return json.loads(path.read_text()) == json.loads(json.dumps(_manifest(cfg)))
    except (OSError, ValueError):
        return False


def synthesize_reds(cfg: SynthConfig, out_root: str | Path, *, workers: int = 2) -> Path:
    """Render the synthetic REDS tree into ``out_root`` atomically (built in a temp dir, then renamed); returns it.

    Layout: ``{train,val}/{split}_blur_jpeg/<seq>/<frame>.jpg`` (``.png`` for every task but ``deblur_jpeg``) and
    ``{split}_sharp/<seq>/<frame>.png``, plus ``test/test_blur_jpeg`` only, and ``manifest.json`` recording the config.
    Same config -> same bytes.
    """
    out_root = Path(out_root)
    jobs = [
        (split, seq)
        for split, count in (("train", cfg.train_sequences), ("val", cfg.val_sequences), ("test", cfg.test_sequences))
        for seq in range(count)
    ]
    with atomic_dir(out_root) as tmp:
        results = Parallel(n_jobs=workers, return_as="generator")(
            delayed(_write_sequence)(cfg, tmp, split, seq) for split, seq in jobs
        )
        for _ in tqdm(results, total=len(jobs), desc="synthesize REDS", unit="seq", disable=None):
            pass
        write_json(tmp / MANIFEST_NAME, _manifest(cfg))
    return out_root
