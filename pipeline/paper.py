"""The paper's table from the public checkpoints: evaluate release HINet ``.pth`` files, without training, on each
task's test data and put the scores next to the published numbers.

One command, one row per (checkpoint, test set) plus the task's reported average where it has several sets::

    python -m pipeline.paper --task gopro --root /data/GoPro --weights HINet-GoPro.pth \\
        --task rain13k --root /data/Rain13k --weights HINet-Rain13k.pth --out submissions/paper_table.csv

``--task``, ``--root`` and ``--weights`` are given once per run, in that order. Every run's task, checkpoint (its keys
and shapes must make a HINet) and tree (indexed and validated by the task's own indexer, ``pipeline.tasks``) is checked
before any frame is restored, so a wrong file stops the command in seconds, on one line naming it. Frames are restored
with :class:`pipeline.inference.Restorer` as the release's test options do (``options/test/*/*.yml``): GoPro, REDS
and Rain13K in the public 256 px grid (``grids: true, crop_size: 256``, averaged by a count map), SIDD's 256 px blocks
in one pass; fp32; ``--tta x8`` adds the dihedral self-ensemble. Scores follow the task's protocol
(:meth:`pipeline.tasks.Task.score_output`: channel, crop, 8-bit rounding; SIDD's PSNR from the unrounded output).

Outputs, each written atomically: ``--out`` (CSV), the same table as markdown beside it (``.md``) and the per-frame
scores (``<stem>_frames.csv``).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from pipeline.cli import reports_user_errors
from pipeline.config import PRECISIONS, TTAConfig
from pipeline.errors import PipelineError
from pipeline.tasks import SCORES, Task, get_task

__all__ = [
    "COLUMNS",
    "FRAME_COLUMNS",
    "PaperError",
    "RELEASE",
    "ReleaseCheckpoint",
    "Run",
    "evaluate_runs",
    "main",
    "markdown_table",
    "paper_table",
    "release_grid",
    "write_outputs",
]

AVERAGE = "average"  # the test_set value of a task's reported-average row
COLUMNS = ["task", "test_set", "checkpoint", "model", "release", "tta", "frames"]
COLUMNS += ["psnr", "ssim", "ssim3d", "paper_psnr", "diff_psnr"]
FRAME_COLUMNS = ["task", "test_set", "checkpoint", "name", *SCORES]


class PaperError(PipelineError):
    """A paper-table run that cannot be evaluated (no runs, no scored frames, an unknown TTA mode); names the path."""


_GRID = {"gopro": 256, "reds": 256, "synthetic": 256, "rain13k": 256, "sidd": None}  # None: the whole frame at once


@dataclass(frozen=True)
class ReleaseCheckpoint:
    """A checkpoint of the public release (megvii-model/HINet), the task it goes with, its constructor arguments (as
    ``pipeline.models.weights.infer_config`` reads them from the keys) and, where the paper gives this variant its own
    number, the PSNR per test set (otherwise the task's, ``pipeline.tasks``)."""

    file: str
    task: str
    wf: int
    hin: tuple[int, int]
    published: tuple[tuple[str, float], ...] = ()


RELEASE = (
    ReleaseCheckpoint("HINet-GoPro.pth", "gopro", 64, (3, 4)),
    ReleaseCheckpoint("HINet-SIDD-1x.pth", "sidd", 64, (0, 4)),
    ReleaseCheckpoint("HINet-SIDD-0.5x.pth", "sidd", 32, (0, 4), (("SIDD", 39.82),)),  # MPRNet's 39.71 + 0.11
    ReleaseCheckpoint("HINet-Rain13k.pth", "rain13k", 64, (0, 4)),
    ReleaseCheckpoint("HINet-REDS.pth", "reds", 64, (3, 4)),
)


@dataclass(frozen=True)
class Run:
    """One checkpoint to evaluate on one task's tree."""

    task: str
    root: Path
    weights: Path


def release_grid(task: Task) -> int | None:
    """The tile side the release's test options use for ``task`` (``crop_size`` with ``grids: true``), or None for a
    full-frame pass (SIDD: ``grids`` is commented out; its blocks are 256 px)."""
    return _GRID.get(task.name, 256)


def _release_of(task: Task, config: dict) -> ReleaseCheckpoint | None:
    """The release checkpoint of ``task`` with this architecture, if any (an extra-blocks model is none of them)."""
    hin = (config["hin_position_left"], config["hin_position_right"])
    for r in RELEASE:
        if r.task == task.name and r.wf == config["wf"] and r.hin == hin and config["depth"] == 5:
            if not config.get("extra_blocks") and config["in_chn"] == 3:
                return r
    return None


def _describe(config: dict) -> str:
    """The architecture a checkpoint's keys imply, e.g. ``wf64 depth5 HIN 3..4``."""
    left, right = config["hin_position_left"], config["hin_position_right"]
    hin = f"HIN {left}..{right}" if left <= right else "no HIN"
    extra = f" +{config['extra_blocks']} res blocks" if config.get("extra_blocks") else ""
    return f"wf{config['wf']} depth{config['depth']} {hin}{extra}"


@dataclass
class _Planned:
    run: Run
    task: Task
    model: object  # HINet on the CPU, eval mode
    frames: pd.DataFrame  # the scored split's index rows
    release: ReleaseCheckpoint | None


def _plan(runs: Sequence[Run], stack: ExitStack, *, workers: int, sidd_block: int) -> list[_Planned]:
    """Check every run before any work: the task name, the checkpoint (a HINet's keys and shapes), the tree (the
    task's indexer: layout and every file); raises the first problem as the project's one-line error."""
    from pipeline.data.layouts import IndexOptions
    from pipeline.models.weights import load_model

    if not runs:
        raise PaperError("paper table: no runs given (--task, --root and --weights, once per checkpoint)")
    planned = []
    for run in runs:
        task = get_task(run.task)
        model = load_model(run.weights)
        derived = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="paper-blocks-")))
        options = IndexOptions(workers=workers, derived_dir=derived, sidd_block=sidd_block)
        frames = task.index(run.root, options)["val300"].reset_index(drop=True)
        if frames.empty:
            raise PaperError(f"{run.root}: no scored {task.name} test frames")
        if "test_set" not in frames or (frames["test_set"].astype(str) == "").any():
            frames = frames.assign(test_set=task.test_set_names[0])
        planned.append(_Planned(run, task, model, frames, _release_of(task, model.config)))
    return planned


