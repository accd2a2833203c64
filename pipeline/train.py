"""The training loop: one readable accelerate loop for one CPU, one GPU, many GPUs or many nodes.

Shape of accelerate's complete examples: ``Accelerator`` -> ``prepare`` -> ``accumulate`` -> ``backward`` ->
clip -> optimizer/schedule step -> ``gather_for_metrics`` on per-image validation scores -> ``save_state`` /
``load_state`` to resume. The sample order is a pure function of the global step, so a resumed run (after a crash or a
``kill -9``) replays exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import DataLoaderConfiguration, set_seed
from timm.scheduler import CosineLRScheduler
from timm.utils import ModelEmaV3
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from pipeline.batching import BatchPlan, BatchPlanError, plan_batch
from pipeline.config import ConfigError, ModelTrainConfig, PathsConfig
from pipeline.data.dataset import PairedPatchDataset, ValFrames
from pipeline.device import cpu_has_native_bf16
from pipeline.errors import PipelineError
from pipeline.figures import pyplot, save_figure
from pipeline.fileio import atomic_path, write_json
from pipeline.losses import stage_loss
from pipeline.models import (
    count_macs,
    count_params,
    create_model,
    identity_init,
    load_model,
    load_weights,
    read_metadata,
    save_weights,
)
from pipeline.models.weights import load_state_dict
from pipeline.tasks import task_of_index
from pipeline.tiling import restore_tiled

__all__ = [
    "PRETRAIN_NAME",
    "BatchPlan",
    "BatchPlanError",
    "NonFiniteLossError",
    "TrainOutputs",
    "build_model",
    "cpu_model",
    "data_fingerprint",
    "export_weights",
    "mixed_precision_for",
    "plan_batch",
    "run_fingerprint",
    "read_live_curve",
    "train_model",
]

_CKPT = re.compile(r"^step_(\d{8})$")
PRETRAIN_NAME = "base"


class NonFiniteLossError(PipelineError, RuntimeError):
    """The loss became NaN or infinite; training stops and the last good checkpoint is kept (a RuntimeError as
    before; a user error, so the stage prints its one line naming the step and the checkpoint folder)."""


@dataclass(frozen=True)
class TrainOutputs:
    """Where one model's training writes; all derived from ``PathsConfig`` so paths are defined once.

    ``run_dir`` (not tracked by DVC) holds ``checkpoints/`` (accelerate state, kept after the run so it can be
    continued with more steps) and ``snapshots/`` (EMA weight snapshots and ``best.safetensors``). ``live_dir`` is
    DVCLive's folder: ``metrics.json`` and ``plots/metrics/*.tsv`` (loss, lr, val-300 PSNR/SSIM, samples/s per step).
    """

    run_dir: Path
    weights: Path
    metrics: Path
    curve_png: Path
    live_dir: Path

    @classmethod
    def for_model(cls, name: str, paths: PathsConfig) -> TrainOutputs:
        return cls(
            run_dir=Path(paths.runs) / name,
            weights=Path(paths.models) / f"{name}.safetensors",
            metrics=Path(paths.metrics) / "train" / f"{name}.json",
            curve_png=Path(paths.plots) / "train" / f"{name}.png",
            live_dir=Path(paths.live) / name,
        )

    @classmethod
    def for_pretrain(cls, paths: PathsConfig) -> TrainOutputs:
        """The pretrained base: weights, provenance JSON and curve side by side in ``paths.pretrained`` (in git)."""
        root = Path(paths.pretrained)
        return cls(
            run_dir=Path(paths.runs) / PRETRAIN_NAME,
            weights=root / f"{PRETRAIN_NAME}.safetensors",
            metrics=root / f"{PRETRAIN_NAME}.json",
            curve_png=root / f"{PRETRAIN_NAME}_curve.png",
            live_dir=Path(paths.runs) / PRETRAIN_NAME / "live",  # the val curve is also in the provenance JSON
        )

    @property
    def checkpoints(self) -> Path:
        return self.run_dir / "checkpoints"

    @property
    def snapshots(self) -> Path:
        return self.run_dir / "snapshots"


def mixed_precision_for(setting: str, use_cpu: bool) -> str:
    """Map the params value to accelerate's: 'auto' is bf16 on a CPU with native bf16 (else 'no': fp32) and on
    bf16-capable CUDA, else fp16."""
    if setting != "auto":
        return setting
    if use_cpu or not torch.cuda.is_available():
        return "bf16" if cpu_has_native_bf16() else "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


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


def cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo``), recorded with every timing; ``platform`` as a fallback."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def data_fingerprint(data_dir: str | Path) -> str:
    """Hash of what training reads: the train index (relative paths, sizes) and the embedded set's manifest if any."""
    h = hashlib.sha256()
    for rel in ("index/train.csv", "reds/manifest.json"):
        path = Path(data_dir) / rel
        if path.is_file():
            h.update(rel.encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _git_commit() -> str:
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


# Fields that do not change the trajectory already trained: a run may be continued (more ``steps``) or re-exported
# under new values. (Raising ``steps`` does stretch the cosine schedule from the resume point on.)
_CONTINUABLE = (
    "steps",
    "val_every",
    "save_every",
    "keep_checkpoints",
    "snapshot_every",
    "export",
    "log_every",
    "num_workers",
)


# The code a training run executes: a checkpoint made by other code is not resumed (a DVC rerun after a code edit
# retrains instead of re-exporting the old state).
_TRAINING_CODE = (
    "train.py",
    "losses.py",
    "metrics.py",
    "tasks.py",
    "tiling.py",
    "device.py",
    "data/dataset.py",
    "data/patches.py",
    "data/shards.py",
    "models/hinet.py",
    "models/registry.py",
    "models/weights.py",
)


def run_fingerprint(cfg: ModelTrainConfig, data_dir: str | Path, processes: int) -> str:
    """What a checkpoint must share to be resumed: the recipe (:func:`config_fingerprint`), the training data, the
    training code and the process count. A crash resumes; raising ``steps`` continues; anything else starts afresh."""
    h = hashlib.sha256()
    h.update(config_fingerprint(cfg).encode())
    h.update(data_fingerprint(data_dir).encode())
    h.update(str(processes).encode())
    package = Path(__file__).resolve().parent
    for rel in _TRAINING_CODE:
        h.update((package / rel).read_bytes())
    return h.hexdigest()[:16]


def config_fingerprint(cfg: ModelTrainConfig) -> str:
    """Hash of the training recipe; a checkpoint is only resumed by a run with the same recipe (``_CONTINUABLE``
    fields aside, so a finished run can be continued for more steps)."""
    recipe = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _CONTINUABLE}
    blob = json.dumps(recipe, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class StepSamples(Dataset):
    """Sample ``i`` of the whole run: epoch ``i // n`` of a seeded permutation, with an augmentation seeded by ``i``.

    This makes the data order a function of the global sample index alone, so skipping the first batches on resume
    reproduces an uninterrupted run exactly, whatever the number of processes that consumed them.
    """

    def __init__(self, base: PairedPatchDataset, total: int, seed: int):
        self.base, self.total, self.seed = base, total, seed
        self._perms: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.total

    def __getitem__(self, i: int):
        epoch, j = divmod(i, len(self.base))
        if epoch not in self._perms:
            self._perms = {epoch: np.random.default_rng([self.seed, epoch]).permutation(len(self.base))}
        return self.base.sample(int(self._perms[epoch][j]), seed=self.seed * 1_000_003 + i)


def _checkpoints(ckpt_root: Path) -> list[tuple[int, Path]]:
    if not ckpt_root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in ckpt_root.iterdir() if (m := _CKPT.match(p.name)) and p.is_dir()]
    return sorted(found)


