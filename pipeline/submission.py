"""NTIRE 2021 deblurring submission: package the zip, and validate one before uploading it.

The format (REDS Track 2 test phase): one zip holding, at its root, one 8-bit RGB PNG per scored frame named
``<seq>_<frame>.png`` (e.g. ``000_00000009.png``), the same size as the input frame, plus a ``readme.txt``::

    runtime per image [s] : 1.2345
    CPU[1] / GPU[0] : 0
    Extra Data [1] / No Extra Data [0] : 0
    Other description : HINet ...

Tasks whose results are one folder per test set (``pipeline.tasks``: GoPro, SIDD, Rain13K) are packaged instead as a
zip of ``<test set>/<input stem>.png`` (``Task.result_path``), the folder layout their public evaluation reads once
unzipped; no readme (that is NTIRE's). ``check`` and ``check_results`` report every problem at once, so one run shows
all that is wrong with a zip. Command line::

    python -m pipeline.submission check submission.zip --frames data/prepared/index/test300.csv
"""

from __future__ import annotations

import argparse
import math
import re
import struct
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from pipeline.cli import reports_user_errors
from pipeline.config import EnsembleConfig, ModelTrainConfig, PackageConfig, TTAConfig
from pipeline.data.reds import is_val300_frame, read_index
from pipeline.errors import PipelineError
from pipeline.fileio import atomic_path
from pipeline.layout import Layout
from pipeline.predictions import PredictionFolder
from pipeline.tasks import Task, task_of_index

__all__ = [
    "README_FIELDS",
    "SubmissionError",
    "build_submission",
    "check",
    "check_results",
    "describe_run",
    "expected_frames",
    "main",
    "package",
    "package_results",
    "result_members",
    "readme_text",
]

README_NAME = "readme.txt"
NAME_RE = re.compile(r"^\d{3}_\d{8}\.png$")
README_FIELDS = (
    "runtime per image [s]",
    "CPU[1] / GPU[0]",
    "Extra Data [1] / No Extra Data [0]",
    "Other description",
)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member timestamps: the same inputs give a byte-identical zip
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class SubmissionError(PipelineError):
    """A submission cannot be built from these predictions and frames (missing or non-8-bit predictions, an index or
    frames folder that cannot say what to expect, a zip that fails validation); the message names the file."""


def readme_text(runtime_s: float, used_gpu: bool, extra_data: bool, description: str) -> str:
    """The NTIRE ``readme.txt`` text; the description is folded onto one line."""
    runtime_s = float(runtime_s)
    if not math.isfinite(runtime_s) or runtime_s < 0:
        raise ValueError(f"runtime_s must be a finite non-negative number of seconds, got {runtime_s!r}")
    description = " ".join(str(description).split())
    return (
        f"{README_FIELDS[0]} : {runtime_s:.6g}\n"
        f"{README_FIELDS[1]} : {0 if used_gpu else 1}\n"
        f"{README_FIELDS[2]} : {1 if extra_data else 0}\n"
        f"{README_FIELDS[3]} : {description}\n"
    )


def _png_header(data: bytes) -> tuple[int, int, int, int] | None:
    """(width, height, bit depth, colour type) from a PNG's IHDR chunk, or None when it is not a PNG."""
    if len(data) < 29 or not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height, depth, color = struct.unpack(">IIBB", data[16:26])
    return width, height, depth, color


def _png_format_problem(data: bytes) -> str | None:
    """Why ``data`` is not an 8-bit truecolour RGB PNG (colour type 2, no alpha, no palette), or None if it is."""
    header = _png_header(data)
    if header is None:
        return "is not a PNG file"
    _, _, depth, color = header
    kinds = {0: "grayscale", 2: "RGB", 3: "palette", 4: "grayscale+alpha", 6: "RGBA"}
    if depth != 8 or color != 2:
        return f"must be an 8-bit RGB PNG, found {depth}-bit {kinds.get(color, f'colour type {color}')}"
    return None


def _check_predictions(paths: list[Path], zip_path: Path) -> None:
    """Every prediction must exist and be an 8-bit RGB PNG; otherwise one SubmissionError lists the offenders."""
    missing, bad = [], []
    for path in paths:
        if not path.is_file():
            missing.append(str(path))
            continue
        with path.open("rb") as fh:
            problem = _png_format_problem(fh.read(32))
        if problem:
            bad.append(f"{path} {problem}")
    if missing or bad:
        lines = [f"missing prediction {p}" for p in missing] + bad
        shown = "\n  ".join(lines[:20]) + (f"\n  ... and {len(lines) - 20} more" if len(lines) > 20 else "")
        raise SubmissionError(f"package: cannot build {zip_path}: {len(lines)} problem(s):\n  {shown}")


