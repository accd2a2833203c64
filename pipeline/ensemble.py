"""Weighted ensembles of member predictions, averaged from the 16-bit files so nothing is rounded twice.

Weights come from params or are fitted on part of val-300 (non-negative, summing to one, maximising mean PSNR); the
fit is judged on the held-out frames against equal weights so overfitting shows. The ensemble is written in the
same layout as a model's predictions and scored like every model.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from pipeline.config import EnsembleConfig
from pipeline.data.reds import has_frames
from pipeline.errors import PipelineError
from pipeline.evaluate import summarize, write_per_image_csv
from pipeline.fileio import read_image
from pipeline.layout import VAL_SPLIT, Layout
from pipeline.predictions import PredictionFolder, Runtime
from pipeline.records import EnsembleRecord, EvalRecord, FitReport, Variant
from pipeline.scoring import load_index, read_input_scores, score_dir
from pipeline.tasks import Task, task_of_index

__all__ = [
    "EnsembleError",
    "average_predictions",
    "fit_weights",
    "normalise_weights",
    "project_to_simplex",
    "run_ensemble",
    "split_fit_heldout",
    "variant_csv",
]

log = logging.getLogger(__name__)


class EnsembleError(PipelineError):
    """Members, weights or predictions cannot be combined; the message names the member, file or argument."""


def normalise_weights(weights: Sequence[float] | None, n_members: int) -> np.ndarray:
    """Return float64 weights summing to 1 (equal when ``weights`` is None or empty); reject bad lengths/values."""
    if n_members < 1:
        raise EnsembleError("an ensemble needs at least one member")
    if weights is None or len(weights) == 0:
        return np.full(n_members, 1.0 / n_members)
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or len(w) != n_members:
        raise EnsembleError(f"weights: got {len(w)} weight(s) for {n_members} member(s)")
    if not np.all(np.isfinite(w)):
        raise EnsembleError(f"weights: must be finite, got {list(weights)}")
    if np.any(w < 0):
        raise EnsembleError(f"weights: must be non-negative, got {list(weights)}")
    if w.sum() <= 0:
        raise EnsembleError(f"weights: must not all be zero, got {list(weights)}")
    return w / w.sum()


def _weighted_frame(member_dirs: Sequence[Path], name: str, weights: np.ndarray) -> np.ndarray:
    """Weighted mean of one frame's 16-bit member predictions as float32 HWC; sizes must agree."""
    acc = None
    first = None
    for d, w in zip(member_dirs, weights, strict=True):
        folder = PredictionFolder(d)
        path = folder.png16(name)
        if not path.is_file():
            raise EnsembleError(f"{path}: member prediction missing")
        img = folder.read16(name)
        if acc is None:
            acc, first = np.zeros(img.shape, np.float64), path
        elif img.shape != acc.shape:
            raise EnsembleError(f"{path}: size {img.shape[:2]} differs from {first} {acc.shape[:2]}")
        acc += w * img
    return acc.astype(np.float32)


def average_predictions(
    member_dirs: Sequence[str | Path], names: Sequence[str], weights: Sequence[float] | None
) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(name, float32 HWC)``: the weighted mean of frame ``name``'s 16-bit predictions over the members'
    prediction folders (:class:`pipeline.predictions.PredictionFolder`).

    Weights are normalised to sum to one (None: equal). Missing files, size mismatches, a wrong number of weights
    and negative weights raise :class:`EnsembleError`.
    """
    dirs = [Path(d) for d in member_dirs]
    w = normalise_weights(weights, len(dirs))
    for name in names:
        yield name, _weighted_frame(dirs, name, w)


def split_fit_heldout(names: Sequence[str], fit_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Deterministically split frame names into a fit part and a held-out part (both non-empty)."""
    if not 0.0 < fit_fraction < 1.0:
        raise EnsembleError(f"fit_fraction must be in (0, 1), got {fit_fraction}")
    names = sorted(names)
    if len(names) < 2:
        raise EnsembleError(f"fitting weights needs at least 2 frames, got {len(names)}")
    order = np.random.default_rng(seed).permutation(len(names))
    n_fit = min(len(names) - 1, max(1, round(fit_fraction * len(names))))
    fit = sorted(names[i] for i in order[:n_fit])
    held = sorted(names[i] for i in order[n_fit:])
    return fit, held


def project_to_simplex(v: np.ndarray) -> np.ndarray:
    """Euclidean projection of ``v`` onto {w >= 0, sum w = 1} (sort-based, exact)."""
    u = np.sort(v)[::-1]
    css = np.cumsum(u) - 1.0
    k = np.arange(1, len(v) + 1)
    rho = np.nonzero(u - css / k > 0)[0][-1]
    return np.maximum(v - css[rho] / (rho + 1), 0.0)