def _save_checkpoint(
    accelerator: Accelerator,
    ckpt_root: Path,
    step: int,
    fingerprint: str,
    keep: int,
    wall_s: float,
    best: dict,
    recipe: str = "",
) -> None:
    """``save_state`` into a temporary folder, then rename it into place, so a kill never leaves a half checkpoint."""
    final = ckpt_root / f"step_{step:08d}"
    tmp = ckpt_root / f".tmp_step_{step:08d}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        state = {"step": step, "fingerprint": fingerprint, "recipe": recipe, "wall_s": round(wall_s, 1), "best": best}
        (tmp / "trainer_state.json").write_text(json.dumps(state))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for _, old in _checkpoints(ckpt_root)[: -max(keep, 1)]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def _resume_point(ckpt_root: Path, fingerprint: str) -> tuple[int, Path | None, float]:
    """The newest complete checkpoint made by the same recipe and the training wall time it holds, or (0, None, 0)."""
    for step, path in reversed(_checkpoints(ckpt_root)):
        state = path / "trainer_state.json"
        if state.is_file():
            info = json.loads(state.read_text())
            if info.get("fingerprint") == fingerprint:
                return step, path, float(info.get("wall_s", 0.0))
    return 0, None, 0.0


def _unwrap_for_eval(accelerator: Accelerator, model, ema) -> torch.nn.Module:
    return ema.module if ema is not None else accelerator.unwrap_model(model)


