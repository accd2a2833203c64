"""``python -m pipeline.leaderboard grid``: a TTA grid run as DVC experiments, as paired steps with intervals and a
chart of gain against cost.

Each experiment (the baseline included) scored the same val-300 frames under its own TTA settings. Per member the
step ``--before`` -> ``--after`` (default ``x8`` -> ``x8+crops``: what the crops add) is paired per frame inside
the experiment, and the ensemble is paired against the baseline's ensemble, each with the leaderboard's
cluster-bootstrap interval (``stats.paired_gain``: sequences resampled). The per-frame score tables are read at each
experiment's revision through ``dvc.api`` (the local cache holds them after ``dvc exp run``), so nothing has to be
checked out.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from pipeline.config import PathsConfig, TTAConfig
from pipeline.figures import pyplot, save_figure
from pipeline.layout import Layout
from pipeline.leaderboard.experiments import exp_params, exp_records
from pipeline.leaderboard.stats import paired_gain
from pipeline.leaderboard.table import LeaderboardError

__all__ = ["GRID_COLUMNS", "dvc_reader", "grid_steps", "plot_grid"]

GRID_COLUMNS = [
    "experiment",
    "rev",
    "crops_n",
    "crops_side",
    "model",
    "step",
    "gain_db",
    "ci_low",
    "ci_high",
    "significant",
    "frames",
    "clusters",
    "psnr_after",
    "seconds_per_frame",
]

Reader = Callable[[str, str], pd.DataFrame]  # (rev, repository-relative path) -> per-frame score table


def dvc_reader(repo: str | Path = ".") -> Reader:
    """Read a DVC-tracked per-frame score table at a revision (``workspace``: the file on disk)."""

    def read(rev: str, path: str) -> pd.DataFrame:
        if rev == "workspace":
            file = Path(repo) / path
            if not file.is_file():
                raise LeaderboardError(f"{file}: per-frame scores not found (run `dvc repro` first)")
            return pd.read_csv(file, dtype={"name": str}, keep_default_na=False)
        import dvc.api

        try:
            text = dvc.api.read(path, repo=str(repo), rev=rev)
        except Exception as err:  # dvc raises many types; the user needs the file and the revision
            raise LeaderboardError(f"{path} at {rev[:7]}: cannot read it from the DVC cache ({err})") from None
        return pd.read_csv(io.StringIO(text), dtype={"name": str}, keep_default_na=False)

    return read


def _cost(record: dict, model: str, mode: str) -> float:
    """``seconds_per_frame`` of ``model`` under ``mode`` from the experiment's eval metrics (NaN when absent)."""
    for path, payload in ((record.get("data") or {}).get("metrics") or {}).items():
        data = (payload or {}).get("data") or {}
        if Path(path).stem == model and isinstance(data.get("tta"), dict):
            return float((data["tta"].get(mode) or {}).get("seconds_per_frame", math.nan))
    return math.nan


def grid_steps(
    exp_show_json: list | dict, read: Reader, *, before: str = "x8", after: str = "x8+crops"
) -> pd.DataFrame:
    """One row per experiment and member (the step ``before`` -> ``after``, when its ``tta.ladder`` scored both) and
    per experiment for the ensemble (against the first baseline's ensemble): the paired gain, its 95% cluster
    interval, the PSNR after and the cost (the members' ``after`` seconds per frame; summed for the ensemble)."""
    items = [i for i in exp_records(exp_show_json) if i["kind"] != "workspace" and (i["record"].get("data") or {})]
    if not items:
        raise LeaderboardError("dvc exp show --json: no committed baseline or experiment to read")
    rows, baseline_ensemble = [], None
    for item in items:
        rec = item["record"]
        params = exp_params(rec)
        if not params:
            continue
        layout = Layout(PathsConfig(eval=str(params.get("paths.eval", PathsConfig.eval))))
        members = json.loads(params.get("ensemble.members") or "[]")  # flatten keeps lists as JSON text
        rev = str(rec.get("rev"))
        name = (rec.get("name") or item.get("group") or rev[:7]) if item["kind"] == "experiment" else item["baseline"]
        common = {
            "experiment": name,
            "rev": rev[:7],
            "crops_n": params.get("tta.crops.n"),
            "crops_side": params.get("tta.crops.side", params.get("tta.crops.size")),  # size: before 2026-12-03
        }
        ladder = json.loads(params.get("tta.ladder") or json.dumps(list(TTAConfig().ladder)))
        for model in members if before in ladder and after in ladder else []:  # a mode it did not score: no step
            b = read(rev, str(layout.eval_csv(model, before))).set_index("name")["psnr"]
            a = read(rev, str(layout.eval_csv(model, after))).set_index("name")["psnr"]
            g = paired_gain(b, a)
            rows.append(
                common
                | {"model": model, "step": f"{before} -> {after}", **g, "psnr_after": float(a.mean())}
                | {"seconds_per_frame": _cost(rec, model, after)}
            )
        ens = read(rev, str(layout.ensemble_eval_csv)).set_index("name")["psnr"]
        if item["kind"] == "baseline" and baseline_ensemble is None:
            baseline_ensemble = ens
        if baseline_ensemble is not None:
            g = paired_gain(baseline_ensemble, ens)
            cost = sum(_cost(rec, m, after) for m in members)
            rows.append(
                common
                | {"model": "ensemble", "step": "baseline ensemble -> ensemble", **g, "psnr_after": float(ens.mean())}
                | {"seconds_per_frame": cost}
            )
    steps = pd.DataFrame(rows, columns=GRID_COLUMNS)
    # A commit listed again (`dvc exp show -n N` lists every baseline) with equal settings and scores: keep the first.
    same = ["crops_n", "crops_side", "model", "step", "gain_db", "psnr_after"]
    return steps[~steps.duplicated(subset=same)].reset_index(drop=True)


def plot_grid(steps: pd.DataFrame, path: Path) -> None:
    """Gain of each member's crops step (95% interval) against its cost per frame, one marker per member, each point
    labelled with its crop count and size."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    members = steps[steps["model"] != "ensemble"]
    markers = "osD^v<>"
    for k, (model, d) in enumerate(members.groupby("model", sort=True)):
        lo = (d["gain_db"] - d["ci_low"]).clip(lower=0)
        hi = (d["ci_high"] - d["gain_db"]).clip(lower=0)
        ax.errorbar(
            d["seconds_per_frame"], d["gain_db"], yerr=[lo, hi], fmt=markers[k % len(markers)], capsize=4, label=model
        )
        for _, r in d.iterrows() if k == 0 else ():  # one label per setting, on the first member's marker
            ax.annotate(
                f"n={r['crops_n']} s={r['crops_side']}",
                (r["seconds_per_frame"], r["gain_db"]),
                textcoords="offset points",
                xytext=(5, 3),
                fontsize=7,
            )
    ax.axhline(0.0, color="k", lw=0.8)
    step = members["step"].iloc[0] if len(members) else "step"
    ax.set_xlabel("runtime per frame of the member's submit mode (s)")
    ax.set_ylabel(f"paired gain of {step} (dB, 95% cluster interval)")
    ax.set_title("TTA crops: what they add over x8, against what they cost (val-300)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    save_figure(fig, path)
