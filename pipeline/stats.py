"""Paired statistics for score differences: is a step of the ladder a gain, or noise?

Two settings scored on the same val-300 frames are compared frame by frame: the per-frame gain ``after - before``
cancels how hard each frame is, so a 0.02 dB step can be real on 60 frames when every frame moves the same way, and a
0.1 dB step can be noise when frames disagree. The interval is a percentile bootstrap of the mean gain
(``scipy.stats.bootstrap``, fixed seed, so the numbers are reproducible); a step is *significant* when its interval
excludes zero. Frames of one sequence are correlated, so the interval is, if anything, optimistic: read it as the
least uncertainty there is.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["CONFIDENCE", "RESAMPLES", "paired_gain", "seed_spread"]

CONFIDENCE = 0.95
RESAMPLES = 10_000


def paired_gain(
    before: pd.Series,
    after: pd.Series,
    *,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> dict:
    """Mean per-frame gain ``after - before`` (Series indexed by frame name) with its bootstrap interval.

    Returns ``gain_db``, ``ci_low``, ``ci_high``, ``frames`` and ``significant`` (the interval excludes zero). Both
    series must score exactly the same frames; a mismatch names the frames that differ.
    """
    if set(before.index) != set(after.index):
        diff = sorted(set(before.index) ^ set(after.index))
        raise ValueError(f"paired_gain: the two settings scored different frames ({len(diff)} differ, e.g. {diff[0]})")
    d = (after - before.reindex(after.index)).to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(d)):
        raise ValueError("paired_gain: per-frame scores must be finite")
    mean = float(d.mean()) if len(d) else math.nan
    if len(d) < 2:
        lo = hi = math.nan
    elif np.ptp(d) == 0:  # every frame gains the same: no spread to resample
        lo = hi = mean
    else:
        from scipy.stats import bootstrap

        res = bootstrap(
            (d,),
            np.mean,
            confidence_level=confidence,
            n_resamples=resamples,
            method="percentile",
            random_state=np.random.default_rng(seed),
        )
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return {
        "gain_db": mean,
        "ci_low": lo,
        "ci_high": hi,
        "frames": len(d),
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
