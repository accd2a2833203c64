"""The leaderboard table, its ablation ladder and Pareto front, its files, and the cross-experiment merge."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from pipeline.config import CropsConfig
from pipeline.fileio import write_json
from pipeline.leaderboard import (
    COLUMNS,
    LeaderboardError,
    ablation_ladder,
    build_leaderboard,
    main,
    merge_experiments,
    pareto_front,
    per_test_set_table,
    pivot_psnr,
    write_leaderboard,
)
from pipeline.records import (
    DataCounts,
    DataRecord,
    EnsembleRecord,
    EvalRecord,
    FitReport,
    MeanScores,
    ModeScores,
    PatchSettings,
    ReportedScores,
    ShardSummary,
    Variant,
)

SAMPLE = Path(__file__).parent / "data" / "exp_show_sample.json"


def mode(psnr, spf, settings=""):
    return ModeScores(psnr=psnr, ssim=0.8, ssim3d=0.9, gain_db=round(psnr - 25.0, 4), seconds_per_frame=spf,
                      device="cpu", precision="bf16", settings=settings)  # fmt: skip


def evaluation(model, task="reds", **modes):
    return EvalRecord(model=model, task=task, frames=12, tta={m.replace("_", "+"): s for m, s in modes.items()})


# The data stage's record of the embedded set: 12 val-300 frames.
DATA = DataRecord(
    source="synthetic", task="synthetic", frame_height=64, frame_width=96,
    counts=DataCounts(train_sequences=2, train=20, val_sequences=6, val=60, val300=12, test300=6, patches=0),
    store="shards", shards=ShardSummary(files=1, bytes=1000, block=64), patch=PatchSettings(0, 128, "png"),
    input=MeanScores(psnr=25.0, ssim=0.7, ssim3d=0.8, frames=12),
)  # fmt: skip

# What run_ensemble writes with fitted weights: the fitted ensemble is published, the equal one scored beside it.
ENSEMBLE = EnsembleRecord(
    psnr=27.5, ssim=0.81, ssim3d=0.91, gain_db=2.5, frames=12, members=("wide", "slim"),
    weights={"wide": 0.6, "slim": 0.4}, published="fitted",
    variants={"fitted": Variant(27.5, 0.81, 0.91, 2.5, 12, weights={"wide": 0.6, "slim": 0.4}),
              "equal": Variant(26.5, 0.78, 0.88, 1.5, 12, weights={"wide": 0.5, "slim": 0.5})},
    seconds_per_frame=24.0, device="cpu", member_psnr={"wide": 27.4, "slim": 27.35}, best_member="wide",
    best_member_psnr=27.4, gain_over_best_member_db=0.1, settings="ensemble(wide:x8+crops, slim:x8)",
    fit=FitReport(fit_frames=6, heldout_frames=6, fit_fraction=0.5, seed=0, weights={"wide": 0.6, "slim": 0.4},
                  fit_psnr_fitted=27.6, fit_psnr_equal=26.6, heldout_psnr_fitted=27.412, heldout_psnr_equal=27.4,
                  heldout_gain_db=0.012),
)  # fmt: skip


@pytest.fixture()
def metrics_files(tmp_path):
    DATA.write(tmp_path / "data.json")
    wide = {"model": "wide", "variant": "hinet-2x-deep", "width": 128, "extra_blocks": 2, "params": 5000,
            "macs_g_256": 2.5, "steps": 100, "best_psnr": 1, "final_psnr": 1}  # fmt: skip
    write_json(tmp_path / "train/wide.json", wide)
    write_json(tmp_path / "train/slim.json", {"model": "slim", "variant": "hinet-1x", "params": 1000, "steps": 50})
    wide = evaluation("wide", plain=mode(27.0, 1.0, "plain"), x8=mode(27.3, 8.0, "x8"), x8_crops=mode(27.4, 20.0))
    wide.write(tmp_path / "eval/wide.json")
    evaluation("slim", plain=mode(26.0, 0.5), x8=mode(27.35, 4.0)).write(tmp_path / "eval/slim.json")
    ENSEMBLE.write(tmp_path / "ensemble.json")
    return tmp_path


def build(root, extra_eval=(), extra_train=(), **kw):
    return build_leaderboard(
        data_json=root / "data.json",
        eval_jsons=[root / "eval/wide.json", root / "eval/slim.json", *extra_eval],
        train_jsons=[root / "train/wide.json", root / "train/slim.json", *extra_train],
        ensemble_json=root / "ensemble.json",
        crops=CropsConfig(n=64, side=32),
        **kw,
    )


def test_rows_and_columns(metrics_files):
    df = build(metrics_files)
    assert list(df.columns) == COLUMNS
    assert list(df["entry"]) == ["ensemble", "wide/x8+crops", "slim/x8", "wide/x8", "wide/plain", "ensemble/equal",
                                 "slim/plain", "input"]  # fmt: skip
    assert list(df["rank"]) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert list(df["psnr"]) == [27.5, 27.4, 27.35, 27.3, 27.0, 26.5, 26.0, 25.0]
    row = df.set_index("entry")
    assert row.loc["wide/x8", "params"] == 5000 and row.loc["wide/x8", "macs_g"] == 2.5
    assert row.loc["slim/plain", "params"] == 1000 and math.isnan(row.loc["slim/plain", "macs_g"])
    assert row.loc["ensemble", "params"] == 6000 and math.isnan(row.loc["ensemble", "macs_g"])
    assert row.loc["ensemble", "model"] == "wide+slim" and row.loc["ensemble", "seconds_per_frame"] == 24.0
    assert row.loc["input", "gain_db"] == 0.0 and row.loc["input", "seconds_per_frame"] == 0.0
    assert row.loc["input", "settings"] == "blurry input, 12 frames"
    assert (row.loc["input", "psnr"], row.loc["input", "ssim"], row.loc["input", "ssim3d"]) == (25.0, 0.7, 0.8)
    assert row.loc["wide/x8", "settings"] == "variant=hinet-2x-deep width=128 extra_blocks=2 steps=100 tta=x8 bf16"
    assert row.loc["wide/x8+crops", "settings"].endswith("tta=x8+crops crops n=64 side=32 bf16")
    assert row.loc["slim/plain", "settings"] == "variant=hinet-1x steps=50 tta=plain bf16"
    assert row.loc["ensemble", "settings"].startswith("fitted weights wide=0.600 slim=0.400 (held-out +0.012 dB")
    # The equal-weight ensemble is scored beside the published one: same members, no runtime of its own.
    equal = row.loc["ensemble/equal"]
    assert (equal["model"], equal["tta"], equal["gain_db"], equal["params"]) == ("wide+slim", "ensemble", 1.5, 6000)
    assert math.isnan(equal["seconds_per_frame"]) and not equal["pareto"]
    assert equal["settings"] == (
        "equal weights wide=0.500 slim=0.500; ensemble(wide:x8+crops, slim:x8) (scored only; fitted is submitted)"
    )
    # Front: input (0 s), slim/plain (0.5 s), wide/plain (1 s), slim/x8 (4 s, beats wide/x8 at 8 s), then
    # wide/x8+crops and the ensemble, each better and slower.
    assert set(df.loc[df["pareto"], "entry"]) == {
        "input", "slim/plain", "wide/plain", "slim/x8", "wide/x8+crops", "ensemble"
    }  # fmt: skip


def test_bad_metrics_file_is_named(metrics_files, tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(LeaderboardError, match=r"broken\.json: not valid JSON"):
        build_leaderboard(data_json=None, eval_jsons=[tmp_path / "broken.json"], train_jsons=[])
    with pytest.raises(LeaderboardError, match=r"train/wide\.json: evaluation metrics: missing key\(s\) 'task', 'f"):
        build_leaderboard(data_json=None, eval_jsons=[metrics_files / "train/wide.json"], train_jsons=[])
    with pytest.raises(LeaderboardError, match=r"train/wide\.json: data statistics: missing key\(s\) 'source', "):
        build_leaderboard(data_json=metrics_files / "train/wide.json", eval_jsons=[], train_jsons=[])
    stale = json.loads((metrics_files / "ensemble.json").read_text())
    del stale["variants"]["equal"]["weights"]
    write_json(metrics_files / "ensemble.json", stale)
    with pytest.raises(LeaderboardError) as err:
        build(metrics_files)
    assert (
        str(err.value)
        == f"{metrics_files / 'ensemble.json'}: ensemble metrics: missing key(s) 'variants.equal.weights'"
    )


def test_pareto_front_hand_made():
    seconds = [1.0, 2.0, 2.0, 0.5, 3.0, float("nan"), 0.5]
    psnr = [30.0, 29.0, 31.0, 28.0, 31.0, 40.0, 28.0]
    # (2, 29) is beaten by (1, 30); (3, 31) by (2, 31); NaN runtime is never on the front; exact ties both stay.
    assert pareto_front(seconds, psnr).tolist() == [True, False, True, True, False, False, True]


def test_ablation_ladder_steps(metrics_files):
    ladder = ablation_ladder(build(metrics_files))
    # The single model is the one with the best no-TTA PSNR (wide), even though slim/x8 beats wide/x8.
    assert list(ladder["step"]) == ["blurry input", "wide (no TTA)", "+ x8 flips/rotations", "+ random crops",
                                    "+ ensemble"]  # fmt: skip
    np.testing.assert_allclose(ladder["psnr"], [25.0, 27.0, 27.3, 27.4, 27.5])
    np.testing.assert_allclose(ladder["delta_db"], [0.0, 2.0, 0.3, 0.1, 0.1], atol=1e-9)
    np.testing.assert_allclose(ladder["total_db"], [0.0, 2.0, 2.3, 2.4, 2.5], atol=1e-9)


def test_write_leaderboard_files(metrics_files, tmp_path):
    df = build(metrics_files)
    paths = write_leaderboard(df, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "ablation_ladder.png", "ladder_steps.csv", "leaderboard.csv", "leaderboard.json", "leaderboard.md",
        "pareto.png"
    ]  # fmt: skip
    for key in ("ladder", "pareto"):
        data = paths[key].read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.shape[0] > 200 and img.shape[1] > 300 and img.std() > 10
    assert json.loads(paths["json"].read_text()) == {
        "best_entry": "ensemble",
        "best_psnr": 27.5,
        "best_single_entry": "wide/x8+crops",
        "best_single_psnr": 27.4,
        "ensemble_psnr": 27.5,
        "base_psnr": None,
        "input_psnr": 25.0,
        "n_rows": 8,
        "task": "synthetic",
    }
    back = pd.read_csv(paths["csv"])
    assert list(back.columns) == COLUMNS and list(back["entry"]) == list(df["entry"])
    md = paths["md"].read_text()
    assert "| entry" in md and "| wide/x8+crops" in md and "27.400" in md and "5,000" in md


def test_leaderboard_built_twice_from_the_same_inputs_is_byte_identical(metrics_files, tmp_path):
    frames = [f"{i // 2:03d}_{i % 2:08d}" for i in range(12)]  # 6 sequences of 2 frames: the bootstrap's clusters
    rng = np.random.default_rng(1)
    means = {"input": 25.0, "wide/plain": 27.0, "wide/x8": 27.3, "wide/x8+crops": 27.4, "slim/plain": 26.0,
             "slim/x8": 27.35, "ensemble": 27.5}  # the table's PSNRs, as means of per-frame scores  # fmt: skip
    per_frame = {}
    for entry, mean in means.items():
        noise = rng.normal(0, 0.3, 12)
        per_frame[entry] = pd.DataFrame({"psnr": mean + noise - noise.mean()}, index=frames)
    outputs = []
    for run in ("a", "b"):
        df = build(metrics_files, per_frame=per_frame)
        paths = write_leaderboard(df, tmp_path / run, per_frame=per_frame)
        outputs.append({k: paths[k].read_bytes() for k in ("csv", "md", "json", "steps")})
    assert outputs[0] == outputs[1]
    back = pd.read_csv(tmp_path / "a" / "leaderboard.csv")
    assert back["gain_ci_low"].notna().sum() == 6  # every row but the input carries its interval


def with_base(root, psnr=27.2):
    """The base's files as evaluate_base and pretrain write them: plain mode only, model facts in its provenance."""
    evaluation("base", plain=mode(psnr, 0.5, "plain")).write(root / "eval/base.json")
    write_json(root / "pretrained/base.json", {"model": "base", "variant": "hinet-1x", "params": 1000,
                                               "macs_g_256": 3.0, "steps": 6500})  # fmt: skip
    return build(root, extra_eval=[root / "eval/base.json"], extra_train=[root / "pretrained/base.json"])


