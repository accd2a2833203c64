"""Where every file of the pipeline lives, derived from ``params.yaml``'s ``paths`` section in one place.

Stage scripts and library code ask a :class:`Layout` for a path instead of joining folder names by hand, so a path is
spelled once here (and templated from the same ``paths`` values in ``dvc.yaml``), training's own files (run folder,
DVCLive, curves) included: :class:`pipeline.train.TrainOutputs` groups the ones a training run writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pipeline.config import PathsConfig

__all__ = ["BASE", "BASE_MODE", "MANIFEST_NAME", "VAL_SPLIT", "Layout"]

VAL_SPLIT = "val300"  # the scored validation subset: every gain, ensemble fit and leaderboard row is measured on it
# The pretrained base is scored like a member under this name (predictions/base/plain/val300, eval/base/plain.csv,
# metrics/eval/base.json), in the plain mode only: the leaderboard's row base/plain and its steps base -> member.
BASE = "base"
BASE_MODE = "plain"
MANIFEST_NAME = "manifest.json"  # the embedded set's record of every sequence's source (pipeline.data.synth)


@dataclass(frozen=True)
class Layout:
    """The pipeline's file names under the folders of a :class:`PathsConfig` (default: ``params.yaml``'s)."""

    paths: PathsConfig = field(default_factory=PathsConfig)

    # data stage (paths.data)
    @property
    def synthetic_manifest(self) -> Path:
        """``<paths.synthetic_reds>/manifest.json``: the source photo of every sequence of the embedded set."""
        return Path(self.paths.synthetic_reds) / MANIFEST_NAME

    def index(self, split: str) -> Path:
        """``index/<split>.csv`` (``train``, ``val``, ``val300``, ``test300``): relative paths + md5 per frame."""
        return Path(self.paths.data) / "index" / f"{split}.csv"

    @property
    def input_summary(self) -> Path:
        """``index/val300.json``: the val-300 blurry inputs' mean PSNR / SSIM / SSIM3D."""
        return Path(self.paths.data) / "index" / f"{VAL_SPLIT}.json"

    @property
    def input_scores(self) -> Path:
        """``index/val300_inputs.csv``: per-frame input scores, computed once by ``prepare``."""
        return Path(self.paths.data) / "index" / f"{VAL_SPLIT}_inputs.csv"

    # the pretrained base (paths.pretrained, committed: what the frozen pretrain stage writes)
    @property
    def base_weights(self) -> Path:
        return Path(self.paths.pretrained) / f"{BASE}.safetensors"

    @property
    def base_provenance(self) -> Path:
        """``base.json``: the base's recipe and model facts (parameters, MACs), shaped like a member's train metrics."""
        return Path(self.paths.pretrained) / f"{BASE}.json"

    @property
    def base_curve(self) -> Path:
        return Path(self.paths.pretrained) / f"{BASE}_curve.png"

    @property
    def base_live_dir(self) -> Path:
        """The base's DVCLive folder, inside its run folder (its val-300 curve is also in ``base.json``)."""
        return self.run_dir(BASE) / "live"

    # training (train@<model>, pretrain): the run folder and DVCLive's are not tracked by DVC
    def run_dir(self, model: str) -> Path:
        """``paths.runs/<model>``: ``checkpoints/`` (accelerate state, kept after the run so it can be continued) and
        ``snapshots/`` (EMA weight snapshots, ``best.safetensors``)."""
        return Path(self.paths.runs) / model

    def checkpoints(self, model: str) -> Path:
        return self.run_dir(model) / "checkpoints"

    def snapshots(self, model: str) -> Path:
        return self.run_dir(model) / "snapshots"

    def live_dir(self, model: str) -> Path:
        """``paths.live/<model>``: DVCLive's ``metrics.json`` and ``plots/metrics/*.tsv`` (per-step loss, lr, val-300
        PSNR/SSIM, samples/s)."""
        return Path(self.paths.live) / model

    def train_curve(self, model: str) -> Path:
        return Path(self.paths.plots) / "train" / f"{model}.png"

    # members
    def weights(self, model: str) -> Path:
        return Path(self.paths.models) / f"{model}.safetensors"

    def predictions(self, model: str, mode: str | None = None, split: str | None = None) -> Path:
        """``paths.predictions/<model>[/<mode>[/<split>]]``; a split holds png16/, png8/, runtime.json."""
        out = Path(self.paths.predictions) / model
        if mode is not None:
            out = out / mode
        if split is not None:
            out = out / split
        return out

    def infer_scratch(self, model: str) -> Path:
        """Finished frames of an interrupted ``infer@<model>`` (not tracked by DVC)."""
        return Path(self.paths.runs) / "infer" / model

    def eval_dir(self, model: str) -> Path:
        """``paths.eval/<model>``: one per-frame CSV per TTA mode (``ensemble``: the ensemble's CSVs)."""
        return Path(self.paths.eval) / model

    def eval_csv(self, model: str, mode: str) -> Path:
        return self.eval_dir(model) / f"{mode}.csv"

    @property
    def ensemble_eval_csv(self) -> Path:
        """The published ensemble's per-frame scores; other weightings sit beside it as ``ensemble_<variant>.csv``."""
        return self.eval_dir("ensemble") / "ensemble.csv"

    def ensemble(self, split: str | None = None) -> Path:
        return Path(self.paths.ensemble) if split is None else Path(self.paths.ensemble) / split

    # metrics (paths.metrics)
    @property
    def data_metrics(self) -> Path:
        return Path(self.paths.metrics) / "data.json"

    @property
    def data_contact_sheet(self) -> Path:
        """``paths.plots/data_contact_sheet.png``: val-300 input | target pairs, written by ``prepare``."""
        return Path(self.paths.plots) / "data_contact_sheet.png"

    @property
    def params_check(self) -> Path:
        return Path(self.paths.metrics) / "params_check.json"

    def train_metrics(self, model: str) -> Path:
        return Path(self.paths.metrics) / "train" / f"{model}.json"

    def eval_metrics(self, model: str) -> Path:
        return Path(self.paths.metrics) / "eval" / f"{model}.json"

    @property
    def ensemble_metrics(self) -> Path:
        return Path(self.paths.metrics) / "ensemble.json"

    # submissions
    def submission_zip(self, name: str) -> Path:
        return Path(self.paths.submissions) / f"{name}.zip"

    @property
    def submissions(self) -> Path:
        """The leaderboard's folder (CSV / MD / JSON, ladder steps, charts, comparison sheet) beside the zip."""
        return Path(self.paths.submissions)
