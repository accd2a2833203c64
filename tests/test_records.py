"""The eval, ensemble and data records: the files today's writers made come back byte for byte, a record round-trips,
and a missing, mistyped or unknown key is one error naming the file and the dotted key."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from pipeline.ensemble import EnsembleError
from pipeline.fileio import write_json
from pipeline.leaderboard import LeaderboardError
from pipeline.records import (
    DataRecord,
    EnsembleRecord,
    EvalRecord,
    InputSummary,
    MeanScores,
    ModeScores,
    Record,
    task_label,
)

RECORDS = Path(__file__).parent / "data" / "records"
# Files as the writers wrote them before the records existed: the committed run's metrics (REDS-like embedded set,
# equal-weight ensemble) and tiny runs of the test suite (fitted ensemble, Rain13K's test sets, a denoising set).
CAPTURED = {
    "eval_reds.json": EvalRecord,
    "eval_rain13k.json": EvalRecord,
    "ensemble_equal.json": EnsembleRecord,
    "ensemble_fitted.json": EnsembleRecord,
    "data_synthetic.json": DataRecord,
    "data_rain13k.json": DataRecord,
    "data_denoise.json": DataRecord,
    "val300_input.json": InputSummary,
}


@pytest.mark.parametrize("name", sorted(CAPTURED))
def test_captured_files_come_back_byte_for_byte(name, tmp_path):
    record = CAPTURED[name].read(RECORDS / name, error=ValueError)
    record.write(tmp_path / name)
    assert (tmp_path / name).read_bytes() == (RECORDS / name).read_bytes()
    assert CAPTURED[name].read(tmp_path / name, error=ValueError) == record


def test_fields_are_typed_and_optional_parts_absent_until_set():
    rain = EvalRecord.read(RECORDS / "eval_rain13k.json", error=ValueError)
    plain = rain.tta["plain"]
    assert isinstance(plain, ModeScores) and plain.psnr == float("inf") and plain.reported.average == "test_sets"
    assert plain.test_sets["Rain100H"] == MeanScores(psnr=16.1481, ssim=0.16591, ssim3d=0.15207, frames=2)
    reds = EvalRecord.read(RECORDS / "eval_reds.json", error=ValueError)
    assert reds.tta["x8"].test_sets is None and "test_sets" not in reds.to_json()["tta"]["x8"]
    fitted = EnsembleRecord.read(RECORDS / "ensemble_fitted.json", error=ValueError)
    assert fitted.members == ("good", "bad") and fitted.fit.heldout_frames == 4 and fitted.published == "fitted"
    assert fitted.variants["equal"].weights == {"good": 0.5, "bad": 0.5}
    assert EnsembleRecord.read(RECORDS / "ensemble_equal.json", error=ValueError).fit is None
    data = DataRecord.read(RECORDS / "data_rain13k.json", error=ValueError)
    assert data.counts.test_sets["Test2800"] == 2 and data.synth_task is None and data.label == "rain13k"
    denoise = DataRecord.read(RECORDS / "data_denoise.json", error=ValueError)
    assert denoise.counts.test_sets is None and denoise.label == "synthetic/denoise"
    assert dataclasses.replace(denoise, synth_task=None).label == "synthetic"
    assert task_label("reds", "denoise") == "reds"  # only the embedded set carries its degradation


def test_round_trip_of_a_record_built_in_code(tmp_path):
    record = EvalRecord(
        model="m",
        task="reds",
        frames=2,
        tta={"x8": ModeScores(30.0, 0.9, 0.95, 2.5, 0.125, "cpu", "bf16", "x8")},
    )
    record.write(tmp_path / "m.json")
    assert EvalRecord.read(tmp_path / "m.json", error=ValueError) == record
    assert list(json.loads((tmp_path / "m.json").read_text())["tta"]["x8"]) == [
        "psnr", "ssim", "ssim3d", "gain_db", "seconds_per_frame", "device", "precision", "settings"
    ]  # fmt: skip


def broken(tmp_path, name: str, change) -> Path:
    """A captured file with one change made to its parsed JSON."""
    data = json.loads((RECORDS / name).read_text())
    change(data)
    write_json(tmp_path / name, data)
    return tmp_path / name


@pytest.mark.parametrize(
    ("name", "change", "problem"),
    [
        ("eval_reds.json", lambda d: d["tta"]["x8"].pop("psnr"), "evaluation metrics: missing key(s) 'tta.x8.psnr'"),
        ("eval_reds.json", lambda d: d.pop("task"), "evaluation metrics: missing key(s) 'task'"),
        ("eval_rain13k.json", lambda d: d["tta"]["plain"]["test_sets"]["Test100"].pop("frames"),
         "evaluation metrics: missing key(s) 'tta.plain.test_sets.Test100.frames'"),
        ("ensemble_fitted.json", lambda d: d["fit"].pop("seed"), "ensemble metrics: missing key(s) 'fit.seed'"),
        ("ensemble_equal.json", lambda d: d.pop("variants"), "ensemble metrics: missing key(s) 'variants'"),
        ("data_synthetic.json", lambda d: d["input"].pop("ssim3d"), "data statistics: missing key(s) 'input.ssim3d'"),
        ("eval_reds.json", lambda d: d["tta"]["x8"].update(psnr="26.6"),
         "evaluation metrics: key 'tta.x8.psnr' must be a number, got '26.6'"),
        ("data_synthetic.json", lambda d: d["counts"].update(train=True),
         "data statistics: key 'counts.train' must be an integer, got True"),
        ("ensemble_equal.json", lambda d: d.update(members="wd_s1"),
         "ensemble metrics: key 'members' must be a list, got 'wd_s1'"),
        ("ensemble_equal.json", lambda d: d["variants"].update(equal=[]),
         "ensemble metrics: key 'variants.equal' must be an object, got []"),
        ("data_synthetic.json", lambda d: d["shards"].update(level=3),
         "data statistics: unknown key(s) 'shards.level'"),
    ],
)  # fmt: skip
def test_a_bad_key_is_one_error_naming_file_and_key(tmp_path, name, change, problem):
    path = broken(tmp_path, name, change)
    with pytest.raises(LeaderboardError) as err:
        CAPTURED[name].read(path, error=LeaderboardError)
    assert str(err.value) == f"{path}: {problem}"


def test_the_caller_names_the_error_and_the_file_problems_come_from_read_json(tmp_path):
    with pytest.raises(EnsembleError, match=r"absent\.json: evaluation metrics not found"):
        EvalRecord.read(tmp_path / "absent.json", error=EnsembleError)
    (tmp_path / "cut.json").write_text('{"model": "m", ')
    with pytest.raises(LeaderboardError, match=r"cut\.json: not valid JSON"):
        EnsembleRecord.read(tmp_path / "cut.json", error=LeaderboardError)
    write_json(tmp_path / "list.json", [1, 2])
    with pytest.raises(ValueError, match=r"list\.json: expected a JSON object"):
        DataRecord.read(tmp_path / "list.json", error=ValueError)


def test_every_record_names_what_it_is():
    for cls in {*CAPTURED.values()}:
        assert issubclass(cls, Record) and cls.WHAT
        assert all(f.name != "WHAT" for f in dataclasses.fields(cls))


def test_from_json_checks_parsed_data_too():
    with pytest.raises(EnsembleError, match=r"^exp/ensemble\.json: ensemble metrics: the record must be an object"):
        EnsembleRecord.from_json([], where="exp/ensemble.json", error=EnsembleError)
    data = json.loads((RECORDS / "val300_input.json").read_text())
    assert InputSummary.from_json(data, where="x", error=ValueError).input.frames == 1