def validate(accelerator: Accelerator, net: torch.nn.Module, frames: ValFrames, cfg: ModelTrainConfig) -> dict:
    """Full-frame validation on val-300 under the index's task protocol (channel, border crop, rounding: what
    ``evaluate`` scores), frames split across processes, per-image PSNR/SSIM gathered."""
    task = task_of_index(frames.table)
    precision = "bf16" if accelerator.mixed_precision == "bf16" else "fp32"
    net.eval()
    scores = []
    with accelerator.split_between_processes(list(range(len(frames)))) as mine:
        for i in mine:
            _, blur, sharp = frames[i]
            out = restore_tiled(
                net, blur, tile=cfg.val_tile, overlap=32, batch=4, precision=precision, device=accelerator.device
            )
            s = task.score_output(out, sharp, with_ssim3d=False)
            scores.append([s["psnr"], s["ssim"]])
    local = torch.tensor(scores, dtype=torch.float64, device=accelerator.device).reshape(-1, 2)
    # split_between_processes may give ranks unequal shares; pad to gather, then drop padding.
    counts = accelerator.gather(torch.tensor([local.shape[0]], device=accelerator.device)).tolist()
    padded = torch.full((max(counts), 2), float("nan"), dtype=torch.float64, device=accelerator.device)
    padded[: local.shape[0]] = local
    gathered = accelerator.gather(padded).reshape(-1, 2).cpu().numpy()
    gathered = gathered[~np.isnan(gathered[:, 0])]
    return {"psnr": float(gathered[:, 0].mean()), "ssim": float(gathered[:, 1].mean()), "frames": int(len(gathered))}


def _weights_hash(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def read_live_curve(live_dir: str | Path) -> pd.DataFrame:
    """DVCLive's per-step metrics (``plots/metrics/*.tsv``) joined on ``step``: one row per logged step."""
    folder = Path(live_dir) / "plots" / "metrics"
    frames = []
    for tsv in sorted(folder.rglob("*.tsv")) if folder.is_dir() else []:
        name = tsv.relative_to(folder).with_suffix("").as_posix()
        t = pd.read_csv(tsv, sep="\t")  # columns: [timestamp,] step, <last part of the name>
        value = [c for c in t.columns if c not in ("step", "timestamp")][0]
        t = t.rename(columns={value: name})
        frames.append(t[["step", name]].drop_duplicates("step", keep="last").set_index("step"))
    if not frames:
        return pd.DataFrame(columns=["step"])
    return pd.concat(frames, axis=1).sort_index().reset_index()


def _truncate_live(live_dir: Path, step: int) -> None:
    """Drop DVCLive rows logged after ``step`` (a killed run logged past its last checkpoint) before resuming."""
    folder = live_dir / "plots" / "metrics"
    for tsv in folder.rglob("*.tsv") if folder.is_dir() else []:
        t = pd.read_csv(tsv, sep="\t")
        if (t["step"] > step).any():
            with atomic_path(tsv) as tmp:
                t[t["step"] <= step].to_csv(tmp, sep="\t", index=False)


def _plot_curve(df: pd.DataFrame, path: Path, title: str, input_psnr: float) -> None:
    """Loss, learning rate and val-300 PSNR against step, for people without a browser (from DVCLive's data)."""
    fig, axes = pyplot().subplots(1, 3, figsize=(13, 3.6))
    panels = ((axes[0], "train/loss", "training loss (PSNR loss)"), (axes[1], "train/lr", "learning rate"))
    for ax, key, label in panels:
        if key in df:
            d = df.dropna(subset=[key])
            ax.plot(d["step"], d[key], lw=1)
        ax.set(title=label, xlabel="step")
    if "val/psnr" in df:
        val = df.dropna(subset=["val/psnr"])
        axes[2].plot(val["step"], val["val/psnr"], "o-")
    axes[2].axhline(input_psnr, color="gray", ls="--", label="blurry input")
    axes[2].legend()
    axes[2].set(title="val-300 PSNR (dB)", xlabel="step")
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=100, tight=False)


@dataclass
class _Run:
    """Everything the loop needs, built by :func:`_setup`."""

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