def _restore_and_score(p: _Planned, *, mode: str, device, precision: str, batch: int) -> pd.DataFrame:
    """Restore every scored frame of one run and score it under its task's protocol: one row per frame."""
    from pipeline.device import prepare_model, resolve_device
    from pipeline.fileio import read_image
    from pipeline.inference import Restorer

    model = prepare_model(p.model, resolve_device(device))
    grid = release_grid(p.task)
    restorers: dict[int, Restorer] = {}
    rows = []
    desc = f"{p.task.name} {p.run.weights.name}"
    for r in tqdm(p.frames.itertuples(), total=len(p.frames), desc=desc, unit="frame", disable=None):
        image, target = read_image(r.blur_path), read_image(r.sharp_path)
        tile = grid or max(image.shape[:2])
        if tile not in restorers:
            tta = TTAConfig(tile=tile, overlap=0, tiling="hinet", batch=batch, precision=precision)
            restorers[tile] = Restorer(model, tta)
        output = restorers[tile].restore(image, (mode,))[mode]
        scores = p.task.score_output(output, target)
        rows.append({"task": p.task.name, "test_set": r.test_set, "checkpoint": p.run.weights.name, "name": r.name})
        rows[-1].update(scores)
    p.model = model.to("cpu")
    return pd.DataFrame(rows, columns=FRAME_COLUMNS)


def paper_table(planned: Sequence[_Planned], per_frame: Sequence[pd.DataFrame], mode: str) -> pd.DataFrame:
    """One row per (run, test set) with the means of its frames, then the task's reported average row where it has
    several test sets (``Task.report``); the paper's PSNR and our difference from it (NaN where none is published)."""
    rows = []
    for p, frames in zip(planned, per_frame, strict=True):
        report = p.task.report(frames[list(SCORES)], frames["test_set"].tolist())
        published = {s.name: s.published_psnr for s in p.task.test_sets}
        published |= dict(p.release.published if p.release else ())
        base = {
            "task": p.task.name,
            "checkpoint": p.run.weights.name,
            "model": _describe(p.model.config),
            "release": p.release.file if p.release else "",
            "tta": mode,
        }
        papers = []
        for name, means in report["test_sets"].items():
            paper = published.get(name)
            papers.append(paper)
            rows.append({**base, "test_set": name, "frames": means["frames"], **{k: means[k] for k in SCORES}})
            rows[-1]["paper_psnr"] = math.nan if paper is None else paper
        if len(report["test_sets"]) > 1:
            paper = math.nan if any(v is None for v in papers) else float(np.mean(papers))
            reported = {k: report["reported"][k] for k in SCORES}
            rows.append({**base, "test_set": AVERAGE, "frames": len(frames), **reported, "paper_psnr": paper})
    table = pd.DataFrame(rows)
    table["diff_psnr"] = table["psnr"] - table["paper_psnr"]
    return table[COLUMNS]


