"""What a training run leaves for people and later stages: its record (``metrics/train/<m>.json``, the base's
``base.json`` with provenance), read and written here only, and its curve (DVCLive's per-step TSVs and a PNG)."""

from __future__ import annotations

import dataclasses
import json
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline.figures import pyplot, save_figure
from pipeline.fileio import atomic_path, write_json

__all__ = [
    "Provenance",
    "TrainRecord",
    "cpu_model",
    "git_commit",
    "plot_curve",
    "read_live_curve",
    "read_train_record",
    "truncate_live",
    "val_curve",
    "write_train_record",
]


@dataclass(frozen=True)
class Provenance:
    """The pretrained base's extra facts: its recipe, the code it was trained with and its val-300 curve."""

    recipe: dict
    git_commit: str
    val_curve: list[dict]  # {"step", "val_psnr", "val_ssim"} per validation


@dataclass(frozen=True)
class TrainRecord:
    """One finished run: model facts (read by the leaderboard), val-300 scores, time, where and how it ran.

    Its JSON has these keys in this order, then the :class:`Provenance` keys when there are any.
    """

    model: str
    variant: str
    width: int
    extra_blocks: int
    params: int
    macs_g_256: float  # GMACs of one 256x256 forward pass, rounded to 3 decimals
    steps: int
    input_psnr: float
    input_ssim: float
    final_psnr: float  # the last validation's (NaN without one)
    final_ssim: float
    final_gain_db: float
    best_psnr: float
    best_ssim: float
    best_step: int
    wall_time_s: float  # all invocations of this run (resumes included), rounded to 0.1 s
    wall_time_this_run_s: float
    cpu: str
    threads: int
    torch: str
    data_fingerprint: str
    init_from: str | None
    resumed_from_step: int
    processes: int
    per_process_batch: int
    accumulation: int
    global_batch: int
    device: str
    mixed_precision: str
    rank_weight_hashes: tuple[str, ...]  # one per process: equal when the processes agree
    export: str  # how the saved weights were chosen (pipeline.train.export_weights)
    provenance: Provenance | None = None

    def to_dict(self) -> dict:
        """The JSON object: the fields in order, ``provenance``'s keys flattened in at the end when present."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "provenance"}
        out["rank_weight_hashes"] = list(self.rank_weight_hashes)
        return out | (dataclasses.asdict(self.provenance) if self.provenance is not None else {})

    @classmethod
    def from_dict(cls, data: dict, source: str = "train record") -> TrainRecord:
        """The inverse of :meth:`to_dict`; a missing or unexpected key is a ``ValueError`` naming ``source``."""
        prov_keys = [f.name for f in dataclasses.fields(Provenance)]
        keys = [f.name for f in dataclasses.fields(cls) if f.name != "provenance"]
        has_prov = any(k in data for k in prov_keys)
        expected = keys + (prov_keys if has_prov else [])
        missing, extra = sorted(set(expected) - set(data)), sorted(set(data) - set(expected))
        if missing or extra:
            raise ValueError(f"{source}: not a train record (missing keys {missing}, unexpected keys {extra})")
        values = {k: data[k] for k in keys} | {"rank_weight_hashes": tuple(data["rank_weight_hashes"])}
        provenance = Provenance(**{k: data[k] for k in prov_keys}) if has_prov else None
        return cls(**values, provenance=provenance)


def write_train_record(path: str | Path, record: TrainRecord) -> None:
    """Write ``record`` as pretty JSON, atomically (a DVC metrics file)."""
    write_json(path, record.to_dict())


def read_train_record(path: str | Path) -> TrainRecord:
    """Read a record :func:`write_train_record` wrote."""
    return TrainRecord.from_dict(json.loads(Path(path).read_text()), source=str(path))


def cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo``), recorded with every timing; ``platform`` as a fallback."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str:
    """``HEAD``'s commit, ``+dirty`` when tracked files differ from it; ``unknown`` outside a git checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def read_live_curve(live_dir: str | Path) -> pd.DataFrame:
    """DVCLive's per-step metrics (``plots/metrics/*.tsv``) joined on ``step``: one row per logged step."""
    folder = Path(live_dir) / "plots" / "metrics"
    frames = []
    for tsv in sorted(folder.rglob("*.tsv")) if folder.is_dir() else []:
        name = tsv.relative_to(folder).with_suffix("").as_posix()
        t = pd.read_csv(tsv, sep="\t")  # columns: [timestamp,] step, <last part of the name>
        value = [c for c in t.columns if c not in ("step", "timestamp")][0]
        t = t.rename(columns={value: name})
        frames.append(t[["step", name]].drop_duplicates("step", keep="last").set_index("step"))
    if not frames:
        return pd.DataFrame(columns=["step"])
    return pd.concat(frames, axis=1).sort_index().reset_index()


def truncate_live(live_dir: Path, step: int) -> None:
    """Drop DVCLive rows logged after ``step`` (a killed run logged past its last checkpoint) before resuming."""
    folder = live_dir / "plots" / "metrics"
    for tsv in folder.rglob("*.tsv") if folder.is_dir() else []:
        t = pd.read_csv(tsv, sep="\t")
        if (t["step"] > step).any():
            with atomic_path(tsv) as tmp:
                t[t["step"] <= step].to_csv(tmp, sep="\t", index=False)


def val_curve(curve: pd.DataFrame) -> list[dict]:
    """The validations of a :func:`read_live_curve` table: step, val-300 PSNR and SSIM."""
    val = curve.dropna(subset=["val/psnr"]) if "val/psnr" in curve else curve.iloc[0:0]
    return [
        {"step": int(r["step"]), "val_psnr": float(r["val/psnr"]), "val_ssim": float(r["val/ssim"])}
        for _, r in val.iterrows()
    ]


def plot_curve(df: pd.DataFrame, path: Path, title: str, input_psnr: float) -> None:
    """Loss, learning rate and val-300 PSNR against step, for people without a browser (from DVCLive's data)."""
    fig, axes = pyplot().subplots(1, 3, figsize=(13, 3.6))
    panels = ((axes[0], "train/loss", "training loss (PSNR loss)"), (axes[1], "train/lr", "learning rate"))
    for ax, key, label in panels:
        if key in df:
            d = df.dropna(subset=[key])
            ax.plot(d["step"], d[key], lw=1)
        ax.set(title=label, xlabel="step")
    if "val/psnr" in df:
        val = df.dropna(subset=["val/psnr"])
        axes[2].plot(val["step"], val["val/psnr"], "o-")
    axes[2].axhline(input_psnr, color="gray", ls="--", label="blurry input")
    axes[2].legend()
    axes[2].set(title="val-300 PSNR (dB)", xlabel="step")
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=100, tight=False)
