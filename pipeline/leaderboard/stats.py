"""Paired statistics for score differences: is a step of the ladder a gain, or noise?

Two settings scored on the same val-300 frames are compared frame by frame: the per-frame gain ``after - before``
cancels how hard each frame is, so a 0.02 dB step can be real on 60 frames when every frame moves the same way, and a
0.1 dB step can be noise when frames disagree. Frames of one sequence show the same scene under the same kind of blur,
so their gains are correlated: resampling frames as if they were independent would give an interval too narrow. The
interval is therefore a *cluster* bootstrap: whole sequences (:func:`sequence_of`) are resampled with replacement and
the statistic is the mean per-frame gain over all frames of the resampled sequences (percentile interval, 10,000
resamples, fixed seed, so the numbers are reproducible). A step is *significant* when its interval excludes zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

__all__ = ["CONFIDENCE", "RESAMPLES", "paired_gain", "seed_spread", "sequence_of"]

CONFIDENCE = 0.95
RESAMPLES = 10_000


def sequence_of(name: str) -> str:
    """The sequence of a frame name ``<seq>_<frame>`` (``029_00000019`` -> ``029``): everything before the last
    ``_``. The bootstrap's cluster; a name without ``_`` is an error naming it."""
    seq, sep, _ = str(name).rpartition("_")
    if not sep or not seq:
        raise ValueError(f"frame name {name!r} is not <sequence>_<frame>: cannot tell which sequence it belongs to")
    return seq


def paired_gain(
    before: pd.Series,
    after: pd.Series,
    *,
    cluster: Callable[[str], str] = sequence_of,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> dict:
    """Mean per-frame gain ``after - before`` (Series indexed by frame name) with its cluster-bootstrap interval.

    Frames are grouped by ``cluster(name)`` (their sequence); each resample draws as many clusters as there are, with
    replacement, and takes the mean gain over all their frames (sum of the drawn clusters' sums / sum of their frame
    counts). Returns ``gain_db`` (the mean over all frames), ``ci_low``, ``ci_high`` (percentile interval),
    ``frames``, ``clusters`` and ``significant`` (the interval excludes zero). Fewer than 2 clusters: the interval is
    NaN (one sequence says nothing about the next) and the step is not significant. All cluster means equal: no
    resample can move the mean, the interval is the mean itself. Both series must score exactly the same frames; a
    mismatch names the frames that differ.
    """
    if set(before.index) != set(after.index):
        diff = sorted(set(before.index) ^ set(after.index))
        raise ValueError(f"paired_gain: the two settings scored different frames ({len(diff)} differ, e.g. {diff[0]})")
    d = (after - before.reindex(after.index)).to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(d)):
        raise ValueError("paired_gain: per-frame scores must be finite")
    # Sorted cluster labels, so the interval does not depend on the order the frames come in.
    labels, of_frame = np.unique(np.array([cluster(str(n)) for n in after.index], dtype=object), return_inverse=True)
    k = len(labels)
    sums = np.bincount(of_frame, weights=d, minlength=k)
    counts = np.bincount(of_frame, minlength=k).astype(np.float64)
    mean = float(d.mean()) if len(d) else math.nan
    if k < 2:
        lo = hi = math.nan
    elif np.ptp(sums / counts) == 0:  # every cluster gains the same on average: nothing to resample
        lo = hi = mean
    else:
        draws = np.random.default_rng(seed).integers(0, k, size=(resamples, k))
        stats = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
        tail = (1.0 - confidence) / 2.0
        lo, hi = (float(q) for q in np.quantile(stats, [tail, 1.0 - tail]))
    return {
        "gain_db": mean,
        "ci_low": lo,
        "ci_high": hi,
        "frames": len(d),
        "clusters": k,
        "significant": bool(lo > 0 or hi < 0),
    }


def seed_spread(scores: dict[str, float]) -> dict:
    """Spread of the mean PSNR of models that differ only by seed: mean, standard deviation, min, max, range."""
    values = np.array(list(scores.values()), dtype=np.float64)
    if not len(values):
        raise ValueError("seed_spread: no scores")
    return {
        "models": len(values),
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)) if len(values) > 1 else math.nan,
        "min": float(values.min()),
        "max": float(values.max()),
        "range": float(np.ptp(values)),
    }
