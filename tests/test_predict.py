"""predict: exact output file set, 16-bit values equal to the Restorer's, atomic replacement, clear failures."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.config import CropsConfig, PathsConfig, TTAConfig
from pipeline.fileio import ImageReadError, read_image, read_image16, write_image
from pipeline.inference import Restorer
from pipeline.layout import Layout
from pipeline.models import create_model, save_weights
from pipeline.predict import predict, run_inference
from pipeline.predictions import PredictionFolder, Runtime

NAMES = ["000_00000009", "000_00000019", "001_00000009"]
TTA = TTAConfig(tile=32, overlap=8, batch=8, precision="fp32", ladder=("plain", "x8+crops"), submit="x8+crops",
                crops=CropsConfig(n=3, side=16))  # fmt: skip
RUNTIME_KEYS = ("seconds_per_frame", "frames", "device", "precision", "tta")


def predict_index(model, index_csv, out_dir, tta, *, mode=None, accelerator=None, progress=True):
    """One mode (default ``tta.submit``) into one folder: the runtime record as the JSON object written."""
    mode = tta.submit if mode is None else mode
    runtimes = predict(Restorer(model, tta), index_csv, {mode: out_dir}, accelerator=accelerator, progress=progress)
    assert isinstance(runtimes[mode], Runtime)
    return runtimes[mode].to_json()


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("hinet-tiny").eval()


def make_index(root, names=NAMES, corrupt=None):
    rng = np.random.default_rng(0)
    rows = []
    for name in names:
        path = root / "blur" / f"{name}.png"
        write_image(path, rng.integers(0, 256, (16, 40, 3), dtype=np.uint8))
        if name == corrupt:
            path.write_bytes(path.read_bytes()[:50])
        seq, frame = name.split("_")
        rows.append(dict(split="val", seq=seq, frame=frame, name=name, blur_path=str(path), sharp_path="",
                         height=16, width=40))  # fmt: skip
    csv = root / "val300.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return csv


def test_predict_index_writes_exactly_the_expected_files(tmp_path, model):
    csv = make_index(tmp_path)
    out = tmp_path / "pred"
    out.mkdir()
    (out / "stale.txt").write_text("from an older run")
    runtime = predict_index(model, csv, out, TTA, progress=False)
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    expected = sorted([f"png16/{n}.png" for n in NAMES] + [f"png8/{n}.png" for n in NAMES] + ["runtime.json"])
    assert files == expected
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging leftovers
    assert tuple(runtime) == RUNTIME_KEYS and json.loads((out / "runtime.json").read_text()) == runtime
    assert PredictionFolder(out).read_runtime() == Runtime(**runtime)
    assert runtime["frames"] == 3 and runtime["seconds_per_frame"] > 0
    assert (runtime["device"], runtime["precision"], runtime["tta"]) == ("cpu", "fp32", "x8+crops")
    for name in NAMES:
        ref = Restorer(model, TTA).restore(read_image(tmp_path / "blur" / f"{name}.png"), ("x8+crops",))["x8+crops"]
        got16 = read_image16(out / "png16" / f"{name}.png")
        assert np.abs(got16 - ref).max() <= 0.5 / 65535 + 1e-7
        assert np.array_equal(read_image(out / "png8" / f"{name}.png"), np.round(ref * 255).astype(np.uint8))


def test_predict_index_with_single_process_accelerator(tmp_path, model):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    csv = make_index(tmp_path, NAMES[:2])
    try:
        accelerator = Accelerator(cpu=True)
        tta = TTAConfig(ladder=("plain",), submit="plain")  # bf16 autocast by default
        runtime = predict_index(model, csv, tmp_path / "pred", tta, accelerator=accelerator, progress=False)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)  # leave no global state for other tests
    from pipeline.device import cpu_has_native_bf16

    auto = "bf16" if cpu_has_native_bf16() else "fp32"  # fp32 where bf16 would be emulated (AVX2-only CPUs)
    assert runtime["frames"] == 2 and runtime["precision"] == auto
    assert sorted(p.name for p in (tmp_path / "pred" / "png8").iterdir()) == [f"{n}.png" for n in NAMES[:2]]


def test_failure_names_the_file_and_leaves_previous_output(tmp_path, model):
    csv = make_index(tmp_path, corrupt=NAMES[1])
    out = tmp_path / "pred"
    out.mkdir()
    (out / "previous.txt").write_text("kept")
    with pytest.raises(ImageReadError, match=NAMES[1]):
        predict_index(model, csv, out, TTA, mode="plain", progress=False)
    assert [p.name for p in out.iterdir()] == ["previous.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_bad_index_is_reported(tmp_path, model):
    csv = tmp_path / "index.csv"
    pd.DataFrame({"name": ["a"], "path": ["x.png"]}).to_csv(csv, index=False)
    with pytest.raises(ValueError, match="blur_path"):
        predict_index(model, csv, tmp_path / "out", TTA, progress=False)
    pd.DataFrame({"name": ["a", "a"], "blur_path": ["x.png", "y.png"]}).to_csv(csv, index=False)
    with pytest.raises(ValueError, match="duplicate"):
        predict_index(model, csv, tmp_path / "out", TTA, progress=False)
    assert not (tmp_path / "out").exists()


def _tree_bytes(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def test_interrupted_inference_resumes_only_missing_frames_and_ends_identical(tmp_path, model, monkeypatch, capsys):
    """A run that dies at frame 2 of 3 publishes nothing; the rerun restores only the missing frame (one truncated in
    the scratch folder is redone, never published) and ends byte-identical to an uninterrupted run."""
    names = [f"{s:03d}_00000009" for s in range(4)]
    csv = make_index(tmp_path, names=names)
    restorer = Restorer(model, TTA)
    modes = ("plain", "x8+crops")
    clean = predict(restorer, csv, {m: tmp_path / "clean" / m for m in modes}, progress=False)

    calls = []
    real = Restorer.restore

    def dies_on_third(*args, **kw):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        return real(*args, **kw)

    monkeypatch.setattr(Restorer, "restore", dies_on_third)
    out = {m: tmp_path / "out" / m for m in modes}
    with pytest.raises(KeyboardInterrupt):
        predict(restorer, csv, out, scratch=tmp_path / "scratch", progress=False)
    assert not any(p.exists() for p in out.values())  # nothing published
    assert sorted(p.stem for p in (tmp_path / "scratch/times").iterdir()) == names[:2]
    # A frame whose file got cut (disk full, a copy gone wrong) is detected and redone.
    victim = tmp_path / "scratch/x8+crops/png16" / f"{names[0]}.png"
    victim.write_bytes(victim.read_bytes()[:40])

    calls.clear()
    monkeypatch.setattr(Restorer, "restore", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    capsys.readouterr()
    again = predict(restorer, csv, out, scratch=tmp_path / "scratch", progress=False)
    assert len(calls) == 3  # names[0] (truncated), names[2], names[3]; names[1] reused
    assert "restored 3 frame(s), reused 1" in capsys.readouterr().out
    for m in modes:
        assert _tree_bytes(out[m]) == _tree_bytes(tmp_path / "clean" / m)
        assert again[m].frames == clean[m].frames == 4


_KILLED_RUN = """
import os, signal, sys
import torch
import pipeline.predictions as predictions
from pipeline.config import CropsConfig, TTAConfig
from pipeline.inference import Restorer
from pipeline.models import create_model
from pipeline.predict import predict

