"""A task is a data layout, a degradation and a scoring protocol: one frozen definition per ``data.source``.

The definitions are data, not branches: which indexer reads the tree, which channel is scored (RGB, or the BT.601 luma
the public code's ``test_y_channel`` uses), the border crop, the test sets with the paper's numbers, how the reported
average is formed and how results are laid out. ``pipeline.scoring`` finds the task from the index it scores (the
``task`` column the indexers write; an index without one is REDS, so REDS and the embedded set keep their behaviour
exactly) and asks it to score; ``evaluate`` asks it to report.

Facts, from the public release (megvii-model/HINet) and the paper, as read for this module:

- ``options/test/GoPro/HINet-GoPro.yml``: ``calculate_psnr`` / ``calculate_ssim`` with ``crop_border: 0``,
  ``test_y_channel: false``, images rounded to 8 bits (``use_image`` defaults to true).
- ``options/test/SIDD/HINet-SIDD-1x.yml``: PSNR only, RGB, ``crop_border: 0``, ``use_image: false``: the release
  scores the unrounded network output (its README: "to avoid the psnr loss caused by the round() operation") with
  peak 1 (``basicsr/metrics/psnr_ssim.py``: ``max_value = 1. if img1.max() <= 1 else 255.``).
- ``options/test/Rain13k/HINet-*.yml`` (Rain100H, Rain100L, Test100, Test1200, Test2800): PSNR and SSIM with
  ``crop_border: 0``, ``test_y_channel: true``. ``to_y_channel`` (``basicsr/metrics/metric_util.py``) divides by 255,
  applies ``bgr2ycbcr(img, y_only=True)`` (``basicsr/utils/matlab_functions.py``: Y = 16 + 65.481 R + 128.553 G +
  24.966 B on [0, 1] RGB, then /255 for float images) and multiplies by 255 again: Y in 0..255 **without rounding**
  (in float32 there; here float64, which differs by ~1e-6 dB). Y-channel SSIM is the release's ``_ssim_cly``: one
  11x11 Gaussian (sigma 1.5) with replicate borders over the whole image (``pipeline.metrics.ssim_hinet_y``).
- The paper's deraining table reports the five sets and their average; the average is the plain mean of the five
  test-set PSNRs (MPRNet's convention; the five published numbers give 33.036 dB). Checked against the paper's abstract
  ("we exceed it by 0.3 dB in PSNR on the average result of multiple datasets", it = MPRNet): the plain means of the
  published numbers differ by 33.036 - 32.726 = 0.31 dB (MPRNet: Rain100H 30.41, Rain100L 36.40, Test100 30.27,
  Test1200 32.91, Test2800 33.64), an image-weighted mean (100/100/100/1200/2800 images) by 33.588 - 33.347 = 0.24 dB.
  The table itself was not read here.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import metrics
from pipeline.errors import PipelineError
from pipeline.fileio import to_uint8

__all__ = [
    "DEFAULT_TASK",
    "SCORES",
    "TASKS",
    "Task",
    "TaskError",
    "TestSet",
    "get_task",
    "task_of_index",
]

SCORES = ("psnr", "ssim", "ssim3d")  # what Task.score gives per image: the score columns of every table of them
DEFAULT_TASK = "reds"  # the protocol of an index without a task column (REDS and the embedded REDS-like set)


class TaskError(PipelineError):
    """An unknown task name, or an index whose rows name several tasks or an unknown test set."""


@dataclass(frozen=True)
class TestSet:
    """One scored test set of a task and the paper's PSNR on it (dB; None where the paper has none)."""

    name: str
    published_psnr: float | None = None