def test_the_pretrained_base_is_a_row_and_a_step_but_never_the_single_model(metrics_files, tmp_path):
    """base/plain (27.2 dB) beats every member's plain mode, yet the ablation ladder's single model is the best
    member (wide, 27.0): the base is the step before it, so the chart shows fine-tuning's -0.2 dB."""
    df = with_base(metrics_files)
    assert list(df["entry"]) == ["ensemble", "wide/x8+crops", "slim/x8", "wide/x8", "base/plain", "wide/plain",
                                 "ensemble/equal", "slim/plain", "input"]  # fmt: skip
    row = df.set_index("entry").loc["base/plain"]
    assert (row["model"], row["tta"], row["psnr"], row["gain_db"]) == ("base", "plain", 27.2, 2.2)
    assert (row["params"], row["macs_g"], row["seconds_per_frame"]) == (1000, 3.0, 0.5)
    assert row["settings"] == "variant=hinet-1x steps=6500 tta=plain bf16"
    # base/plain (0.5 s) now dominates both members' plain modes.
    assert set(df.loc[df["pareto"], "entry"]) == {"input", "base/plain", "slim/x8", "wide/x8+crops", "ensemble"}
    ladder = ablation_ladder(df)
    assert list(ladder["step"]) == ["blurry input", "pretrained base (no TTA)", "wide (no TTA)",
                                    "+ x8 flips/rotations", "+ random crops", "+ ensemble"]  # fmt: skip
    np.testing.assert_allclose(ladder["psnr"], [25.0, 27.2, 27.0, 27.3, 27.4, 27.5])
    np.testing.assert_allclose(ladder["delta_db"], [0.0, 2.2, -0.2, 0.3, 0.1, 0.1], atol=1e-9)
    paths = write_leaderboard(df, tmp_path / "out")
    summary = json.loads(paths["json"].read_text())
    assert (summary["best_single_entry"], summary["base_psnr"], summary["n_rows"]) == ("wide/x8+crops", 27.2, 9)


