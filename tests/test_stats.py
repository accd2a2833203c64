"""Paired per-frame statistics: bootstrap intervals of known cases, the step table and the seed spread."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pipeline.ladder import STEP_COLUMNS, seed_spreads, step_table
from pipeline.stats import paired_gain, seed_spread

NAMES = [f"{s:03d}_{f:08d}" for s in range(30) for f in (9, 19)]


def series(values) -> pd.Series:
    return pd.Series(np.asarray(values, dtype=np.float64), index=NAMES[: len(values)])


def test_paired_gain_of_a_consistent_small_step_is_significant():
    rng = np.random.default_rng(0)
    before = series(rng.uniform(22, 30, 60))  # frames differ by 8 dB in difficulty ...
    after = before + 0.02 + rng.normal(0, 0.005, 60)  # ... but every frame gains ~0.02 dB
    g = paired_gain(before, after)
    assert g["frames"] == 60 and g["gain_db"] == pytest.approx(0.02, abs=0.002)
    assert 0 < g["ci_low"] < g["gain_db"] < g["ci_high"] < 0.03 and g["significant"]
    # Unpaired, a 0.02 dB difference of means is buried in the 8 dB spread: pairing is what makes it visible.
    assert abs(after.mean() - before.mean()) < before.std() / 100


def test_paired_gain_of_noise_is_not_significant_and_reproducible():
    rng = np.random.default_rng(1)
    before = series(rng.uniform(22, 30, 60))
    after = before + rng.normal(0, 0.1, 60)
    g = paired_gain(before, after)
    assert g["ci_low"] < 0 < g["ci_high"] and not g["significant"]
    assert paired_gain(before, after) == g  # fixed seed: same interval every time
    # The interval matches the normal approximation of the mean's standard error (60 frames).
    d = (after - before).to_numpy()
    se = d.std(ddof=1) / math.sqrt(len(d))
    assert g["ci_high"] - g["ci_low"] == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_paired_gain_aligns_by_frame_name_and_rejects_mismatches():
    before = series([20.0, 21.0, 22.0])
    after = series([21.0, 22.0, 23.0])[::-1]  # shuffled order, same frames
    g = paired_gain(before, after)
    assert g["gain_db"] == 1.0 and g["ci_low"] == g["ci_high"] == 1.0 and g["significant"]
    with pytest.raises(ValueError, match="different frames"):
        paired_gain(before, series([1.0, 2.0]))
    one = paired_gain(series([20.0]), series([21.0]))
    assert one["frames"] == 1 and math.isnan(one["ci_low"]) and not one["significant"]


def test_seed_spread():
    sp = seed_spread({"a": 27.0, "b": 27.2, "c": 27.1})
    assert sp["models"] == 3 and sp["mean"] == pytest.approx(27.1) and sp["range"] == pytest.approx(0.2)
    assert sp["std"] == pytest.approx(0.1) and sp["min"] == 27.0 and sp["max"] == 27.2


def per_frame_fixture():
    rng = np.random.default_rng(2)
    base = rng.uniform(22, 30, 60)
    frames = {"input": pd.DataFrame({"psnr": base}, index=NAMES)}
    for k, m in enumerate(("m1", "m2")):
        plain = base + 1.5 + 0.1 * k + rng.normal(0, 0.05, 60)
        frames[f"{m}/plain"] = pd.DataFrame({"psnr": plain}, index=NAMES)
        frames[f"{m}/x8"] = pd.DataFrame({"psnr": plain + 0.1 + rng.normal(0, 0.01, 60)}, index=NAMES)
    frames["ensemble"] = pd.DataFrame({"psnr": frames["m2/x8"]["psnr"] + 0.03}, index=NAMES)
    frames["ensemble/equal"] = pd.DataFrame({"psnr": frames["m2/x8"]["psnr"] + rng.normal(0, 0.1, 60)}, index=NAMES)
    return frames


def test_step_table_covers_the_ladder_and_the_ensemble():
    frames = per_frame_fixture()
    steps = step_table(frames, ["m1", "m2"], ["plain", "x8"], "x8")
    assert list(steps.columns) == STEP_COLUMNS
    assert list(steps["step"]) == [
        "input -> plain", "plain -> x8", "input -> plain", "plain -> x8", "x8 -> ensemble", "x8 -> ensemble",
        "ensemble (equal) -> ensemble",
    ]  # fmt: skip
    row = steps.iloc[1]
    assert (row["model"], row["before"], row["after"]) == ("m1", "m1/plain", "m1/x8")
    assert row["gain_db"] == pytest.approx(0.1, abs=0.01) and row["significant"]
    assert steps.iloc[5]["gain_db"] == pytest.approx(0.03) and steps.iloc[5]["significant"]
    assert (steps["frames"] == 60).all()
    spreads = seed_spreads(frames, ["m1", "m2"], ["plain", "x8"])
    assert spreads["plain"]["range"] == pytest.approx(0.1, abs=0.03)


def test_leaderboard_rows_carry_the_interval_of_their_gain(tmp_path):
    from pipeline.fileio import write_json
    from pipeline.leaderboard import build_leaderboard

    frames = per_frame_fixture()
    inp = {"psnr": float(frames["input"]["psnr"].mean()), "ssim": 0.7, "ssim3d": 0.72}
    tta = {m: {"psnr": float(frames[f"m1/{m}"]["psnr"].mean()), "ssim": 0.8, "ssim3d": 0.81, "gain_db": 1.0,
               "seconds_per_frame": 1.0, "device": "cpu"} for m in ("plain", "x8")}  # fmt: skip
    write_json(tmp_path / "m1.json", {"model": "m1", "tta": tta})
    write_json(tmp_path / "data.json", {"input": inp})
    df = build_leaderboard(
        data_json=tmp_path / "data.json", eval_jsons=[tmp_path / "m1.json"], train_jsons=[], per_frame=frames
    ).set_index("entry")
    gain = paired_gain(frames["input"]["psnr"], frames["m1/x8"]["psnr"])
    assert df.loc["m1/x8", "gain_ci_low"] == gain["ci_low"] and df.loc["m1/x8", "gain_ci_high"] == gain["ci_high"]
    assert df.loc["m1/x8", "ssim3d"] == 0.81 and df.loc["input", "ssim3d"] == 0.72
    assert math.isnan(df.loc["input", "gain_ci_low"])
