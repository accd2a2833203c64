"""The val-300 leaderboard: one pandas table of every scored thing, its cost, and the charts that explain it.

Rows are the blurry input, each model under each TTA mode and the ensemble; columns are PSNR, SSIM (per-channel
Gaussian, the BasicSR / scikit-image convention), gain over the input, parameters, GMACs at 256x256, runtime per
frame, device and the settings that produced the row. Also here: the ablation ladder in the form of the paper's
NTIRE table, the PSNR-versus-runtime Pareto chart, and ``python -m pipeline.leaderboard merge``, which merges the
rows of every DVC experiment (``dvc exp show --json``) into one table for comparing tuning runs.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.cli import reports_user_errors
from pipeline.fileio import atomic_path, read_json, write_json, write_text
from pipeline.ladder import STEP_COLUMNS
from pipeline.stats import paired_gain

__all__ = [
    "COLUMNS",
    "LeaderboardError",
    "ablation_ladder",
    "build_leaderboard",
    "main",
    "merge_experiments",
    "pareto_front",
    "pivot_psnr",
    "write_leaderboard",
]

COLUMNS = [
    "rank",
    "entry",
    "model",
    "tta",
    "psnr",
    "ssim",
    "ssim3d",
    "gain_db",
    "gain_ci_low",
    "gain_ci_high",
    "params",
    "macs_g",
    "seconds_per_frame",
    "device",
    "pareto",
    "settings",
]
SSIM_NOTE = (
    "SSIM: per-channel 2D Gaussian SSIM (BasicSR / scikit-image convention); SSIM3D: HINet's 3D-Gaussian SSIM (the "
    "paper's tables); PSNR on 8-bit RGB, no crop. gain CI: 95% bootstrap interval of the paired per-frame gain over "
    "the input."
)


class LeaderboardError(ValueError):
    """A metrics file or experiment record cannot be read into the leaderboard; the message names it."""


def _read_json(path: str | Path) -> dict:
    """Read one metrics JSON object, naming the file on any problem."""
    return read_json(path, what="metrics file", error=LeaderboardError)


def _num(value) -> float:
    """A float, or NaN for anything missing or non-numeric."""
    if isinstance(value, bool) or value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _model_settings(train: dict) -> str:
    """Short description of how a model was built and trained, from its training metrics."""
    keys = ("variant", "width", "extra_blocks", "steps")
    return " ".join(f"{k}={train[k]}" for k in keys if train.get(k) not in (None, ""))


def _tta_settings(mode: str, row: dict, extra: dict) -> str:
    """Short description of a TTA mode: the runtime's own description, crops count, precision."""
    parts = [f"tta={mode}"]
    desc = str(row.get("settings", "") or "")
    if desc and desc != mode:
        parts.append(f"({desc})")
    crops = extra.get("crops")
    if "crops" in mode and isinstance(crops, dict) and "n" in crops and "n=" not in desc:
        parts.append(f"crops n={crops['n']}" + (f" size={crops['size']}" if "size" in crops else ""))
    if row.get("precision"):
        parts.append(str(row["precision"]))
    return " ".join(parts)


def pareto_front(seconds: Sequence[float], psnr: Sequence[float]) -> np.ndarray:
    """Boolean mask of the points no other point beats: as fast or faster AND as good or better, one strictly.

    Points with a missing runtime or PSNR are never on the front.
    """
    s = np.asarray(seconds, dtype=np.float64)
    p = np.asarray(psnr, dtype=np.float64)
    ok = np.isfinite(s) & np.isfinite(p)
    front = np.zeros(len(s), dtype=bool)
    for i in np.nonzero(ok)[0]:
        dominated = ok & (s <= s[i]) & (p >= p[i]) & ((s < s[i]) | (p > p[i]))
        front[i] = not dominated.any()
    return front


