"""The restore CLI: a good and a corrupt image, our safetensors and a public-release .pth, clear argument errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.cli import USER_ERROR_EXIT
from pipeline.fileio import read_image, write_image
from pipeline.models import create_model, identity_init, save_weights
from pipeline.restore import find_inputs, main


@pytest.fixture()
def weights(tmp_path):
    torch.manual_seed(0)
    model = identity_init(create_model("hinet-tiny"))  # restores to its input exactly: outputs are checkable
    save_weights(model, tmp_path / "tiny.safetensors")
    torch.save({"params": {f"module.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "release.pth")
    return tmp_path


def make_inputs(root):
    rng = np.random.default_rng(1)
    good = rng.integers(0, 256, (20, 36, 3), dtype=np.uint8)
    write_image(root / "in" / "b_good.png", good)
    (root / "in" / "a_bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    (root / "in" / "notes.txt").write_text("not an image")
    return good


def test_directory_with_one_corrupt_image(weights, capsys):
    good = make_inputs(weights)
    out = weights / "out"
    args = ["--weights", str(weights / "tiny.safetensors"), "--input", str(weights / "in"), "--output", str(out)]
    assert main([*args, "--tile", "32", "--overlap", "8"]) == 1
    err = capsys.readouterr().err
    assert "a_bad.jpg" in err and "could not be read" in err and "restored 1 of 2" in err
    assert sorted(p.name for p in out.iterdir()) == ["b_good.png"]
    assert np.array_equal(read_image(out / "b_good.png"), good)


def test_single_file_with_release_pth_and_x8_crops(weights):
    good = make_inputs(weights)
    out = weights / "out2"
    argv = ["--weights", str(weights / "release.pth"), "--input", str(weights / "in" / "b_good.png"),
            "--output", str(out), "--tta", "x8+crops", "--crops", "5", "--crop-size", "16", "--tile", "32",
            "--overlap", "8", "--precision", "fp32", "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    assert np.array_equal(read_image(out / "b_good.png"), good)


def _user_error(capsys, argv) -> str:
    """The one stderr line of a bad invocation, which exits with the project's user-error code."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == USER_ERROR_EXIT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err


def test_bad_arguments_exit_1_with_a_named_problem(weights, capsys):
    make_inputs(weights)
    base = ["--input", str(weights / "in"), "--output", str(weights / "out")]
    assert "missing.safetensors" in _user_error(capsys, ["--weights", str(weights / "missing.safetensors"), *base])
    ok = ["--weights", str(weights / "tiny.safetensors")]
    assert "overlap" in _user_error(capsys, [*ok, *base, "--tile", "32", "--overlap", "32"])
    assert "overwrite input" in _user_error(
        capsys, [*ok, "--input", str(weights / "in"), "--output", str(weights / "in")]
    )
    (weights / "empty").mkdir()
    assert "no image files" in _user_error(
        capsys, [*ok, "--input", str(weights / "empty"), "--output", str(weights / "out")]
    )
    assert "not a valid torch device" in _user_error(capsys, [*ok, *base, "--device", "gpu0"])
    assert "'fp16' needs a CUDA device" in _user_error(capsys, [*ok, *base, "--device", "cpu", "--precision", "fp16"])
    assert not (weights / "out").exists()


def test_find_inputs_scans_one_level_sorted(tmp_path):
    for name in ["c.JPG", "a.png", "b.txt", "sub/d.png"]:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in find_inputs(tmp_path)] == ["a.png", "c.JPG"]