csv, out, scratch, kill_at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
writes = []
real = predictions.write_image


def write_then_die(path, img, **kw):
    # png16 of frame kill_at is on disk; SIGKILL before its png8 and its times record: a half-finished frame
    writes.append(path)
    if len(writes) == kill_at + 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(path, img, **kw)


if kill_at >= 0:
    predictions.write_image = write_then_die
torch.manual_seed(0)
model = create_model("hinet-tiny").eval()
tta = TTAConfig(tile=32, overlap=8, batch=8, precision="fp32", ladder=("x8",), submit="x8",
                crops=CropsConfig(n=3, side=16))
predict(Restorer(model, tta), csv, {"x8": out}, progress=False, scratch=scratch)
"""


def test_kill_9_mid_frame_then_rerun_restores_only_the_missing_frames(tmp_path):
    """A real SIGKILL in a child process, half-way through frame 4 of 6 (after its 16-bit PNG, before its 8-bit one):
    nothing is published; the rerun restores exactly the 3 frames not finished and ends byte-identical."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    names = [f"{s:03d}_00000009" for s in range(6)]
    csv = make_index(tmp_path, names=names)
    script = tmp_path / "run.py"
    script.write_text(_KILLED_RUN)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}

    def run(out: str, scratch: str, kill_at: int) -> subprocess.CompletedProcess:
        cmd = [sys.executable, str(script), str(csv), str(tmp_path / out), str(tmp_path / scratch), str(kill_at)]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)

    killed = run("out", "scratch", kill_at=3)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (tmp_path / "out").exists()  # nothing published
    assert sorted(p.stem for p in (tmp_path / "scratch/times").iterdir()) == names[:3]
    assert (tmp_path / "scratch/x8/png16" / f"{names[3]}.png").is_file()  # the half-finished frame's first file

    rerun = run("out", "scratch", kill_at=-1)
    assert rerun.returncode == 0, rerun.stderr
    assert "restored 3 frame(s), reused 3" in rerun.stdout
    clean = run("clean", "clean_scratch", kill_at=-1)
    assert clean.returncode == 0, clean.stderr
    assert _tree_bytes(tmp_path / "out") == _tree_bytes(tmp_path / "clean") and len(_tree_bytes(tmp_path / "out")) == 12
    assert json.loads((tmp_path / "out/runtime.json").read_text())["frames"] == 6


