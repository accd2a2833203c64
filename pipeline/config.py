"""Typed, frozen views of ``params.yaml``: one dataclass per section, unknown keys are errors.

Library functions take these objects (or plain arguments), never the raw params mapping, so a typo in
``params.yaml`` or in ``dvc exp run -S`` fails loudly at load time with the offending key named.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from pipeline.errors import PipelineError

__all__ = [
    "CROP_TRANSFORMS",
    "POOL_SPLITS",
    "PRECISIONS",
    "SYNTH_PHOTOS",
    "SYNTH_TASKS",
    "WHEEL_PHOTOS",
    "TTA_MODES",
    "ConfigError",
    "CropsConfig",
    "DataConfig",
    "EnsembleConfig",
    "LaunchConfig",
    "ModelTrainConfig",
    "PackageConfig",
    "Params",
    "PathsConfig",
    "SynthConfig",
    "TTAConfig",
    "load_params",
    "params_check",
    "parse",
]

# The one precision vocabulary of params, records and CLIs: auto resolves per device (pipeline.device); fp32 is
# "no autocast" (accelerate spells it `no`: only pipeline.device.accelerate_precision translates).
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
TTA_MODES = ("plain", "x8", "crops", "x8+crops")  # the test-time augmentations (pipeline.inference runs them)
CROP_MODES = ("crops", "x8+crops")
# tta.crops.transforms -> the dihedral transforms (pipeline.tiling.dihedral's 0-7) a random crop draws from. 'flips'
# are the four shape-preserving ones: identity, rot180 (flip H and W), flip W, flip H.
CROP_TRANSFORMS: dict[str, tuple[int, ...]] = {"all8": tuple(range(8)), "flips": (0, 2, 4, 6), "identity": (0,)}
WHEEL_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "grace_hopper")  # shipped by scikit-image / matplotlib
SYNTH_TASKS = ("deblur_jpeg", "deblur", "denoise", "derain")  # the embedded set's degradations (pipeline.data.degrade)
POOL_SOURCES = Path(__file__).resolve().parent / "data" / "photos" / "sources.json"  # the committed photo pool


def _pool_splits() -> dict[str, str]:
    """Pool photo name -> the split ``sources.json`` assigns it (read as JSON only: no image library imported)."""
    import json

    try:
        return {e["name"]: e["split"] for e in json.loads(POOL_SOURCES.read_text()).get("images", [])}
    except (OSError, ValueError, KeyError, TypeError):
        return {}  # prepare's pool check names the broken file; params keep to the wheel photos meanwhile


POOL_SPLITS: dict[str, str] = _pool_splits()
SYNTH_PHOTOS = WHEEL_PHOTOS + tuple(POOL_SPLITS)  # every photo pipeline.data.synth can film (its PHOTOS)
_POOL_TRAIN = tuple(n for n, s in POOL_SPLITS.items() if s == "train")


class ConfigError(PipelineError):
    """A params file or mapping does not match the expected schema; the message names the key.

    A section's own check also sets ``key`` (relative to the section) and ``problem``, so :func:`parse` can restate
    the error under the key's full name (``models.wd_s1.steps``, not just ``steps``).
    """

    def __init__(self, message: str, *, key: str = "", problem: str = ""):
        super().__init__(message)
        self.key = key
        self.problem = problem


def _join(where: str, key: str) -> str:
    """``where.key`` (``where[i]`` for an index), or ``key`` alone at the top level."""
    if not where:
        return key
    return f"{where}{key}" if key.startswith("[") else f"{where}.{key}"


def _require(ok: bool, section: str, key: str, value: Any, rule: str) -> None:
    """A section check: unless ``ok``, raise ``<section>.<key>: got <value>, must be <rule>`` (one line)."""
    if not ok:
        shown = list(value) if isinstance(value, tuple) else value
        problem = f"got {shown!r}, must be {rule}"
        raise ConfigError(f"{_join(section, key)}: {problem}", key=key, problem=problem)


def _require_counts(obj: Any, minimum: int, *names: str) -> None:
    """Each named integer field of ``obj`` is at least ``minimum`` (step counts, sizes, workers...)."""
    for name in names:
        value = getattr(obj, name)
        _require(value >= minimum, obj.SECTION, name, value, f">= {minimum}")


def _require_choice(obj: Any, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(obj, name)
    _require(value in choices, obj.SECTION, name, value, f"one of {list(choices)}")


def _require_precision(obj: Any, name: str) -> None:
    value = getattr(obj, name)
    hint = " ('no' is accelerate's word for fp32: write fp32)" if value == "no" else ""
    _require(value in PRECISIONS, obj.SECTION, name, value, f"one of {list(PRECISIONS)}{hint}")


@dataclass(frozen=True)
class PathsConfig:
    """Where every stage reads and writes; ``dvc.yaml`` templates the same values, so they are defined once."""

    SECTION: ClassVar[str] = "paths"

    data: str = "data/prepared"
    synthetic_reds: str = "data/prepared/reds"
    runs: str = "runs"
    pretrained: str = "pretrained"
    live: str = "dvclive"  # DVCLive's per-member folders: metrics.json + plots/metrics/*.tsv, live during training
    models: str = "models"
    predictions: str = "outputs/predictions"
    eval: str = "outputs/eval"  # per-frame scores: <model>/<mode>.csv, ensemble/ensemble[_<variant>].csv
    ensemble: str = "outputs/ensemble"
    metrics: str = "metrics"
    plots: str = "plots"
    submissions: str = "submissions"

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            _require(bool(value), self.SECTION, f.name, value, "a non-empty path")


@dataclass(frozen=True)
class SynthConfig:
    """The embedded REDS-like set: dead leaves for training, held-out photos for val/test (``pipeline.data.synth``)."""

    SECTION: ClassVar[str] = "data.synth"

    seed: int = 0
    height: int = 192
    width: int = 320
    train_sequences: int = 120
    val_sequences: int = 30
    test_sequences: int = 15  # 0 renders no test/ (the development phase: package.split val300)
    frames_per_sequence: int = 20
    train_photos: tuple[str, ...] = _POOL_TRAIN  # pool photos the photo training sequences film
    leaves_fraction: float = 0.0  # share of training sequences filming textured dead leaves (the rest: train_photos)
    val_photos: tuple[str, ...] = (
        *WHEEL_PHOTOS,
        *(n for n in ("kleiber", "life", "wine", "bridge", "path") if n in POOL_SPLITS),
    )
    test_photos: tuple[str, ...] = tuple(n for n, s in POOL_SPLITS.items() if s == "test")
    leaves_rmin: float = 2.0  # smallest dead-leaves radius, frame pixels (largest: a third of the frame height)
    subframes: int = 15
    max_translation: float = 22.0  # peak camera speed per axis, frame pixels per frame interval
    max_rotation_deg: float = 2.0  # peak rotation speed, degrees per frame interval
    max_zoom: float = 0.03  # peak relative zoom change per frame interval
    train_magnify_max: float = 2.0  # training sequences film their scene magnified by m ~ log-uniform [1, this]:
    # soft (interpolated) sharp frames as well as pixel-sharp ones, as REDS's own ground truth; val/test: never
    train_minify_max: float = 2.0  # and minified by up to this (area-downscaled first, so still sharp and alias-free):
    # m ~ log-uniform [1/this, train_magnify_max], denser fine texture per pixel; 1 = off; val/test: never
    gamma: float = 2.2
    jpeg_quality: int = 60
    # What the input frame shows (pipeline.data.degrade): deblur_jpeg (REDS Track 2: blur + JPEG), deblur (GoPro-like:
    # blur, stored losslessly), denoise (SIDD-like: sensor noise in linear light, no blur), derain (Rain13K-like).
    task: str = "deblur_jpeg"
    # denoise: per sequence, variance a*x + b in linear light x in [0, 1]; a and b log-uniform in these ranges, each
    # scaled per channel by a gain uniform in [1 - spread, 1 + spread].
    noise_shot: tuple[float, float] = (0.002, 0.02)  # a: Poisson (shot) gain
    noise_read: tuple[float, float] = (1e-5, 1e-3)  # b: Gaussian (read) variance
    noise_channel_spread: float = 0.25
    # derain: per sequence, a layer count, then per layer each value uniform in its range (widths and counts: integers).
    rain_layers: tuple[int, int] = (1, 3)
    rain_density: tuple[float, float] = (0.001, 0.005)  # share of pixels seeding a streak, per layer and frame
    rain_length: tuple[float, float] = (8.0, 30.0)  # streak length, frame pixels
    rain_width: tuple[int, int] = (1, 2)  # streak thickness, frame pixels
    rain_angle_deg: tuple[float, float] = (-30.0, 30.0)  # streak direction, degrees from vertical
    rain_brightness: tuple[float, float] = (0.2, 0.6)  # peak streak intensity on the [0, 1] display scale
    rain_blend: str = "screen"  # screen: 1 - (1 - frame)(1 - rain); add: frame + rain, clipped

    def __post_init__(self):
        at = self.SECTION
        _require(self.task in SYNTH_TASKS, at, "task", self.task, f"one of {list(SYNTH_TASKS)}")
        _require(self.rain_blend in ("screen", "add"), at, "rain_blend", self.rain_blend, "one of ['screen', 'add']")
        _require(
            0 <= self.noise_channel_spread < 1,
            at,
            "noise_channel_spread",
            self.noise_channel_spread,
            "in [0, 1) (per-channel gains stay positive)",
        )
        for name, low, high, what in (  # (lo, hi) ranges: low <(=) lo <= hi <= high
            ("noise_shot", 0.0, 0.1, "in (0, 0.1]"),
            ("noise_read", 0.0, 0.01, "in (0, 0.01]"),
            ("rain_layers", 1, 8, "in [1, 8]"),
            ("rain_density", 0.0, 0.1, "in (0, 0.1]"),
            ("rain_length", 1.0, float(min(self.height, self.width)), f"in [1, {min(self.height, self.width)}]"),
            ("rain_width", 1, 5, "in [1, 5]"),
            ("rain_angle_deg", -90.0, 90.0, "in [-90, 90]"),
            ("rain_brightness", 0.0, 1.0, "in (0, 1]"),
        ):
            lo, hi = getattr(self, name)
            above = lo > low if what.startswith("in (") else lo >= low
            _require(above and lo <= hi <= high, at, name, (lo, hi), f"a [low, high] range {what}, low <= high")
        for name in ("height", "width"):
            value = getattr(self, name)
            _require(value > 0 and value % 16 == 0, at, name, value, "a positive multiple of 16 (HINet input)")
        _require(
            self.subframes >= 1 and self.subframes % 2 == 1,
            at,
            "subframes",
            self.subframes,
            "odd (the sharp frame is the middle one)",
        )
        _require_counts(self, 1, "frames_per_sequence", "train_sequences", "val_sequences")
        _require_counts(self, 0, "test_sequences")  # 0: no test/ folder, the development phase
        _require(1 <= self.jpeg_quality <= 100, at, "jpeg_quality", self.jpeg_quality, "in 1..100")
        _require(self.gamma > 0, at, "gamma", self.gamma, "> 0")
        _require(1.0 <= self.train_magnify_max <= 4.0, at, "train_magnify_max", self.train_magnify_max, "in [1, 4]")
        _require(1.0 <= self.train_minify_max <= 4.0, at, "train_minify_max", self.train_minify_max, "in [1, 4]")
        _require(0.0 <= self.leaves_fraction <= 1.0, at, "leaves_fraction", self.leaves_fraction, "in [0, 1]")
        for name in ("train_photos", "val_photos", "test_photos"):
            photos = getattr(self, name)
            if name == "train_photos" and self.leaves_fraction == 1.0:
                continue  # leaves only: no training photo needed
            _require(bool(photos), at, name, photos, f"at least one of {list(SYNTH_PHOTOS)}")
            unknown = sorted(set(photos) - set(SYNTH_PHOTOS))
            _require(not unknown, at, name, photos, f"among {list(SYNTH_PHOTOS)} (unknown photo(s) {unknown})")
            split = name.split("_")[0]
            wrong = sorted(p for p in photos if POOL_SPLITS.get(p, split) != split)
            _require(
                not wrong,
                at,
                name,
                photos,
                f"pool photos of the {split} split ({[(p, POOL_SPLITS[p]) for p in wrong]} are another split's in "
                f"{POOL_SOURCES.name}: a photo stays in one split)",
            )
        for a, b in (("val_photos", "test_photos"), ("train_photos", "val_photos"), ("train_photos", "test_photos")):
            shared = sorted(set(getattr(self, a)) & set(getattr(self, b)))
            _require(
                not shared,
                at,
                b,
                getattr(self, b),
                f"disjoint from {a} ({shared} in both {a} and {b}; held-out content is never trained on)",
            )
        limit = min(self.height, self.width) / 3
        _require(
            0 < self.leaves_rmin < limit,
            at,
            "leaves_rmin",
            self.leaves_rmin,
            f"in (0, {limit:g}) (a third of the smaller frame side)",
        )


@dataclass(frozen=True)
class DataConfig:
    """The ``data`` section: which data set (task, ``pipeline.tasks``) to index and how to prepare training input."""

    SECTION: ClassVar[str] = "data"

    source: str = "synthetic"  # synthetic | reds | gopro | sidd | rain13k (pipeline.tasks: layout + scoring protocol)
    root: str = ""  # the download's folder for a real data set; ignored for synthetic (paths.synthetic_reds is used)
    workers: int = 2
    store: str = "shards"  # how training reads pairs: shards | frames | patches (pipeline/data/prepare.py)
    shard_frames: int = 1000  # frames per shard file (full REDS train: 24 shards)
    shard_block: int = 64  # tile side in a shard; a crop decodes the tiles it touches
    patch_size: int = 0  # with store=patches: sub-image size extracted once
    patch_stride: int = 128
    patch_format: str = "png"  # png (compact) | npy (raw memmap, no decoding; raw-size on disk)
    contact_sheet_pairs: int = 4
    sidd_block: int = 256  # side of the SIDD validation blocks in the .mat arrays (the benchmark's: 256)
    synth: SynthConfig = field(default_factory=SynthConfig)

    SOURCES: ClassVar[tuple[str, ...]] = ("synthetic", "reds", "gopro", "sidd", "rain13k")  # = pipeline.tasks.TASKS

    def __post_init__(self):
        _require_choice(self, "source", self.SOURCES)
        _require(
            self.source == "synthetic" or bool(self.root),
            self.SECTION,
            "root",
            self.root,
            f"the folder of a {_SOURCE_LABELS.get(self.source, self.source)} download when data.source is "
            f"{self.source!r}",
        )
        _require_counts(self, 16, "sidd_block")
        _require_counts(self, 1, "workers", "patch_stride", "contact_sheet_pairs", "shard_frames")
        _require_counts(self, 0, "patch_size")
        _require_choice(self, "patch_format", ("png", "npy"))
        _require_choice(self, "store", ("shards", "frames", "patches"))
        _require(
            (self.store == "patches") == (self.patch_size > 0),
            self.SECTION,
            "patch_size",
            self.patch_size,
            "> 0 exactly when data.store is 'patches' (it is only read then)",
        )
        _require(8 <= self.shard_block <= 1024, self.SECTION, "shard_block", self.shard_block, "in [8, 1024]")


_SOURCE_LABELS = {"reds": "REDS", "gopro": "GoPro", "sidd": "SIDD", "rain13k": "Rain13K"}


@dataclass(frozen=True)
class ModelTrainConfig:
    """One ensemble member: architecture, optimisation recipe and validation cadence (``models.<name>``)."""

    SECTION: ClassVar[str] = ""  # models.<name> or pretrain: parse() names it

    variant: str = "hinet-1x"
    width: int | None = None  # overrides the variant's wf
    extra_blocks: int | None = None  # overrides the variant's extra residual blocks
    seed: int = 100
    steps: int = 1000
    global_batch: int = 8  # samples per optimizer step over all processes; per-process batch and accumulation derive
    max_batch_per_process: int = 0  # 0: no cap; else accumulate gradients when global / processes exceeds it
    patch_size: int = 256
    optimizer: str = "adam"  # adam | adamw
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    warmup_steps: int = 0
    min_lr: float = 1e-7
    grad_clip: float = 0.01  # max gradient norm; 0 disables
    ema_decay: float = 0.0  # 0 disables timm's ModelEmaV3
    stage_weights: tuple[float, float] = (0.5, 0.5)
    loss: str = "psnr"  # psnr | l1
    identity_init: bool = False  # zero the output convolutions so the untrained net returns its input
    mixed_precision: str = "auto"  # auto (bf16 on CUDA and CPUs with native bf16, else fp32) | bf16 | fp16 | fp32
    channels_last: bool = True
    init_from: str = ""  # public-release .pth or our .safetensors to fine-tune from
    val_every: int = 0  # 0: only at the end
    val_tile: int = 256
    save_every: int = 200
    keep_checkpoints: int = 2
    snapshot_every: int = 0  # save the EMA (or current) weights every N steps as a safetensors snapshot; 0: never
    export: str = "final"  # the member's weights: final | best (by val-300 PSNR) | average:K (last K snapshots)
    log_every: int = 10
    num_workers: int = 1

    def __post_init__(self):
        at = self.SECTION
        _require(bool(self.variant), at, "variant", self.variant, "a model variant name")
        _require(self.width is None or self.width >= 1, at, "width", self.width, ">= 1 (or null for the variant's)")
        _require(
            self.extra_blocks is None or self.extra_blocks >= 0,
            at,
            "extra_blocks",
            self.extra_blocks,
            ">= 0 (or null for the variant's)",
        )
        _require_counts(self, 1, "steps", "global_batch", "patch_size", "val_tile", "log_every")
        _require_counts(
            self,
            0,
            "warmup_steps",
            "val_every",
            "save_every",
            "keep_checkpoints",
            "num_workers",
            "max_batch_per_process",
            "snapshot_every",
        )
        _require_choice(self, "optimizer", ("adam", "adamw"))
        _require(self.lr > 0 and math.isfinite(self.lr), at, "lr", self.lr, "a finite number > 0")
        _require(all(0 <= b < 1 for b in self.betas), at, "betas", self.betas, "two numbers in [0, 1)")
        for name in ("weight_decay", "min_lr", "grad_clip"):
            value = getattr(self, name)
            _require(0 <= value < math.inf, at, name, value, "a finite number >= 0")
        _require(0 <= self.ema_decay < 1, at, "ema_decay", self.ema_decay, "in [0, 1) (0 disables the EMA)")
        _require(
            all(w >= 0 for w in self.stage_weights) and sum(self.stage_weights) > 0,
            at,
            "stage_weights",
            self.stage_weights,
            "two numbers >= 0, not both 0",
        )
        _require_choice(self, "loss", ("psnr", "l1"))
        _require_precision(self, "mixed_precision")
        kind, _, k = self.export.partition(":")
        _require(
            self.export in ("final", "best") or (kind == "average" and k.isdigit() and int(k) >= 1),
            at,
            "export",
            self.export,
            "'final', 'best' or 'average:K' with K >= 1",
        )
        _require(
            kind != "average" or self.snapshot_every > 0,
            at,
            "snapshot_every",
            self.snapshot_every,
            f"> 0 when export is {self.export!r} (it averages snapshots)",
        )
        _require(
            self.export != "best" or self.val_every > 0,
            at,
            "val_every",
            self.val_every,
            "> 0 when export is 'best' (the best step is found by validating)",
        )


@dataclass(frozen=True)
class LaunchConfig:
    """Where training and inference run: how many processes ``accelerate launch`` starts on this machine.

    Precision stays with what it changes (``models.<m>.mixed_precision``, ``tta.precision``); this section only says
    where to run. Multi-node runs are started by hand (README: "Many nodes").
    """

    processes: int = 1  # 1: one process (CPU or one GPU); N > 1: N GPUs, or N gloo processes on CPU
    gpu_ids: str = "all"  # e.g. "0,1,2,3" to use a subset of the visible GPUs
    main_process_port: int = 29500

    SECTION: ClassVar[str] = "launch"

    def __post_init__(self):
        _require_counts(self, 1, "processes")
        _require(
            1024 <= self.main_process_port <= 65535,
            self.SECTION,
            "main_process_port",
            self.main_process_port,
            "in 1024..65535",
        )
        _require(bool(self.gpu_ids), self.SECTION, "gpu_ids", self.gpu_ids, "'all' or a list like '0,1,2,3'")


@dataclass(frozen=True)
class CropsConfig:
    """Random-crop TTA as the NTIRE entry did it: N crops, each under a random dihedral transform."""

    SECTION: ClassVar[str] = "tta.crops"

    n: int = 256
    side: int = 256  # crop side in pixels (not "size": DVC's run cache ignores every params key named size)
    transforms: str = "all8"  # all8 | identity | flips
    seed: int = 0

    def __post_init__(self):
        _require_counts(self, 0, "n")  # 0 is fine while no crop mode is used; TTAConfig checks that
        _require_counts(self, 1, "side")
        _require_choice(self, "transforms", tuple(CROP_TRANSFORMS))


@dataclass(frozen=True)
class TTAConfig:
    """Test-time settings: tiling, the modes scored on val-300, the mode used for test frames and the ensemble."""

    SECTION: ClassVar[str] = "tta"

    tile: int = 256
    overlap: int = 32
    tiling: str = "blended"  # blended (raised-cosine, >= overlap px) | hinet (the public grid + count-map average)
    batch: int = 8
    precision: str = "auto"  # auto (bf16 on CUDA and CPUs with native bf16, else fp32) | bf16 | fp16 | fp32
    cast_weights: bool = False  # keep a copy of the weights in the autocast dtype (no per-forward weight casts)
    compile: bool = False  # torch.compile the model (compiles once per patch shape)
    ladder: tuple[str, ...] = ("plain", "x8", "x8+crops")
    submit: str = "x8+crops"
    crops: CropsConfig = field(default_factory=CropsConfig)

    def __post_init__(self):
        at = self.SECTION
        _require(bool(self.ladder), at, "ladder", self.ladder, f"a non-empty list of modes among {list(TTA_MODES)}")
        for i, mode in enumerate(self.ladder):
            _require(mode in TTA_MODES, at, f"ladder[{i}]", mode, f"one of {list(TTA_MODES)}")
        _require(self.submit in self.ladder, at, "submit", self.submit, f"one of tta.ladder {list(self.ladder)}")
        _require_counts(self, 1, "tile", "batch")
        _require(0 <= self.overlap < self.tile, at, "overlap", self.overlap, f"in [0, tta.tile={self.tile})")
        _require_precision(self, "precision")
        _require_choice(self, "tiling", ("blended", "hinet"))
        uses_crops = any(mode in CROP_MODES for mode in self.ladder)
        _require(
            not uses_crops or self.crops.n >= 1,
            at,
            "crops.n",
            self.crops.n,
            f">= 1 when a crop mode is used (tta.ladder {list(self.ladder)})",
        )


@dataclass(frozen=True)
class EnsembleConfig:
    """How member predictions are combined: fixed weights, or weights fitted on part of val-300."""

    SECTION: ClassVar[str] = "ensemble"

    members: tuple[str, ...] = ()
    weights: tuple[float, ...] = ()  # empty: equal weights
    fit: bool = False
    fit_fraction: float = 0.5  # fraction of val-300 frames used to fit; the rest measures the gain
    seed: int = 0  # which frames fall in the fit part

    def __post_init__(self):
        at = self.SECTION
        _require(len(set(self.members)) == len(self.members), at, "members", self.members, "distinct models")
        _require(
            all(0 <= w < math.inf for w in self.weights) and (not self.weights or sum(self.weights) > 0),
            at,
            "weights",
            self.weights,
            "finite numbers >= 0, not all 0 (or empty for equal weights)",
        )
        _require(0 < self.fit_fraction < 1, at, "fit_fraction", self.fit_fraction, "in (0, 1)")


@dataclass(frozen=True)
class PackageConfig:
    """NTIRE submission packaging."""

    SECTION: ClassVar[str] = "package"

    name: str = "hinet_ntire_submission"
    split: str = "test300"  # test300: the test phase; val300: the development phase (scored on validation frames)
    extra_data: bool = False
    description: str = ""

    def __post_init__(self):
        plain = bool(self.name) and not self.name.startswith(".") and not any(c in self.name for c in "/\\")
        _require(plain, self.SECTION, "name", self.name, "a plain file name (the zip is submissions/<name>.zip)")
        _require_choice(self, "split", ("test300", "val300"))


@dataclass(frozen=True)
class Params:
    """The whole ``params.yaml``."""

    paths: PathsConfig = field(default_factory=PathsConfig)
    launch: LaunchConfig = field(default_factory=LaunchConfig)
    data: DataConfig = field(default_factory=DataConfig)
    pretrain: ModelTrainConfig = field(default_factory=ModelTrainConfig)
    models: dict[str, ModelTrainConfig] = field(default_factory=dict)
    tta: TTAConfig = field(default_factory=TTAConfig)
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    package: PackageConfig = field(default_factory=PackageConfig)

    def __post_init__(self):
        names = sorted(self.models)
        _require(
            not {"ensemble", "base"} & set(self.models),
            "",
            "models",
            names,
            "named anything but 'ensemble' or 'base' (reserved: the ensemble's and the pretrained base's predictions "
            "and scores)",
        )
        unknown = sorted(set(self.ensemble.members) - set(self.models))
        _require(
            not unknown,
            "",
            "ensemble.members",
            self.ensemble.members,
            f"names of models ({unknown} are not; models: {names})",
        )
        members = self.ensemble.members or tuple(self.models)
        weights = self.ensemble.weights
        _require(
            not weights or len(weights) == len(members),
            "",
            "ensemble.weights",
            weights,
            f"one weight per member ({len(members)}: {list(members)}) or empty for equal weights",
        )


def _convert(tp: Any, value: Any, where: str) -> Any:
    """Convert a YAML value to annotation ``tp``, raising ConfigError naming ``where`` on a mismatch."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return parse(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
        return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return {str(k): _convert(args[1], v, _join(where, str(k))) for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


# Keys renamed since an earlier params.yaml, named in the unknown-key error. tta.crops.size became side because DVC's
# run cache hashes a stage's params with every key called "size" (or "nfiles") left out: a changed crop size reused
# the previous predictions (tests/test_config.py keeps every params key clear of those two names).
RENAMED = {(CropsConfig, "size"): "side"}


def parse(cls: type, mapping: Any, where: str = "params"):
    """Build dataclass ``cls`` from a mapping; unknown keys, wrong types and values out of range raise ConfigError
    naming the key under ``where`` (``""``: the top level of a params file)."""
    at = f"{where}: " if where else ""
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, dict):
        raise ConfigError(f"{at}expected a mapping, got {mapping!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(map(str, set(mapping) - names))
    if unknown:
        renamed = [f"{k} is now {RENAMED[cls, k]}" for k in unknown if (cls, k) in RENAMED]
        hint = f" ({'; '.join(renamed)})" if renamed else ""
        raise ConfigError(f"{at}unknown key(s) {unknown}{hint}; known: {sorted(names)}")
    kwargs = {k: _convert(hints[k], v, _join(where, k)) for k, v in mapping.items()}
    try:
        return cls(**kwargs)
    except ConfigError as exc:  # a section's own check: restate it under the key's full name
        if not exc.key:
            raise
        raise ConfigError(f"{_join(where, exc.key)}: {exc.problem}") from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``; every error reads ``<path>: <key>: <problem>``."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: params file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    try:
        return parse(Params, raw, where="")
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def params_check(params: Params) -> dict:
    """What stage ``check_params`` records for a valid params file: the same bytes for every valid file, so a valid
    edit reruns only the stages that read the edited keys (DVC skips a stage whose inputs did not change)."""
    return {"ok": True, "sections": [f.name for f in dataclasses.fields(params)]}