def evaluate_runs(
    runs: Sequence[Run],
    *,
    mode: str = "plain",
    device: str = "auto",
    precision: str = "fp32",
    batch: int = 8,
    workers: int = 2,
    sidd_block: int = 256,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Evaluate every run (see the module docstring): ``(table, per_frame)``, full precision. Every run is checked
    before the first frame is restored."""
    if mode not in ("plain", "x8"):
        raise PaperError(f"paper table: tta must be plain or x8, got {mode!r}")
    with ExitStack() as stack:
        planned = _plan(runs, stack, workers=workers, sidd_block=sidd_block)
        for p in planned:
            if p.release is None:
                ours = [r for r in RELEASE if r.task == p.task.name]
                expected = [f"{r.file} (wf{r.wf}, HIN {r.hin[0]}..{r.hin[1]})" for r in ours]
                print(
                    f"note: {p.run.weights}: {_describe(p.model.config)} is not the release architecture for "
                    f"{p.task.name} ({', '.join(expected) or 'none released'}); compared with the task's numbers",
                    file=sys.stderr,
                )
        per_frame = [_restore_and_score(p, mode=mode, device=device, precision=precision, batch=batch) for p in planned]
    return paper_table(planned, per_frame, mode), pd.concat(per_frame, ignore_index=True)


def _fmt(value, digits: int) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def markdown_table(table: pd.DataFrame) -> str:
    """The table as GitHub markdown: PSNR to 2 decimals (the paper's precision), SSIM to 4, the difference signed."""
    head = ["task", "test set", "checkpoint", "model", "TTA", "frames", "PSNR", "SSIM", "release SSIM", "paper PSNR"]
    lines = ["| " + " | ".join([*head, "difference"]) + " |", "|" + "---|" * (len(head) + 1)]
    for r in table.itertuples():
        name = f"**{r.test_set}**" if r.test_set == AVERAGE else r.test_set
        diff = "" if math.isnan(r.diff_psnr) else f"{r.diff_psnr:+.2f}"
        cells = [r.task, name, r.checkpoint, r.model, r.tta, str(r.frames), _fmt(r.psnr, 2), _fmt(r.ssim, 4)]
        lines.append("| " + " | ".join([*cells, _fmt(r.ssim3d, 4), _fmt(r.paper_psnr, 2), diff]) + " |")
    return "\n".join(lines) + "\n"


def write_outputs(table: pd.DataFrame, per_frame: pd.DataFrame, out_csv: str | Path) -> list[Path]:
    """Write the CSV (PSNR and the difference to 4 decimals, SSIM to 5), its markdown (``.md``) and the per-frame
    scores (``<stem>_frames.csv``), each atomically; returns the three paths."""
    from pipeline.fileio import atomic_path, write_text

    out_csv = Path(out_csv)
    md, frames_csv = out_csv.with_suffix(".md"), out_csv.with_name(f"{out_csv.stem}_frames.csv")
    digits = {"psnr": 4, "paper_psnr": 4, "diff_psnr": 4, "ssim": 5, "ssim3d": 5}
    with atomic_path(out_csv) as tmp:
        table.round(digits).to_csv(tmp, index=False)
    write_text(md, markdown_table(table))
    with atomic_path(frames_csv) as tmp:
        per_frame.to_csv(tmp, index=False, float_format="%.6f")
    return [out_csv, md, frames_csv]


def _runs(args: argparse.Namespace) -> list[Run]:
    tasks, roots, weights = args.task or [], args.root or [], args.weights or []
    if not tasks or not (len(tasks) == len(roots) == len(weights)):
        raise PaperError(
            f"give --task, --root and --weights once per run (got {len(tasks)} --task, {len(roots)} --root, "
            f"{len(weights)} --weights)"
        )
    return [Run(t, Path(r), Path(w)) for t, r, w in zip(tasks, roots, weights, strict=True)]


@reports_user_errors
def main(argv: list[str] | None = None) -> int:
    """Parse the runs, evaluate them, write the outputs and print the markdown table."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.paper", description=__doc__.splitlines()[0])
    parser.add_argument("--task", action="append", help="a task of pipeline.tasks: gopro, sidd, rain13k, reds")
    parser.add_argument("--root", action="append", help="that task's data tree (its data.root layout)")
    parser.add_argument("--weights", action="append", help="a public HINet .pth (or our .safetensors)")
    parser.add_argument("--out", type=Path, default=Path("submissions/paper_table.csv"))
    parser.add_argument("--tta", choices=("plain", "x8"), default="plain")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--batch", type=int, default=8, help="tiles per forward")
    parser.add_argument("--workers", type=int, default=2, help="processes validating the trees")
    parser.add_argument("--sidd-block", type=int, default=256, help="SIDD block side (256 in the benchmark)")
    args = parser.parse_args(argv)
    runs = _runs(args)
    table, per_frame = evaluate_runs(
        runs,
        mode=args.tta,
        device=args.device,
        precision=args.precision,
        batch=args.batch,
        workers=args.workers,
        sidd_block=args.sidd_block,
    )
    paths = write_outputs(table, per_frame, args.out)
    print(markdown_table(table), end="")
    print("wrote " + ", ".join(map(str, paths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