def _setup(name: str, cfg: ModelTrainConfig, paths: PathsConfig, out: TrainOutputs, use_cpu: bool) -> _Run:
    """Accelerator, batch plan, model (checked against ``init_from`` before anything is written), data, optimiser."""
    state = PartialState(cpu=use_cpu)
    batch = plan_batch(cfg.global_batch, state.num_processes, cfg.max_batch_per_process)
    accelerator = Accelerator(
        cpu=use_cpu,
        mixed_precision=mixed_precision_for(cfg.mixed_precision, use_cpu),
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
    val_frames = ValFrames.from_prepared(data_dir)
    fingerprint = run_fingerprint(cfg, data_dir, batch.processes)
    return _Run(
        name,
        cfg,
        out,
        accelerator,
        model,
        optimizer,
        scheduler,
        loader,
        ema,
        batch,
        fingerprint,
        val_frames,
        val_frames.input_scores(),
        n_params,
        macs_256,
        data_dir,
    )


def _resume(run: _Run) -> tuple[int, float, dict]:
    """Load the newest checkpoint of the same recipe: (start step, wall time so far, best-so-far record)."""
    acc, ckpt_root = run.accelerator, run.out.checkpoints
    start_step, resume_dir, prior_wall = _resume_point(ckpt_root, run.fingerprint)
    best = {"psnr": -math.inf, "ssim": float("nan"), "step": 0}
    if resume_dir is not None:
        acc.load_state(str(resume_dir))
        info = json.loads((resume_dir / "trainer_state.json").read_text())
        best = info.get("best", best)
        if acc.is_main_process:
            _truncate_live(run.out.live_dir, start_step)
        acc.print(f"[{run.name}] resuming from {resume_dir} at step {start_step}/{run.cfg.steps}")
    elif acc.is_main_process:  # a fresh start: nothing of an older run (checkpoints, snapshots, live curves) stays
        if _checkpoints(ckpt_root):
            acc.print(
                f"[{run.name}] checkpoints in {ckpt_root} were made by another recipe, code, data or process "
                "count; starting from step 0"
            )
        shutil.rmtree(ckpt_root, ignore_errors=True)
        shutil.rmtree(run.out.snapshots, ignore_errors=True)
        shutil.rmtree(run.out.live_dir, ignore_errors=True)
    acc.wait_for_everyone()
    return start_step, prior_wall, best


def _checkpoint(run: _Run, step: int, wall_s: float, best: dict) -> None:
    """Save this run's resumable state at ``step`` (see :func:`_save_checkpoint`)."""
    _save_checkpoint(
        run.accelerator,
        run.out.checkpoints,
        step,
        run.fingerprint,
        run.cfg.keep_checkpoints,
        wall_s,
        best,
        config_fingerprint(run.cfg),
    )


def _snapshot(run: _Run, net: torch.nn.Module, path: Path, step: int) -> None:
    """Save a copy of the evaluated (EMA) weights as a safetensors snapshot (main process only)."""
    if run.accelerator.is_main_process:
        save_weights(
            net.float(),
            path,
            variant=run.cfg.variant,
            metadata={"model": run.name, "step": str(step), "recipe": config_fingerprint(run.cfg)},
        )


def _loop(run: _Run, start_step: int, stop_at: int, prior_wall: float, best: dict) -> tuple[int, float, dict]:
    """The accelerate loop from ``start_step`` to ``stop_at``: step, log, validate, snapshot, checkpoint."""
    acc, cfg, out = run.accelerator, run.cfg, run.out
    t0 = time.perf_counter()
    step = start_step
    batches = acc.skip_first_batches(run.loader, start_step * run.batch.accumulation) if start_step else run.loader
    bar = tqdm(
        total=cfg.steps,
        initial=start_step,
        desc=f"train {run.name}",
        disable=not acc.is_main_process,
        dynamic_ncols=True,
    )
    run.model.train()
    running: list[float] = []
    t_log, samples_since = time.perf_counter(), 0
    for blur, sharp in batches:
        if step >= stop_at:
            break
        if cfg.channels_last:
            blur = blur.contiguous(memory_format=torch.channels_last)
        with acc.accumulate(run.model):
            with acc.autocast():
                outputs = run.model(blur)
            loss = stage_loss([o.float() for o in outputs], sharp, cfg.stage_weights, kind=cfg.loss)
            if not bool(acc.gather(loss.detach().reshape(1)).isfinite().all()):
                raise NonFiniteLossError(
                    f"[{run.name}] non-finite loss at step {step + 1}; last good checkpoint kept in {out.checkpoints}"
                )
            acc.backward(loss)
            if acc.sync_gradients and cfg.grad_clip > 0:
                acc.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
            run.optimizer.step()
            run.optimizer.zero_grad(set_to_none=True)
        running.append(float(loss.detach()))
        if not acc.sync_gradients:
            continue
        step += 1
        samples_since += run.batch.global_batch
        run.scheduler.step_update(num_updates=step)
        if run.ema is not None:
            run.ema.update(acc.unwrap_model(run.model), step=step)
        lr = run.optimizer.param_groups[0]["lr"]
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(running):.3f}", lr=f"{lr:.2e}")
        log: dict[str, float] = {}
        if step % cfg.log_every == 0 or step == cfg.steps:
            now = time.perf_counter()
            log = {
                "train/loss": float(np.mean(running)),
                "train/lr": lr,
                "train/samples_per_s": samples_since / max(now - t_log, 1e-9),
            }
            running, t_log, samples_since = [], now, 0
        if (cfg.val_every and step % cfg.val_every == 0) or step == cfg.steps:
            net = _unwrap_for_eval(acc, run.model, run.ema)
            scores = validate(acc, net, run.val_frames, cfg)
            run.model.train()
            log.update({"val/psnr": scores["psnr"], "val/ssim": scores["ssim"]})
            if scores["psnr"] > best["psnr"]:
                best = {"psnr": scores["psnr"], "ssim": scores["ssim"], "step": step}
                _snapshot(run, copy.deepcopy(net).eval(), out.snapshots / "best.safetensors", step)
            acc.print(
                f"[{run.name}] step {step}: val-300 PSNR {scores['psnr']:.3f} dB "
                f"(input {run.input_scores['psnr']:.3f} dB)"
            )
        if log:
            acc.log(log, step=step)
        if cfg.snapshot_every and step % cfg.snapshot_every == 0:
            net = copy.deepcopy(_unwrap_for_eval(acc, run.model, run.ema)).eval()
            _snapshot(run, net, out.snapshots / f"step_{step:08d}.safetensors", step)
        if cfg.save_every and step % cfg.save_every == 0 and step < stop_at:
            _checkpoint(run, step, prior_wall + time.perf_counter() - t0, best)
    bar.close()
    return step, time.perf_counter() - t0, best