def test_ablation_ladder_intervals_pair_the_base_with_input_and_member(metrics_files):
    from pipeline.leaderboard.stats import paired_gain

    frames = [f"{i // 2:03d}_{i % 2:08d}" for i in range(12)]
    rng = np.random.default_rng(2)
    means = {"input": 25.0, "base/plain": 27.2, "wide/plain": 27.0, "wide/x8": 27.3, "wide/x8+crops": 27.4,
             "ensemble": 27.5}  # fmt: skip
    per_frame = {e: pd.DataFrame({"psnr": m + rng.normal(0, 0.3, 12)}, index=frames) for e, m in means.items()}
    ladder = ablation_ladder(with_base(metrics_files), per_frame).set_index("entry")
    for before, after in (("input", "base/plain"), ("base/plain", "wide/plain")):
        gain = paired_gain(per_frame[before]["psnr"], per_frame[after]["psnr"])
        assert (ladder.loc[after, "ci_low"], ladder.loc[after, "ci_high"]) == (gain["ci_low"], gain["ci_high"])
        assert ladder.loc[after, "significant"] == gain["significant"]


def test_merge_experiments_on_recorded_dvc_output():
    df = merge_experiments(json.loads(SAMPLE.read_text()))
    base = ["task", "experiment", "rev", "baseline", "kind", "entry", "model", "tta", "psnr", "ssim", "gain_db"]
    assert list(df.columns) == base + ["seconds_per_frame", "device", "ensemble.fit", "tta.crops.n", "tta.ladder"]
    # The workspace repeats the last experiment and is dropped; 'noladdercrops' has no crops rows.
    counts = df["experiment"].value_counts().to_dict()
    assert counts == {"master": 8, "crops16": 8, "fitted": 8, "noladdercrops": 6}
    assert set(df["kind"]) == {"baseline", "experiment"}
    row = df.set_index(["experiment", "entry"])
    assert row.loc[("crops16", "a/x8+crops"), "psnr"] == pytest.approx(25.216)
    assert row.loc[("master", "a/x8+crops"), "psnr"] == pytest.approx(25.204)
    assert row.loc[("fitted", "ensemble"), "psnr"] == pytest.approx(25.615)
    assert row.loc[("fitted", "ensemble"), "model"] == "a+b"
    assert row.loc[("master", "input"), "psnr"] == pytest.approx(24.1234)
    assert bool(row.loc[("fitted", "ensemble"), "ensemble.fit"]) is True
    assert row.loc[("master", "b/x8"), "tta.crops.n"] == 4
    assert row.loc[("master", "b/x8"), "rev"] == "edf8671"
    assert df["psnr"].is_monotonic_decreasing
    wide = pivot_psnr(df)
    assert list(wide.columns) == ["input", "a/plain", "a/x8", "a/x8+crops", "b/plain", "b/x8", "b/x8+crops",
                                  "ensemble"]  # fmt: skip
    assert math.isnan(wide.loc[("reds", "noladdercrops"), "a/x8+crops"])


