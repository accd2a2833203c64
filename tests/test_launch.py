"""`python -m pipeline.launch`: the accelerate command for one CPU, N gloo CPU processes and N GPUs, and its errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import LaunchConfig
from pipeline.launch import LaunchError, accelerate_command

LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1"]


def test_one_process_on_cpu(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cmd, env = accelerate_command(LaunchConfig(), ["stages/train.py", "--model", "m"], gpus=0, cores=2)
    assert cmd == [*LAUNCH, "--num_processes", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--quiet",
                   "--cpu", "stages/train.py", "--model", "m"]  # fmt: skip
    assert env == {"OMP_NUM_THREADS": "2"}  # one process uses both cores
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert accelerate_command(LaunchConfig(), ["s.py"], gpus=0, cores=2)[1] == {"OMP_NUM_THREADS": "1"}  # yours wins


def test_a_module_runs_as_python_dash_m():
    """dvc.yaml's form: each process runs ``python -m stages.train``, importing the pipeline of the folder it runs in
    (a queued experiment's copy), not the one the venv's editable install points at; a script path runs as a file."""
    cmd, _ = accelerate_command(LaunchConfig(), ["stages.train", "--model", "m"], gpus=0, cores=2)
    assert cmd[-4:] == ["--module", "stages.train", "--model", "m"]
    cmd, _ = accelerate_command(LaunchConfig(processes=2), ["stages.infer", "--base"], gpus=0, cores=2)
    assert cmd[-3:] == ["--module", "stages.infer", "--base"] and "--multi_gpu" in cmd
    assert "--module" not in accelerate_command(LaunchConfig(), ["stages/train.py"], gpus=0, cores=2)[0]


def test_two_gloo_processes_on_a_cpu_only_machine(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cmd, env = accelerate_command(LaunchConfig(processes=2), ["s.py"], gpus=0, cores=2)
    assert cmd[cmd.index("--num_processes") + 1] == "2" and "--multi_gpu" in cmd and "--cpu" not in cmd
    assert cmd[cmd.index("--main_process_port") + 1] == "29500"
    assert env == {"OMP_NUM_THREADS": "1"}  # one thread per process: two processes share two cores


def test_eight_gpus_and_a_subset():
    cmd, env = accelerate_command(LaunchConfig(processes=8), ["s.py"], gpus=8, cores=64)
    assert "--multi_gpu" in cmd and "--cpu" not in cmd and env == {}
    cmd, _ = accelerate_command(LaunchConfig(processes=2, gpu_ids="0,3"), ["s.py"], gpus=8, cores=64)
    assert cmd[cmd.index("--gpu_ids") + 1] == "0,3"


def test_more_processes_than_devices_is_a_clear_error():
    with pytest.raises(LaunchError, match=r"launch.processes is 8 but only 4 GPU\(s\) are visible"):
        accelerate_command(LaunchConfig(processes=8), ["s.py"], gpus=4, cores=64)
    with pytest.raises(LaunchError, match=r"launch.processes is 3 but only 2 GPU\(s\) are visible"):
        accelerate_command(LaunchConfig(processes=3, gpu_ids="0,1"), ["s.py"], gpus=8, cores=64)
    with pytest.raises(LaunchError, match="launch.processes is 4 but this CPU-only machine has 2 core"):
        accelerate_command(LaunchConfig(processes=4), ["s.py"], gpus=0, cores=2)


def test_cli_dry_run_and_error_line(tmp_path: Path):
    (tmp_path / "params.yaml").write_text("launch: {processes: 1}\n")
    out = subprocess.run(
        [sys.executable, "-m", "pipeline.launch", "--dry-run", "stages/train.py", "--model", "m"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"CUDA_VISIBLE_DEVICES": "", "PATH": ""},
    )
    assert out.returncode == 0, out.stderr
    assert "accelerate.commands.launch" in out.stdout and out.stdout.rstrip().endswith("stages/train.py --model m")
    (tmp_path / "params.yaml").write_text("launch: {processes: 64}\n")
    bad = subprocess.run(
        [sys.executable, "-m", "pipeline.launch", "stages/train.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"CUDA_VISIBLE_DEVICES": "", "PATH": ""},
    )
    assert bad.returncode == 1 and bad.stderr.startswith("error: launch.processes is 64 but this CPU-only machine")
    assert "Traceback" not in bad.stderr


def _launch_failing_script(tmp_path: Path, processes: int) -> subprocess.CompletedProcess:
    """``python -m pipeline.launch`` of a script that prints a one-line user error and exits 1, under ``processes``."""
    (tmp_path / "params.yaml").write_text(f"launch: {{processes: {processes}}}\n")
    (tmp_path / "fails.py").write_text(
        "import sys\nprint('error: base.safetensors: truncated', file=sys.stderr)\nsys.exit(1)\n"
    )
    return subprocess.run(
        [sys.executable, "-m", "pipeline.launch", "fails.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"CUDA_VISIBLE_DEVICES": "", "PATH": "", "HOME": str(tmp_path), "OMP_NUM_THREADS": "1"},
    )


def test_a_user_error_in_the_launched_script_is_one_line_and_its_exit_code(tmp_path: Path):
    """Before: the script's error line, then accelerate's CalledProcessError traceback."""
    out = _launch_failing_script(tmp_path, 1)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1] == "error: base.safetensors: truncated", out.stderr
    assert "Traceback" not in out.stderr and "CalledProcessError" not in out.stderr


def test_a_user_error_in_two_launched_processes_is_their_lines_and_exit_code(tmp_path: Path):
    """Before: each rank's error line, then torch elastic's ChildFailedError traceback and its failure report."""
    out = _launch_failing_script(tmp_path, 2)
    assert out.returncode == 1
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert lines == ["error: base.safetensors: truncated"] * 2, out.stderr  # one per rank, nothing else
