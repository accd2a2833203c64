"""The accelerate loop, readable top to bottom: setup -> resume -> loop -> finalize.

Shape of accelerate's complete examples: ``Accelerator`` -> ``prepare`` -> ``accumulate`` -> ``backward`` -> clip ->
optimizer/schedule step -> validation (per-image scores, frames split across processes and gathered) ->
``save_state`` / ``load_state`` to resume. The run's parts come from :func:`~pipeline.train.run.build_run`; its progress
is one :class:`~pipeline.train.run.LoopState`, registered for checkpointing, so it is saved and restored with the
weights, optimizer and RNG states.
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
import time

import numpy as np
import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from pipeline.config import ModelTrainConfig, PathsConfig
from pipeline.data.dataset import ValFrames
from pipeline.errors import PipelineError
from pipeline.losses import stage_loss
from pipeline.models import save_weights
from pipeline.tasks import task_of_index
from pipeline.tiling import restore_tiled
from pipeline.train.checkpoints import (
    checkpoints,
    export_weights,
    find_checkpoint,
    save_checkpoint,
    save_snapshot,
    weights_hash,
)
from pipeline.train.fingerprint import config_fingerprint, data_fingerprint
from pipeline.train.records import (
    Provenance,
    TrainRecord,
    cpu_model,
    git_commit,
    plot_curve,
    read_live_curve,
    truncate_live,
    val_curve,
    write_train_record,
)
from pipeline.train.run import Run, TrainOutputs, build_run

__all__ = ["NonFiniteLossError", "train_model", "validate"]


class NonFiniteLossError(PipelineError, RuntimeError):
    """The loss became NaN or infinite; training stops and the last good checkpoint is kept (a RuntimeError as
    before; a user error, so the stage prints its one line naming the step and the checkpoint folder)."""


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


def _resume(run: Run) -> None:
    """Load the newest checkpoint of the same fingerprint (``run.state`` with it), or clear what an older run left."""
    acc, out = run.accelerator, run.out
    resume_dir = find_checkpoint(out.checkpoints, run.fingerprint)
    if resume_dir is not None:
        acc.load_state(str(resume_dir))
        if acc.is_main_process:
            truncate_live(out.live_dir, run.state.step)
        acc.print(f"[{run.name}] resuming from {resume_dir} at step {run.state.step}/{run.cfg.steps}")
    elif acc.is_main_process:  # a fresh start: nothing of an older run (checkpoints, snapshots, live curves) stays
        if checkpoints(out.checkpoints):
            acc.print(
                f"[{run.name}] checkpoints in {out.checkpoints} were made by another recipe, code, data or process "
                "count; starting from step 0"
            )
        shutil.rmtree(out.checkpoints, ignore_errors=True)
        shutil.rmtree(out.snapshots, ignore_errors=True)
        shutil.rmtree(out.live_dir, ignore_errors=True)
    acc.wait_for_everyone()


def _checkpoint(run: Run) -> None:
    """Save this run's resumable state at ``run.state.step``, labelled with the fingerprint that may resume it."""
    run.state.tick()
    label = {"fingerprint": run.fingerprint, "recipe": config_fingerprint(run.cfg), **run.state.state_dict()}
    save_checkpoint(run.accelerator, run.out.checkpoints, run.state.step, label, run.cfg.keep_checkpoints)


def _eval_net(run: Run) -> torch.nn.Module:
    """What is validated and exported: the EMA weights if the recipe keeps an average, else the trained model."""
    return run.ema.module if run.ema is not None else run.accelerator.unwrap_model(run.model)


def _snapshot(run: Run, name: str) -> None:
    """Save a copy of the evaluated (EMA) weights as ``snapshots/<name>.safetensors`` (main process only)."""
    if run.accelerator.is_main_process:
        net = copy.deepcopy(_eval_net(run)).eval()
        metadata = {"model": run.name, "step": str(run.state.step), "recipe": config_fingerprint(run.cfg)}
        save_snapshot(net, run.out.snapshots, name, variant=run.cfg.variant, metadata=metadata)


def _loop(run: Run, stop_at: int) -> None:
    """The accelerate loop from ``run.state.step`` to ``stop_at``: step, log, validate, snapshot, checkpoint."""
    acc, cfg, state = run.accelerator, run.cfg, run.state
    state.start()
    start = state.step
    batches = acc.skip_first_batches(run.loader, start * run.batch.accumulation) if start else run.loader
    bar = tqdm(
        total=cfg.steps, initial=start, desc=f"train {run.name}", disable=not acc.is_main_process, dynamic_ncols=True
    )
    run.model.train()
    running: list[float] = []
    t_log, samples_since = time.perf_counter(), 0
    for blur, sharp in batches:
        if state.step >= stop_at:
            break
        if cfg.channels_last:
            blur = blur.contiguous(memory_format=torch.channels_last)
        with acc.accumulate(run.model):
            with acc.autocast():
                outputs = run.model(blur)
            loss = stage_loss([o.float() for o in outputs], sharp, cfg.stage_weights, kind=cfg.loss)
            if not bool(acc.gather(loss.detach().reshape(1)).isfinite().all()):
                raise NonFiniteLossError(
                    f"[{run.name}] non-finite loss at step {state.step + 1}; last good checkpoint kept in "
                    f"{run.out.checkpoints}"
                )
            acc.backward(loss)
            if acc.sync_gradients and cfg.grad_clip > 0:
                acc.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
            run.optimizer.step()
            run.optimizer.zero_grad(set_to_none=True)
        running.append(float(loss.detach()))
        if not acc.sync_gradients:
            continue
        state.step += 1
        step = state.step
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
            scores = validate(acc, _eval_net(run), run.val_frames, cfg)
            run.model.train()
            log.update({"val/psnr": scores["psnr"], "val/ssim": scores["ssim"]})
            if scores["psnr"] > state.best["psnr"]:
                state.best = {"psnr": scores["psnr"], "ssim": scores["ssim"], "step": step}
                _snapshot(run, "best")
            acc.print(
                f"[{run.name}] step {step}: val-300 PSNR {scores['psnr']:.3f} dB "
                f"(input {run.input_scores['psnr']:.3f} dB)"
            )
        if log:
            acc.log(log, step=step)
        if cfg.snapshot_every and step % cfg.snapshot_every == 0:
            _snapshot(run, f"step_{step:08d}")
        if cfg.save_every and step % cfg.save_every == 0 and step < stop_at:
            _checkpoint(run)
    bar.close()
    state.tick()