def test_merge_cli_reads_json_and_writes_csv(tmp_path, capsys):
    assert main(["merge", "--json", str(SAMPLE), "--out", str(tmp_path / "merged.csv")]) == 0
    assert "noladdercrops" in capsys.readouterr().out
    assert len(pd.read_csv(tmp_path / "merged.csv")) == 30
    with pytest.raises(SystemExit) as info:
        main(["merge", "--json", str(tmp_path / "missing.json")])
    assert info.value.code == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'missing.json'}: file not found\n"


def test_merge_reads_the_input_row_from_the_data_stage():
    scores = {"psnr": 25.0, "ssim": 0.75, "gain_db": 0.5, "seconds_per_frame": 1.0, "device": "cpu"}
    record = {
        "rev": "workspace",
        "data": {
            "params": {"params.yaml": {"data": {"tta": {"submit": "x8"}}}},
            "metrics": {
                "metrics/data.json": {"data": {"input": {"psnr": 24.5, "ssim": 0.7, "ssim3d": 0.8, "frames": 60}}},
                "metrics/eval/a.json": {"data": {"model": "a", "frames": 60, "tta": {"x8": scores}}},
            },
        },
    }
    df = merge_experiments([record]).set_index("entry")
    assert list(df.index) == ["a/x8", "input"]
    assert (df.loc["input", "psnr"], df.loc["input", "ssim"], df.loc["input", "gain_db"]) == (24.5, 0.7, 0.0)
    assert df.loc["a/x8", "psnr"] == 25.0 and df.loc["a/x8", "experiment"] == "workspace"


