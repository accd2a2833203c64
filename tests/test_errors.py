"""One base class for user errors: every error class of the package is a PipelineError, the command line tells a
user's mistake from a bug by that class alone, and mistakes that used to raise plain ValueErrors (a traceback, or an
argparse usage error with status 2) now print one line and exit with USER_ERROR_EXIT."""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import runpy
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import pipeline
from pipeline.cli import USER_ERROR_EXIT, is_user_error
from pipeline.config import ConfigError
from pipeline.data.shards import ShardError
from pipeline.errors import PipelineError

REPO = Path(__file__).resolve().parents[1]


def _error_classes() -> dict[str, type]:
    """Every class named ``*Error`` (or deriving from Exception) defined in a module of the package."""
    found = {}
    for info in pkgutil.walk_packages(pipeline.__path__, prefix="pipeline."):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue  # running it is its only effect
        module = importlib.import_module(info.name)
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == info.name and (name.endswith("Error") or issubclass(cls, Exception)):
                found[f"{info.name}.{name}"] = cls
    return found


def test_every_error_class_of_the_package_is_a_pipeline_error():
    classes = _error_classes()
    known = {"pipeline.config.ConfigError", "pipeline.data.layouts.LayoutError", "pipeline.data.shards.ShardError"}
    assert known <= set(classes) and len(classes) >= 15, sorted(classes)  # the walk found the package's classes
    outside = sorted(name for name, cls in classes.items() if not issubclass(cls, PipelineError))
    assert outside == [], f"error classes that do not derive from pipeline.errors.PipelineError: {outside}"
    assert all(issubclass(cls, ValueError) for cls in classes.values())  # `except ValueError` keeps catching them


def test_is_user_error_needs_no_registry_of_modules(monkeypatch):
    class NewStageError(PipelineError):
        """A class no list names: a future module's error."""

    assert is_user_error(NewStageError("x")) and is_user_error(ShardError("s.shard: truncated"))
    monkeypatch.delitem(sys.modules, "pipeline.config")  # the old lookup went through sys.modules
    assert is_user_error(ConfigError("params.yaml: tta.tile: got 0, must be >= 1"))
    assert not is_user_error(ValueError("a bug")) and not is_user_error(RuntimeError("a bug"))


def test_the_cli_module_imports_no_other_part_of_the_package():
    code = "import sys, pipeline.cli; print(sorted(m for m in sys.modules if m.startswith(('pipeline', 'torch'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert out.strip() == "['pipeline', 'pipeline.cli', 'pipeline.errors']"


def _stage(script: str, capsys, monkeypatch, *argv: str) -> str:
    """Run ``stages/<script>`` as DVC does (in the current folder); the one stderr line of its user error."""
    monkeypatch.setattr(sys, "argv", [script, *argv])
    with pytest.raises(SystemExit) as info:
        runpy.run_path(str(REPO / "stages" / script), run_name="__main__")
    assert info.value.code == USER_ERROR_EXIT == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err


def test_package_stage_without_test_frames_prints_one_line(tmp_path, capsys, monkeypatch):
    # Was a plain ValueError from pipeline.submission: a traceback.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("package: {split: test300}\n")
    (tmp_path / "data/prepared/index").mkdir(parents=True)
    pd.DataFrame(columns=["name", "height", "width"]).to_csv("data/prepared/index/test300.csv", index=False)
    err = _stage("package.py", capsys, monkeypatch)
    assert err.startswith("error: data/prepared/index/test300.csv: package.split is 'test300' but the data set has")
    assert err.endswith("set package.split: val300 to package the val-300 frames\n")


def test_leaderboard_stage_with_missing_scores_prints_one_line(tmp_path, capsys, monkeypatch):
    # Was a plain ValueError from pipeline.fileio.read_table: a traceback.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("models:\n  a: {}\n")
    err = _stage("leaderboard.py", capsys, monkeypatch)
    assert err == "error: outputs/eval/a/plain.csv: per-frame scores not found\n"


def test_train_stage_with_an_unknown_model_prints_one_line(tmp_path, capsys, monkeypatch):
    # Was argparse's parser.error: a usage line and status 2.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("models:\n  a: {}\n")
    err = _stage("train.py", capsys, monkeypatch, "--model", "b")
    assert err == "error: params.yaml: models.b: no such model (models: ['a'])\n"


def test_pool_cli_reports_a_pool_error_in_one_line(tmp_path):
    # pipeline.data.pool's main had no reporter: its PoolError printed a traceback. (An empty --extracted folder: the
    # first candidate's file is missing; OpenCV's own warning about it is silenced here.)
    argv = ["build", "--extracted", str(tmp_path), "--out", str(tmp_path / "o")]
    run = subprocess.run(
        [sys.executable, "-m", "pipeline.data.pool", *argv],
        cwd=REPO,
        env={**os.environ, "OPENCV_LOG_LEVEL": "ERROR"},
        capture_output=True,
        text=True,
    )
    assert run.returncode == USER_ERROR_EXIT, run.stderr
    assert run.stderr.count("\n") == 1 and run.stderr.startswith(f"error: {tmp_path}/"), run.stderr
    assert run.stderr.endswith(": cannot decode\n") and not (tmp_path / "o").exists()
