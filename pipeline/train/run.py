"""One training run's parts: where it writes (:class:`TrainOutputs`), its progress (:class:`LoopState`, checkpointed
with the weights) and everything built before the first step (:class:`Run`, by :func:`build_run`)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import DataLoaderConfiguration, set_seed
from timm.scheduler import CosineLRScheduler
from timm.utils import ModelEmaV3
from torch.utils.data import DataLoader

from pipeline.batching import BatchPlan, plan_batch
from pipeline.config import ModelTrainConfig, PathsConfig
from pipeline.data.dataset import PairedPatchDataset, ValFrames
from pipeline.device import accelerate_precision, precision_name, resolve_precision
from pipeline.layout import BASE, Layout
from pipeline.models import count_macs, count_params, create_model, identity_init, load_weights
from pipeline.train.fingerprint import run_fingerprint
from pipeline.train.sampler import StepSamples

__all__ = ["LoopState", "Run", "TrainOutputs", "build_model", "build_run", "training_dtype"]


@dataclass(frozen=True)
class TrainOutputs:
    """Where one training run writes, each path named by :class:`pipeline.layout.Layout`: a member's layout or the
    pretrained base's (weights, provenance JSON and curve side by side in ``paths.pretrained``, in git)."""

    checkpoints: Path
    snapshots: Path
    weights: Path
    metrics: Path
    curve_png: Path
    live_dir: Path

    @classmethod
    def for_model(cls, name: str, paths: PathsConfig) -> TrainOutputs:
        layout = Layout(paths)
        return cls(
            checkpoints=layout.checkpoints(name),
            snapshots=layout.snapshots(name),
            weights=layout.weights(name),
            metrics=layout.train_metrics(name),
            curve_png=layout.train_curve(name),
            live_dir=layout.live_dir(name),
        )

    @classmethod
    def for_pretrain(cls, paths: PathsConfig) -> TrainOutputs:
        layout = Layout(paths)
        return cls(
            checkpoints=layout.checkpoints(BASE),
            snapshots=layout.snapshots(BASE),
            weights=layout.base_weights,
            metrics=layout.base_provenance,
            curve_png=layout.base_curve,
            live_dir=layout.base_live_dir,
        )


def _no_best() -> dict:
    return {"psnr": -math.inf, "ssim": float("nan"), "step": 0}


@dataclass
class LoopState:
    """How far a run has come: the optimizer steps done, its training wall time over every invocation and its best
    val-300 score so far (``psnr``, ``ssim``, ``step``). Registered for checkpointing, so ``save_state`` writes
    :meth:`state_dict` and ``load_state`` restores it; ``resumed_from`` and ``wall_this_run_s`` describe the current
    invocation only (from :meth:`start`)."""

    step: int = 0
    wall_s: float = 0.0
    best: dict = field(default_factory=_no_best)
    resumed_from: int = 0
    wall_this_run_s: float = 0.0
    _clock: float = field(default=0.0, repr=False)

    def state_dict(self) -> dict:
        return {"step": self.step, "wall_s": self.wall_s, "best": dict(self.best)}

    def load_state_dict(self, state: dict) -> None:
        self.step, self.wall_s, self.best = int(state["step"]), float(state["wall_s"]), dict(state["best"])

    def start(self) -> None:
        """This invocation trains from here: remember the step and start its clock."""
        self.resumed_from, self.wall_this_run_s, self._clock = self.step, 0.0, time.perf_counter()

    def tick(self) -> None:
        """Add the wall time since the last tick (or :meth:`start`)."""
        now = time.perf_counter()
        self.wall_s += now - self._clock
        self.wall_this_run_s += now - self._clock
        self._clock = now


def training_dtype(setting: str, use_cpu: bool) -> torch.dtype | None:
    """The autocast dtype (None: float32) of a params precision on the training device, resolved as inference
    resolves it (:func:`pipeline.device.resolve_precision`): 'auto' is bf16 on a CPU with native bf16 (else fp32) and
    on bf16-capable CUDA, else fp16; fp16 on a CPU is a one-line :class:`~pipeline.device.DeviceError`."""
    return resolve_precision(setting, "cpu" if use_cpu or not torch.cuda.is_available() else "cuda")


