"""The evaluate stage: per-image PSNR/SSIM CSVs and one DVC-metrics summary per model on the scored split
(``val300``).

Frames are scored by :mod:`pipeline.scoring` (8-bit predictions under the index's task protocol); the degraded input's
scores come from the data stage, so every number comes with its gain over doing nothing. Tasks with several test sets
(Rain13K) also get per-set means and the paper's average.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from pipeline.fileio import atomic_path
from pipeline.layout import VAL_SPLIT, Layout
from pipeline.predictions import PredictionFolder
from pipeline.records import EvalRecord, MeanScores, ModeScores, ReportedScores
from pipeline.scoring import SCORE_COLUMNS, EvaluationError, index_task, load_index, read_input_scores, score_dir
from pipeline.tasks import SCORES, Task

__all__ = ["evaluate_model", "rounded_scores", "summarize", "write_per_image_csv"]


def summarize(per_image: pd.DataFrame, inputs: pd.DataFrame) -> dict:
    """Mean PSNR/SSIM of ``per_image`` and its gain (dB) over the inputs' mean PSNR on the same frames."""
    if per_image.empty:
        raise EvaluationError("no frames to summarise")
    missing = sorted(set(per_image["name"]) - set(inputs["name"]))
    if missing:
        raise EvaluationError(f"input scores lack {len(missing)} scored frame(s), e.g. {missing[0]}")
    ref = inputs.set_index("name").loc[per_image["name"]]
    means = {k: float(per_image[k].mean()) for k in SCORES if k in per_image}
    return {
        **rounded_scores(means),
        "gain_db": round(means["psnr"] - float(ref["psnr"].mean()), 4),
        "frames": len(per_image),
    }


def rounded_scores(scores: dict) -> dict:
    """Mean PSNR / SSIM / SSIM3D at the precision every summary shows (4 decimals of dB, 5 of SSIM)."""
    ssim3d = scores.get("ssim3d", math.nan)
    return {
        "psnr": round(float(scores["psnr"]), 4),
        "ssim": round(float(scores["ssim"]), 5),
        "ssim3d": round(float(ssim3d), 5) if ssim3d is not None else math.nan,
    }


def write_per_image_csv(path: str | Path, per_image: pd.DataFrame, inputs: pd.DataFrame) -> pd.DataFrame:
    """Write name, psnr, ssim, input_psnr, gain_db per frame (a DVC plots CSV) atomically; return the table."""
    ref = inputs.set_index("name")["psnr"]
    table = per_image[SCORE_COLUMNS].copy()
    table["input_psnr"] = table["name"].map(ref).to_numpy()
    table["gain_db"] = table["psnr"] - table["input_psnr"]
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.5f")
    return table


def _set_report(task: Task, per_image: pd.DataFrame, index: pd.DataFrame) -> dict:
    """Per-test-set means and the task's reported average of one mode's per-image scores, rounded as summaries are."""
    sets = index.set_index("name")["test_set"].loc[per_image["name"]].tolist()
    report = task.report(per_image, sets)
    return {
        "test_sets": {k: MeanScores(**rounded_scores(v), frames=v["frames"]) for k, v in report["test_sets"].items()},
        "reported": ReportedScores(**rounded_scores(report["reported"]), average=report["reported"]["average"]),
    }


def evaluate_model(model_name: str, layout: Layout, modes: Sequence[str], *, workers: int = 1) -> EvalRecord:
    """Score every TTA mode of one model on val-300; write ``layout.eval_csv(model, mode)`` and a summary JSON.

    Reads the val-300 index, the per-frame input scores the data stage wrote (never rescored here) and each mode's
    prediction folder (8-bit frames and runtime record). The summary (``layout.eval_metrics(model)``, an
    :class:`pipeline.records.EvalRecord`, also returned) is shaped for ``dvc metrics show`` / ``diff``: ``{"model",
    "task", "frames", "tta": {<mode>: {psnr, ssim, ssim3d, gain_db, seconds_per_frame, device, precision,
    settings}}}``. ``psnr`` etc. are means over frames (what the leaderboard's paired intervals resample); a task that
    reports the average of several test sets (Rain13K) adds per mode ``test_sets`` (each set's means and frames) and
    ``reported`` (the average the paper's table shows). ``task`` keeps rankings of different tasks apart. Model facts
    (parameters, MACs) stay in the training metrics.
    """
    if not modes:
        raise EvaluationError(f"{model_name}: no TTA modes to evaluate")
    index = load_index(layout.index(VAL_SPLIT))
    task = index_task(index)
    inputs = read_input_scores(layout.input_scores)
    scores = {}
    for mode in modes:
        folder = PredictionFolder(layout.predictions(model_name, mode, VAL_SPLIT))
        per_image = score_dir(folder.png8_dir, index, workers=workers)
        write_per_image_csv(layout.eval_csv(model_name, mode), per_image, inputs)
        runtime = folder.read_runtime()
        summary = summarize(per_image, inputs)
        scores[mode] = ModeScores(
            psnr=summary["psnr"],
            ssim=summary["ssim"],
            ssim3d=summary["ssim3d"],
            gain_db=summary["gain_db"],
            seconds_per_frame=round(runtime.seconds_per_frame, 5),
            device=runtime.device,
            precision=runtime.precision,
            settings=runtime.tta,
            **(_set_report(task, per_image, index) if task.average == "test_sets" else {}),
        )
    record = EvalRecord(model=model_name, task=task.name, frames=len(index), tta=scores)
    record.write(layout.eval_metrics(model_name))
    return record
