"""The leaderboard's charts: the ablation ladder (as in the HINet NTIRE table) and PSNR against runtime (Pareto)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.figures import pyplot, save_figure

__all__ = ["plot_ladder", "plot_pareto"]


def plot_ladder(ladder: pd.DataFrame, path: Path) -> None:
    """Bar chart of the ladder with each step's PSNR and gain, above the same numbers as a table."""
    plt = pyplot()
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
                # Drawn about its own middle: the row's PSNR comes from the eval records and the interval from the
                # per-frame scores, so a tight interval (every sequence gaining alike) can sit a rounding off it.
                ax.errorbar(i, (c_lo + c_hi) / 2, yerr=(c_hi - c_lo) / 2, fmt="none", ecolor="k", capsize=5)
                note += f"\n[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]" + ("" if r["significant"] else "\nn.s.")
                top = max(top, c_hi)
            ax.text(i, top + pad * 0.08, note, ha="center", va="bottom", fontsize=8)
        top = max(hi, float((ladder["psnr"].shift(1) + ladder["ci_high"]).max(skipna=True) or hi)) if has_ci else hi
        bottom = min(lo, float((ladder["psnr"].shift(1) + ladder["ci_low"]).min(skipna=True) or lo)) if has_ci else lo
        # Headroom for the up-to-four-line notes above the highest bar or interval (a third of the span).
        ax.set_ylim(bottom - pad, top + 3 * pad + 0.35 * (top - bottom))
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
        widths = [0.2, 0.1, 0.1, 0.1, 0.22, 0.1, 0.1]  # the interval column holds "[-0.770, +0.618] n.s."
        table = tab.table(cells, colLabels=labels, colWidths=widths, loc="center")
        table.auto_set_font_size(False)
        table.set_fontsize(8)
    ax.set_ylabel("PSNR (dB), val-300")
    ax.set_title(
        "Ablation ladder (as in the HINet NTIRE 2021 table); bars: 95% CI of each step's paired gain (sequences "
        "resampled)",
        fontsize=10,
    )
    tab.axis("off")
    save_figure(fig, path)


def plot_pareto(df: pd.DataFrame, path: Path) -> None:
    """PSNR against runtime per frame for every row; the Pareto front joined and labelled; log-x when spread."""
    plt = pyplot()
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
    save_figure(fig, path)
