"""``python -m pipeline.leaderboard merge``: the rows of every DVC experiment (``dvc exp show --json``) in one table,
for comparing tuning runs."""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from pipeline.cli import reports_user_errors
from pipeline.fileio import atomic_path
from pipeline.leaderboard.experiments import exp_params, exp_records
from pipeline.leaderboard.grid import dvc_reader, grid_steps, plot_grid
from pipeline.leaderboard.table import LeaderboardError
from pipeline.records import task_label

__all__ = ["main", "merge_experiments", "pivot_psnr"]


def _metric_rows(metrics: dict) -> list[dict]:
    """Leaderboard rows (input, model x mode, ensemble) found in one experiment's metrics files, each with the task
    its data stage describes (``metrics/data.json``)."""
    rows, input_row, task = [], None, ""
    for path, payload in metrics.items():
        data = (payload or {}).get("data")
        if not isinstance(data, dict):
            continue
        stem = Path(path).stem
        if stem == "data" and isinstance(data.get("input"), dict):  # the data stage's input scores
            input_row = _input_row(data["input"])
            # any vintage of metrics/data.json: experiments made before it had a task were labelled by their source
            task = task_label(str(data.get("task") or data.get("source") or "reds"), data.get("synth_task"))
            continue
        modes = data.get("tta")
        if isinstance(modes, dict) and any(isinstance(v, dict) and "psnr" in v for v in modes.values()):
            model = str(data.get("model", stem))
            for mode, r in modes.items():
                if isinstance(r, dict) and "psnr" in r:
                    rows.append({"entry": f"{model}/{mode}", "model": model, "tta": mode, **_pick(r)})
            if input_row is None and isinstance(data.get("input"), dict):  # experiments made before metrics/data.json
                input_row = _input_row(data["input"])
        elif "psnr" in data and (stem == "ensemble" or "best_member_psnr" in data):
            weights = data.get("weights") if isinstance(data.get("weights"), dict) else {}
            rows.append({"entry": "ensemble", "model": "+".join(weights), "tta": "ensemble", **_pick(data)})
    return [{"task": task or "reds", **r} for r in ([input_row] if input_row else []) + rows]


def _input_row(scores: dict) -> dict:
    """The blurry input's row of one experiment."""
    return {"entry": "input", "model": "", "tta": "", **_pick(scores), "gain_db": 0.0, "seconds_per_frame": 0.0}


def _pick(r: dict) -> dict:
    """The score and cost fields of one metrics entry."""
    return {k: r.get(k, math.nan) for k in ("psnr", "ssim", "gain_db", "seconds_per_frame")} | {
        "device": r.get("device", "")
    }


def merge_experiments(exp_show_json: list | dict) -> pd.DataFrame:
    """One table of every scored row of every experiment in ``dvc exp show --json`` output, best PSNR first.

    Columns: experiment, rev, baseline, kind, entry, model, tta, psnr, ssim, gain_db, seconds_per_frame, device,
    then every parameter whose value differs between the experiments (``tta.*`` and ``ensemble.*`` first). The
    workspace is left out when it merely repeats a committed baseline or experiment.
    """
    records = []
    for item in exp_records(exp_show_json):
        rec = item["record"]
        data = rec.get("data") or {}
        params = exp_params(rec)
        rows = _metric_rows(data.get("metrics") or {})
        name = "workspace" if rec.get("rev") == "workspace" else rec.get("name") or item.get("group")
        name = name or str(rec.get("rev", ""))[:7]
        records.append({**item, "name": name, "params": params, "rows": rows})

    def signature(r):
        return json.dumps([r["params"], r["rows"]], sort_keys=True, default=str)

    committed = {signature(r) for r in records if r["kind"] != "workspace"}
    records = [r for r in records if r["rows"] and not (r["kind"] == "workspace" and signature(r) in committed)]

    keys = sorted({k for r in records for k in r["params"]})
    differing = [k for k in keys if len({json.dumps(r["params"].get(k), default=str) for r in records}) > 1]
    differing.sort(key=lambda k: (not k.startswith(("tta.", "ensemble.")), k))

    out = []
    for r in records:
        rev = str(r["record"].get("rev", ""))
        for row in r["rows"]:
            out.append(
                {
                    "experiment": r["name"],
                    "rev": rev if rev == "workspace" else rev[:7],
                    "baseline": r["baseline"],
                    "kind": r["kind"],
                    **row,
                    **{k: r["params"].get(k) for k in differing},
                }
            )
    base = ["task", "experiment", "rev", "baseline", "kind", "entry", "model", "tta", "psnr", "ssim", "gain_db"]
    cols = base + ["seconds_per_frame", "device", *differing]
    df = pd.DataFrame(out, columns=cols)
    # One ranking per task: tasks never interleave (a denoising PSNR does not outrank a deblurring one).
    df = df.sort_values("psnr", ascending=False, kind="stable", na_position="last")
    return df.sort_values("task", kind="stable").reset_index(drop=True)


