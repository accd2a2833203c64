"""Scoring under a task protocol: one image pair, a folder of predictions, the degraded inputs of an index, and the
per-frame input scores' CSV.

Submissions contain 8-bit PNGs, so predictions are scored on their 8-bit form (``png8/``), exactly what would be
judged, under the protocol of the index's task (``pipeline.tasks``: REDS and the embedded set RGB, no border crop;
Rain13K the BT.601 luma; SIDD the unrounded output, read from ``png16/``). The data stage scores the inputs here once;
``evaluate`` and ``ensemble`` score predictions here and summarise them (``pipeline.evaluate``). Numpy and OpenCV only
(no torch): frames are scored in joblib workers.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from pipeline.data.reds import read_index
from pipeline.errors import PipelineError
from pipeline.fileio import atomic_path, read_image, read_image16
from pipeline.metrics import psnr_float
from pipeline.predictions import PredictionFolder
from pipeline.tasks import SCORES, Task, TaskError, task_of_index

__all__ = [
    "SCORE_COLUMNS",
    "EvaluationError",
    "index_task",
    "load_index",
    "read_input_scores",
    "score_dir",
    "score_inputs",
    "write_input_scores",
]

SCORE_COLUMNS = ["name", *SCORES]  # a per-image score table: the frame, then the task's scores


class EvaluationError(PipelineError):
    """Predictions or an index cannot be scored; the message names the file or frame."""


def load_index(index: pd.DataFrame | str | Path) -> pd.DataFrame:
    """Return an index DataFrame, reading it from CSV when given a path (:func:`pipeline.data.reds.read_index`)."""
    if isinstance(index, pd.DataFrame):
        return index
    try:
        return read_index(index, ("name",))
    except ValueError as exc:
        raise EvaluationError(str(exc)) from None


def _check_scorable(index: pd.DataFrame, column: str) -> None:
    """Raise unless ``index`` has names and a non-empty ``column`` for every frame (test frames have no sharp)."""
    for col in ("name", column):
        if col not in index.columns:
            raise EvaluationError(f"index has no {col!r} column (columns: {list(index.columns)})")
    empty = index[index[column].isna() | (index[column].astype(str) == "")]
    if len(empty):
        first = empty["name"].iloc[0]
        raise EvaluationError(f"index column {column!r} is empty for {len(empty)} frame(s), e.g. {first}")
    if index["name"].duplicated().any():
        dup = index.loc[index["name"].duplicated(), "name"].iloc[0]
        raise EvaluationError(f"index lists frame {dup!r} more than once")


def _score_pair(
    name: str, pred_path: Path, sharp_path: Path, with_ssim: bool, task: Task, pred16_path: Path | None = None
) -> dict:
    """PSNR (and SSIM) of one 8-bit image against its target under ``task``'s protocol; a size mismatch names both
    files. ``pred16_path``: a task scored on the unrounded output (SIDD) takes its PSNR from the 16-bit prediction."""
    pred = read_image(pred_path)
    sharp = read_image(sharp_path)
    if pred.shape != sharp.shape:
        raise EvaluationError(
            f"{pred_path}: size {pred.shape[:2]} differs from ground truth {sharp_path} {sharp.shape[:2]}"
        )
    scores = task.score(pred, sharp, with_ssim=with_ssim)
    if pred16_path is not None:
        pred16 = read_image16(pred16_path)
        if pred16.shape != sharp.shape:
            raise EvaluationError(f"{pred16_path}: size {pred16.shape[:2]} differs from {pred_path} {pred.shape[:2]}")
        scores["psnr"] = psnr_float(pred16, sharp)
    return {"name": name, **scores}


def index_task(index: pd.DataFrame) -> Task:
    """The task whose protocol scores ``index`` (its ``task`` column; REDS without one), as an ``EvaluationError``."""
    try:
        return task_of_index(index)
    except TaskError as exc:
        raise EvaluationError(str(exc)) from None


def _run(jobs: list, workers: int, desc: str) -> list:
    """Run delayed jobs in order with a progress bar; ``workers`` > 1 spreads frames over processes."""
    if workers <= 1:
        return [fn(*args, **kw) for fn, args, kw in tqdm(jobs, desc=desc, disable=None, leave=False)]
    gen = Parallel(n_jobs=workers, return_as="generator")(jobs)
    return list(tqdm(gen, total=len(jobs), desc=desc, disable=None, leave=False))


def score_dir(
    pred_png8_dir: str | Path, index: pd.DataFrame, *, workers: int = 1, with_ssim: bool = True
) -> pd.DataFrame:
    """Score ``<pred_png8_dir>/<name>.png`` against each frame's ``sharp_path`` under the index's task protocol:
    DataFrame[name, psnr, ssim, ssim3d].

    Every missing prediction is named in one error before any scoring starts. ``with_ssim=False`` leaves SSIM NaN
    (PSNR alone is enough to rank ensemble members and is much cheaper). A task whose release scores the unrounded
    output (SIDD: ``Task.rounded_output`` false) takes PSNR from the sibling ``png16/`` predictions.
    """
    pred_dir = Path(pred_png8_dir)
    index = load_index(index)
    _check_scorable(index, "sharp_path")
    task = index_task(index)
    if not pred_dir.is_dir():
        raise EvaluationError(f"{pred_dir}: prediction directory not found")
    pred16_dir = None if task.rounded_output else PredictionFolder(pred_dir.parent).png16_dir
    for folder in (pred_dir, pred16_dir) if pred16_dir is not None else (pred_dir,):
        missing = [n for n in index["name"] if not (folder / f"{n}.png").is_file()]
        if missing:
            shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
            raise EvaluationError(f"{folder}: {len(missing)} of {len(index)} prediction(s) missing: {shown}")
    jobs = [
        delayed(_score_pair)(
            n, pred_dir / f"{n}.png", Path(s), with_ssim, task, pred16_dir / f"{n}.png" if pred16_dir else None
        )
        for n, s in zip(index["name"], index["sharp_path"], strict=True)
    ]
    return pd.DataFrame(_run(jobs, workers, f"score {pred_dir.parent.name}"), columns=SCORE_COLUMNS)


def score_inputs(index: pd.DataFrame, *, workers: int = 1) -> pd.DataFrame:
    """Score each degraded input against its target (the index's task protocol): the reference every gain is measured
    from."""
    index = load_index(index)
    _check_scorable(index, "sharp_path")
    _check_scorable(index, "blur_path")
    task = index_task(index)
    jobs = [
        delayed(_score_pair)(n, Path(b), Path(s), True, task)
        for n, b, s in zip(index["name"], index["blur_path"], index["sharp_path"], strict=True)
    ]
    return pd.DataFrame(_run(jobs, workers, "score inputs"), columns=SCORE_COLUMNS)


def write_input_scores(path: str | Path, inputs: pd.DataFrame) -> None:
    """Write the per-frame input scores (name, psnr, ssim, ssim3d) at full precision, so a reader gets the same floats
    the data stage computed (:func:`read_input_scores`)."""
    with atomic_path(path) as tmp:
        inputs[SCORE_COLUMNS].to_csv(tmp, index=False, float_format="%.17g")


def read_input_scores(path: str | Path) -> pd.DataFrame:
    """The per-frame input scores the data stage wrote (``index/val300_inputs.csv``), bit-exact."""
    path = Path(path)
    if not path.is_file():
        raise EvaluationError(f"{path}: per-frame input scores not found (written by the prepare stage)")
    table = pd.read_csv(path, dtype={"name": str}, keep_default_na=False)  # exact: %.17g, read back
    missing = [c for c in SCORE_COLUMNS if c not in table.columns]
    if missing:
        raise EvaluationError(f"{path}: not a table of input scores, missing column(s) {missing}")
    if table.empty:
        raise EvaluationError(f"{path}: no frames")
    return table
