"""Training loop: runs end to end, resumes after kill -9 to the same weights, two CPU processes agree, NaN stops it.

Everything runs on a tiny synthetic REDS (64x96 frames) with the tiny HINet variant, in subprocesses exactly as DVC and
``accelerate launch`` run the stage script.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from pipeline.config import DataConfig, ModelTrainConfig, PathsConfig, SynthConfig
from pipeline.data.prepare import prepare
from pipeline.models import create_model, load_model, save_weights
from pipeline.train import NonFiniteLossError, config_fingerprint, train_model

REPO = Path(__file__).resolve().parents[1]
TRAIN = REPO / "stages" / "train.py"

TINY_MODEL = {
    "variant": "hinet-tiny",
    "seed": 5,
    "steps": 12,
    "batch_size": 2,
    "patch_size": 32,
    "lr": 1.0e-3,
    "warmup_steps": 2,
    "grad_clip": 0.0,
    "identity_init": True,
    "mixed_precision": "no",  # fp32: bit-reproducible resume
    "val_every": 6,
    "val_tile": 64,
    "save_every": 3,
    "keep_checkpoints": 2,
    "log_every": 1,
    "num_workers": 0,
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A project folder with a prepared tiny synthetic REDS and a params.yaml with one tiny model."""
    root = tmp_path_factory.mktemp("train")
    synth = SynthConfig(height=64, width=96, train_sequences=2, val_sequences=1, test_sequences=1,
                        frames_per_sequence=10, subframes=5)
    paths = PathsConfig(data=str(root / "data"), synthetic_reds=str(root / "data" / "reds"), runs=str(root / "runs"),
                        models=str(root / "models"), metrics=str(root / "metrics"), plots=str(root / "plots"))
    cwd = os.getcwd()
    os.chdir(root)
    try:
        prepare(DataConfig(workers=1, patch_size=0, synth=synth), paths)
    finally:
        os.chdir(cwd)
    params = {"paths": {k: v for k, v in vars(paths).items()}, "models": {"tiny": dict(TINY_MODEL)}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def _clean(root: Path) -> None:
    for sub in ("runs", "models", "metrics/train", "plots/train"):
        shutil.rmtree(root / sub, ignore_errors=True)


def _run(root: Path, *extra: str, launcher: list[str] | None = None, env_extra: dict | None = None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(env_extra or {})}
    cmd = (launcher or [sys.executable]) + [str(TRAIN), "--model", "tiny", "--params", "params.yaml", "--cpu", *extra]
    return subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)


def _metrics(root: Path) -> dict:
    return json.loads((root / "metrics" / "train" / "tiny.json").read_text())


def _state(root: Path) -> dict[str, torch.Tensor]:
    return load_model(root / "models" / "tiny.safetensors").state_dict()


