"""Submission packaging and validation: a valid tiny zip passes, every kind of fault is reported by name."""

import zipfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from pipeline.fileio import write_image
from pipeline.submission import check, expected_frames, main, package, readme_text

NAMES = ["000_00000009", "000_00000019", "001_00000009"]
H, W = 32, 48


def _frame(seed: int, h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture
def preds(tmp_path) -> Path:
    pred_dir = tmp_path / "png8"
    for i, name in enumerate(NAMES):
        write_image(pred_dir / f"{name}.png", _frame(i))
    return pred_dir


def _package(pred_dir: Path, zip_path: Path, names=NAMES) -> Path:
    return package(
        pred_dir, names, zip_path, runtime_s=1.25, used_gpu=True, extra_data=False, description="HINet\ntest run"
    )


def _expected(names=NAMES) -> dict[str, tuple[int, int]]:
    return {n: (H, W) for n in names}


def _rewrite(src: Path, dst: Path, *, drop=(), replace=None, add=None) -> Path:
    """Copy zip ``src`` to ``dst`` dropping members, replacing member bytes, and adding members."""
    replace, add = replace or {}, add or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename in drop:
                continue
            zout.writestr(info.filename, replace.get(info.filename, zin.read(info)))
        for name, data in add.items():
            zout.writestr(name, data)
    return dst


def _png(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


def test_readme_text_format():
    text = readme_text(0.5, used_gpu=False, extra_data=True, description="two\n lines")
    assert text == (
        "runtime per image [s] : 0.5\n"
        "CPU[1] / GPU[0] : 1\n"
        "Extra Data [1] / No Extra Data [0] : 1\n"
        "Other description : two lines\n"
    )
    with pytest.raises(ValueError, match="runtime_s"):
        readme_text(-1.0, used_gpu=True, extra_data=False, description="")


def test_valid_package_passes_check_and_cli(preds, tmp_path, capsys):
    zip_path = _package(preds, tmp_path / "sub" / "submission.zip")
    with zipfile.ZipFile(zip_path) as zf:
        assert sorted(zf.namelist()) == sorted([f"{n}.png" for n in NAMES] + ["readme.txt"])
        assert zf.read("readme.txt").decode().splitlines()[:2] == [
            "runtime per image [s] : 1.25",
            "CPU[1] / GPU[0] : 0",
        ]
        got = cv2.imdecode(np.frombuffer(zf.read("000_00000019.png"), np.uint8), cv2.IMREAD_COLOR_RGB)
    assert np.array_equal(got, _frame(1))
    assert check(zip_path, _expected()) == []
    # Byte-identical on a rerun (fixed timestamps, sorted members), and no temp files left behind.
    first = zip_path.read_bytes()
    _package(preds, zip_path)
    assert zip_path.read_bytes() == first
    assert sorted(p.name for p in zip_path.parent.iterdir()) == ["submission.zip"]

    index = tmp_path / "test300.csv"
    pd.DataFrame({"name": NAMES, "height": [H] * 3, "width": [W] * 3}).to_csv(index, index=False)
    capsys.readouterr()
    assert main(["check", str(zip_path), "--frames", str(index)]) == 0
    assert capsys.readouterr().out.strip() == "OK: 3 frames"


def test_package_missing_prediction_writes_nothing(preds, tmp_path):
    (preds / "000_00000019.png").unlink()
    zip_path = tmp_path / "out" / "submission.zip"
    with pytest.raises(ValueError, match="000_00000019.png"):
        _package(preds, zip_path)
    assert not zip_path.parent.exists()  # not even the folder: validation runs before any write


def test_package_rejects_16bit_prediction(preds, tmp_path):
    cv2.imwrite(str(preds / "001_00000009.png"), np.zeros((H, W, 3), np.uint16))
    with pytest.raises(ValueError, match="001_00000009.png must be an 8-bit RGB PNG, found 16-bit RGB"):
        _package(preds, tmp_path / "submission.zip")


@pytest.mark.parametrize(
    ("tamper", "expected_problem"),
    [
        ({"drop": ["000_00000019.png"]}, "000_00000019.png: missing frame"),
        ({"replace": {"001_00000009.png": "SMALL"}}, "001_00000009.png: size 16x48 (HxW) differs"),
        ({"add": {"abc_00000009.png": "GOOD"}}, "abc_00000009.png: bad name"),
        ({"add": {"002_00000009.png": "GOOD"}}, "002_00000009.png: unexpected frame"),
        ({"add": {"notes.txt": b"hello"}}, "notes.txt: unexpected file"),
        ({"add": {"sub/000_00000009.png": "GOOD"}}, "sub/000_00000009.png: unexpected file in a subfolder"),
        ({"replace": {"000_00000009.png": "U16"}}, "000_00000009.png: must be an 8-bit RGB PNG, found 16-bit RGB"),
        (
            {"replace": {"000_00000009.png": "GRAY"}},
            "000_00000009.png: must be an 8-bit RGB PNG, found 8-bit grayscale",
        ),
        ({"replace": {"000_00000009.png": "RGBA"}}, "000_00000009.png: must be an 8-bit RGB PNG, found 8-bit RGBA"),
        ({"replace": {"000_00000009.png": b"not a png"}}, "000_00000009.png: is not a PNG file"),
        ({"replace": {"000_00000009.png": "TRUNC"}}, "000_00000009.png: corrupt or truncated PNG"),
        ({"drop": ["readme.txt"]}, "readme.txt: missing"),
        (
            {"replace": {"readme.txt": b"runtime per image [s] : 1.0\nCPU[1] / GPU[0] : 0\nOther description : x\n"}},
            "readme.txt: missing field 'Extra Data [1] / No Extra Data [0] : ...'",
        ),
        (
            {"replace": {"readme.txt": readme_text(1, True, False, "x").replace("1\n", "fast\n", 1).encode()}},
            "readme.txt: 'runtime per image [s]' must be a non-negative number of seconds, got 'fast'",
        ),
        (
            {"replace": {"readme.txt": readme_text(1, True, False, "x").replace(": 1\n", ": -3\n", 1).encode()}},
            "must be a non-negative number of seconds, got '-3'",
        ),
        (
            {"replace": {"readme.txt": readme_text(1, True, False, "x").replace(": 0\n", ": yes\n", 1).encode()}},
            "readme.txt: 'CPU[1] / GPU[0]' must be 0 or 1, got 'yes'",
        ),
    ],
)
def test_each_fault_is_reported_by_name(preds, tmp_path, tamper, expected_problem):
    good = _package(preds, tmp_path / "good.zip")
    images = {
        "SMALL": _png(_frame(7, h=16)),
        "GOOD": _png(_frame(8)),
        "U16": _png(np.full((H, W, 3), 1000, np.uint16)),
        "GRAY": _png(np.zeros((H, W), np.uint8)),
        "RGBA": _png(np.zeros((H, W, 4), np.uint8)),
        "TRUNC": _png(_frame(9))[:-40],
    }

    def resolve(d):
        return {k: images[v] if isinstance(v, str) else v for k, v in d.items()}

    bad = _rewrite(
        good,
        tmp_path / "bad.zip",
        drop=tamper.get("drop", ()),
        replace=resolve(tamper.get("replace", {})),
        add=resolve(tamper.get("add", {})),
    )
    problems = check(bad, _expected())
    assert len(problems) == 1, problems
    assert expected_problem in problems[0]


def test_all_problems_reported_together_and_cli_exits_1(preds, tmp_path, capsys):
    good = _package(preds, tmp_path / "good.zip")
    bad = _rewrite(
        good,
        tmp_path / "bad.zip",
        drop=["000_00000009.png", "readme.txt"],
        replace={"001_00000009.png": _png(_frame(3, h=16))},
        add={"extra.jpg": b"x", "000_00000019 (1).png": _png(_frame(4))},
    )
    problems = check(bad, _expected())
    joined = "\n".join(problems)
    for needle in (
        "000_00000009.png: missing frame",
        "001_00000009.png: size 16x48",
        "extra.jpg: unexpected file",
        "000_00000019 (1).png: bad name",
        "readme.txt: missing",
    ):
        assert needle in joined
    assert len(problems) == 5

    frames = tmp_path / "frames"
    for name in NAMES:
        write_image(frames / f"{name}.png", _frame(0))
    capsys.readouterr()
    assert main(["check", str(bad), "--frames", str(frames)]) == 1
    assert capsys.readouterr().out.splitlines() == problems


def test_check_non_zip_and_missing_file(tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"definitely not a zip")
    assert len(check(junk, _expected())) == 1 and "not a readable zip" in check(junk, _expected())[0]
    assert check(tmp_path / "nope.zip", _expected()) == [f"{tmp_path / 'nope.zip'}: no such file"]


def test_expected_frames_from_csv_flat_folder_and_reds_tree(tmp_path):
    index = tmp_path / "index.csv"
    pd.DataFrame({"name": ["000_00000009", "007_00000099"], "height": [720, 32], "width": [1280, 48]}).to_csv(
        index, index=False
    )
    assert expected_frames(index) == {"000_00000009": (720, 1280), "007_00000099": (32, 48)}

    flat = tmp_path / "flat"
    write_image(flat / "000_00000009.jpg", _frame(0, 24, 40))
    write_image(flat / "001_00000019.png", _frame(1, 16, 32))
    assert expected_frames(flat) == {"000_00000009": (24, 40), "001_00000019": (16, 32)}

    tree = tmp_path / "test_blur_jpeg"
    for seq in ("000", "001"):
        for frame in (0, 8, 9, 10, 19):
            write_image(tree / seq / f"{frame:08d}.jpg", _frame(frame, 16, 24))
    want = {f"{s}_{f:08d}": (16, 24) for s in ("000", "001") for f in (9, 19)}
    assert expected_frames(tree) == want
    assert len(expected_frames(tree, all_frames=True)) == 10


def test_expected_frames_errors(tmp_path):
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("name,height\n000_00000009,720\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['width'\]"):
        expected_frames(bad_csv)
    with pytest.raises(ValueError, match="no such index CSV or frames folder"):
        expected_frames(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no input frames found"):
        expected_frames(tmp_path / "empty")


def test_cli_bad_frames_argument_is_one_line_and_exit_1(preds, tmp_path, capsys):
    zip_path = _package(preds, tmp_path / "s.zip")
    with pytest.raises(SystemExit) as exc:
        main(["check", str(zip_path), "--frames", str(tmp_path / "absent")])
    assert exc.value.code == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'absent'}: no such index CSV or frames folder\n"


def test_describe_run_names_members_tta_and_the_weights_used():
    import dataclasses

    from pipeline.config import EnsembleConfig, ModelTrainConfig, Params
    from pipeline.submission import describe_run

    member = ModelTrainConfig(variant="hinet-0.5x", width=16, extra_blocks=1, steps=600)
    params = Params(
        models={"wd_s1": member, "wd_s2": dataclasses.replace(member, init_from="pretrained/base.safetensors"),
                "wd_s3": member},
        ensemble=EnsembleConfig(members=("wd_s1", "wd_s2", "wd_s3"), fit=True),
    )  # fmt: skip
    text = describe_run(params.models, params.tta, params.ensemble, {"wd_s1": 0.0, "wd_s2": 0.25, "wd_s3": 0.75})
    assert text.startswith(
        "HINet ensemble of 3: wd_s1=hinet-0.5x wf16 +1 res blocks (600 steps); "
        "wd_s2=hinet-0.5x wf16 +1 res blocks (600 steps from base);"
    )
    assert f"TTA: {params.tta.submit}" in text
    assert text.endswith("Ensemble weights: wd_s1=0, wd_s2=0.25, wd_s3=0.75 (fitted on part of val-300).")
    equal = dataclasses.replace(params, ensemble=EnsembleConfig(members=("wd_s1", "wd_s2", "wd_s3")))
    assert describe_run(
        equal.models, equal.tta, equal.ensemble, {"wd_s1": 1 / 3, "wd_s2": 1 / 3, "wd_s3": 1 / 3}
    ).endswith("Ensemble weights: wd_s1=0.333, wd_s2=0.333, wd_s3=0.333 (equal).")


def _phase_tree(tmp_path: Path, split: str, n: int):
    """An ensemble output and index for ``split`` with ``n`` frames (8-bit PNGs, runtime.json)."""
    from pipeline.config import PackageConfig, Params, PathsConfig
    from pipeline.predictions import PredictionFolder, Runtime

    paths = PathsConfig(data=str(tmp_path / "data"), ensemble=str(tmp_path / "ens"), submissions=str(tmp_path / "sub"))
    names = [f"{s:03d}_00000009" for s in range(n)]
    (tmp_path / "data/index").mkdir(parents=True)
    pd.DataFrame({"name": names, "height": 16, "width": 32}).to_csv(tmp_path / f"data/index/{split}.csv", index=False)
    other = "test300" if split == "val300" else "val300"
    pd.DataFrame(columns=["name", "height", "width"]).to_csv(tmp_path / f"data/index/{other}.csv", index=False)
    png8 = PredictionFolder(tmp_path / "ens" / split).png8_dir
    png8.mkdir(parents=True)
    for name in names:
        cv2.imwrite(str(png8 / f"{name}.png"), np.full((16, 32, 3), 100, np.uint8))
    runtime = Runtime(0.5, n, "cuda:0 (a GPU)", "bf16", "ensemble(a:x8)", ("a",), (1.0,), 0.01)
    PredictionFolder(tmp_path / "ens" / split).write_runtime(runtime)  # what run_ensemble writes
    return lambda s: Params(paths=paths, package=PackageConfig(split=s))


def _build(params):
    from pipeline.layout import Layout
    from pipeline.submission import build_submission

    return build_submission(
        params.package, Layout(params.paths), models=params.models, tta=params.tta, ensemble=params.ensemble
    )


def test_build_submission_development_phase_packages_val300(tmp_path):
    """Before test inputs exist, package.split: val300 packages the val-300 frames; test300 says what to do."""

    params = _phase_tree(tmp_path, "val300", 3)
    zip_path = _build(params("val300"))
    with zipfile.ZipFile(zip_path) as z:
        assert sorted(z.namelist()) == ["000_00000009.png", "001_00000009.png", "002_00000009.png", "readme.txt"]
        readme = z.read("readme.txt").decode()
    assert "runtime per image [s] : 0.5" in readme and "CPU[1] / GPU[0] : 0" in readme  # predicted on a GPU
    assert "Ensemble weights: a=1 (equal)." in readme  # the weights the ensemble's runtime record names
    zip_path.unlink()
    with pytest.raises(ValueError, match=r"package.split is 'test300' but the data set has no such frames .*val300"):
        _build(params("test300"))
    assert not zip_path.exists()


def test_build_submission_removes_a_zip_that_fails_validation(tmp_path):

    params = _phase_tree(tmp_path, "test300", 2)
    idx = tmp_path / "data/index/test300.csv"
    pd.DataFrame({"name": ["000_00000009", "001_00000009"], "height": 16, "width": 48}).to_csv(idx, index=False)
    with pytest.raises(ValueError, match="failed validation"):
        _build(params("test300"))
    assert not (tmp_path / "sub" / "hinet_ntire_submission.zip").exists()


# ---- results in each task's layout (GoPro, SIDD, Rain13K: <test set>/<input stem>.png) ----


def _results_tree(tmp_path: Path, index: pd.DataFrame):
    """An ensemble output for the rows of ``index`` (written as ``index/test300.csv``): one 8-bit PNG per frame."""
    from pipeline.config import PackageConfig, Params, PathsConfig
    from pipeline.predictions import PredictionFolder, Runtime

    paths = PathsConfig(data=str(tmp_path / "data"), ensemble=str(tmp_path / "ens"), submissions=str(tmp_path / "sub"))
    (tmp_path / "data/index").mkdir(parents=True)
    index.to_csv(tmp_path / "data/index/test300.csv", index=False)
    folder = PredictionFolder(tmp_path / "ens" / "test300")
    folder.png8_dir.mkdir(parents=True)
    for i, r in enumerate(index.itertuples()):
        write_image(folder.png8(r.name), _frame(i, int(r.height), int(r.width)))
    folder.write_runtime(Runtime(0.5, len(index), "cpu", "fp32", "ensemble(a:plain)", ("a",), (1.0,), 0.0))
    return Params(paths=paths, package=PackageConfig(name="results")), folder


def _rain13k_index() -> pd.DataFrame:
    """A tiny Rain13K-layout index of two test sets (the columns the data stage writes that packaging reads)."""
    rows = [
        ("Rain100H", "1", "Rain100H-1_0"),
        ("Rain100H", "2", "Rain100H-2_0"),
        ("Test2800", "901_1", "Test2800-901_1"),
    ]
    rows += [("Test2800", "901_2", "Test2800-901_2")]
    return pd.DataFrame(
        {
            "name": [n for _, _, n in rows],
            "blur_path": [f"/r/test/{s}/input/{stem}.png" for s, stem, _ in rows],
            "test_set": [s for s, _, _ in rows],
            "height": H,
            "width": W,
            "task": "rain13k",
        }
    )


def test_rain13k_results_are_test_set_folders(tmp_path):
    params, folder = _results_tree(tmp_path, _rain13k_index())
    zip_path = _build(params)
    assert zip_path == tmp_path / "sub" / "results.zip"
    members = {
        "Rain100H/1.png": "Rain100H-1_0",
        "Rain100H/2.png": "Rain100H-2_0",
        "Test2800/901_1.png": "Test2800-901_1",
        "Test2800/901_2.png": "Test2800-901_2",
    }
    with zipfile.ZipFile(zip_path) as z:
        assert z.namelist() == list(members)  # sorted, no readme
        for member, name in members.items():
            assert z.read(member) == folder.png8(name).read_bytes()
    first = zip_path.read_bytes()
    zip_path.unlink()
    assert _build(params).read_bytes() == first  # reruns are byte-identical
    folder.png8("Test2800-901_2").unlink()
    with pytest.raises(ValueError, match=r"missing prediction .*Test2800-901_2\.png"):
        _build(params)
    assert zip_path.read_bytes() == first  # a failed build leaves the previous zip as it was


@pytest.mark.parametrize("form", ["scenes", "flat"])
def test_gopro_results_named_as_the_flat_form(tmp_path, form):
    from layout_trees import make_gopro

    from pipeline.data.gopro import index_gopro
    from pipeline.data.layouts import IndexOptions

    test300 = index_gopro(make_gopro(tmp_path / "GoPro", form), IndexOptions(workers=1))["test300"]
    params, _ = _results_tree(tmp_path / "run", test300)
    with zipfile.ZipFile(_build(params)) as z:
        assert z.namelist() == ["GoPro/GOPR0384_11_00-000001.png", "GoPro/GOPR0384_11_00-000002.png"]


def test_results_validation_removes_a_bad_zip_and_reds_keeps_its_zip(tmp_path):
    from pipeline.submission import check_results

    index = _rain13k_index()
    index.loc[0, "width"] = W + 16  # the index says the input frame is wider than the prediction
    params, _ = _results_tree(tmp_path, index.assign(width=W))
    index.to_csv(tmp_path / "data/index/test300.csv", index=False)
    with pytest.raises(ValueError, match=rf"failed validation:\n  Rain100H/1.png: size {H}x{W} \(HxW\) differs"):
        _build(params)
    assert not (tmp_path / "sub" / "results.zip").exists()
    good = {"Rain100H/1.png": (H, W), "Rain100H/2.png": (H, W)}
    assert check_results(tmp_path / "none.zip", good) == [f"{tmp_path / 'none.zip'}: no such file"]
    with zipfile.ZipFile(tmp_path / "odd.zip", "w") as z:
        z.writestr("Rain100H/1.png", cv2.imencode(".png", _frame(0))[1].tobytes())
        z.writestr("readme.txt", "x")
    assert check_results(tmp_path / "odd.zip", good) == [
        "readme.txt: unexpected entry (not one of the 2 expected results)",
        "Rain100H/2.png: missing result",
    ]
    # REDS (no task column) and the embedded set keep the NTIRE zip: the development-phase test above, and here.
    reds = _phase_tree(tmp_path / "reds", "test300", 2)("test300")
    with zipfile.ZipFile(_build(reds)) as z:
        assert z.namelist() == ["readme.txt", "000_00000009.png", "001_00000009.png"]
