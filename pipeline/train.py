"""The training loop: one readable accelerate loop for one CPU, one GPU, many GPUs or many nodes.

Shape of accelerate's complete examples: ``Accelerator`` -> ``prepare`` -> ``accumulate`` -> ``backward`` ->
clip -> optimizer/schedule step -> ``gather_for_metrics`` on per-image validation scores -> ``save_state`` /
``load_state`` to resume. The sample order is a pure function of the global step, so a resumed run (after a crash or a
``kill -9``) replays exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

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
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, set_seed
from timm.scheduler import CosineLRScheduler
from timm.utils import ModelEmaV3
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from pipeline.config import ModelTrainConfig, PathsConfig
from pipeline.data.dataset import PairedPatchDataset, ValFrames
from pipeline.fileio import atomic_path, write_json
from pipeline.inference import restore
from pipeline.losses import stage_loss
from pipeline.metrics import psnr, ssim
from pipeline.models import count_macs, count_params, create_model, identity_init, load_weights, save_weights

__all__ = [
    "PRETRAIN_NAME",
    "NonFiniteLossError",
    "TrainOutputs",
    "build_model",
    "cpu_model",
    "data_fingerprint",
    "mixed_precision_for",
    "train_model",
]

_CKPT = re.compile(r"^step_(\d{8})$")
PRETRAIN_NAME = "base"


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; training stops and the last good checkpoint is kept."""


@dataclass(frozen=True)
class TrainOutputs:
    """Where one model's training writes; all derived from ``PathsConfig`` so paths are defined once."""

    run_dir: Path
    weights: Path
    metrics: Path
    curve_csv: Path
    curve_png: Path

    @classmethod
    def for_model(cls, name: str, paths: PathsConfig) -> TrainOutputs:
        plots = Path(paths.plots) / "train"
        return cls(
            run_dir=Path(paths.runs) / name,
            weights=Path(paths.models) / f"{name}.safetensors",
            metrics=Path(paths.metrics) / "train" / f"{name}.json",
            curve_csv=plots / f"{name}.csv",
            curve_png=plots / f"{name}.png",
        )

    @classmethod
    def for_pretrain(cls, paths: PathsConfig) -> TrainOutputs:
        """The pretrained base: weights, provenance JSON and curves side by side in ``paths.pretrained`` (in git)."""
        root = Path(paths.pretrained)
        return cls(
            run_dir=Path(paths.runs) / PRETRAIN_NAME,
            weights=root / f"{PRETRAIN_NAME}.safetensors",
            metrics=root / f"{PRETRAIN_NAME}.json",
            curve_csv=root / f"{PRETRAIN_NAME}_curve.csv",
            curve_png=root / f"{PRETRAIN_NAME}_curve.png",
        )


def mixed_precision_for(setting: str, use_cpu: bool) -> str:
    """Map the params value to accelerate's: 'auto' is bf16 on CPU (AMX) and on bf16-capable CUDA, else fp16."""
    if setting != "auto":
        return setting
    if use_cpu or not torch.cuda.is_available():
        return "bf16"
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
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def config_fingerprint(cfg: ModelTrainConfig) -> str:
    """Hash of the training recipe; a checkpoint is only resumed by a run with the same recipe."""
    blob = json.dumps(dataclasses.asdict(cfg), sort_keys=True, default=str)
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
    accelerator: Accelerator, ckpt_root: Path, step: int, fingerprint: str, keep: int, wall_s: float
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
        state = {"step": step, "fingerprint": fingerprint, "wall_s": round(wall_s, 1)}
        (tmp / "trainer_state.json").write_text(json.dumps(state))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for _, old in _checkpoints(ckpt_root)[:-keep] if keep > 0 else []:
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
    """Full-frame validation on val-300, frames split across processes, per-image scores gathered."""
    precision = "bf16" if accelerator.mixed_precision == "bf16" else "fp32"
    net.eval()
    scores = []
    with accelerator.split_between_processes(list(range(len(frames)))) as mine:
        for i in mine:
            _, blur, sharp = frames[i]
            out = restore(net, blur, tile=cfg.val_tile, overlap=32, tta="plain", batch=4, precision=precision,
                          device=accelerator.device)
            pred = np.round(np.clip(out, 0, 1) * 255.0).astype(np.uint8)
            scores.append([psnr(pred, sharp), ssim(pred, sharp)])
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


