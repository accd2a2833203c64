"""Paired per-frame statistics: cluster-bootstrap intervals of known cases, the step table and the seed spread."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.leaderboard.ladder import STEP_COLUMNS, seed_spreads, step_table
from pipeline.leaderboard.stats import paired_gain, seed_spread, sequence_of

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
    # The interval matches the normal approximation of the mean's standard error over its 30 sequences (2 frames
    # each: the mean is the mean of the 30 sequence means).
    means = (after - before).groupby(lambda name: name.split("_")[0]).mean().to_numpy()
    se = means.std(ddof=1) / math.sqrt(len(means))
    assert g["clusters"] == 30 and g["ci_high"] - g["ci_low"] == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_paired_gain_aligns_by_frame_name_and_rejects_mismatches():
    before = series([20.0, 21.0, 22.0])
    after = series([21.0, 22.0, 23.0])[::-1]  # shuffled order, same frames
    g = paired_gain(before, after)
    assert g["gain_db"] == 1.0 and g["ci_low"] == g["ci_high"] == 1.0 and g["significant"]
    with pytest.raises(ValueError, match="different frames"):
        paired_gain(before, series([1.0, 2.0]))
    one = paired_gain(series([20.0]), series([21.0]))
    assert one["frames"] == 1 and math.isnan(one["ci_low"]) and not one["significant"]
    with pytest.raises(ValueError, match="e.g. 001_00000009"):  # the mismatch names a frame
        paired_gain(series([1.0, 2.0, 3.0]), series([1.0, 2.0]))


def test_sequence_of_a_frame_name():
    assert sequence_of("029_00000019") == "029"
    assert sequence_of("city_day_00000009") == "city_day"  # everything before the last '_'
    for bad in ("00000019", "_00000019"):
        with pytest.raises(ValueError, match=f"frame name '{bad}'"):
            sequence_of(bad)


def clustered(gains_by_sequence, seed=0) -> tuple[pd.Series, pd.Series]:
    """Before/after scores whose per-frame gains are ``gains_by_sequence`` (one list per sequence)."""
    names = [f"{s:03d}_{f:08d}" for s, gains in enumerate(gains_by_sequence) for f in range(len(gains))]
    before = pd.Series(np.random.default_rng(seed).uniform(22, 30, len(names)), index=names)
    return before, before + np.concatenate([np.asarray(g, dtype=np.float64) for g in gains_by_sequence])


def test_cluster_bootstrap_is_far_wider_than_frames_when_sequences_disagree():
    """3 sequences of 20 frames gaining -1, 0 and +2 dB (spread 0.01 dB within each): the frames look like 60
    independent votes for a gain, but there are only 3 scenes. Resampling 3 equal clusters, the mean is -1 or +2 with
    probability 1/27 = 3.7% each (> 2.5%), so the 95% interval is [-1, +2]: not significant."""
    rng = np.random.default_rng(0)
    before, after = clustered([m + rng.normal(0, 0.01, 20) for m in (-1.0, 0.0, 2.0)])
    by_sequence = paired_gain(before, after)
    by_frame = paired_gain(before, after, cluster=lambda name: name)  # each frame its own cluster
    assert by_sequence["gain_db"] == by_frame["gain_db"] == pytest.approx(1 / 3, abs=0.01)
    assert (by_sequence["clusters"], by_sequence["frames"], by_frame["clusters"]) == (3, 60, 60)
    assert by_sequence["ci_low"] == pytest.approx(-1.0, abs=0.01)
    assert by_sequence["ci_high"] == pytest.approx(2.0, abs=0.01) and not by_sequence["significant"]
    assert 0 < by_frame["ci_low"] < by_frame["ci_high"] < 0.7 and by_frame["significant"]  # the optimistic answer
    width = {k: g["ci_high"] - g["ci_low"] for k, g in (("seq", by_sequence), ("frame", by_frame))}
    assert width["seq"] > 4 * width["frame"]


def test_one_frame_per_sequence_is_the_frame_bootstrap():
    """With one frame per sequence, resampling sequences is resampling frames: scipy's percentile bootstrap of the
    mean (what the interval was before clusters) gives the same mean and, within Monte-Carlo noise, the same bounds."""
    from scipy.stats import bootstrap

    rng = np.random.default_rng(3)
    before, after = clustered([[g] for g in rng.normal(0.1, 0.2, 60)])
    g = paired_gain(before, after)
    d = (after - before).to_numpy()
    ref = bootstrap((d,), np.mean, n_resamples=10_000, method="percentile", random_state=np.random.default_rng(0))
    assert g["clusters"] == g["frames"] == 60 and g["gain_db"] == pytest.approx(d.mean(), abs=1e-12)
    width = ref.confidence_interval.high - ref.confidence_interval.low
    assert g["ci_low"] == pytest.approx(ref.confidence_interval.low, abs=0.05 * width)
    assert g["ci_high"] == pytest.approx(ref.confidence_interval.high, abs=0.05 * width)


def test_identical_sequence_means_collapse_the_interval_and_one_sequence_has_none():
    before, after = clustered([[0.5, 1.5], [1.5, 0.5], [1.0, 1.0]])  # frames differ, every sequence gains 1 dB
    g = paired_gain(before, after)
    assert g["gain_db"] == g["ci_low"] == g["ci_high"] == 1.0 and g["clusters"] == 3 and g["significant"]
    before, after = clustered([[0.5, 1.5, 2.0, 3.0]])  # one sequence: nothing to say about the next one
    g = paired_gain(before, after)
    assert g["gain_db"] == 1.75 and g["clusters"] == 1 and g["frames"] == 4
    assert math.isnan(g["ci_low"]) and math.isnan(g["ci_high"]) and not g["significant"]


def test_cluster_interval_does_not_depend_on_frame_order():
    rng = np.random.default_rng(4)
    before, after = clustered([m + rng.normal(0, 0.3, 2) for m in rng.normal(0.2, 0.5, 10)])
    order = rng.permutation(len(before))
    assert paired_gain(before.iloc[order], after.iloc[order[::-1]]) == paired_gain(before, after)


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
    assert (steps["frames"] == 60).all() and (steps["clusters"] == 30).all()  # 30 sequences of 2 frames
    spreads = seed_spreads(frames, ["m1", "m2"], ["plain", "x8"])
    assert spreads["plain"]["range"] == pytest.approx(0.1, abs=0.03)


def test_step_table_measures_fine_tuning_from_the_base():
    """With the base's plain scores: input -> base/plain first, then base/plain -> plain before each member's chain."""
    frames = per_frame_fixture()
    rng = np.random.default_rng(5)
    frames["base/plain"] = pd.DataFrame({"psnr": frames["input"]["psnr"] + 1.0 + rng.normal(0, 0.05, 60)}, index=NAMES)
    steps = step_table(frames, ["m1", "m2"], ["plain", "x8"], "x8")
    assert list(steps["step"])[:7] == [
        "input -> base/plain", "base/plain -> plain", "input -> plain", "plain -> x8", "base/plain -> plain",
        "input -> plain", "plain -> x8",
    ]  # fmt: skip
    assert len(steps) == 10  # + 2 members' x8 -> ensemble, + ensemble (equal) -> ensemble
    rows = steps.set_index(["model", "step"])
    base = rows.loc[("base", "input -> base/plain")]
    assert (base["before"], base["after"]) == ("input", "base/plain")
    assert base["gain_db"] == pytest.approx(1.0, abs=0.02) and base["significant"]
    for model, gain in (("m1", 0.5), ("m2", 0.6)):  # members: input + 1.5 (+ 0.1 for m2); the base: input + 1.0
        row = rows.loc[(model, "base/plain -> plain")]
        assert (row["before"], row["after"]) == ("base/plain", f"{model}/plain")
        assert row["gain_db"] == pytest.approx(gain, abs=0.03) and row["ci_low"] < row["gain_db"] < row["ci_high"]
        assert row["significant"] and (row["frames"], row["clusters"]) == (60, 30)
        assert row["gain_db"] == pytest.approx(
            frames[f"{model}/plain"]["psnr"].mean() - frames["base/plain"]["psnr"].mean(), abs=1e-12
        )


def test_leaderboard_rows_carry_the_interval_of_their_gain(tmp_path):
    import dataclasses

    from pipeline.leaderboard import build_leaderboard
    from pipeline.records import DataRecord, EvalRecord, MeanScores, ModeScores

    frames = per_frame_fixture()
    inp = MeanScores(psnr=float(frames["input"]["psnr"].mean()), ssim=0.7, ssim3d=0.72, frames=len(frames["input"]))
    tta = {m: ModeScores(psnr=float(frames[f"m1/{m}"]["psnr"].mean()), ssim=0.8, ssim3d=0.81, gain_db=1.0,
                         seconds_per_frame=1.0, device="cpu", precision="bf16", settings=m)
           for m in ("plain", "x8")}  # fmt: skip
    EvalRecord(model="m1", task="reds", frames=len(frames["input"]), tta=tta).write(tmp_path / "m1.json")
    data = DataRecord.read(Path(__file__).parent / "data/records/data_synthetic.json", error=ValueError)
    dataclasses.replace(data, input=inp).write(tmp_path / "data.json")
    df = build_leaderboard(
        data_json=tmp_path / "data.json", eval_jsons=[tmp_path / "m1.json"], train_jsons=[], per_frame=frames
    ).set_index("entry")
    gain = paired_gain(frames["input"]["psnr"], frames["m1/x8"]["psnr"])
    assert df.loc["m1/x8", "gain_ci_low"] == gain["ci_low"] and df.loc["m1/x8", "gain_ci_high"] == gain["ci_high"]
    assert df.loc["m1/x8", "ssim3d"] == 0.81 and df.loc["input", "ssim3d"] == 0.72
    assert math.isnan(df.loc["input", "gain_ci_low"])