def build_leaderboard(
    data_metrics_json: str | Path | None,
    eval_jsons: Sequence[str | Path],
    ensemble_json: str | Path | None,
    train_jsons: Sequence[str | Path],
    per_frame: dict[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """One row per scored thing (input, model x TTA mode, ensemble), sorted by PSNR with rank and Pareto columns.

    ``per_frame`` (entry -> per-frame scores, :func:`pipeline.ladder.read_per_frame`) adds each row's 95% interval of
    its paired gain over the input (``gain_ci_low`` / ``gain_ci_high``); NaN without it.

    ``eval_jsons`` are :func:`pipeline.evaluate.evaluate_model` summaries, ``ensemble_json`` the
    :func:`pipeline.ensemble.run_ensemble` summary, ``train_jsons`` the training metrics (``params``,
    ``macs_g_256``, ``variant``, ``steps``, ... - whatever exists; NaN otherwise). ``data_metrics_json`` (optional)
    describes the data; its ``input`` scores are used only if no evaluation carries them.
    """
    train = {}
    for path in train_jsons:
        data = _read_json(path)
        train[str(data.get("model", Path(path).stem))] = data
    evals = [(Path(p), _read_json(p)) for p in eval_jsons]
    ens = _read_json(ensemble_json) if ensemble_json else None
    data_info = _read_json(data_metrics_json) if data_metrics_json else {}

    rows = []
    input_scores = next((e["input"] for _, e in evals if isinstance(e.get("input"), dict)), None)
    if input_scores is None and ens is not None and isinstance(ens.get("input"), dict):
        input_scores = ens["input"]
    if input_scores is None and isinstance(data_info.get("input"), dict):
        input_scores = data_info["input"]
    if input_scores is not None:
        frames = next((e.get("frames") for _, e in evals if e.get("frames")), None)
        rows.append(
            {
                "entry": "input",
                "model": "",
                "tta": "",
                "psnr": _num(input_scores.get("psnr")),
                "ssim": _num(input_scores.get("ssim")),
                "ssim3d": _num(input_scores.get("ssim3d")),
                "gain_db": 0.0,
                "params": math.nan,
                "macs_g": math.nan,
                "seconds_per_frame": 0.0,
                "device": "",
                "settings": "blurry input" + (f", {frames} frames" if frames else ""),
            }
        )

    for path, ev in evals:
        model = str(ev.get("model", path.stem))
        modes = ev.get("tta")
        if not isinstance(modes, dict) or not modes:
            raise LeaderboardError(f"{path}: no 'tta' scores (expected an evaluate_model summary)")
        tr = train.get(model, {})
        for mode, row in modes.items():
            settings = " ".join(s for s in (_model_settings(tr), _tta_settings(mode, row, ev)) if s)
            rows.append(
                {
                    "entry": f"{model}/{mode}",
                    "model": model,
                    "tta": mode,
                    "psnr": _num(row.get("psnr")),
                    "ssim": _num(row.get("ssim")),
                    "ssim3d": _num(row.get("ssim3d")),
                    "gain_db": _num(row.get("gain_db")),
                    "params": _num(tr.get("params", ev.get("params"))),
                    "macs_g": _num(tr.get("macs_g_256", ev.get("macs_g_256"))),
                    "seconds_per_frame": _num(row.get("seconds_per_frame")),
                    "device": str(row.get("device", "")),
                    "settings": settings,
                }
            )

    if ens is not None:
        rows.extend(_ensemble_rows(ens, train))

    if not rows:
        raise LeaderboardError("nothing to rank: no evaluation, ensemble or input scores given")
    df = pd.DataFrame(rows)
    df["gain_ci_low"], df["gain_ci_high"] = math.nan, math.nan
    if per_frame is not None and "input" in per_frame:
        for i, entry in df["entry"].items():
            if entry != "input" and entry in per_frame:
                gain = paired_gain(per_frame["input"]["psnr"], per_frame[entry]["psnr"])
                df.loc[i, ["gain_ci_low", "gain_ci_high"]] = gain["ci_low"], gain["ci_high"]
    df = df.sort_values("psnr", ascending=False, kind="stable", na_position="last").reset_index(drop=True)
    df["rank"] = df["psnr"].rank(ascending=False, method="min").astype("Int64")
    df["pareto"] = pareto_front(df["seconds_per_frame"], df["psnr"])
    return df[COLUMNS]


def _ensemble_rows(ens: dict, train: dict) -> list[dict]:
    """The published ensemble (entry ``ensemble``) and, beside it, every other weighting scored (``ensemble/equal``)."""
    members = list(ens.get("members") or (ens.get("weights") or {}))
    member_params = [_num(train.get(m, {}).get("params")) for m in members]
    member_macs = [_num(train.get(m, {}).get("macs_g_256")) for m in members]
    published = ens.get("published", "fitted" if isinstance(ens.get("fit"), dict) else "weights")
    variants = ens.get("variants") if isinstance(ens.get("variants"), dict) else {published: ens}
    rows = []
    for name, var in variants.items():
        weights = var.get("weights") or ens.get("weights") or {}
        settings = f"{name} weights " + " ".join(f"{m}={float(w):.3f}" for m, w in weights.items())
        if name == "fitted" and isinstance(ens.get("fit"), dict):
            settings += f" (held-out {ens['fit'].get('heldout_gain_db', math.nan):+.3f} dB vs equal)"
        if ens.get("settings"):
            settings += f"; {ens['settings']}"
        is_published = name == published
        rows.append(
            {
                "entry": "ensemble" if is_published else f"ensemble/{name}",
                "model": "+".join(members),
                "tta": "ensemble",
                "psnr": _num(var.get("psnr")),
                "ssim": _num(var.get("ssim")),
                "ssim3d": _num(var.get("ssim3d")),
                "gain_db": _num(var.get("gain_db")),
                "params": float(sum(member_params)) if members else math.nan,
                "macs_g": float(sum(member_macs)) if members else math.nan,
                # Members with weight 0 need not run; the published runtime already says so.
                "seconds_per_frame": _num(ens.get("seconds_per_frame")) if is_published else math.nan,
                "device": str(ens.get("device", "")),
                "settings": settings + ("" if is_published else f" (scored only; {published} is submitted)"),
            }
        )
    return rows


def ablation_ladder(df: pd.DataFrame, per_frame: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """The paper's NTIRE ladder from a leaderboard: input -> best single model (no TTA) -> + x8 -> + crops -> ensemble.

    The single model is the one with the best plain (no-TTA) PSNR; steps whose rows do not exist are skipped.
    Columns: step, entry, psnr, ssim, delta_db (over the previous step), total_db (over the first), seconds_per_frame,
    and with ``per_frame`` the 95% interval of each step's paired per-frame gain (``ci_low``, ``ci_high``,
    ``significant``).
    """
    by_entry = df.set_index("entry")
    steps: list[tuple[str, str]] = []
    if "input" in by_entry.index:
        steps.append(("blurry input", "input"))
    singles = df[(df["model"] != "") & (df["tta"] != "ensemble")]
    plain = singles[singles["tta"] == "plain"]
    if len(plain):
        model = plain.sort_values("psnr", ascending=False, kind="stable")["model"].iloc[0]
    elif len(singles):
        model = singles.sort_values("psnr", ascending=False, kind="stable")["model"].iloc[0]
    else:
        model = None
    if model is not None:
        modes = set(singles.loc[singles["model"] == model, "tta"])
        if "plain" in modes:
            steps.append((f"{model} (no TTA)", f"{model}/plain"))
        if "x8" in modes:
            steps.append(("+ x8 flips/rotations", f"{model}/x8"))
        crops = "x8+crops" if "x8+crops" in modes else "crops" if "crops" in modes else None
        if crops:
            steps.append(("+ random crops", f"{model}/{crops}"))
    if "ensemble" in by_entry.index:
        steps.append(("+ ensemble", "ensemble"))
    rows = []
    for label, entry in steps:
        r = by_entry.loc[entry]
        rows.append(
            {
                "step": label,
                "entry": entry,
                "psnr": float(r["psnr"]),
                "ssim": float(r["ssim"]),
                "seconds_per_frame": float(r["seconds_per_frame"]),
            }
        )
    ladder = pd.DataFrame(rows, columns=["step", "entry", "psnr", "ssim", "seconds_per_frame"])
    ladder.insert(4, "delta_db", ladder["psnr"].diff().fillna(0.0))
    ladder.insert(5, "total_db", ladder["psnr"] - (ladder["psnr"].iloc[0] if len(ladder) else 0.0))
    ladder["ci_low"], ladder["ci_high"], ladder["significant"] = math.nan, math.nan, False
    if per_frame is not None:
        entries = list(ladder["entry"])
        for i in range(1, len(entries)):
            before, after = entries[i - 1], entries[i]
            if before in per_frame and after in per_frame:
                gain = paired_gain(per_frame[before]["psnr"], per_frame[after]["psnr"])
                ladder.loc[i, ["ci_low", "ci_high"]] = gain["ci_low"], gain["ci_high"]
                ladder.loc[i, "significant"] = gain["significant"]
    return ladder


def _pyplot():
    """matplotlib's pyplot on the non-interactive Agg backend (stages run headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    """Save a figure as PNG atomically and close it."""
    plt = _pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def _plot_ladder(ladder: pd.DataFrame, path: Path) -> None:
    """Bar chart of the ladder with each step's PSNR and gain, above the same numbers as a table."""
    plt = _pyplot()
    fig, (ax, tab) = plt.subplots(2, 1, figsize=(9, 6.5), gridspec_kw={"height_ratios": [3, 1.4]})
    if len(ladder):
        x = np.arange(len(ladder))
        lo, hi = ladder["psnr"].min(), ladder["psnr"].max()
        pad = max(0.25 * (hi - lo), 0.05)
        base = lo - pad
        ax.bar(x, ladder["psnr"] - base, bottom=base, color="tab:blue", alpha=0.8)
        ax.step(x, ladder["psnr"], where="mid", color="k", lw=0.8)
        has_ci = "ci_low" in ladder and ladder["ci_low"].notna().any()
        for i, r in ladder.iterrows():
            note = f"{r['psnr']:.2f} dB" + (f"\n{r['delta_db']:+.3f}" if i else "")
            top = r["psnr"]
            if i and has_ci and np.isfinite(r["ci_low"]):
                prev = ladder["psnr"].iloc[i - 1]  # the step's 95% interval, drawn from the previous step's level
                c_lo, c_hi = prev + r["ci_low"], prev + r["ci_high"]
                ax.errorbar(
                    i, r["psnr"], yerr=[[r["psnr"] - c_lo], [c_hi - r["psnr"]]], fmt="none", ecolor="k", capsize=5
                )
                note += f"\n[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]" + ("" if r["significant"] else "\nn.s.")
                top = max(top, c_hi)
            ax.text(i, top + pad * 0.08, note, ha="center", va="bottom", fontsize=8)
        top = max(hi, float((ladder["psnr"].shift(1) + ladder["ci_high"]).max(skipna=True) or hi)) if has_ci else hi
        bottom = min(lo, float((ladder["psnr"].shift(1) + ladder["ci_low"]).min(skipna=True) or lo)) if has_ci else lo
        ax.set_ylim(bottom - pad, top + 3 * pad)
        ax.set_xticks(x, ladder["step"], rotation=10, fontsize=9)
        cells = [
            [
                r["step"],
                f"{r['psnr']:.3f}",
                f"{r['ssim']:.4f}",
                f"{r['delta_db']:+.3f}",
                ""
                if not np.isfinite(r.get("ci_low", math.nan))
                else f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]" + ("" if r["significant"] else " n.s."),
                f"{r['total_db']:+.3f}",
                f"{r['seconds_per_frame']:.3g}",
            ]
            for _, r in ladder.iterrows()
        ]
        labels = ["Method", "PSNR", "SSIM", "step dB", "step 95% CI", "total dB", "s / frame"]
        table = tab.table(cells, colLabels=labels, loc="center")
        table.auto_set_font_size(False)
        table.set_fontsize(8)
    ax.set_ylabel("PSNR (dB), val-300")
    ax.set_title("Ablation ladder (as in the HINet NTIRE 2021 table); bars: 95% CI of each step's paired gain")
    tab.axis("off")
    _save(fig, path)


def _plot_pareto(df: pd.DataFrame, path: Path) -> None:
    """PSNR against runtime per frame for every row; the Pareto front joined and labelled; log-x when spread."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    d = df[np.isfinite(df["seconds_per_frame"]) & np.isfinite(df["psnr"])].copy()
    positive = d.loc[d["seconds_per_frame"] > 0, "seconds_per_frame"]
    log_x = len(positive) > 1 and positive.max() / positive.min() > 10
    floor = positive.min() / 3 if len(positive) else 1e-3
    d["x"] = d["seconds_per_frame"].where(~log_x | (d["seconds_per_frame"] > 0), floor)
    rest = d[~d["pareto"]]
    ax.scatter(rest["x"], rest["psnr"], c="0.6", label="dominated")
    front = d[d["pareto"]].sort_values("x")
    ax.plot(front["x"], front["psnr"], "o-", c="tab:red", drawstyle="steps-post", label="Pareto front")
    for _, r in d.iterrows():
        label = r["entry"] + (" (0 s)" if r["seconds_per_frame"] == 0 and log_x else "")
        ax.annotate(
            label,
            (r["x"], r["psnr"]),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=7,
            color="tab:red" if r["pareto"] else "0.35",
        )
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel("runtime per frame (s)" + (", log scale" if log_x else ""))
    ax.set_ylabel("PSNR (dB), val-300")
    ax.set_title("Quality against cost: settings on the red front are worth their runtime")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    _save(fig, path)


def _fmt(v, spec: str) -> str:
    return "" if v is None or not np.isfinite(v) else format(v, spec)


def _markdown(df: pd.DataFrame, steps: pd.DataFrame | None = None, spreads: dict | None = None) -> str:
    """The leaderboard as Markdown with readable number formats, then the paired steps and the seed spread."""
    show = df.copy()
    show["psnr"] = show["psnr"].map(lambda v: f"{v:.3f}")
    show["ssim"] = show["ssim"].map(lambda v: f"{v:.4f}")
    show["ssim3d"] = show["ssim3d"].map(lambda v: _fmt(v, ".4f"))
    show["gain_db"] = show["gain_db"].map(lambda v: f"{v:+.3f}")
    bounds = zip(df["gain_ci_low"], df["gain_ci_high"], strict=True)
    show["gain_ci_low"] = ["" if not np.isfinite(lo) else f"[{lo:+.3f}, {hi:+.3f}]" for lo, hi in bounds]
    show = show.drop(columns=["gain_ci_high"])
    show["params"] = show["params"].map(lambda v: "" if not np.isfinite(v) else f"{int(v):,}")
    show["macs_g"] = show["macs_g"].map(lambda v: "" if not np.isfinite(v) else f"{v:.2f}")
    show["seconds_per_frame"] = show["seconds_per_frame"].map(lambda v: "" if not np.isfinite(v) else f"{v:.4g}")
    show["pareto"] = show["pareto"].map(lambda v: "*" if v else "")
    show = show.rename(
        columns={
            "macs_g": "GMACs@256",
            "seconds_per_frame": "s/frame",
            "gain_db": "gain dB",
            "gain_ci_low": "gain 95% CI",
            "ssim3d": "SSIM3D",
        }
    )
    numeric = {"rank", "psnr", "ssim", "SSIM3D", "gain dB", "params", "GMACs@256", "s/frame"}
    align = ["right" if c in numeric else "left" for c in show.columns]
    table = show.to_markdown(index=False, disable_numparse=True, colalign=align)
    text = f"# Leaderboard (val-300)\n\n{table}\n\n{SSIM_NOTE} `pareto` *: on the Pareto front.\n"
    if steps is not None and len(steps):
        st = steps.copy()
        st["gain_db"] = st["gain_db"].map(lambda v: f"{v:+.4f}")
        st["95% CI"] = [f"[{lo:+.4f}, {hi:+.4f}]" for lo, hi in zip(steps["ci_low"], steps["ci_high"], strict=True)]
        st["significant"] = st["significant"].map(lambda v: "yes" if v else "not significant")
        st = st[["step", "model", "before", "after", "gain_db", "95% CI", "frames", "significant"]]
        text += (
            "\n## Every step, paired per frame\n\nGain of `after` over `before` on the same val-300 frames: mean, 95% "
            "bootstrap interval (10,000 resamples, fixed seed) and whether the interval excludes zero.\n\n"
            + st.to_markdown(index=False, disable_numparse=True)
            + "\n"
        )
    if spreads:
        sp = pd.DataFrame([{"tta": mode, **v} for mode, v in spreads.items()])
        text += (
            "\n## Seed spread of the members\n\nMean val-300 PSNR of the members (same recipe, different seeds).\n\n"
            + sp.to_markdown(index=False, floatfmt=".4f")
            + "\n"
        )
    return text


def write_leaderboard(
    df: pd.DataFrame,
    out_dir: str | Path,
    *,
    steps: pd.DataFrame | None = None,
    spreads: dict | None = None,
    per_frame: dict[str, pd.DataFrame] | None = None,
) -> dict[str, Path]:
    """Write leaderboard.csv/.md/.json, ladder_steps.csv, ablation_ladder.png and pareto.png, each atomically.

    ``steps`` (:func:`pipeline.ladder.step_table`) and ``spreads`` (:func:`pipeline.ladder.seed_spreads`) add the
    paired statistics; ``per_frame`` adds the intervals to the ablation-ladder chart.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        k: out / n
        for k, n in [
            ("csv", "leaderboard.csv"),
            ("md", "leaderboard.md"),
            ("json", "leaderboard.json"),
            ("steps", "ladder_steps.csv"),
            ("ladder", "ablation_ladder.png"),
            ("pareto", "pareto.png"),
        ]
    }
    with atomic_path(paths["csv"]) as tmp:
        df.to_csv(tmp, index=False)
    steps = steps if steps is not None else pd.DataFrame(columns=STEP_COLUMNS)
    with atomic_path(paths["steps"]) as tmp:
        steps.to_csv(tmp, index=False)
    write_text(paths["md"], _markdown(df, steps, spreads))
    ladder = ablation_ladder(df, per_frame)
    _plot_ladder(ladder, paths["ladder"])
    _plot_pareto(df, paths["pareto"])

    def first(mask) -> pd.Series | None:
        sub = df[mask].dropna(subset=["psnr"])
        return sub.iloc[0] if len(sub) else None

    best = first(df["entry"] != "input")
    single = first((df["model"] != "") & (df["tta"] != "ensemble"))
    ens = first(df["entry"] == "ensemble")
    inp = first(df["entry"] == "input")
    summary = {
        "best_entry": None if best is None else best["entry"],
        "best_psnr": None if best is None else round(float(best["psnr"]), 4),
        "best_single_entry": None if single is None else single["entry"],
        "best_single_psnr": None if single is None else round(float(single["psnr"]), 4),
        "ensemble_psnr": None if ens is None else round(float(ens["psnr"]), 4),
        "input_psnr": None if inp is None else round(float(inp["psnr"]), 4),
        "n_rows": len(df),
    }
    if len(steps):
        summary["steps"] = {
            f"{r['model'] or 'ensemble'}: {r['step']}": {
                "gain_db": round(float(r["gain_db"]), 4),
                "ci_low": round(float(r["ci_low"]), 4),
                "ci_high": round(float(r["ci_high"]), 4),
                "significant": bool(r["significant"]),
            }
            for _, r in steps.iterrows()
        }
    if spreads:
        summary["seed_spread"] = {mode: {k: round(v, 4) for k, v in sp.items()} for mode, sp in spreads.items()}
    write_json(paths["json"], summary)
    return paths


# ---------------------------------------------------------------------------------------------------------------------
# Merging the leaderboards of all DVC experiments


def _flatten(obj, prefix: str = "") -> dict:
    """Flatten nested dicts to dotted keys; lists become JSON text so they compare and display as one value."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    if isinstance(obj, list):
        return {prefix[:-1]: json.dumps(obj)}
    return {prefix[:-1]: obj}


def _records(exp_show) -> list[dict]:
    """Flatten ``dvc exp show --json`` (DVC 3.x: a list of workspace/baseline records with nested experiments)."""
    if isinstance(exp_show, dict):
        exp_show = [exp_show]
    if not isinstance(exp_show, list):
        raise LeaderboardError("dvc exp show --json: expected a list of records")
    out = []
    for top in exp_show:
        if not isinstance(top, dict) or "rev" not in top:
            raise LeaderboardError(f"dvc exp show --json: unexpected record {str(top)[:80]!r}")
        baseline = top.get("name") or top["rev"][:7]
        kind = "workspace" if top["rev"] == "workspace" else "baseline"
        out.append({"record": top, "baseline": baseline, "kind": kind})
        for group in top.get("experiments") or []:
            for rec in group.get("revs") or []:
                out.append({"record": rec, "baseline": baseline, "kind": "experiment", "group": group.get("name")})
    return out


def _metric_rows(metrics: dict) -> list[dict]:
    """Leaderboard rows (input, model x mode, ensemble) found in one experiment's metrics files."""
    rows, input_row = [], None
    for path, payload in metrics.items():
        data = (payload or {}).get("data")
        if not isinstance(data, dict):
            continue
        stem = Path(path).stem
        modes = data.get("tta")
        if isinstance(modes, dict) and any(isinstance(v, dict) and "psnr" in v for v in modes.values()):
            model = str(data.get("model", stem))
            for mode, r in modes.items():
                if isinstance(r, dict) and "psnr" in r:
                    rows.append({"entry": f"{model}/{mode}", "model": model, "tta": mode, **_pick(r)})
            if input_row is None and isinstance(data.get("input"), dict):
                input_row = {
                    "entry": "input",
                    "model": "",
                    "tta": "",
                    **_pick(data["input"]),
                    "gain_db": 0.0,
                    "seconds_per_frame": 0.0,
                }
        elif "psnr" in data and (stem == "ensemble" or "best_member_psnr" in data):
            weights = data.get("weights") if isinstance(data.get("weights"), dict) else {}
            rows.append({"entry": "ensemble", "model": "+".join(weights), "tta": "ensemble", **_pick(data)})
    return ([input_row] if input_row else []) + rows


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
    for item in _records(exp_show_json):
        rec = item["record"]
        data = rec.get("data") or {}
        params = {}
        for file, payload in (data.get("params") or {}).items():
            flat = _flatten((payload or {}).get("data") or {})
            params.update(flat if file == "params.yaml" else {f"{file}:{k}": v for k, v in flat.items()})
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
    base = ["experiment", "rev", "baseline", "kind", "entry", "model", "tta", "psnr", "ssim", "gain_db"]
    cols = base + ["seconds_per_frame", "device", *differing]
    df = pd.DataFrame(out, columns=cols)
    return df.sort_values("psnr", ascending=False, kind="stable", na_position="last").reset_index(drop=True)


def pivot_psnr(merged: pd.DataFrame) -> pd.DataFrame:
    """Wide view of :func:`merge_experiments`: one row per experiment, one PSNR column per entry, best first."""
    wide = merged.pivot_table(index="experiment", columns="entry", values="psnr", aggfunc="first", sort=False)
    order = ["input"] + sorted(c for c in wide.columns if c not in ("input", "ensemble")) + ["ensemble"]
    wide = wide[[c for c in order if c in wide.columns]]
    return wide.loc[wide.max(axis=1).sort_values(ascending=False, kind="stable").index]


@reports_user_errors
def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``merge [--json FILE] [--out FILE.csv]`` prints the cross-experiment table (and writes it as CSV)."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.leaderboard", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    merge = sub.add_parser("merge", help="merge the leaderboards of all DVC experiments into one table")
    merge.add_argument("--json", type=Path, help="read this saved `dvc exp show --json` output instead of running dvc")
    merge.add_argument("--out", type=Path, help="also write the table to this CSV file")
    merge.add_argument("--wide", action="store_true", help="print PSNR as one row per experiment, one column per entry")
    args = parser.parse_args(argv)

    if args.json:
        try:
            raw = json.loads(args.json.read_text())
        except FileNotFoundError:
            parser.error(f"{args.json}: file not found")
        except json.JSONDecodeError as exc:
            parser.error(f"{args.json}: not valid JSON: {exc}")
    else:
        proc = subprocess.run(["dvc", "exp", "show", "--json"], capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"`dvc exp show --json` failed:\n{proc.stderr.strip()}", file=sys.stderr)
            return 1
        raw = json.loads(proc.stdout)
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


if __name__ == "__main__":
    sys.exit(main())