def build_model(cfg: ModelTrainConfig) -> torch.nn.Module:
    """Create the configured variant, apply width/depth overrides, identity init and ``init_from`` weights."""
    overrides = {}
    if cfg.width is not None:
        overrides["wf"] = cfg.width
    if cfg.extra_blocks is not None:
        overrides["extra_blocks"] = cfg.extra_blocks
    model = create_model(cfg.variant, **overrides)
    if cfg.identity_init:
        identity_init(model)
    if cfg.init_from:
        load_weights(model, cfg.init_from)
    return model


@dataclass
class Run:
    """Everything the loop needs, built by :func:`build_run`; ``state`` is what it advances."""

    name: str
    cfg: ModelTrainConfig
    out: TrainOutputs
    accelerator: Accelerator
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: CosineLRScheduler
    loader: DataLoader
    ema: ModelEmaV3 | None
    batch: BatchPlan
    fingerprint: str
    val_frames: ValFrames
    input_scores: dict
    n_params: int
    macs_256: float
    data_dir: Path
    state: LoopState
    precision: str  # what the steps autocast to, in the project's vocabulary (bf16, fp16, fp32)


def build_run(name: str, cfg: ModelTrainConfig, paths: PathsConfig, out: TrainOutputs, use_cpu: bool) -> Run:
    """Accelerator, batch plan, model (checked against ``init_from`` before anything is written), data, optimiser."""
    batch = plan_batch(cfg.global_batch, PartialState(cpu=use_cpu).num_processes, cfg.max_batch_per_process)
    dtype = training_dtype(cfg.mixed_precision, use_cpu)
    accelerator = Accelerator(
        cpu=use_cpu,
        mixed_precision=accelerate_precision(dtype),
        gradient_accumulation_steps=batch.accumulation,
        dataloader_config=DataLoaderConfiguration(split_batches=False),
        log_with="dvclive",
    )
    set_seed(cfg.seed)
    model = build_model(cfg)
    n_params, macs_256 = count_params(model), count_macs(model, (256, 256))
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    optimizer = opt_cls(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    scheduler = CosineLRScheduler(
        optimizer,
        t_initial=max(cfg.steps - cfg.warmup_steps, 1),
        lr_min=cfg.min_lr,
        warmup_t=cfg.warmup_steps,
        warmup_lr_init=cfg.min_lr,
        warmup_prefix=True,
        t_in_epochs=False,
    )
    data_dir = Path(paths.data)
    base = PairedPatchDataset.from_prepared(data_dir, patch_size=cfg.patch_size, augment=True)
    samples = StepSamples(base, total=cfg.steps * batch.global_batch, seed=cfg.seed)
    loader = DataLoader(
        samples,
        batch_size=batch.per_process,
        shuffle=False,
        num_workers=cfg.num_workers,
        persistent_workers=cfg.num_workers > 0,
        drop_last=True,
    )
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    ema = None
    if cfg.ema_decay > 0:  # built after prepare so the average lives on the training device
        ema = ModelEmaV3(accelerator.unwrap_model(model), decay=cfg.ema_decay, device=accelerator.device)
        accelerator.register_for_checkpointing(ema)
    loop_state = LoopState()
    accelerator.register_for_checkpointing(loop_state)
    val_frames = ValFrames.from_prepared(data_dir)
    return Run(
        name=name,
        cfg=cfg,
        out=out,
        accelerator=accelerator,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        loader=loader,
        ema=ema,
        batch=batch,
        fingerprint=run_fingerprint(cfg, data_dir, batch.processes),
        val_frames=val_frames,
        input_scores=val_frames.input_scores(),
        n_params=n_params,
        macs_256=macs_256,
        data_dir=data_dir,
        state=loop_state,
        precision=precision_name(dtype),
    )