@dataclass(frozen=True)
class Task:
    """One benchmark: layout (``indexer``, ``module:function`` taking ``(root, IndexOptions)``), scoring protocol and
    how results are reported and laid out."""

    name: str
    indexer: str
    channel: str  # "rgb": all three channels; "y": the BT.601 luma of the public code (unrounded)
    crop_border: int
    test_sets: tuple[TestSet, ...]
    average: str  # "frames": mean over every scored frame; "test_sets": plain mean of the per-test-set means
    results: str  # "ntire_zip": flat <seq>_<frame>.png + readme.txt in one zip; "test_set_folders": <set>/<input name>
    input_label: str = "blurry+JPEG"  # what the degraded input is, for figures (REDS Track 2: blur + JPEG)
    rounded_output: bool = True  # the release scores 8-bit output (True) or the unrounded network output (SIDD)
    reports_ssim: bool = True  # the paper reports SSIM for this task (SIDD: PSNR only)

    def __post_init__(self):
        if self.channel not in ("rgb", "y"):
            raise TaskError(f"task {self.name}: channel must be 'rgb' or 'y', got {self.channel!r}")
        if self.average not in ("frames", "test_sets"):
            raise TaskError(f"task {self.name}: average must be 'frames' or 'test_sets', got {self.average!r}")
        if self.results not in ("ntire_zip", "test_set_folders"):
            raise TaskError(f"task {self.name}: unknown results layout {self.results!r}")
        if not self.test_sets or len({s.name for s in self.test_sets}) != len(self.test_sets):
            raise TaskError(f"task {self.name}: needs at least one test set, each named once")

    @property
    def test_set_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.test_sets)

    @property
    def published_average(self) -> float | None:
        """The paper's reported number: its one test set's, or the plain mean of the sets' for ``test_sets``."""
        values = [s.published_psnr for s in self.test_sets]
        if any(v is None for v in values):
            return None
        return values[0] if len(values) == 1 else float(np.mean(values))

    def index(self, root: str | Path, options) -> dict[str, pd.DataFrame]:
        """Validate and index a tree of this task's layout (``options``: ``pipeline.data.layouts.IndexOptions``)."""
        module, func = self.indexer.split(":")
        return getattr(importlib.import_module(module), func)(Path(root), options)

    def score(
        self, pred: np.ndarray, target: np.ndarray, *, with_ssim: bool = True, with_ssim3d: bool = True
    ) -> dict[str, float]:
        """PSNR, SSIM (BasicSR convention) and the release's SSIM (``ssim3d``: HINet's 3D SSIM on RGB, its 2D
        replicate-border SSIM on Y) of two RGB uint8 images under this task's channel and border crop (a score not
        asked for is NaN)."""
        y = self.channel == "y"
        out = {"psnr": metrics.psnr(pred, target, self.crop_border, test_y_channel=y)}
        if not with_ssim:
            return {**out, "ssim": math.nan, "ssim3d": math.nan}
        out["ssim"] = metrics.ssim(pred, target, self.crop_border, test_y_channel=y)
        if not with_ssim3d:
            out["ssim3d"] = math.nan
        elif y:
            out["ssim3d"] = metrics.ssim_hinet_y(pred, target, self.crop_border)
        else:
            out["ssim3d"] = metrics.ssim_hinet3d(pred, target, self.crop_border)
        return out

    def scored_values(self, rgb: np.ndarray) -> np.ndarray:
        """The values this task's PSNR is computed on, as float64 with peak 1, from an RGB image in [0, 1] (HWC):
        the border-cropped RGB, or its unrounded BT.601 luma / 255 (``channel`` "y"). The ensemble fit maximises
        PSNR over these, so it ranks weights as ``evaluate`` ranks the result."""
        x = np.asarray(rgb, dtype=np.float64)
        if self.crop_border:
            c = self.crop_border
            x = x[c:-c, c:-c]
        return metrics.rgb_to_y(x * 255.0) / 255.0 if self.channel == "y" else x

    def score_output(
        self, output: np.ndarray, target: np.ndarray, *, with_ssim: bool = True, with_ssim3d: bool = True
    ) -> dict[str, float]:
        """Scores of a restored float image (HWC RGB in [0, 1]) as the release scores it: :meth:`score` of its 8-bit
        rounding, with PSNR from the unrounded output where the release takes it so (``rounded_output`` false: SIDD,
        RGB and no crop, peak 1)."""
        out = self.score(to_uint8(output), target, with_ssim=with_ssim, with_ssim3d=with_ssim3d)
        if not self.rounded_output:
            out["psnr"] = metrics.psnr_float(output, target)
        return out

    def report(self, per_image: pd.DataFrame, test_sets: Sequence[str] | None = None) -> dict:
        """The per-test-set means and the reported average of per-image scores (columns ``SCORES``).

        ``test_sets`` gives each row's set (None: every row is in this task's only set). Returns ``{"test_sets":
        {set: {psnr, ssim, ssim3d, frames}}, "reported": {psnr, ssim, ssim3d, "average", "sets"}}`` with the sets in
        the task's order; the average is over the sets present (``sets`` lists them).
        """
        if per_image.empty:
            raise TaskError(f"task {self.name}: no scored frames to report")
        if test_sets is None:
            if len(self.test_sets) != 1:
                raise TaskError(f"task {self.name}: which test set each frame is in must be given")
            test_sets = [self.test_sets[0].name] * len(per_image)
        sets = pd.Series(list(test_sets), index=per_image.index, dtype=str)
        unknown = sorted(set(sets) - set(self.test_set_names))
        if unknown:
            raise TaskError(f"task {self.name}: unknown test set(s) {unknown} (expected {list(self.test_set_names)})")
        per_set = {}
        for name in self.test_set_names:
            rows = per_image[sets == name]
            if len(rows):
                per_set[name] = {k: float(rows[k].mean()) for k in SCORES} | {"frames": len(rows)}
        if self.average == "frames":
            reported = {k: float(per_image[k].mean()) for k in SCORES}
        else:
            reported = {k: float(np.mean([v[k] for v in per_set.values()])) for k in SCORES}
        return {"test_sets": per_set, "reported": {**reported, "average": self.average, "sets": list(per_set)}}

    def result_path(self, name: str, test_set: str, input_path: str) -> str:
        """Where a restored frame goes in this task's results layout (relative): ``<name>.png`` in the NTIRE zip, else
        ``<test set>/<input file stem>.png`` (the release writes ``<dataset>/<img_name>.png``). An input in a
        GOPRO_Large ``<scene>/blur/`` folder is named as the flat form names it, ``<scene>-<stem>``: frame stems repeat
        across scenes, and the flat form is what the public evaluation reads."""
        if self.results == "ntire_zip":
            return f"{name}.png"
        path = Path(input_path)
        stem = f"{path.parent.parent.name}-{path.stem}" if path.parent.name == "blur" else path.stem
        return f"{test_set}/{stem}.png"