def test_per_source_table_counts_gains_and_losses_per_photo():
    from pipeline.leaderboard.sources import frames_below_input, per_source_table

    names = ["000_00000009", "000_00000019", "001_00000009", "001_00000019", "002_00000009"]
    per_frame = {
        "input": pd.DataFrame({"psnr": [20.0, 22.0, 30.0, 30.0, 25.0]}, index=names),
        "m/plain": pd.DataFrame({"psnr": [22.0, 23.0, 29.0, 30.5, 25.0]}, index=names),
    }
    sources = {"000": "astronaut", "001": "chelsea", "002": "astronaut"}
    table = per_source_table(per_frame, sources, ["m/plain"])
    assert table["source"].tolist() == ["astronaut", "chelsea"]  # sorted by input PSNR
    assert table["frames"].tolist() == [3, 2]
    assert table["input_psnr"].tolist() == pytest.approx([67 / 3, 30.0])
    assert table["m/plain gain_db"].tolist() == pytest.approx([1.0, -0.25])  # (2 + 1 + 0) / 3; (-1 + 0.5) / 2
    assert table["m/plain below_input"].tolist() == [0, 1]
    assert frames_below_input(per_frame, "m/plain") == (1, 5)


def test_task_and_test_set_columns(metrics_files):
    df = build(metrics_files)
    assert set(df["task"]) == {"synthetic"} and set(df["test_set"]) == {"val300"}
    dataclasses.replace(DATA, synth_task="denoise").write(metrics_files / "data.json")
    assert set(build(metrics_files)["task"]) == {"synthetic/denoise"}
    dataclasses.replace(DATA, source="gopro", task="gopro").write(metrics_files / "data.json")
    assert set(build(metrics_files)["test_set"]) == {"GoPro"}


def test_several_test_sets_get_their_own_table(metrics_files, tmp_path):
    sets = {"Rain100H": MeanScores(psnr=20.0, ssim=0.6, ssim3d=0.6, frames=2),
            "Rain100L": MeanScores(psnr=30.0, ssim=0.9, ssim3d=0.9, frames=4)}  # fmt: skip
    reported = ReportedScores(psnr=25.0, ssim=0.75, ssim3d=0.75, average="test_sets")
    plain = dataclasses.replace(mode(26.667, 1.0), test_sets=sets, reported=reported)
    evaluation("wide", "rain13k", plain=plain).write(metrics_files / "eval/rain.json")
    dataclasses.replace(DATA, source="rain13k", task="rain13k").write(metrics_files / "data.json")
    df = build_leaderboard(data_json=metrics_files / "data.json", eval_jsons=[metrics_files / "eval/rain.json"],
                           train_jsons=[metrics_files / "train/wide.json"])  # fmt: skip
    assert df.set_index("entry").loc["wide/plain", "test_set"] == "all 2 sets"
    assert df.set_index("entry").loc["input", "test_set"] == "all 5 sets"  # the task's sets (pipeline.tasks)
    table = per_test_set_table([metrics_files / "eval/rain.json"])
    assert list(table["test_set"]) == ["Rain100H", "Rain100L", "reported (test_sets)"]
    assert list(table["psnr"]) == [20.0, 30.0, 25.0] and list(table["frames"][:2]) == [2, 4]
    paths = write_leaderboard(df, tmp_path / "out", test_sets=table)
    assert pd.read_csv(paths["test_sets"])["test_set"].tolist() == list(table["test_set"])
    assert "## By test set" in paths["md"].read_text()


