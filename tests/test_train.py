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
from pathlib import Path

import pytest
import torch
import yaml

from pipeline.config import DataConfig, ModelTrainConfig, PathsConfig, SynthConfig
from pipeline.data.prepare import prepare
from pipeline.models import create_model, load_model, save_weights
from pipeline.train import NonFiniteLossError, config_fingerprint, read_live_curve, run_fingerprint, train_model

REPO = Path(__file__).resolve().parents[1]
TRAIN = REPO / "stages" / "train.py"

TINY_MODEL = {
    "variant": "hinet-tiny",
    "seed": 5,
    "steps": 12,
    "global_batch": 2,
    "patch_size": 32,
    "lr": 1.0e-3,
    "warmup_steps": 2,
    "grad_clip": 0.0,
    "identity_init": True,
    "mixed_precision": "fp32",  # bit-reproducible resume
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
    synth = SynthConfig(
        height=64, width=96, train_sequences=2, val_sequences=1, test_sequences=1, frames_per_sequence=10, subframes=5
    )
    paths = PathsConfig(
        data=str(root / "data"),
        synthetic_reds=str(root / "data" / "reds"),
        runs=str(root / "runs"),
        models=str(root / "models"),
        metrics=str(root / "metrics"),
        plots=str(root / "plots"),
    )
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
    for sub in ("runs", "models", "metrics/train", "plots/train", "dvclive"):
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
    # DVCLive holds the curve: loss, lr and samples/s every step (log_every 1), val-300 PSNR/SSIM every 6 steps.
    curve = read_live_curve(workdir / "dvclive" / "tiny")
    assert list(curve["step"]) == list(range(1, 13))
    assert {"train/loss", "train/lr", "train/samples_per_s", "val/psnr", "val/ssim"} <= set(curve.columns)
    assert list(curve.dropna(subset=["val/psnr"])["step"]) == [6, 12]
    assert curve["val/psnr"].dropna().iloc[-1] == pytest.approx(m["final_psnr"])
    live = json.loads((workdir / "dvclive" / "tiny" / "metrics.json").read_text())
    assert live["val"]["psnr"] == pytest.approx(m["final_psnr"]) and live["step"] == 12
    assert (workdir / "plots" / "train" / "tiny.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The finished state is kept, so the run can be continued with more steps.
    assert sorted(p.name for p in (workdir / "runs" / "tiny" / "checkpoints").iterdir())[-1] == "step_00000012"
    assert (m["processes"], m["per_process_batch"], m["accumulation"], m["global_batch"]) == (1, 2, 1, 2)
    assert m["export"] == "final"
    meta_model = load_model(workdir / "models" / "tiny.safetensors")
    assert meta_model.config["wf"] == 8


# Runs the train stage script with a SIGKILL injected right after the checkpoint of step KILL_AT_STEP is written:
# an interruption at a known point, with no timing involved (the process dies as a kill -9 would leave it).
KILL_AFTER_CHECKPOINT = """
import os, runpy, signal, sys
import pipeline.train.loop as loop
real = loop._checkpoint
def checkpoint_then_die(run):
    real(run)
    if run.state.step == int(os.environ["KILL_AT_STEP"]):
        os.kill(os.getpid(), signal.SIGKILL)
loop._checkpoint = checkpoint_then_die
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_kill_9_at_a_checkpoint_then_rerun_resumes_to_identical_weights(workdir):
    _clean(workdir)
    assert _run(workdir).returncode == 0
    reference = _state(workdir)

    _clean(workdir)
    killed = _run(workdir, launcher=[sys.executable, "-c", KILL_AFTER_CHECKPOINT], env_extra={"KILL_AT_STEP": "6"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    ckpts = workdir / "runs" / "tiny" / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir() if p.name.startswith("step_")) == ["step_00000003", "step_00000006"]
    assert not (workdir / "models" / "tiny.safetensors").exists()  # an interrupted run does not look finished

    rerun = _run(workdir)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    m = _metrics(workdir)
    assert m["steps"] == 12 and m["resumed_from_step"] == 6
    resumed = _state(workdir)
    assert resumed.keys() == reference.keys()
    for k in reference:
        assert torch.equal(resumed[k], reference[k]), k  # the same batches, optimizer and RNG state: the same bits


def test_stop_early_keeps_checkpoint_and_other_recipe_starts_fresh(workdir):
    _clean(workdir)
    proc = _run(workdir, "--max-steps-this-run", "4")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpts = sorted(p.name for p in (workdir / "runs" / "tiny" / "checkpoints").iterdir())
    assert ckpts == ["step_00000003", "step_00000004"]  # keep_checkpoints = 2
    state = json.loads((workdir / "runs" / "tiny" / "checkpoints" / "step_00000004" / "trainer_state.json").read_text())
    assert set(state) == {"step", "fingerprint", "recipe", "wall_s", "best"} and state["wall_s"] > 0
    cfg = ModelTrainConfig(**_tuple_fields(TINY_MODEL))
    assert (state["step"], state["recipe"]) == (4, config_fingerprint(cfg))
    assert state["fingerprint"] == run_fingerprint(cfg, workdir / "data", 1)  # recipe + data + code + processes

    other = workdir / "params_other.yaml"
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["models"]["tiny"]["lr"] = 5.0e-4
    other.write_text(yaml.safe_dump(params))
    proc = subprocess.run(
        [sys.executable, str(TRAIN), "--model", "tiny", "--params", str(other), "--cpu"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "made by another recipe, code, data or process count" in proc.stdout + proc.stderr
    assert _metrics(workdir)["resumed_from_step"] == 0


def _tuple_fields(d: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def test_two_cpu_processes_finish_with_identical_weights(workdir):
    """`python -m pipeline.launch` with launch.processes 2 on CPU: gloo, half the batch per process, same global."""
    _clean(workdir)
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["launch"] = {"processes": 2}
    (workdir / "params_2p.yaml").write_text(yaml.safe_dump(params))
    launcher = [sys.executable, "-m", "pipeline.launch", "--params", "params_2p.yaml"]
    proc = _run(workdir, "--params", "params_2p.yaml", launcher=launcher, env_extra={"CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = _metrics(workdir)
    assert m["processes"] == 2 and (m["per_process_batch"], m["global_batch"]) == (1, 2)
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


def test_saved_ema_weights_equal_the_ema_computed_by_hand(workdir, monkeypatch):
    """With ema_decay d, the member is the EMA of the per-step weights: e_1 = w_1 (timm starts the average at the first
    update), e_k = d e_(k-1) + (1 - d) w_k. Recorded per step from the real loop, recomputed here, compared."""
    from accelerate.state import AcceleratorState
    from timm.utils import ModelEmaV3

    import pipeline.train.run as train_run

    _clean(workdir)
    steps, decay = 5, 0.5
    per_step: list[dict[str, torch.Tensor]] = []

    class RecordingEma(ModelEmaV3):
        def update(self, model, step=None):
            per_step.append({k: v.detach().clone() for k, v in model.state_dict().items()})
            super().update(model, step=step)

    monkeypatch.setattr(train_run, "ModelEmaV3", RecordingEma)
    monkeypatch.chdir(workdir)
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    cfg = ModelTrainConfig(**{**_tuple_fields(TINY_MODEL), "ema_decay": decay, "steps": steps, "val_every": steps})
    try:
        train_model("tiny", cfg, PathsConfig(**params["paths"]), cpu=True)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    assert len(per_step) == steps
    ema = {k: v.clone() for k, v in per_step[0].items()}
    for weights in per_step[1:]:
        for k in ema:
            ema[k] = decay * ema[k] + (1 - decay) * weights[k]
    saved = _state(workdir)
    assert saved.keys() == ema.keys()
    for k in ema:
        torch.testing.assert_close(saved[k], ema[k].float(), rtol=0, atol=1e-6, msg=k)
    # Not trivially so: the average differs from the last raw weights (identity init moves the output conv).
    assert not torch.allclose(saved["last.weight"], per_step[-1]["last.weight"], rtol=0, atol=1e-6)


def test_finished_run_continues_for_more_steps_and_exports_snapshots(workdir):
    """Raising `steps` continues a finished run from its kept state; best and average-of-last-K exports work."""
    _clean(workdir)
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["models"]["tiny"].update(snapshot_every=3)
    (workdir / "params_snap.yaml").write_text(yaml.safe_dump(params))
    assert _run(workdir, "--params", "params_snap.yaml").returncode == 0
    snaps = workdir / "runs" / "tiny" / "snapshots"
    assert sorted(p.name for p in snaps.iterdir()) == [
        "best.safetensors", "step_00000003.safetensors", "step_00000006.safetensors", "step_00000009.safetensors",
        "step_00000012.safetensors",
    ]  # fmt: skip
    first = _metrics(workdir)
    # The final snapshot is the exported final weights.
    final = load_model(snaps / "step_00000012.safetensors").state_dict()
    for k, v in _state(workdir).items():
        torch.testing.assert_close(v, final[k], rtol=0, atol=0)

    params["models"]["tiny"].update(steps=15, export="average:2")
    (workdir / "params_snap.yaml").write_text(yaml.safe_dump(params))
    proc = _run(workdir, "--params", "params_snap.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = _metrics(workdir)
    assert m["resumed_from_step"] == 12 and m["steps"] == 15 and first["steps"] == 12
    assert m["export"].startswith("average of 2 snapshots (step_00000012 .. step_00000015)")
    a = load_model(snaps / "step_00000012.safetensors").state_dict()
    b = load_model(snaps / "step_00000015.safetensors").state_dict()
    for k, v in _state(workdir).items():
        torch.testing.assert_close(v, (a[k].double() + b[k].double()).div(2).float(), rtol=0, atol=1e-7)

    params["models"]["tiny"].update(export="best")
    (workdir / "params_snap.yaml").write_text(yaml.safe_dump(params))
    assert _run(workdir, "--params", "params_snap.yaml").returncode == 0
    m = _metrics(workdir)
    assert m["export"] == f"best (step {m['best_step']})"
    best = load_model(snaps / "best.safetensors").state_dict()
    for k, v in _state(workdir).items():
        torch.testing.assert_close(v, best[k], rtol=0, atol=0)


def test_batch_plan_and_its_errors():
    from pipeline.config import ConfigError
    from pipeline.train import BatchPlan, BatchPlanError, plan_batch

    assert plan_batch(64, 8) == BatchPlan(processes=8, per_process=8, accumulation=1, global_batch=64)
    assert plan_batch(64, 2, max_per_process=8) == BatchPlan(2, 8, 4, 64)
    assert plan_batch(8, 1) == BatchPlan(1, 8, 1, 8)
    with pytest.raises(BatchPlanError, match=r"global_batch 64 is not divisible by 3 processes \(launch.processes\)"):
        plan_batch(64, 3)
    assert plan_batch(12, 1, max_per_process=5) == BatchPlan(1, 4, 3, 12)
    assert plan_batch(14, 1, max_per_process=5) == BatchPlan(1, 2, 7, 14)  # equal micro-batches within the cap
    with pytest.raises(ConfigError, match="export: got 'last'"):
        ModelTrainConfig(export="last")
    with pytest.raises(ConfigError, match=r"snapshot_every: got 0, must be > 0 when export is .average:3."):
        ModelTrainConfig(export="average:3")


@pytest.mark.parametrize("case", ["missing", "corrupt", "other-architecture"])
def test_bad_pretrained_base_stops_training_naming_the_file(workdir, case):
    """A missing, corrupt or mismatching base stops train@ with one line naming the file; nothing is written."""
    _clean(workdir)
    base = workdir / f"base_{case}.safetensors"
    base.unlink(missing_ok=True)
    if case == "corrupt":
        base.write_bytes(b"\x00garbage" * 10)
    elif case == "other-architecture":
        save_weights(create_model("hinet-tiny-deep"), base, variant="hinet-tiny-deep")
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["models"]["tiny"].update(identity_init=False, init_from=str(base))
    (workdir / "params_base.yaml").write_text(yaml.safe_dump(params))
    proc = _run(workdir, "--params", "params_base.yaml")
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {base}: "), proc.stderr[-2000:]
    expected = {
        "missing": "no such checkpoint file",
        "corrupt": "not a readable safetensors file",
        "other-architecture": "unexpected keys",
    }[case]
    assert expected in last and "Traceback" not in proc.stderr
    if case == "other-architecture":
        assert "extra_blocks" in last  # names the architectural difference
    for out in ("models/tiny.safetensors", "metrics/train/tiny.json", "runs/tiny", "dvclive/tiny"):
        assert not (workdir / out).exists(), out


def test_validation_scores_under_the_index_task_protocol():
    """Training-time validation scores as ``evaluate`` does: a Rain13K index on the Y channel, REDS on RGB (an identity
    net, so the scores are the inputs' under each protocol)."""
    import numpy as np
    import pandas as pd
    from accelerate import Accelerator

    from pipeline.data.dataset import ValFrames
    from pipeline.metrics import psnr
    from pipeline.train import validate

    rng = np.random.default_rng(0)
    sharp = rng.integers(40, 215, (24, 32, 3)).astype(np.uint8)
    blur = np.clip(sharp.astype(int) + rng.integers(-20, 21, sharp.shape), 0, 255).astype(np.uint8)

    class Frames(ValFrames):
        def __getitem__(self, i):
            return "000_00000000", blur, sharp

    table = pd.DataFrame({"name": ["000_00000000"], "blur_path": ["b.png"], "sharp_path": ["s.png"]})
    identity = torch.nn.Identity()
    cfg = ModelTrainConfig(variant="hinet-tiny")
    accelerator = Accelerator(cpu=True)
    rgb = validate(accelerator, identity, Frames(table), cfg)
    y = validate(accelerator, identity, Frames(table.assign(task="rain13k")), cfg)
    assert rgb["psnr"] == pytest.approx(psnr(blur, sharp), abs=1e-9)
    assert y["psnr"] == pytest.approx(psnr(blur, sharp, test_y_channel=True), abs=1e-9)
    assert abs(y["psnr"] - rgb["psnr"]) > 0.5


def test_run_fingerprint_covers_every_file_of_the_train_package_and_the_code_it_imports(tmp_path, monkeypatch):
    """The training code is derived from the package's imports: editing any file of a copy of pipeline/train (or adding
    one) changes the fingerprint, so no checkpoint of other code is resumed."""
    from pipeline.train import fingerprint

    code = fingerprint.training_code()
    for needed in ("pipeline/train/loop.py", "pipeline/train/sampler.py", "pipeline/losses.py", "pipeline/tiling.py"):
        assert needed in code, needed
    assert {"pipeline/models/hinet.py", "pipeline/data/shards.py", "pipeline/batching.py"} <= set(code)  # transitive
    assert not {"pipeline/config.py", "pipeline/layout.py", "pipeline/inference.py"} & set(code)
    cfg = ModelTrainConfig(**_tuple_fields(TINY_MODEL))
    original = fingerprint.run_fingerprint(cfg, tmp_path, 1)

    copy = tmp_path / "train"
    shutil.copytree(fingerprint.PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(fingerprint, "PACKAGE", copy)
    assert fingerprint.run_fingerprint(cfg, tmp_path, 1) == original  # same bytes, same fingerprint
    seen = {original}
    for path in sorted(copy.glob("*.py")):
        path.write_text(path.read_text() + "\n# edited\n")
        seen.add(fingerprint.run_fingerprint(cfg, tmp_path, 1))
    (copy / "new.py").write_text("")
    seen.add(fingerprint.run_fingerprint(cfg, tmp_path, 1))
    assert len(seen) == len(list(copy.glob("*.py"))) + 1
    assert fingerprint.run_fingerprint(cfg, tmp_path, 2) not in seen  # the process count too


def test_train_record_round_trips_with_today_s_keys_in_order(tmp_path):
    """The record is written and read in one place; the committed base's record reads and rewrites byte for byte."""
    from dataclasses import replace

    from pipeline.train.records import Provenance, TrainRecord, read_train_record, write_train_record

    values = {
        "model": "m", "variant": "hinet-tiny", "width": 8, "extra_blocks": 0, "params": 1000, "macs_g_256": 0.123,
        "steps": 12, "input_psnr": 25.0, "input_ssim": 0.7, "final_psnr": 26.5, "final_ssim": 0.8,
        "final_gain_db": 1.5, "best_psnr": 26.6, "best_ssim": 0.81, "best_step": 6, "wall_time_s": 1.2,
        "wall_time_this_run_s": 1.2, "cpu": "cpu x", "threads": 1, "torch": "2", "data_fingerprint": "abc",
        "init_from": None, "resumed_from_step": 0, "processes": 1, "per_process_batch": 2, "accumulation": 1,
        "global_batch": 2, "device": "cpu", "mixed_precision": "fp32", "rank_weight_hashes": ("h",), "export": "final",
    }  # fmt: skip
    record = TrainRecord(**values)
    path = tmp_path / "m.json"
    write_train_record(path, record)
    assert list(json.loads(path.read_text())) == list(values) and json.loads(path.read_text())["init_from"] is None
    assert read_train_record(path) == record
    base = replace(record, provenance=Provenance({"lr": 1e-3, "betas": [0.9, 0.99]}, "abc+dirty", [{"step": 6}]))
    write_train_record(path, base)
    assert list(json.loads(path.read_text())) == [*values, "recipe", "git_commit", "val_curve"]
    assert read_train_record(path) == base
    committed = REPO / "pretrained" / "base.json"
    write_train_record(path, read_train_record(committed))
    assert path.read_bytes() == committed.read_bytes()
    path.write_text(json.dumps({**record.to_dict(), "extra": 1}))
    with pytest.raises(ValueError, match=r"m\.json: not a train record .*unexpected keys \['extra'\]"):
        read_train_record(path)