def test_run_inference_writes_the_val300_ladder_and_the_submit_mode_for_test(tmp_path, model, monkeypatch):
    """The infer@ entry point: every ladder mode for val-300, the submit mode for test-300, from the saved weights,
    byte-identical to predicting from the loaded weights directly; without test frames (dev phase) val-300 only."""
    from accelerate.state import AcceleratorState

    from pipeline.device import prepare_model
    from pipeline.models import load_model

    monkeypatch.chdir(tmp_path)
    layout = Layout(PathsConfig(data="data", models="models", predictions="pred", runs="runs"))
    (tmp_path / "data" / "index").mkdir(parents=True)
    make_index(tmp_path / "data" / "index", NAMES[:2]).rename(layout.index("val300"))
    make_index(tmp_path / "data" / "test", ["100_00000009"]).rename(layout.index("test300"))
    save_weights(model, layout.weights("tiny"), variant="hinet-tiny")
    try:
        runtimes = run_inference("tiny", TTA, layout, cpu=True)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    assert sorted(runtimes) == ["plain/val300", "x8+crops/test300", "x8+crops/val300"]
    assert sorted(p.name for p in (tmp_path / "pred" / "tiny").iterdir()) == ["plain", "x8+crops"]
    assert not layout.predictions("tiny", "plain", "test300").exists()  # test frames only under the submit mode
    assert runtimes["plain/val300"].frames == 2 and runtimes["x8+crops/test300"].frames == 1
    served = prepare_model(load_model(layout.weights("tiny")), torch.device("cpu"))  # as the stage loads it
    direct = predict_index(served, layout.index("val300"), tmp_path / "direct", TTA, progress=False)
    assert direct["frames"] == 2
    for name in NAMES[:2]:
        got = layout.predictions("tiny", "x8+crops", "val300") / "png16" / f"{name}.png"
        assert got.read_bytes() == (tmp_path / "direct" / "png16" / f"{name}.png").read_bytes()

    pd.DataFrame(columns=["name", "blur_path"]).to_csv(layout.index("test300"), index=False)  # development phase
    try:
        runtimes = run_inference("tiny", TTA, layout, cpu=True)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    assert sorted(runtimes) == ["plain/val300", "x8+crops/val300"]


def test_run_inference_of_the_base_restores_val300_plain_only_from_the_given_weights(tmp_path, model, monkeypatch):
    """infer_base: the base's weights, val-300 under the plain mode only (never the test frames), under the model
    name ``base``; the frames are byte-identical to a member's plain mode from the same weights."""
    from accelerate.state import AcceleratorState

    from pipeline.layout import BASE, BASE_MODE

    monkeypatch.chdir(tmp_path)
    layout = Layout(PathsConfig(data="data", models="models", predictions="pred", runs="runs", pretrained="pre"))
    (tmp_path / "data" / "index").mkdir(parents=True)
    make_index(tmp_path / "data" / "index", NAMES[:2]).rename(layout.index("val300"))
    make_index(tmp_path / "data" / "test", ["100_00000009"]).rename(layout.index("test300"))
    save_weights(model, layout.base_weights, variant="hinet-tiny")
    save_weights(model, layout.weights("tiny"), variant="hinet-tiny")
    try:
        base = run_inference(BASE, TTA, layout, cpu=True, weights=layout.base_weights, modes=(BASE_MODE,), test=False)
        member = run_inference("tiny", TTA, layout, cpu=True)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    assert sorted(base) == ["plain/val300"] and base["plain/val300"].frames == 2
    assert str(layout.base_weights) == "pre/base.safetensors"  # read from there: models/base.safetensors is absent
    assert not (tmp_path / "models" / "base.safetensors").exists()
    assert sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "pred" / "base").rglob("*")) == [
        "pred/base/plain", "pred/base/plain/val300", "pred/base/plain/val300/png16",
        "pred/base/plain/val300/png16/000_00000009.png", "pred/base/plain/val300/png16/000_00000019.png",
        "pred/base/plain/val300/png8", "pred/base/plain/val300/png8/000_00000009.png",
        "pred/base/plain/val300/png8/000_00000019.png", "pred/base/plain/val300/runtime.json",
    ]  # fmt: skip
    assert sorted(member) == ["plain/val300", "x8+crops/test300", "x8+crops/val300"]
    for kind in ("png16", "png8"):
        for name in NAMES[:2]:
            got, want = (layout.predictions(m, "plain", "val300") / kind / f"{name}.png" for m in (BASE, "tiny"))
            assert got.read_bytes() == want.read_bytes()


def test_scratch_key_changes_with_the_input_frames(tmp_path):
    # The base keeps its weights across a data change (it is frozen); a scratch key of weights + TTA alone let
    # infer_base reuse the deblurring restorations for a denoising val-300 with the same frame names.
    from types import SimpleNamespace

    from pipeline.config import TTAConfig
    from pipeline.predict import _scratch_root

    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"weights")
    index = tmp_path / "val300.csv"
    index.write_text("name,blur_md5\n000_00000009,aaa\n")
    state = SimpleNamespace(is_main_process=True, wait_for_everyone=lambda: None)  # one process
    first = _scratch_root(tmp_path / "scratch", weights, TTAConfig(), state, [index])
    assert first == _scratch_root(tmp_path / "scratch", weights, TTAConfig(), state, [index])
    index.write_text("name,blur_md5\n000_00000009,bbb\n")  # same name, new input frame
    second = _scratch_root(tmp_path / "scratch", weights, TTAConfig(), state, [index])
    assert second != first and second.parent == first.parent
