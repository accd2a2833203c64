"""Stage ``check_params``: a bad params.yaml stops ``dvc repro`` before any stage works; a valid edit reruns nothing.

Runs the real stage (its dvc.yaml entry and script) in a scratch DVC repo, with a stand-in for ``prepare`` that only
records that it ran, so the test takes seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _dvc(repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": str(repo),
        "DVC_NO_ANALYTICS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, env=env, capture_output=True, text=True)


def _edit(repo: Path, change) -> None:
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    change(raw)
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def test_check_params_is_first_and_depends_on_the_whole_file():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    check = stages["check_params"]
    assert next(iter(stages)) == "check_params"
    assert check["params"] == [{"params.yaml": None}]  # `- params.yaml:`: every key of the file
    assert check["outs"] == [{"${paths.metrics}/params_check.json": {"cache": False}}]
    assert "${paths.metrics}/params_check.json" in stages["prepare"]["deps"]


def test_bad_params_stop_dvc_repro_and_a_valid_edit_reruns_nothing_downstream(tmp_path):
    repo = tmp_path / "repo"
    for folder in ("pipeline", "stages"):
        shutil.copytree(REPO / folder, repo / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "params.yaml", repo / "params.yaml")
    real = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    prepare = {
        "cmd": "echo run >> prepare_runs.log",
        "deps": ["${paths.metrics}/params_check.json"],
        "params": real["prepare"]["params"],
    }  # stands in for prepare: same link to the check, no work
    (repo / "dvc.yaml").write_text(
        yaml.safe_dump({"stages": {"check_params": real["check_params"], "prepare": prepare}}, sort_keys=False)
    )
    assert _dvc(repo, "init", "--no-scm", "-q").returncode == 0

    first = _dvc(repo, "repro")
    assert first.returncode == 0, first.stdout + first.stderr
    check_file = repo / "metrics" / "params_check.json"
    record = check_file.read_bytes()
    assert json.loads(record) == {
        "ok": True,
        "sections": ["paths", "launch", "data", "pretrain", "models", "tta", "ensemble", "package"],
    }
    assert (repo / "prepare_runs.log").read_text() == "run\n"

    _edit(repo, lambda raw: raw["tta"]["crops"].update(n=4))  # valid: the check reruns, prepare does not
    valid = _dvc(repo, "repro")
    assert valid.returncode == 0, valid.stdout + valid.stderr
    assert "Running stage 'check_params'" in valid.stdout
    assert "Running stage 'prepare'" not in valid.stdout
    assert check_file.read_bytes() == record and (repo / "prepare_runs.log").read_text() == "run\n"

    bad = {
        "unknown top-level key": (lambda raw: raw.update(foo=1), "unknown key(s) ['foo']"),
        "crops.n 0 with x8+crops": (
            lambda raw: raw["tta"]["crops"].update(n=0),
            "tta.crops.n: got 0, must be >= 1 when a crop mode is used (tta.ladder ['plain', 'x8', 'x8+crops'])",
        ),
    }
    for case, (change, message) in bad.items():
        saved = (repo / "params.yaml").read_text()
        _edit(repo, change)
        run = _dvc(repo, "repro")
        output = run.stdout + run.stderr
        assert run.returncode != 0, case
        assert f"error: params.yaml: {message}" in output, (case, output)
        assert "Traceback" not in output, case
        assert "Running stage 'prepare'" not in output and (repo / "prepare_runs.log").read_text() == "run\n", case
        (repo / "params.yaml").write_text(saved)

    # Cross-section and machine facts, before any stage starts (before: every launched process printed a traceback).
    machine = {
        "global_batch that launch.processes does not divide": (
            lambda raw: (raw["launch"].update(processes=2), raw["models"]["wd_s2"].update(global_batch=7)),
            "error: models.wd_s2.global_batch: global_batch 7 is not divisible by 2 processes (launch.processes)",
        ),
        "more processes than cores": (
            lambda raw: raw["launch"].update(processes=4096),
            "error: launch.processes is 4096 but this CPU-only machine has",
        ),
    }
    for case, (change, message) in machine.items():
        saved = (repo / "params.yaml").read_text()
        _edit(repo, change)
        run = _dvc(repo, "repro")
        output = run.stdout + run.stderr
        assert run.returncode != 0 and message in output, (case, output)
        assert "Traceback" not in output and "Running stage 'prepare'" not in output, case
        (repo / "params.yaml").write_text(saved)