def export_weights(run_dir: str | Path, export: str, final: torch.nn.Module) -> tuple[torch.nn.Module, str]:
    """The member's weights by ``export``: ``final``, ``best`` (snapshot of the best val-300 step) or ``average:K``
    (uniform average of the last K snapshots). Returns the model and a description; a missing choice is an error."""
    snaps = Path(run_dir) / "snapshots"
    if export == "final":
        return final, "final"
    if export == "best":
        path = snaps / "best.safetensors"
        if not path.is_file():
            raise ConfigError(f"{path}: export 'best' asked for, but no best snapshot exists (was val_every > 0?)")
        return load_model(path), f"best (step {read_metadata(path)['metadata'].get('step', '?')})"
    k = int(export.split(":", 1)[1])
    found = sorted(snaps.glob("step_*.safetensors"))
    if len(found) < k:
        raise ConfigError(
            f"{snaps}: export {export!r} needs {k} snapshots, found {len(found)} "
            "(lower K or snapshot more often with snapshot_every)"
        )
    chosen = found[-k:]
    avg = load_model(chosen[0])
    sd = {key: v.double() for key, v in avg.state_dict().items()}
    for path in chosen[1:]:
        for key, v in load_state_dict(path).items():
            sd[key] += v.double()
    avg.load_state_dict({key: (v / k).to(avg.state_dict()[key].dtype) for key, v in sd.items()})
    return avg, f"average of {k} snapshots ({chosen[0].stem} .. {chosen[-1].stem})"