def pivot_psnr(merged: pd.DataFrame) -> pd.DataFrame:
    """Wide view of :func:`merge_experiments`: one row per experiment, one PSNR column per entry, best first."""
    wide = merged.pivot_table(index=["task", "experiment"], columns="entry", values="psnr", aggfunc="first", sort=False)
    order = ["input"] + sorted(c for c in wide.columns if c not in ("input", "ensemble")) + ["ensemble"]
    wide = wide[[c for c in order if c in wide.columns]]
    order = wide.max(axis=1).sort_values(ascending=False, kind="stable").index
    return wide.loc[sorted(order, key=lambda k: k[0])] if len(order) else wide


@reports_user_errors
def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``merge [--json FILE] [--out FILE.csv]`` prints the cross-experiment table (and writes it as CSV);
    ``grid [--json FILE] [--out FILE.csv] [--chart FILE.png]`` the TTA grid's paired steps (:mod:`.grid`)."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.leaderboard", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    merge = sub.add_parser("merge", help="merge the leaderboards of all DVC experiments into one table")
    merge.add_argument("--json", type=Path, help="read this saved `dvc exp show --json` output instead of running dvc")
    merge.add_argument("--out", type=Path, help="also write the table to this CSV file")
    merge.add_argument("--wide", action="store_true", help="print PSNR as one row per experiment, one column per entry")
    grid = sub.add_parser("grid", help="each experiment's crops step per member and its ensemble, paired, with cost")
    grid.add_argument("--json", type=Path, help="read this saved `dvc exp show --json` output instead of running dvc")
    grid.add_argument("--out", type=Path, help="also write the steps to this CSV file")
    grid.add_argument("--chart", type=Path, help="also draw gain against cost to this PNG file")
    grid.add_argument("--before", default="x8", help="the mode the step starts from (default x8)")
    grid.add_argument("--after", default="x8+crops", help="the mode the step ends at (default x8+crops)")
    args = parser.parse_args(argv)

    if args.json:
        try:
            raw = json.loads(args.json.read_text())
        except FileNotFoundError:
            raise LeaderboardError(f"{args.json}: file not found") from None
        except json.JSONDecodeError as exc:
            raise LeaderboardError(f"{args.json}: not valid JSON: {exc}") from None
    else:
        proc = subprocess.run(["dvc", "exp", "show", "--json"], capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"`dvc exp show --json` failed:\n{proc.stderr.strip()}", file=sys.stderr)
            return 1
        raw = json.loads(proc.stdout)
    if args.command == "grid":
        steps = grid_steps(raw, dvc_reader("."), before=args.before, after=args.after)
        print(steps.to_markdown(index=False, floatfmt="+.3f"))
        if args.out:
            with atomic_path(args.out) as tmp:
                steps.to_csv(tmp, index=False)
        if args.chart:
            plot_grid(steps, args.chart)
        return 0
    df = merge_experiments(raw)
    if df.empty:
        print("no experiment has leaderboard metrics yet", file=sys.stderr)
    else:
        shown = pivot_psnr(df) if args.wide else df
        print(shown.to_markdown(index=args.wide, floatfmt="g"))
    if args.out:
        with atomic_path(args.out) as tmp:
            df.to_csv(tmp, index=False)
    return 0