def _frame_stats(
    member_dirs: Sequence[Path], name: str, sharp_path: str, task: Task
) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-frame quadratic form of the ensemble's MSE on the values ``task`` scores (RGB, or the Y channel; peak 1):
    A[i,j] = mean(p_i p_j), b[i] = mean(p_i y), c = mean(y^2). The luma is affine in RGB, so the weighted average's
    luma is the weighted average of the members' lumas and one quadratic form serves both channels."""
    sharp = read_image(sharp_path)
    y = task.scored_values(sharp / 255.0).ravel()
    preds = []
    for d in member_dirs:
        folder = PredictionFolder(d)
        path = folder.png16(name)
        if not path.is_file():
            raise EnsembleError(f"{path}: member prediction missing")
        p = folder.read16(name)
        if p.shape != sharp.shape:
            raise EnsembleError(f"{path}: size differs from ground truth {sharp_path}")
        preds.append(task.scored_values(p).ravel())
    p = np.stack(preds)
    return p @ p.T / y.size, p @ y / y.size, float(y @ y / y.size)


def _mean_psnr(w: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    """Mean over frames of the unrounded ensemble's PSNR (peak 1) for weights ``w``, from the frame statistics."""
    mse = np.einsum("i,fij,j->f", w, a, w) - 2.0 * b @ w + c
    return float(np.mean(-10.0 * np.log10(np.maximum(mse, 1e-12))))


def _maximise_mean_psnr(a: np.ndarray, b: np.ndarray, c: np.ndarray, iters: int = 500) -> np.ndarray:
    """Projected gradient ascent of mean PSNR on the simplex, started from the best of equal weights and vertices."""
    m = a.shape[1]
    starts = [np.full(m, 1.0 / m), *np.eye(m)]
    w = max(starts, key=lambda s: _mean_psnr(s, a, b, c))
    f = _mean_psnr(w, a, b, c)
    step = 1.0
    for _ in range(iters):
        mse = np.maximum(np.einsum("i,fij,j->f", w, a, w) - 2.0 * b @ w + c, 1e-12)
        grad = np.mean(-(10.0 / math.log(10.0)) * (2.0 * np.einsum("fij,j->fi", a, w) - 2.0 * b) / mse[:, None], 0)
        while step > 1e-12:
            cand = project_to_simplex(w + step * grad)
            fc = _mean_psnr(cand, a, b, c)
            if fc > f:
                break
            step *= 0.5
        else:
            break
        if fc - f < 1e-10:
            w, f = cand, fc
            break
        w, f, step = cand, fc, step * 2.0
    return w


def fit_weights(
    member_dirs: Sequence[str | Path],
    index: pd.DataFrame | str | Path,
    fit_fraction: float = 0.5,
    seed: int = 0,
    *,
    member_names: Sequence[str] | None = None,
    workers: int = 1,
) -> tuple[list[float], FitReport]:
    """Fit non-negative weights summing to 1 that maximise mean PSNR on a fit part of ``index``'s frames.

    ``member_dirs`` are the members' prediction directories for the indexed split (prediction folders). Returns
    the weights and a report (the ensemble record's ``fit``) whose held-out numbers (PSNR of the unrounded average,
    fitted vs equal weights) show whether the fit generalises.
    """
    dirs = [Path(d) for d in member_dirs]
    names_m = list(member_names) if member_names is not None else [d.as_posix() for d in dirs]
    if len(names_m) != len(dirs):
        raise EnsembleError(f"member_names: {len(names_m)} name(s) for {len(dirs)} member dir(s)")
    index = load_index(index)
    if len(dirs) < 1:
        raise EnsembleError("fit_weights needs at least one member")
    task = task_of_index(index, "ensemble fit index")
    fit, held = split_fit_heldout(list(index["name"]), fit_fraction, seed)
    sharp = dict(zip(index["name"], index["sharp_path"], strict=True))
    names = fit + held
    jobs = [delayed(_frame_stats)(dirs, n, sharp[n], task) for n in names]
    if workers > 1:
        stats = Parallel(n_jobs=workers)(jobs)
    else:
        stats = [fn(*args, **kw) for fn, args, kw in tqdm(jobs, desc="fit weights", disable=None, leave=False)]
    a = np.stack([s[0] for s in stats])
    b = np.stack([s[1] for s in stats])
    c = np.array([s[2] for s in stats])
    nf = len(fit)
    w = _maximise_mean_psnr(a[:nf], b[:nf], c[:nf])
    equal = np.full(len(dirs), 1.0 / len(dirs))
    held_fit = _mean_psnr(w, a[nf:], b[nf:], c[nf:])
    held_eq = _mean_psnr(equal, a[nf:], b[nf:], c[nf:])
    report = FitReport(
        fit_frames=nf,
        heldout_frames=len(held),
        fit_fraction=fit_fraction,
        seed=seed,
        weights=_rounded_weights(names_m, w),
        fit_psnr_fitted=round(_mean_psnr(w, a[:nf], b[:nf], c[:nf]), 4),
        fit_psnr_equal=round(_mean_psnr(equal, a[:nf], b[:nf], c[:nf]), 4),
        heldout_psnr_fitted=round(held_fit, 4),
        heldout_psnr_equal=round(held_eq, 4),
        heldout_gain_db=round(held_fit - held_eq, 4),
    )
    return [float(x) for x in w], report


def _rounded_weights(members: Sequence[str], weights: Sequence[float]) -> dict[str, float]:
    """Member -> weight at the precision every record shows."""
    return {m: round(float(x), 6) for m, x in zip(members, weights, strict=True)}


def _frame_names(member_dirs: Mapping[str, Path], split: str) -> list[str]:
    """The frame names every member predicted for ``split`` (its 16-bit frames); members must agree."""
    sets = {}
    for member, d in member_dirs.items():
        folder = PredictionFolder(d)
        if not folder.png16_dir.is_dir():
            raise EnsembleError(
                f"{folder.png16_dir}: 16-bit predictions of member {member!r} for split {split!r} not found"
            )
        sets[member] = set(folder.names())
    first, names = next(iter(sets.items()))
    for member, s in sets.items():
        if s != names:
            diff = sorted(s ^ names)
            raise EnsembleError(
                f"split {split!r}: members {first!r} and {member!r} predicted different frames "
                f"({len(diff)} differ, e.g. {diff[0]})"
            )
    if not names:
        raise EnsembleError(f"split {split!r}: members have no predictions")
    return sorted(names)


def _write_frame(member_dirs: Sequence[Path], name: str, weights: np.ndarray, out: PredictionFolder) -> None:
    """Average one frame and write it (16-bit and 8-bit) into ``out``."""
    out.write(name, _weighted_frame(member_dirs, name, weights))


def _joined(values: Sequence[str]) -> str:
    """Distinct values in first-seen order, comma-joined (one device when all members ran on the same one)."""
    return ",".join(dict.fromkeys(str(v) for v in values))


def variant_csv(per_image_csv: str | Path, variant: str) -> Path:
    """Where the per-frame scores of a non-published weighting (``equal`` beside ``fitted``) are written."""
    path = Path(per_image_csv)
    return path.with_name(f"{path.stem}_{variant}{path.suffix}")


def _score_variant(
    val_dirs: Sequence[Path],
    val_index: pd.DataFrame,
    weights: np.ndarray,
    members: Sequence[str],
    inputs: pd.DataFrame,
    csv_path: str | Path,
    workers: int,
) -> Variant:
    """Score another weighting of the same members on val-300 (built in a scratch folder, then removed); its
    per-frame scores go to ``csv_path``."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="ensemble-variant-") as scratch:
        out = PredictionFolder(scratch)
        out.create()
        for name in val_index["name"]:
            _write_frame(list(val_dirs), name, weights, out)
        per_image = score_dir(out.png8_dir, val_index, workers=workers)
    write_per_image_csv(csv_path, per_image, inputs)
    return Variant(**summarize(per_image, inputs), weights=_rounded_weights(members, weights))


def _member_psnr(layout: Layout, member: str, mode: str) -> float:
    """A member's val-300 PSNR under ``mode``, as its ``evaluate`` stage recorded it (never rescored here)."""
    path = layout.eval_metrics(member)
    scores = EvalRecord.read(path, error=EnsembleError).tta.get(mode)
    if scores is None:
        raise EnsembleError(f"{path}: no val-300 PSNR for TTA mode {mode!r} (evaluate@{member} scores tta.ladder)")
    return scores.psnr


def run_ensemble(
    cfg: EnsembleConfig, layout: Layout, *, members: Sequence[str], mode: str, workers: int = 1
) -> EnsembleRecord:
    """The ``ensemble`` stage: average ``members``' ``mode`` predictions into ``layout.ensemble(<split>)`` and score
    the val-300 part.

    Splits: val-300, and test-300 when the data set has test frames (not in the development phase). With ``cfg.fit``
    the weights are fitted on part of val-300 (``cfg.weights`` is then ignored); else ``cfg.weights`` (empty: equal).
    Each split is a prediction folder, built in a temporary directory and renamed into place.
    The runtime per frame is the sum over the members with non-zero weight (the real cost of running the ensemble).
    Writes ``layout.ensemble_eval_csv`` and ``layout.ensemble_metrics`` (an :class:`pipeline.records.EnsembleRecord`)
    and returns the record. With fitted or configured weights, the equal-weight ensemble is scored too (``variants``,
    and its per-frame CSV at :func:`variant_csv`), so the fit is always judged against the plain average. The input
    scores and the members' own scores are read from what ``prepare`` and ``evaluate`` wrote.
    """
    members = list(members)
    if not members:
        raise EnsembleError("no ensemble members configured")
    splits = [VAL_SPLIT] + (["test300"] if has_frames(layout.index("test300")) else [])
    val_index = load_index(layout.index(VAL_SPLIT))
    inputs = read_input_scores(layout.input_scores)
    val_dirs = [layout.predictions(m, mode, VAL_SPLIT) for m in members]
    workers = max(1, workers)

    report = None
    if cfg.fit:
        if cfg.weights:
            log.warning("ensemble.fit is set: ignoring the configured weights %s", list(cfg.weights))
        w_list, report = fit_weights(
            val_dirs, val_index, cfg.fit_fraction, cfg.seed, member_names=members, workers=workers
        )
        w = np.asarray(w_list)
    else:
        w = normalise_weights(cfg.weights, len(members))

    runtimes: dict[str, Runtime] = {}
    for split in splits:
        dirs = {m: layout.predictions(m, mode, split) for m in members}
        if split == VAL_SPLIT:
            names = list(val_index["name"])
            _frame_names(dirs, split)  # members must agree; missing val frames fail below with the file named
        else:
            names = _frame_names(dirs, split)
        member_rt = {m: PredictionFolder(d).read_runtime() for m, d in dirs.items()}
        start = time.perf_counter()
        with PredictionFolder.build(layout.ensemble(split)) as out:
            jobs = [delayed(_write_frame)(list(dirs.values()), n, w, out) for n in names]
            if workers > 1:
                Parallel(n_jobs=workers)(jobs)
            else:
                for fn, args, kw in tqdm(jobs, desc=f"ensemble {split}", disable=None, leave=False):
                    fn(*args, **kw)
            runtime = Runtime(
                # members with weight 0 need not run, so they add no time to the submission
                seconds_per_frame=float(
                    sum(member_rt[m].seconds_per_frame for m, wm in zip(members, w, strict=True) if wm > 0)
                ),
                frames=len(names),
                device=_joined([r.device for r in member_rt.values()]),
                precision=_joined([r.precision for r in member_rt.values()]),
                tta="ensemble(" + ", ".join(f"{m}:{r.tta}" for m, r in member_rt.items()) + ")",
                members=tuple(members),
                weights=tuple(round(float(x), 6) for x in w),
                averaging_seconds_per_frame=round((time.perf_counter() - start) / len(names), 5),
            )
            out.write_runtime(runtime)
        runtimes[split] = runtime

    per_image = score_dir(PredictionFolder(layout.ensemble(VAL_SPLIT)).png8_dir, val_index, workers=workers)
    write_per_image_csv(layout.ensemble_eval_csv, per_image, inputs)
    summary = summarize(per_image, inputs)
    published = "fitted" if cfg.fit else "weights" if cfg.weights else "equal"
    weights = _rounded_weights(members, w)
    variants = {published: Variant(**summary, weights=weights)}
    if published != "equal":  # the equal-weight ensemble always shows beside fitted or configured weights
        equal = normalise_weights(None, len(members))
        csv = variant_csv(layout.ensemble_eval_csv, "equal")
        variants["equal"] = _score_variant(val_dirs, val_index, equal, members, inputs, csv, workers)
    member_psnr = {m: _member_psnr(layout, m, mode) for m in members}
    best = max(member_psnr, key=member_psnr.get)
    record = EnsembleRecord(
        **summary,
        members=tuple(members),
        weights=weights,
        published=published,
        variants=variants,
        seconds_per_frame=round(runtimes[VAL_SPLIT].seconds_per_frame, 5),
        device=runtimes[VAL_SPLIT].device,
        member_psnr=member_psnr,
        best_member=best,
        best_member_psnr=member_psnr[best],
        gain_over_best_member_db=round(summary["psnr"] - member_psnr[best], 4),
        settings=runtimes[VAL_SPLIT].tta,
        fit=report,
    )
    record.write(layout.ensemble_metrics)
    return record