def _finalize(
    run: _Run, step: int, start_step: int, wall: float, prior_wall: float, best: dict, provenance: bool
) -> dict:
    """Export the member, write its metrics and curve; keep the training state so the run can be continued."""
    acc, cfg, out = run.accelerator, run.cfg, run.out
    # The finished state is kept (as a checkpoint), so `steps` can be raised and the run continued.
    _checkpoint(run, step, prior_wall + wall, best)
    final_net = _unwrap_for_eval(acc, run.model, run.ema)
    hashes = acc.gather_for_metrics([_weights_hash(final_net)], use_gather_object=True)
    curve = read_live_curve(out.live_dir) if acc.is_main_process else pd.DataFrame(columns=["step"])
    last_val = curve.dropna(subset=["val/psnr"]).iloc[-1] if "val/psnr" in curve else None
    final_psnr = float(last_val["val/psnr"]) if last_val is not None else float("nan")
    final_ssim = float(last_val["val/ssim"]) if last_val is not None else float("nan")
    inp = run.input_scores
    metrics = {
        "model": run.name,
        "variant": cfg.variant,
        "width": int(final_net.config["wf"]),
        "extra_blocks": int(final_net.config.get("extra_blocks", 0)),
        "params": run.n_params,
        "macs_g_256": round(run.macs_256 / 1e9, 3),
        "steps": step,
        "input_psnr": inp["psnr"],
        "input_ssim": inp["ssim"],
        "final_psnr": final_psnr,
        "final_ssim": final_ssim,
        "final_gain_db": final_psnr - inp["psnr"],
        "best_psnr": best["psnr"],
        "best_ssim": best["ssim"],
        "best_step": best["step"],
        "wall_time_s": round(prior_wall + wall, 1),  # all invocations of this run (resumes included)
        "wall_time_this_run_s": round(wall, 1),
        "cpu": cpu_model(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "data_fingerprint": data_fingerprint(run.data_dir),
        "init_from": cfg.init_from,
        "resumed_from_step": start_step,
        "processes": run.batch.processes,
        "per_process_batch": run.batch.per_process,
        "accumulation": run.batch.accumulation,
        "global_batch": run.batch.global_batch,
        "device": str(acc.device),
        "mixed_precision": acc.mixed_precision,
        "rank_weight_hashes": list(hashes),
    }
    if acc.is_main_process:
        exported, how = export_weights(out.run_dir, cfg.export, final_net)
        metrics["export"] = how
        if provenance:
            metrics["recipe"] = dataclasses.asdict(cfg)
            metrics["git_commit"] = _git_commit()
            val = curve.dropna(subset=["val/psnr"]) if "val/psnr" in curve else curve.iloc[0:0]
            metrics["val_curve"] = [
                {"step": int(r["step"]), "val_psnr": float(r["val/psnr"]), "val_ssim": float(r["val/ssim"])}
                for _, r in val.iterrows()
            ]
        save_weights(
            exported.float(),
            out.weights,
            variant=cfg.variant,
            metadata={
                "model": run.name,
                "steps": str(step),
                "seed": str(cfg.seed),
                "recipe": config_fingerprint(cfg),
                "export": how,
            },
        )
        _plot_curve(
            curve,
            out.curve_png,
            f"{run.name}: {cfg.variant} (wf {metrics['width']}, "
            f"+{metrics['extra_blocks']} blocks), {run.n_params / 1e6:.2f}M params",
            inp["psnr"],
        )
        write_json(out.metrics, metrics)
    acc.wait_for_everyone()
    return metrics


def train_model(
    name: str,
    cfg: ModelTrainConfig,
    paths: PathsConfig,
    *,
    cpu: bool | None = None,
    max_steps_this_run: int | None = None,
    outputs: TrainOutputs | None = None,
    provenance: bool = False,
) -> dict:
    """Train model ``name`` with recipe ``cfg``; resume from its newest checkpoint; write weights, metrics and curves.

    ``max_steps_this_run`` stops early after that many steps in this invocation (for tests of interruption).
    ``outputs`` overrides where it writes (default: the member layout); ``provenance`` adds the recipe, the git
    commit and the val-300 curve to the metrics JSON (the pretrained base's record). Returns the metrics dict.
    """
    out = outputs or TrainOutputs.for_model(name, paths)
    use_cpu = (not torch.cuda.is_available()) if cpu is None else cpu
    run = _setup(name, cfg, paths, out, use_cpu)
    start_step, prior_wall, best = _resume(run)
    run.accelerator.init_trackers(  # no config: params.yaml and dvc.lock already record the recipe
        name,
        init_kwargs={
            "dvclive": {
                "dir": str(out.live_dir),
                "resume": start_step > 0,
                "save_dvc_exp": False,
                "dvcyaml": False,
                "report": None,
            }
        },
    )
    stop_at = cfg.steps if max_steps_this_run is None else min(cfg.steps, start_step + max_steps_this_run)
    step, wall, best = _loop(run, start_step, stop_at, prior_wall, best)
    if step < cfg.steps:  # stopped early on purpose (max_steps_this_run): leave a checkpoint, write nothing final
        _checkpoint(run, step, prior_wall + wall, best)
        run.accelerator.end_training()
        return {"step": step, "finished": False}
    metrics = _finalize(run, step, start_step, wall, prior_wall, best, provenance)
    run.accelerator.end_training()
    return metrics