def test_train_end_to_end_writes_outputs_and_starts_from_identity(workdir):
    _clean(workdir)
    proc = _run(workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = _metrics(workdir)
    assert m["steps"] == 12 and m["resumed_from_step"] == 0 and m["processes"] == 1
    assert m["params"] == sum(p.numel() for p in create_model("hinet-tiny").parameters())
    curve = (workdir / "plots" / "train" / "tiny.csv").read_text().splitlines()
    assert curve[0].split(",")[:4] == ["step", "loss", "lr", "val_psnr"]
    assert len(curve) == 1 + 12  # log_every 1
    assert (workdir / "plots" / "train" / "tiny.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (workdir / "runs" / "tiny" / "checkpoints").exists()  # finished runs drop their resume state
    meta_model = load_model(workdir / "models" / "tiny.safetensors")
    assert meta_model.config["wf"] == 8


def test_kill_9_then_rerun_resumes_to_identical_weights(workdir):
    _clean(workdir)
    assert _run(workdir).returncode == 0
    reference = _state(workdir)

    _clean(workdir)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(TRAIN), "--model", "tiny", "--params", "params.yaml", "--cpu"]
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = workdir / "runs" / "tiny" / "checkpoints"
    deadline = time.time() + 120
    while time.time() < deadline and not (ckpts.is_dir() and any(p.name.startswith("step_") for p in ckpts.iterdir())):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = sorted(p.name for p in ckpts.iterdir() if p.name.startswith("step_"))
    assert saved, "no checkpoint appeared before the kill"
    assert not (workdir / "models" / "tiny.safetensors").exists()  # an interrupted run does not look finished

    rerun = _run(workdir)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    m = _metrics(workdir)
    assert m["steps"] == 12
    assert 3 <= m["resumed_from_step"] < 12 and m["resumed_from_step"] % 3 == 0
    resumed = _state(workdir)
    assert resumed.keys() == reference.keys()
    for k in reference:
        torch.testing.assert_close(resumed[k], reference[k], rtol=0, atol=1e-6, msg=k)


def test_stop_early_keeps_checkpoint_and_other_recipe_starts_fresh(workdir):
    _clean(workdir)
    proc = _run(workdir, "--max-steps-this-run", "4")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpts = sorted(p.name for p in (workdir / "runs" / "tiny" / "checkpoints").iterdir())
    assert ckpts == ["step_00000003", "step_00000004"]  # keep_checkpoints = 2
    state = json.loads((workdir / "runs" / "tiny" / "checkpoints" / "step_00000004" / "trainer_state.json").read_text())
    assert set(state) == {"step", "fingerprint", "wall_s"} and state["wall_s"] > 0  # wall time carries over resumes
    recipe = config_fingerprint(ModelTrainConfig(**_tuple_fields(TINY_MODEL)))
    assert (state["step"], state["fingerprint"]) == (4, recipe)

    other = workdir / "params_other.yaml"
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["models"]["tiny"]["lr"] = 5.0e-4
    other.write_text(yaml.safe_dump(params))
    proc = subprocess.run([sys.executable, str(TRAIN), "--model", "tiny", "--params", str(other), "--cpu"],
                          cwd=workdir, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "made by another recipe" in proc.stdout + proc.stderr
    assert _metrics(workdir)["resumed_from_step"] == 0


def _tuple_fields(d: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def test_two_cpu_processes_finish_with_identical_weights(workdir):
    _clean(workdir)
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    proc = _run(workdir, launcher=launcher, env_extra={"CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = _metrics(workdir)
    assert m["processes"] == 2
    assert len(m["rank_weight_hashes"]) == 2 and len(set(m["rank_weight_hashes"])) == 1
    assert m["steps"] == 12


def test_non_finite_loss_stops_with_step_named(workdir, monkeypatch):
    _clean(workdir)
    broken = create_model("hinet-tiny")
    with torch.no_grad():
        broken.last.bias.fill_(float("nan"))
    init = workdir / "nan_init.safetensors"
    save_weights(broken, init, variant="hinet-tiny")
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    cfg = ModelTrainConfig(**{**_tuple_fields(TINY_MODEL), "identity_init": False, "init_from": str(init)})
    paths = PathsConfig(**params["paths"])
    monkeypatch.chdir(workdir)
    with pytest.raises(NonFiniteLossError, match="non-finite loss at step 1"):
        train_model("tiny", cfg, paths, cpu=True)
    assert not (workdir / "models" / "tiny.safetensors").exists()


def test_ema_weights_are_what_is_saved(workdir):
    _clean(workdir)
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["models"]["tiny"].update(ema_decay=0.5, steps=6, val_every=6, save_every=3)
    (workdir / "params_ema.yaml").write_text(yaml.safe_dump(params))
    proc = subprocess.run([sys.executable, str(TRAIN), "--model", "tiny", "--params", "params_ema.yaml", "--cpu"],
                          cwd=workdir, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = _metrics(workdir)
    assert m["steps"] == 6
    saved = _state(workdir)
    # identity-initialised output conv: the raw weights move at step 1, the 0.5-decay average lags them, so the saved
    # (EMA) output conv is non-zero but differs from what a run without EMA ends with.
    assert saved["last.weight"].abs().sum() > 0
    params["models"]["tiny"]["ema_decay"] = 0.0
    (workdir / "params_ema.yaml").write_text(yaml.safe_dump(params))
    _clean(workdir)
    assert subprocess.run([sys.executable, str(TRAIN), "--model", "tiny", "--params", "params_ema.yaml", "--cpu"],
                          cwd=workdir, capture_output=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}).returncode == 0
    raw = _state(workdir)
    assert not torch.equal(saved["last.weight"], raw["last.weight"])