def _plot_curve(df: pd.DataFrame, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(df["step"], df["loss"], lw=1)
    axes[0].set(title="training loss (PSNR loss)", xlabel="step")
    axes[1].plot(df["step"], df["lr"], lw=1)
    axes[1].set(title="learning rate", xlabel="step")
    val = df.dropna(subset=["val_psnr"])
    axes[2].plot(val["step"], val["val_psnr"], "o-")
    if "input_psnr" in df and df["input_psnr"].notna().any():
        axes[2].axhline(float(df["input_psnr"].dropna().iloc[0]), color="gray", ls="--", label="blurry input")
        axes[2].legend()
    axes[2].set(title="val-300 PSNR (dB)", xlabel="step")
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


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
    accelerator = Accelerator(
        cpu=use_cpu,
        mixed_precision=mixed_precision_for(cfg.mixed_precision, use_cpu),
        gradient_accumulation_steps=cfg.grad_accum,
        dataloader_config=DataLoaderConfiguration(split_batches=False),
    )
    set_seed(cfg.seed)
    fingerprint = config_fingerprint(cfg)
    ckpt_root = out.run_dir / "checkpoints"
    data_dir = Path(paths.data)

    model = build_model(cfg)
    n_params = count_params(model)
    macs_256 = count_macs(model, (256, 256))
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)

    if cfg.optimizer not in ("adam", "adamw"):
        raise ValueError(f"models.{name}.optimizer must be 'adam' or 'adamw', got {cfg.optimizer!r}")
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

    base = PairedPatchDataset.from_prepared(data_dir, patch_size=cfg.patch_size, augment=True)
    per_step = cfg.batch_size * cfg.grad_accum * accelerator.num_processes
    samples = StepSamples(base, total=cfg.steps * per_step, seed=cfg.seed)
    loader = DataLoader(samples, batch_size=cfg.batch_size, shuffle=False, num_workers=cfg.num_workers,
                        persistent_workers=cfg.num_workers > 0, drop_last=True)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    ema = None
    if cfg.ema_decay > 0:  # built after prepare so the average lives on the training device
        ema = ModelEmaV3(accelerator.unwrap_model(model), decay=cfg.ema_decay, device=accelerator.device)
        accelerator.register_for_checkpointing(ema)

    start_step, resume_dir, prior_wall = _resume_point(ckpt_root, fingerprint)
    curve_rows: list[dict] = []
    partial_curve = out.run_dir / "curve_partial.csv"
    if resume_dir is not None:
        accelerator.load_state(str(resume_dir))
        if partial_curve.is_file():
            prev = pd.read_csv(partial_curve)
            curve_rows = prev[prev["step"] <= start_step].to_dict("records")
        accelerator.print(f"[{name}] resuming from {resume_dir} at step {start_step}/{cfg.steps}")
    elif accelerator.is_main_process and _checkpoints(ckpt_root):
        accelerator.print(f"[{name}] checkpoints in {ckpt_root} were made by another recipe; starting from step 0")
        shutil.rmtree(ckpt_root, ignore_errors=True)
    accelerator.wait_for_everyone()

    val_frames = ValFrames.from_prepared(data_dir)
    input_scores = val_frames.input_scores()
    best = {"psnr": -math.inf, "ssim": float("nan"), "step": 0}
    t0 = time.perf_counter()
    step = start_step
    stop_at = cfg.steps if max_steps_this_run is None else min(cfg.steps, start_step + max_steps_this_run)
    batches = accelerator.skip_first_batches(loader, start_step * cfg.grad_accum) if start_step else loader
    bar = tqdm(total=cfg.steps, initial=start_step, desc=f"train {name}", disable=not accelerator.is_main_process,
               dynamic_ncols=True)
    model.train()
    running = []
    for blur, sharp in batches:
        if step >= stop_at:
            break
        if cfg.channels_last:
            blur = blur.contiguous(memory_format=torch.channels_last)
        with accelerator.accumulate(model):
            with accelerator.autocast():
                outputs = model(blur)
            loss = stage_loss([o.float() for o in outputs], sharp, cfg.stage_weights, kind=cfg.loss)
            if not bool(accelerator.gather(loss.detach().reshape(1)).isfinite().all()):
                raise NonFiniteLossError(
                    f"[{name}] non-finite loss at step {step + 1}; last good checkpoint kept in {ckpt_root}"
                )
            accelerator.backward(loss)
            if accelerator.sync_gradients and cfg.grad_clip > 0:
                accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        running.append(float(loss.detach()))
        if not accelerator.sync_gradients:
            continue
        step += 1
        scheduler.step_update(num_updates=step)
        if ema is not None:
            ema.update(accelerator.unwrap_model(model), step=step)
        lr = optimizer.param_groups[0]["lr"]
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(running):.3f}", lr=f"{lr:.2e}")
        row = {"step": step, "loss": float(np.mean(running)), "lr": lr, "val_psnr": float("nan")}
        want_val = (cfg.val_every and step % cfg.val_every == 0) or step == cfg.steps
        if want_val:
            scores = validate(accelerator, _unwrap_for_eval(accelerator, model, ema), val_frames, cfg)
            model.train()
            row["val_psnr"], row["val_ssim"] = scores["psnr"], scores["ssim"]
            if scores["psnr"] > best["psnr"]:
                best = {"psnr": scores["psnr"], "ssim": scores["ssim"], "step": step}
            accelerator.print(f"[{name}] step {step}: val-300 PSNR {scores['psnr']:.3f} dB "
                              f"(input {input_scores['psnr']:.3f} dB)")
        if step % cfg.log_every == 0 or want_val:
            curve_rows.append(row)  # loss: mean over the steps since the last row
            running = []
        if cfg.save_every and step % cfg.save_every == 0 and step < cfg.steps:
            if accelerator.is_main_process:
                out.run_dir.mkdir(parents=True, exist_ok=True)
                with atomic_path(partial_curve) as tmp:
                    pd.DataFrame(curve_rows).to_csv(tmp, index=False)
            _save_checkpoint(accelerator, ckpt_root, step, fingerprint, cfg.keep_checkpoints,
                             prior_wall + time.perf_counter() - t0)
    bar.close()
    wall = time.perf_counter() - t0

    if step < cfg.steps:  # stopped early on purpose (max_steps_this_run): leave a checkpoint, write nothing final
        _save_checkpoint(accelerator, ckpt_root, step, fingerprint, cfg.keep_checkpoints,
                             prior_wall + time.perf_counter() - t0)
        if accelerator.is_main_process:
            with atomic_path(partial_curve) as tmp:
                pd.DataFrame(curve_rows).to_csv(tmp, index=False)
        return {"step": step, "finished": False}

    final_net = _unwrap_for_eval(accelerator, model, ema)
    hashes = accelerator.gather_for_metrics([_weights_hash(final_net)], use_gather_object=True)
    final = curve_rows[-1]
    metrics = {
        "model": name,
        "variant": cfg.variant,
        "width": int(final_net.config["wf"]),
        "extra_blocks": int(final_net.config.get("extra_blocks", 0)),
        "params": n_params,
        "macs_g_256": round(macs_256 / 1e9, 3),
        "steps": step,
        "input_psnr": input_scores["psnr"],
        "input_ssim": input_scores["ssim"],
        "final_psnr": final["val_psnr"],
        "final_ssim": final.get("val_ssim", float("nan")),
        "final_gain_db": final["val_psnr"] - input_scores["psnr"],
        "best_psnr": best["psnr"],
        "best_ssim": best["ssim"],
        "best_step": best["step"],
        "wall_time_s": round(prior_wall + wall, 1),  # all invocations of this run (resumes included)
        "wall_time_this_run_s": round(wall, 1),
        "cpu": cpu_model(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "data_fingerprint": data_fingerprint(data_dir),
        "init_from": cfg.init_from,
        "resumed_from_step": start_step,
        "processes": accelerator.num_processes,
        "device": str(accelerator.device),
        "mixed_precision": accelerator.mixed_precision,
        "rank_weight_hashes": list(hashes),
    }
    if provenance:
        metrics["recipe"] = dataclasses.asdict(cfg)
        metrics["git_commit"] = _git_commit()
        metrics["val_curve"] = [
            {"step": int(r["step"]), "val_psnr": r["val_psnr"], "val_ssim": r.get("val_ssim", float("nan"))}
            for r in curve_rows
            if not math.isnan(r["val_psnr"])
        ]
    if accelerator.is_main_process:
        save_weights(final_net.float(), out.weights, variant=cfg.variant,
                     metadata={"model": name, "steps": str(step), "seed": str(cfg.seed), "recipe": fingerprint})
        curve = pd.DataFrame(curve_rows)
        curve["input_psnr"] = input_scores["psnr"]
        with atomic_path(out.curve_csv) as tmp:
            curve.to_csv(tmp, index=False)
        _plot_curve(curve, out.curve_png, f"{name}: {cfg.variant} (wf {metrics['width']}, "
                                          f"+{metrics['extra_blocks']} blocks), {n_params / 1e6:.2f}M params")
        write_json(out.metrics, metrics)
        # A finished run needs no resume state; dropping it means code changes retrain from scratch.
        shutil.rmtree(ckpt_root, ignore_errors=True)
        partial_curve.unlink(missing_ok=True)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return metrics
