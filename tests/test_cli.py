"""User errors print one line (``error: <path>: <problem>``) and exit non-zero; bugs keep their traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from pipeline.cli import USER_ERROR_EXIT, reports_user_errors
from pipeline.config import ConfigError
from pipeline.data.reds import DatasetError
from pipeline.ensemble import EnsembleError
from pipeline.fileio import ImageReadError, write_image
from pipeline.leaderboard import LeaderboardError
from pipeline.models import WeightsError, create_model, save_weights
from pipeline.restore import main as restore_main
from pipeline.scoring import EvaluationError

REPO = Path(__file__).resolve().parents[1]


def _raising(exc: BaseException):
    @reports_user_errors
    def main() -> None:
        raise exc

    return main


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        (ConfigError("params.yaml: tta.tile: got 0, must be >= 1"), "params.yaml: tta.tile: got 0, must be >= 1"),
        (ImageReadError("a/b.png: truncated PNG (no IEND chunk)"), "a/b.png: truncated PNG (no IEND chunk)"),
        (WeightsError("m.safetensors: not HINet"), "m.safetensors: not HINet"),
        (EvaluationError("preds: prediction directory not found"), "preds: prediction directory not found"),
        (EnsembleError("x.png: member prediction missing"), "x.png: member prediction missing"),
        (LeaderboardError("e.json: no 'tta' scores"), "e.json: no 'tta' scores"),
        (PermissionError(13, "Permission denied", "out/dir"), "out/dir: permission denied"),
        (NotADirectoryError(20, "Not a directory", "file/sub"), "file/sub: not a directory"),
        (
            FileNotFoundError(2, "No such file or directory", "metrics/train/a.json"),
            "metrics/train/a.json: no such file or directory",
        ),
    ],
)
def test_user_errors_print_one_line_and_exit_1(capsys, exc, line):
    with pytest.raises(SystemExit) as info:
        _raising(exc)()
    assert info.value.code == USER_ERROR_EXIT == 1
    assert capsys.readouterr().err == f"error: {line}\n"


def test_dataset_error_lists_its_problems_without_a_traceback(capsys):
    with pytest.raises(SystemExit):
        _raising(DatasetError("/data/REDS", ["a.jpg: truncated JPEG", "b.png: no blurry partner"]))()
    assert capsys.readouterr().err == (
        "error: /data/REDS: REDS validation found 2 problem(s):\n"
        "  - a.jpg: truncated JPEG\n  - b.png: no blurry partner\n"
    )


@pytest.mark.parametrize("exc", [KeyError("steps"), ValueError("plain ValueError from a bug"), TypeError("bug")])
def test_bugs_keep_their_traceback(capsys, exc):
    with pytest.raises(type(exc)):
        _raising(exc)()
    assert capsys.readouterr().err == ""


def test_every_stage_main_reports_user_errors():
    for script in sorted(p for p in (REPO / "stages").glob("*.py") if p.name != "__init__.py"):
        assert "@reports_user_errors\ndef main(" in script.read_text(), script.name


def test_stage_with_a_bad_params_file_prints_one_line(tmp_path):
    (tmp_path / "params.yaml").write_text("models:\n  a: {steps: 0}\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run(
        [sys.executable, str(REPO / "stages" / "check_params.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1
    assert run.stderr == "error: params.yaml: models.a.steps: got 0, must be >= 1\n"
    assert not (tmp_path / "metrics").exists()


@pytest.fixture()
def photo(tmp_path) -> Path:
    write_image(tmp_path / "in.png", np.full((16, 16, 3), 128, np.uint8))
    return tmp_path / "in.png"


def test_restore_into_an_output_that_cannot_be_a_folder_prints_one_line(tmp_path, photo, capsys):
    weights = save_weights(create_model("hinet-tiny"), tmp_path / "tiny.safetensors")
    blocker = tmp_path / "somefile"
    blocker.write_text("a regular file, so no folder can be made under it (even as root)")
    with pytest.raises(SystemExit) as info:
        restore_main(["--weights", str(weights), "--input", str(photo), "--output", str(blocker / "sub")])
    assert info.value.code == USER_ERROR_EXIT
    assert capsys.readouterr().err == f"error: {blocker / 'sub'}: not a directory\n"


def test_restore_cli_names_a_non_hinet_weights_file(tmp_path, photo):
    foreign = tmp_path / "resnet.safetensors"
    save_file({"fc.weight": torch.zeros(2, 3), "fc.bias": torch.zeros(2)}, str(foreign))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.restore",
            "--weights",
            str(foreign),
            "--input",
            str(photo),
            "--output",
            str(tmp_path / "out"),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == USER_ERROR_EXIT
    assert run.stderr == f"error: {foreign}: state dict has no 'conv_01.weight': not a HINet checkpoint\n"


def test_restore_into_a_folder_without_write_permission_prints_one_line(tmp_path, photo, capsys, monkeypatch):
    import pipeline.restore

    weights = save_weights(create_model("hinet-tiny"), tmp_path / "tiny.safetensors")
    out = tmp_path / "readonly"
    out.mkdir()
    real_access = os.access
    monkeypatch.setattr(pipeline.restore.os, "access", lambda p, mode: Path(p) != out and real_access(p, mode))
    with pytest.raises(SystemExit) as info:
        restore_main(["--weights", str(weights), "--input", str(photo), "--output", str(out)])
    assert info.value.code == USER_ERROR_EXIT
    assert capsys.readouterr().err == f"error: {out}: permission denied\n"
    assert list(out.iterdir()) == []
