"""Typed, frozen views of ``params.yaml``: one dataclass per section, unknown keys are errors.

Library functions take these objects (or plain arguments), never the raw params mapping, so a typo in
``params.yaml`` or in ``dvc exp run -S`` fails loudly at load time with the offending key named.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
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
    "parse",
]


class ConfigError(ValueError):
    """A params file or mapping does not match the expected schema; the message names the key."""


@dataclass(frozen=True)
class PathsConfig:
    """Where every stage reads and writes; ``dvc.yaml`` templates the same values, so they are defined once."""

    data: str = "data/prepared"
    synthetic_reds: str = "data/prepared/reds"
    runs: str = "runs"
    pretrained: str = "pretrained"
    live: str = "dvclive"  # DVCLive's per-member folders: metrics.json + plots/metrics/*.tsv, live during training
    models: str = "models"
    predictions: str = "outputs/predictions"
    ensemble: str = "outputs/ensemble"
    metrics: str = "metrics"
    plots: str = "plots"
    submissions: str = "submissions"


@dataclass(frozen=True)
class SynthConfig:
    """The embedded REDS-like set: dead leaves for training, held-out photos for val/test (``pipeline.data.synth``)."""

    seed: int = 0
    height: int = 192
    width: int = 320
    train_sequences: int = 40
    val_sequences: int = 30
    test_sequences: int = 15
    frames_per_sequence: int = 20
    val_photos: tuple[str, ...] = ("astronaut", "coffee", "chelsea", "rocket", "grace_hopper")
    test_photos: tuple[str, ...] = ("immunohistochemistry", "hubble_deep_field", "retina")
    leaves_rmin: float = 2.0  # smallest dead-leaves radius, frame pixels (largest: a third of the frame height)
    subframes: int = 15
    max_translation: float = 22.0  # peak camera speed per axis, frame pixels per frame interval
    max_rotation_deg: float = 2.0  # peak rotation speed, degrees per frame interval
    max_zoom: float = 0.03  # peak relative zoom change per frame interval
    gamma: float = 2.2
    jpeg_quality: int = 60


@dataclass(frozen=True)
class DataConfig:
    """The ``data`` section: which REDS to index and how to prepare training input."""

    source: str = "synthetic"  # synthetic | reds
    root: str = ""  # REDS root for source=reds; ignored for synthetic (paths.synthetic_reds is used)
    workers: int = 2
    patch_size: int = 0  # sub-image size extracted once for fast training input (0 disables)
    patch_stride: int = 128
    patch_format: str = "png"  # png (compact) | npy (raw memmap, no decoding; raw-size on disk)
    contact_sheet_pairs: int = 4
    synth: SynthConfig = field(default_factory=SynthConfig)

    def __post_init__(self):
        if self.source not in ("synthetic", "reds"):
            raise ConfigError(f"data.source must be 'synthetic' or 'reds', got {self.source!r}")
        if self.source == "reds" and not self.root:
            raise ConfigError("data.source is 'reds' but data.root is empty: point it at the REDS download")


@dataclass(frozen=True)
class ModelTrainConfig:
    """One ensemble member: architecture, optimisation recipe and validation cadence (``models.<name>``)."""

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
    mixed_precision: str = "auto"  # auto (bf16 on CPU and CUDA) | bf16 | fp16 | no
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
        kind, _, k = self.export.partition(":")
        if self.export not in ("final", "best") and not (kind == "average" and k.isdigit() and int(k) >= 1):
            raise ConfigError(f"export: got {self.export!r}, must be 'final', 'best' or 'average:K' with K >= 1")
        if kind == "average" and self.snapshot_every <= 0:
            raise ConfigError(f"export: {self.export!r} averages snapshots, but snapshot_every is {self.snapshot_every}"
                              "; set snapshot_every > 0")
        if self.export == "best" and self.val_every <= 0:
            raise ConfigError("export: 'best' needs val_every > 0 (the best step is found by validating)")
        if self.max_batch_per_process < 0:
            raise ConfigError(f"max_batch_per_process: got {self.max_batch_per_process}, must be >= 0 (0: no cap)")


@dataclass(frozen=True)
class LaunchConfig:
    """Where training and inference run: how many processes ``accelerate launch`` starts on this machine.

    Precision stays with what it changes (``models.<m>.mixed_precision``, ``tta.precision``); this section only says
    where to run. Multi-node runs are started by hand (README: "Many nodes").
    """

    processes: int = 1  # 1: one process (CPU or one GPU); N > 1: N GPUs, or N gloo processes on CPU
    gpu_ids: str = "all"  # e.g. "0,1,2,3" to use a subset of the visible GPUs
    main_process_port: int = 29500

    def __post_init__(self):
        if isinstance(self.processes, bool) or self.processes < 1:
            raise ConfigError(f"launch.processes: got {self.processes!r}, must be an integer >= 1")
        if not 1024 <= self.main_process_port <= 65535:
            raise ConfigError(f"launch.main_process_port: got {self.main_process_port}, must be in 1024..65535")


@dataclass(frozen=True)
class CropsConfig:
    """Random-crop TTA as the NTIRE entry did it: N crops, each under a random dihedral transform."""

    n: int = 256
    size: int = 256
    transforms: str = "all8"  # all8 | identity | flips
    seed: int = 0


@dataclass(frozen=True)
class TTAConfig:
    """Test-time settings: tiling, the modes scored on val-300, the mode used for test frames and the ensemble."""

    tile: int = 256
    overlap: int = 32
    batch: int = 8
    precision: str = "auto"  # auto (bf16 on CPU/CUDA) | bf16 | fp32
    ladder: tuple[str, ...] = ("plain", "x8", "x8+crops")
    submit: str = "x8+crops"
    crops: CropsConfig = field(default_factory=CropsConfig)

    def __post_init__(self):
        known = {"plain", "x8", "crops", "x8+crops"}
        for mode in (*self.ladder, self.submit):
            if mode not in known:
                raise ConfigError(f"tta mode {mode!r} is not one of {sorted(known)}")
        if self.submit not in self.ladder:
            raise ConfigError(f"tta.submit {self.submit!r} must also be in tta.ladder {list(self.ladder)}")


@dataclass(frozen=True)
class EnsembleConfig:
    """How member predictions are combined: fixed weights, or weights fitted on part of val-300."""

    members: tuple[str, ...] = ()
    weights: tuple[float, ...] = ()  # empty: equal weights
    fit: bool = False
    fit_fraction: float = 0.5  # fraction of val-300 frames used to fit; the rest measures the gain
    seed: int = 0  # which frames fall in the fit part


@dataclass(frozen=True)
class PackageConfig:
    """NTIRE submission packaging."""

    name: str = "hinet_ntire_submission"
    extra_data: bool = False
    description: str = ""


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
        if "ensemble" in self.models:
            raise ConfigError("models.ensemble: 'ensemble' is reserved (outputs/eval/ensemble holds the ensemble's "
                              "scores); rename the model")
        unknown = sorted(set(self.ensemble.members) - set(self.models))
        if unknown:
            raise ConfigError(f"ensemble.members: {unknown} are not models (models: {sorted(self.models)})")


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
        return {str(k): _convert(args[1], v, f"{where}.{k}") for k, v in value.items()}
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


def parse(cls: type, mapping: Any, where: str = "params"):
    """Build dataclass ``cls`` from a mapping; unknown keys and wrong types raise ConfigError naming the key."""
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, dict):
        raise ConfigError(f"{where}: expected a mapping, got {mapping!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(mapping) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(names)}")
    kwargs = {k: _convert(hints[k], v, f"{where}.{k}") for k, v in mapping.items()}
    return cls(**kwargs)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: params file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse(Params, raw, where=str(path))