_REDS = dict(indexer="pipeline.data.reds:index_reds_layout", channel="rgb", crop_border=0, average="frames")
TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        # REDS-val-300 (NTIRE 2021 Track 2): RGB, no crop, the NTIRE zip. The embedded set is scored the same way.
        Task(name="reds", test_sets=(TestSet("val300", 28.83),), results="ntire_zip", **_REDS),
        Task(name="synthetic", test_sets=(TestSet("val300"),), results="ntire_zip", **_REDS),
        Task(
            name="gopro",
            indexer="pipeline.data.gopro:index_gopro",
            channel="rgb",
            crop_border=0,
            test_sets=(TestSet("GoPro", 32.71),),
            average="frames",
            results="test_set_folders",
            input_label="blurry",
        ),
        Task(
            name="sidd",
            indexer="pipeline.data.sidd:index_sidd",
            channel="rgb",
            crop_border=0,
            test_sets=(TestSet("SIDD", 39.99),),  # HINet 1x; 0.5x: 39.82
            average="frames",
            results="test_set_folders",
            rounded_output=False,
            reports_ssim=False,
            input_label="noisy",
        ),
        Task(
            name="rain13k",
            indexer="pipeline.data.rain13k:index_rain13k",
            channel="y",
            crop_border=0,
            test_sets=(
                TestSet("Rain100H", 30.65),
                TestSet("Rain100L", 37.28),
                TestSet("Test100", 30.29),
                TestSet("Test1200", 33.05),
                TestSet("Test2800", 33.91),
            ),
            average="test_sets",
            results="test_set_folders",
            input_label="rainy",
        ),
    )
}


def get_task(name: str) -> Task:
    """The definition of task ``name`` (a ``data.source`` value); an unknown name is one line listing the known."""
    if name not in TASKS:
        raise TaskError(f"unknown task {name!r} (known: {', '.join(TASKS)})")
    return TASKS[name]


def task_of_index(index: pd.DataFrame, where: str | Path = "index") -> Task:
    """The task whose protocol scores an index table: its ``task`` column (one value), REDS when it has none."""
    if "task" not in index.columns or index.empty:
        return TASKS[DEFAULT_TASK]
    names = sorted(set(index["task"].astype(str)))
    if len(names) != 1:
        raise TaskError(f"{where}: rows of several tasks {names}; one index is scored under one protocol")
    return get_task(names[0])