def _write_zip(zip_path: Path, members: Mapping[str, Path], readme: str | None) -> None:
    """Write ``readme`` (if any) then ``members`` (zip name -> PNG file) in sorted order, PNGs stored (already
    compressed) with fixed timestamps, atomically: the same inputs give a byte-identical zip."""
    with atomic_path(zip_path) as tmp, zipfile.ZipFile(tmp, "w") as zf:
        if readme is not None:
            info = zipfile.ZipInfo(README_NAME, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, readme)
        for member in sorted(members):
            info = zipfile.ZipInfo(member, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED
            zf.writestr(info, members[member].read_bytes())


def package(
    pred_dir: str | Path,
    names: list[str],
    zip_path: str | Path,
    *,
    runtime_s: float,
    used_gpu: bool,
    extra_data: bool,
    description: str,
) -> Path:
    """Zip ``pred_dir/<name>.png`` for every name plus the readme into ``zip_path`` atomically; returns the path.

    Every prediction must exist and be an 8-bit RGB PNG; otherwise a SubmissionError lists the offenders and nothing
    is written. PNGs are stored (already compressed), in sorted order with fixed timestamps, so reruns are
    byte-identical.
    """
    pred_dir, zip_path = Path(pred_dir), Path(zip_path)
    names = list(names)
    if not names:
        raise SubmissionError("package: no frame names given")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SubmissionError(f"package: duplicate frame names {dupes[:5]}")
    readme = readme_text(runtime_s, used_gpu, extra_data, description)
    _check_predictions([pred_dir / f"{name}.png" for name in names], zip_path)
    _write_zip(zip_path, {f"{name}.png": pred_dir / f"{name}.png" for name in names}, readme)
    return zip_path


def result_members(task: Task, index: pd.DataFrame) -> dict[str, str]:
    """Frame name -> its place in ``task``'s results layout (``Task.result_path`` of its test set and input file) for
    every row of an index (columns ``name``, ``test_set``, ``blur_path``); two frames with one place raise."""
    places: dict[str, str] = {}
    taken: dict[str, str] = {}
    for name, test_set, blur in zip(index["name"], index["test_set"], index["blur_path"], strict=True):
        place = task.result_path(name, test_set, blur)
        if place in taken:
            raise SubmissionError(f"{blur}: frames {taken[place]!r} and {name!r} would both be written as {place}")
        places[name], taken[place] = place, name
    return places


def package_results(pred_dir: str | Path, members: Mapping[str, str], zip_path: str | Path) -> Path:
    """Zip ``pred_dir/<name>.png`` as ``members[name]`` (``<test set>/<input stem>.png``, :func:`result_members`)
    into ``zip_path`` atomically: a task's results folder as its public evaluation reads it, once unzipped.

    The same checks and byte-identical reruns as :func:`package`; no readme."""
    pred_dir, zip_path = Path(pred_dir), Path(zip_path)
    if not members:
        raise SubmissionError("package: no frame names given")
    _check_predictions([pred_dir / f"{name}.png" for name in members], zip_path)
    _write_zip(zip_path, {place: pred_dir / f"{name}.png" for name, place in members.items()}, None)
    return zip_path


def _readme_problems(text: bytes) -> list[str]:
    """Every missing, duplicated or malformed field of ``readme.txt``."""
    try:
        lines = text.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError:
        return [f"{README_NAME}: not UTF-8 text"]
    norm = {" ".join(f.lower().split()): f for f in README_FIELDS}
    values: dict[str, list[str]] = {}
    for line in lines:
        key, sep, value = line.partition(":")
        field = norm.get(" ".join(key.lower().split())) if sep else None
        if field is not None:
            values.setdefault(field, []).append(value.strip())
    problems = []
    for field in README_FIELDS:
        found = values.get(field, [])
        if not found:
            problems.append(f"{README_NAME}: missing field '{field} : ...'")
            continue
        if len(found) > 1:
            problems.append(f"{README_NAME}: field '{field}' appears {len(found)} times")
        value = found[0]
        if field == README_FIELDS[0]:
            try:
                runtime = float(value)
            except ValueError:
                runtime = None
            if runtime is None or not math.isfinite(runtime) or runtime < 0:
                problems.append(f"{README_NAME}: '{field}' must be a non-negative number of seconds, got {value!r}")
        elif field in README_FIELDS[1:3] and value not in ("0", "1"):
            problems.append(f"{README_NAME}: '{field}' must be 0 or 1, got {value!r}")
    return problems


def _image_problems(member: str, data: bytes, size: tuple[int, int]) -> list[str]:
    """Format, decodability and size problems of one submitted PNG (``size`` is the expected (height, width))."""
    problem = _png_format_problem(data)
    if problem:
        return [f"{member}: {problem}"]
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or not data.endswith(b"IEND\xaeB`\x82"):
        return [f"{member}: corrupt or truncated PNG"]
    h, w = img.shape[:2]
    if (h, w) != tuple(size):
        return [f"{member}: size {h}x{w} (HxW) differs from the input frame's {size[0]}x{size[1]}"]
    return []


def _open_zip(zip_path: str | Path) -> tuple[zipfile.ZipFile | None, list[str]]:
    """The opened archive, or None and the one problem that stops reading it (missing, not a zip)."""
    zip_path = Path(zip_path)
    if not zip_path.is_file():
        return None, [f"{zip_path}: no such file"]
    try:
        return zipfile.ZipFile(zip_path), []
    except (zipfile.BadZipFile, OSError) as exc:
        return None, [f"{zip_path}: not a readable zip archive ({exc})"]


def check(zip_path: str | Path, expected: dict[str, tuple[int, int]]) -> list[str]:
    """Every problem with submission ``zip_path`` against ``expected`` (name -> (height, width)); [] means valid."""
    zf, opened = _open_zip(zip_path)
    if zf is None:
        return opened
    problems: list[str] = []
    with zf:
        members = zf.infolist()
        seen: set[str] = set()
        found: dict[str, zipfile.ZipInfo] = {}
        readme: zipfile.ZipInfo | None = None
        for info in members:
            name = info.filename
            if name in seen:
                problems.append(f"{name}: appears more than once in the zip")
                continue
            seen.add(name)
            if info.is_dir():
                problems.append(f"{name}: unexpected folder (all files must be at the zip root)")
            elif "/" in name or "\\" in name:
                problems.append(f"{name}: unexpected file in a subfolder (all files must be at the zip root)")
            elif name == README_NAME:
                readme = info
            elif name.lower() == README_NAME:
                problems.append(f"{name}: the readme must be named exactly '{README_NAME}'")
            elif not name.lower().endswith(".png"):
                problems.append(f"{name}: unexpected file (only <seq>_<frame>.png images and {README_NAME})")
            elif not NAME_RE.match(name):
                problems.append(f"{name}: bad name, must be <seq>_<frame>.png with 3+8 digits, e.g. 000_00000009.png")
            elif name[:-4] not in expected:
                problems.append(f"{name}: unexpected frame (not one of the {len(expected)} expected frames)")
            else:
                found[name[:-4]] = info

        for name in sorted(expected):
            if name not in found:
                problems.append(f"{name}.png: missing frame")
                continue
            try:
                data = zf.read(found[name])
            except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
                problems.append(f"{name}.png: cannot be read from the zip ({exc})")
                continue
            problems.extend(_image_problems(f"{name}.png", data, expected[name]))

        if readme is None:
            problems.append(f"{README_NAME}: missing (the zip root needs an NTIRE readme.txt)")
        else:
            try:
                problems.extend(_readme_problems(zf.read(readme)))
            except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
                problems.append(f"{README_NAME}: cannot be read from the zip ({exc})")
    return problems


def check_results(zip_path: str | Path, expected: Mapping[str, tuple[int, int]]) -> list[str]:
    """Every problem with a results zip (:func:`package_results`) against ``expected`` (member -> (height, width)):
    missing, unexpected or repeated members and PNGs that are not 8-bit RGB of the input's size; [] means valid."""
    zf, opened = _open_zip(zip_path)
    if zf is None:
        return opened
    problems: list[str] = []
    with zf:
        seen: set[str] = set()
        for info in zf.infolist():
            if info.filename in seen:
                problems.append(f"{info.filename}: appears more than once in the zip")
            elif info.filename not in expected:
                problems.append(f"{info.filename}: unexpected entry (not one of the {len(expected)} expected results)")
            seen.add(info.filename)
        for member in sorted(expected):
            if member not in seen:
                problems.append(f"{member}: missing result")
                continue
            try:
                data = zf.read(member)
            except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
                problems.append(f"{member}: cannot be read from the zip ({exc})")
                continue
            problems.extend(_image_problems(member, data, expected[member]))
    return problems


def _image_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image from its header, naming the file when it cannot be read."""
    try:
        with Image.open(path) as im:
            w, h = im.size
    except (OSError, ValueError) as exc:
        raise SubmissionError(f"{path}: cannot read image size ({exc})") from None
    return h, w


def expected_frames(frames: str | Path, *, all_frames: bool = False) -> dict[str, tuple[int, int]]:
    """Expected submission frames, name -> (height, width), from an index CSV or a folder of input frames.

    - CSV with columns ``name, height, width`` (e.g. ``index/test300.csv``): taken as is.
    - Flat folder of ``<seq>_<frame>.png|.jpg`` inputs: every image in it.
    - REDS-style ``<seq>/<frame>.png|.jpg`` tree (e.g. ``test/test_blur_jpeg``): the scored frames 9, 19, ..., 99 of
      each sequence, named ``<seq>_<frame>``, or every frame with ``all_frames=True``.
    """
    frames = Path(frames)
    if frames.is_file():
        if frames.suffix.lower() != ".csv":
            raise SubmissionError(f"{frames}: expected an index CSV or a folder of input frames")
        try:
            df = read_index(frames, ("name", "height", "width"))
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise SubmissionError(f"{frames}: not a readable CSV ({exc})") from None
        if df["name"].duplicated().any():
            raise SubmissionError(f"{frames}: duplicate names {sorted(df.loc[df['name'].duplicated(), 'name'])[:5]}")
        try:
            return {str(n): (int(h), int(w)) for n, h, w in zip(df["name"], df["height"], df["width"], strict=True)}
        except (TypeError, ValueError) as exc:
            raise SubmissionError(f"{frames}: height/width must be integers ({exc})") from None
    if not frames.is_dir():
        raise SubmissionError(f"{frames}: no such index CSV or frames folder")
    out: dict[str, tuple[int, int]] = {}
    flat = sorted(p for p in frames.iterdir() if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES)
    seqs = sorted(p for p in frames.iterdir() if p.is_dir() and not p.name.startswith("."))
    if flat and seqs:
        raise SubmissionError(f"{frames}: mixes flat images and sequence folders; give one layout")
    for path in flat:
        if path.stem in out:
            raise SubmissionError(f"{frames}: frame {path.stem!r} appears with two suffixes")
        out[path.stem] = _image_size(path)
    for seq in seqs:
        for path in sorted(p for p in seq.iterdir() if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES):
            if all_frames or (path.stem.isdigit() and is_val300_frame(path.stem)):
                name = f"{seq.name}_{path.stem}"
                if name in out:
                    raise SubmissionError(f"{seq}: frame {path.stem!r} appears with two suffixes")
                out[name] = _image_size(path)
    if not out:
        raise SubmissionError(f"{frames}: no input frames found (.png/.jpg, flat or in <seq>/ folders)")
    return out


def describe_run(
    models: Mapping[str, ModelTrainConfig],
    tta: TTAConfig,
    ensemble: EnsembleConfig,
    weights: Mapping[str, float] | None = None,
) -> str:
    """The readme's free-text description: the members' architectures, the TTA mode and the ensemble weights.

    ``weights`` are the weights actually used (the ensemble's runtime record); without them the params are
    described.
    """
    members = ensemble.members or tuple(models)
    parts = []
    for name in members:
        cfg = models[name]
        width = f" wf{cfg.width}" if cfg.width is not None else ""
        extra = f" +{cfg.extra_blocks} res blocks" if cfg.extra_blocks else ""
        init = f" from {Path(cfg.init_from).stem}" if cfg.init_from else ""
        parts.append(f"{name}={cfg.variant}{width}{extra} ({cfg.steps} steps{init})")
    mode = tta.submit
    if "crops" in mode:
        mode += f" (n={tta.crops.n}, {tta.crops.side}px, {tta.crops.transforms})"
    if weights:
        used = ", ".join(f"{m}={w:.3g}" for m, w in weights.items())
        source = "from params" if ensemble.weights else "equal"
        source = "fitted on part of val-300" if ensemble.fit else source
        how = f"{used} ({source})"
    else:
        how = "equal" if not ensemble.weights else str(list(ensemble.weights))
        how = "fitted" if ensemble.fit else how
    return f"HINet ensemble of {len(parts)}: {'; '.join(parts)}. TTA: {mode}. Ensemble weights: {how}."


def build_submission(
    cfg: PackageConfig,
    layout: Layout,
    *,
    models: Mapping[str, ModelTrainConfig],
    tta: TTAConfig,
    ensemble: EnsembleConfig,
) -> Path:
    """The ``package`` stage: zip the ensemble's 8-bit predictions of ``cfg.split`` (``test300`` for the test phase,
    ``val300`` for the development phase) in the layout of the index's task, then validate the zip: REDS and the
    embedded set the NTIRE zip with its readme; GoPro, SIDD and Rain13K their results folders (:func:`package_results`).

    The runtime is the ensemble's measured seconds per frame (the sum over members, TTA included); the CPU/GPU flag
    comes from the device that produced the predictions. The description is ``cfg.description``, or
    :func:`describe_run` of ``models``, ``tta`` and ``ensemble`` with the weights used. A zip that fails validation
    is removed and an error raised.
    """
    index_csv = layout.index(cfg.split)
    index = read_index(index_csv, ("name",))
    task = task_of_index(index, index_csv)
    names = index["name"].tolist()
    if not names:
        raise SubmissionError(
            f"{index_csv}: package.split is {cfg.split!r} but the data set has no such frames (REDS: no test/ "
            "folder yet, the development phase; SIDD: no BenchmarkNoisyBlocksSrgb.mat beside Data/); set "
            "package.split: val300 to package the val-300 frames"
        )
    predictions = PredictionFolder(layout.ensemble(cfg.split))
    runtime = predictions.read_runtime()
    zip_path = layout.submission_zip(cfg.name)
    if task.results != "ntire_zip":
        return _build_results(index, index_csv, task, predictions, zip_path)
    used = dict(zip(runtime.members or (), runtime.weights or (), strict=False))
    package(
        predictions.png8_dir,
        names,
        zip_path,
        runtime_s=runtime.seconds_per_frame,
        used_gpu="cuda" in runtime.device,
        extra_data=cfg.extra_data,
        description=cfg.description or describe_run(models, tta, ensemble, used),
    )
    problems = check(zip_path, expected_frames(index_csv))
    if problems:
        zip_path.unlink(missing_ok=True)
        raise SubmissionError(f"{zip_path}: the packaged submission failed validation:\n  " + "\n  ".join(problems))
    return zip_path


def _build_results(index: pd.DataFrame, index_csv: Path, task: Task, predictions: PredictionFolder, zip_path: Path):
    """The results zip of a ``test_set_folders`` task, validated against the index (removed if it fails)."""
    missing = [c for c in ("test_set", "blur_path", "height", "width") if c not in index.columns]
    if missing:
        raise SubmissionError(f"{index_csv}: a {task.name} index needs column(s) {missing} to lay out its results")
    members = result_members(task, index)
    package_results(predictions.png8_dir, members, zip_path)
    sizes = {n: (int(h), int(w)) for n, h, w in zip(index["name"], index["height"], index["width"], strict=True)}
    problems = check_results(zip_path, {place: sizes[name] for name, place in members.items()})
    if problems:
        zip_path.unlink(missing_ok=True)
        raise SubmissionError(f"{zip_path}: the packaged results failed validation:\n  " + "\n  ".join(problems))
    return zip_path


@reports_user_errors
def main(argv: list[str] | None = None) -> int:
    """``check ZIP --frames CSV_OR_DIR``: print every problem (or ``OK: N frames``); exit 1 on problems, 0 if valid."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.submission", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_check = sub.add_parser("check", help="validate a submission zip against the input frames")
    p_check.add_argument("zip", type=Path, help="the submission zip")
    p_check.add_argument(
        "--frames",
        type=Path,
        required=True,
        help="test index CSV (columns name,height,width) or folder of input frames (flat or <seq>/<frame>)",
    )
    p_check.add_argument(
        "--all-frames", action="store_true", help="in a <seq>/<frame> tree expect every frame, not just 9, 19, ..., 99"
    )
    args = parser.parse_args(argv)
    expected = expected_frames(args.frames, all_frames=args.all_frames)
    problems = check(args.zip, expected)
    for problem in problems:
        print(problem)
    if problems:
        print(f"INVALID: {len(problems)} problem(s) in {args.zip}", file=sys.stderr)
        return 1
    print(f"OK: {len(expected)} frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