def _finalize(run: Run, provenance: bool) -> TrainRecord | None:
    """Export the member, write its record and curve; keep the training state so the run can be continued.
    Returns the record on the main process (None on the others)."""
    acc, cfg, out, state = run.accelerator, run.cfg, run.out, run.state
    _checkpoint(run)  # the finished state is kept, so `steps` can be raised and the run continued
    final_net = _eval_net(run)
    hashes = acc.gather_for_metrics([weights_hash(final_net)], use_gather_object=True)
    record = None
    if acc.is_main_process:
        curve = read_live_curve(out.live_dir)
        last_val = curve.dropna(subset=["val/psnr"]).iloc[-1] if "val/psnr" in curve else None
        final_psnr = float(last_val["val/psnr"]) if last_val is not None else float("nan")
        final_ssim = float(last_val["val/ssim"]) if last_val is not None else float("nan")
        exported, how = export_weights(out.snapshots, cfg.export, final_net)
        inp = run.input_scores
        record = TrainRecord(
            model=run.name,
            variant=cfg.variant,
            width=int(final_net.config["wf"]),
            extra_blocks=int(final_net.config.get("extra_blocks", 0)),
            params=run.n_params,
            macs_g_256=round(run.macs_256 / 1e9, 3),
            steps=state.step,
            input_psnr=inp["psnr"],
            input_ssim=inp["ssim"],
            final_psnr=final_psnr,
            final_ssim=final_ssim,
            final_gain_db=final_psnr - inp["psnr"],
            best_psnr=state.best["psnr"],
            best_ssim=state.best["ssim"],
            best_step=state.best["step"],
            wall_time_s=round(state.wall_s, 1),
            wall_time_this_run_s=round(state.wall_this_run_s, 1),
            cpu=cpu_model(),
            threads=torch.get_num_threads(),
            torch=torch.__version__,
            data_fingerprint=data_fingerprint(run.data_dir),
            init_from=cfg.init_from,
            resumed_from_step=state.resumed_from,
            processes=run.batch.processes,
            per_process_batch=run.batch.per_process,
            accumulation=run.batch.accumulation,
            global_batch=run.batch.global_batch,
            device=str(acc.device),
            mixed_precision=run.precision,
            rank_weight_hashes=tuple(hashes),
            export=how,
            provenance=Provenance(dataclasses.asdict(cfg), git_commit(), val_curve(curve)) if provenance else None,
        )
        metadata = {
            "model": run.name,
            "steps": str(state.step),
            "seed": str(cfg.seed),
            "recipe": config_fingerprint(cfg),
            "export": how,
        }
        save_weights(exported.float(), out.weights, variant=cfg.variant, metadata=metadata)
        title = f"{run.name}: {cfg.variant} (wf {record.width}, +{record.extra_blocks} blocks), "
        plot_curve(curve, out.curve_png, f"{title}{run.n_params / 1e6:.2f}M params", inp["psnr"])
        write_train_record(out.metrics, record)
    acc.wait_for_everyone()
    return record


def train_model(
    name: str,
    cfg: ModelTrainConfig,
    paths: PathsConfig,
    *,
    cpu: bool | None = None,
    max_steps_this_run: int | None = None,
    outputs: TrainOutputs | None = None,
    provenance: bool = False,
) -> TrainRecord | None:
    """Train model ``name`` with recipe ``cfg``; resume from its newest checkpoint; write weights, metrics and curves.

    ``max_steps_this_run`` stops early after that many steps in this invocation (for tests of interruption).
    ``outputs`` overrides where it writes (default: the member layout); ``provenance`` adds the recipe, the git
    commit and the val-300 curve to the record (the pretrained base's). Returns the record written, on the main
    process of a finished run; None on other processes and when stopped early.
    """
    out = outputs or TrainOutputs.for_model(name, paths)
    use_cpu = (not torch.cuda.is_available()) if cpu is None else cpu
    run = build_run(name, cfg, paths, out, use_cpu)
    _resume(run)
    run.accelerator.init_trackers(  # no config: params.yaml and dvc.lock already record the recipe
        name,
        init_kwargs={
            "dvclive": {
                "dir": str(out.live_dir),
                "resume": run.state.step > 0,
                "save_dvc_exp": False,
                "dvcyaml": False,
                "report": None,
            }
        },
    )
    start = run.state.step
    stop_at = cfg.steps if max_steps_this_run is None else min(cfg.steps, start + max_steps_this_run)
    _loop(run, stop_at)
    if run.state.step < cfg.steps:  # stopped early on purpose (max_steps_this_run): leave a checkpoint, nothing final
        _checkpoint(run)
        run.accelerator.end_training()
        return None
    record = _finalize(run, provenance)
    run.accelerator.end_training()
    return record