def test_one_ranking_never_mixes_tasks(metrics_files):
    evaluation("slim", "sidd", plain=mode(26.0, 0.5)).write(metrics_files / "eval/slim.json")
    evaluation("wide", "gopro", plain=mode(26.0, 0.5)).write(metrics_files / "eval/wide.json")
    with pytest.raises(LeaderboardError, match=r"several tasks \['gopro', 'sidd'\]"):
        build(metrics_files)


def test_ladder_chart_draws_an_interval_that_excludes_the_rows_psnr(tmp_path):
    # The rows' PSNR come from the eval records, the intervals from the per-frame scores: when every sequence gains
    # alike the interval is one point, which may sit a rounding off the row's PSNR difference. The chart drew the
    # error bar about the row's PSNR, and matplotlib refused the negative half-width ("yerr must not contain
    # negative values"), which failed the leaderboard stage.
    from pipeline.leaderboard.charts import plot_ladder

    ladder = pd.DataFrame(
        {
            "step": ["blurry input", "pretrained base (no TTA)"],
            "entry": ["input", "base/plain"],
            "psnr": [26.0, 26.5],
            "ssim": [0.8, 0.81],
            "delta_db": [0.0, 0.5],
            "total_db": [0.0, 0.5],
            "seconds_per_frame": [0.0, 1.0],
            "ci_low": [math.nan, 0.5 + 1e-9],
            "ci_high": [math.nan, 0.5 + 1e-9],
            "significant": [False, True],
        }
    )
    path = tmp_path / "ladder.png"
    plot_ladder(ladder, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_grid_pairs_each_experiments_crops_step_and_its_ensemble_against_the_baseline(tmp_path):
    """The TTA grid reads every experiment's per-frame tables at its revision (a stand-in reader here) and pairs
    x8 -> x8+crops per member inside the experiment, the ensemble against the baseline's; an experiment whose ladder
    has no x8+crops gets no member step."""
    from pipeline.leaderboard.grid import GRID_COLUMNS, grid_steps, plot_grid

    names = [f"{s:03d}_{f:08d}" for s in range(4) for f in (9, 19)]
    shift = {"edf8671": 0.0, "1a80ae5": 0.25, "3930840": -0.5, "e25b5e0": 0.125}  # per revision, crops step of a
    reads = []

    def read(rev: str, path: str) -> pd.DataFrame:
        reads.append((rev[:7], path))
        base = np.arange(len(names), dtype=float) + 20.0
        if path.endswith("a/x8+crops.csv"):
            base = base + shift[rev[:7]]
        if path.endswith("ensemble/ensemble.csv"):
            base = base + 2 * shift[rev[:7]]
        return pd.DataFrame({"name": names, "psnr": base})

    steps = grid_steps(json.loads(SAMPLE.read_text()), read)
    assert list(steps.columns) == GRID_COLUMNS
    by = steps.set_index(["experiment", "model"])
    assert by.loc[("master", "a"), "gain_db"] == 0.0 and by.loc[("master", "b"), "gain_db"] == 0.0
    assert by.loc[("fitted", "a"), "gain_db"] == pytest.approx(0.25)
    assert by.loc[("crops16", "a"), ["ci_low", "ci_high"]].tolist() == [pytest.approx(-0.5)] * 2  # all alike
    assert bool(by.loc[("crops16", "a"), "significant"]) and by.loc[("crops16", "a"), "clusters"] == 4
    assert by.loc[("crops16", "ensemble"), "gain_db"] == pytest.approx(-1.0)  # against master's ensemble
    assert by.loc[("master", "ensemble"), "gain_db"] == 0.0
    assert ("noladdercrops", "a") not in by.index and ("noladdercrops", "ensemble") in by.index
    assert by.loc[("crops16", "a"), ["crops_n", "crops_side"]].tolist() == [16, 32]
    assert by.loc[("master", "a"), "seconds_per_frame"] > 0
    assert ("e25b5e0", "outputs/eval/a/x8+crops.csv") not in reads
    plot_grid(steps, tmp_path / "grid.png")
    assert cv2.imread(str(tmp_path / "grid.png")) is not None
