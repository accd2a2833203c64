"""The prediction folder: frames round-trip (16-bit exact, 8-bit its rounding), names sorted, the runtime record
round-trips, and a missing or truncated runtime.json is one clear error naming the file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.cli import is_user_error
from pipeline.fileio import ImageReadError
from pipeline.predictions import PredictionFolder, PredictionsError, Runtime


def grid_image(seed: int, shape=(7, 9, 3)) -> np.ndarray:
    """A float image on the 16-bit grid (k / 65535), so its 16-bit PNG holds it exactly."""
    q = np.random.default_rng(seed).integers(0, 65536, shape)
    return (q / 65535.0).astype(np.float32)


def test_frame_round_trip_16_bit_exact_and_8_bit_its_rounding(tmp_path):
    folder = PredictionFolder(tmp_path / "pred")
    img = grid_image(0)
    folder.write("000_00000009", img)
    got16 = folder.read16("000_00000009")
    assert got16.dtype == np.float32 and np.array_equal(got16, img)
    got8 = folder.read8("000_00000009")
    assert got8.dtype == np.uint8 and np.array_equal(got8, np.round(got16.astype(np.float64) * 255).astype(np.uint8))
    assert folder.png16("000_00000009") == tmp_path / "pred" / "png16" / "000_00000009.png"
    assert folder.png8("000_00000009") == tmp_path / "pred" / "png8" / "000_00000009.png"
    # Off the grid, 16 bits keep the value to half a step; the 8-bit file is the rounding of the float result.
    off = np.random.default_rng(1).random((5, 6, 3)).astype(np.float32)
    folder.write("b", off)
    assert np.abs(folder.read16("b") - off).max() <= 0.5 / 65535 + 1e-7
    assert np.array_equal(folder.read8("b"), np.round(off * 255).astype(np.uint8))
    assert not [p for p in (tmp_path / "pred").rglob(".*")]  # each file written through a temp sibling, renamed


def test_names_are_sorted_and_a_missing_folder_is_named(tmp_path):
    folder = PredictionFolder(tmp_path / "pred")
    with pytest.raises(PredictionsError, match=r"pred/png16: no 16-bit predictions folder"):
        folder.names()
    folder.create()
    assert folder.names() == []
    for name in ("010_00000009", "000_00000019", "000_00000009"):
        folder.write(name, grid_image(2))
    (folder.png16_dir / "notes.txt").write_text("not a frame")
    assert folder.names() == ["000_00000009", "000_00000019", "010_00000009"]


def test_build_replaces_the_folder_whole_and_only_on_success(tmp_path):
    target = tmp_path / "pred"
    with PredictionFolder.build(target) as staged:
        staged.write("a", grid_image(3))
        assert not target.exists() and staged.png8_dir.is_dir()
    assert PredictionFolder(target).names() == ["a"]
    with pytest.raises(RuntimeError), PredictionFolder.build(target) as staged:
        staged.write("b", grid_image(4))
        raise RuntimeError("killed")
    assert PredictionFolder(target).names() == ["a"]  # the earlier folder is kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred"]


def test_runtime_record_round_trip_model_and_ensemble(tmp_path):
    folder = PredictionFolder(tmp_path)
    model = Runtime(seconds_per_frame=0.125, frames=3, device="cpu", precision="fp32", tta="x8+crops")
    folder.write_runtime(model)
    assert json.loads(folder.runtime_path.read_text()) == {
        "seconds_per_frame": 0.125, "frames": 3, "device": "cpu", "precision": "fp32", "tta": "x8+crops",
    }  # fmt: skip
    assert folder.read_runtime() == model
    ensemble = Runtime(1.5, 3, "cpu", "fp32", "ensemble(a:x8, b:x8)", ("a", "b"), (0.25, 0.75), 0.002)
    folder.write_runtime(ensemble)
    text = folder.runtime_path.read_text()
    assert list(json.loads(text)) == [
        "seconds_per_frame", "frames", "device", "precision", "tta", "members", "weights",
        "averaging_seconds_per_frame",
    ]  # fmt: skip
    assert json.loads(text)["weights"] == [0.25, 0.75]
    again = folder.read_runtime()
    assert again == ensemble and again.members == ("a", "b") and again.weights == (0.25, 0.75)


@pytest.mark.parametrize(
    "content, problem",
    [
        (None, "runtime record not found"),
        ('{"seconds_per_frame": 0.5, "frames": 3, "dev', "not valid JSON"),
        ("", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"seconds_per_frame": 0.5, "device": "cpu"}', r"lacks \['frames', 'precision', 'tta'\]"),
        ('{"seconds_per_frame": "fast", "frames": 1, "device": "c", "precision": "p", "tta": "t"}', "wrong type"),
        ('{"seconds_per_frame": 1, "frames": 1, "device": "c", "precision": "p", "tta": "t", "x": 1}', "unknown"),
    ],
)
def test_bad_runtime_record_is_one_error_naming_the_file(tmp_path, content, problem):
    folder = PredictionFolder(tmp_path / "pred")
    folder.create()
    if content is not None:
        folder.runtime_path.write_text(content)
    with pytest.raises(PredictionsError, match=problem) as info:
        folder.read_runtime()
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'pred' / 'runtime.json'}: ") and "\n" not in message
    assert is_user_error(info.value)  # the command line prints it as one line, without a traceback


def test_a_missing_or_truncated_frame_names_its_file(tmp_path):
    folder = PredictionFolder(tmp_path)
    with pytest.raises(ImageReadError, match=r"png16/a\.png: no such image file"):
        folder.read16("a")
    folder.write("a", grid_image(5))
    folder.png8("a").write_bytes(folder.png8("a").read_bytes()[:30])
    with pytest.raises(ImageReadError, match=r"png8/a\.png: truncated PNG"):
        folder.read8("a")
