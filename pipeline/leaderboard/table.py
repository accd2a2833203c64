"""The val-300 leaderboard table: one pandas row per scored thing, its cost, its paired interval, and its files.

Rows are the blurry input, the pretrained base (``base/plain``), each model under each TTA mode and the ensemble;
columns are PSNR, SSIM (per-channel Gaussian, the BasicSR / scikit-image convention), gain over the input with its 95%
interval, parameters, GMACs at 256x256, runtime per frame, device and the settings that produced the row. Every number
is read from what an earlier stage wrote: input scores from the data stage, model facts from the training metrics (the
base's from its provenance), scores from ``evaluate`` (the base's from ``evaluate_base``) and ``ensemble``. The steps
between rows (the step table and the paper's ablation ladder) are :mod:`pipeline.leaderboard.ladder`'s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config import CropsConfig
from pipeline.errors import PipelineError
from pipeline.evaluate import rounded_scores
from pipeline.fileio import atomic_path, read_json, write_json, write_text
from pipeline.layout import BASE
from pipeline.leaderboard.charts import plot_ladder, plot_pareto
from pipeline.leaderboard.ladder import BASE_ENTRY, STEP_COLUMNS, ablation_ladder
from pipeline.leaderboard.stats import paired_gain
from pipeline.records import DataRecord, EnsembleRecord, EvalRecord, ModeScores
from pipeline.tasks import TASKS

__all__ = [
    "COLUMNS",
    "LeaderboardError",
    "build_leaderboard",
    "pareto_front",
    "per_test_set_table",
    "write_leaderboard",
]

COLUMNS = [
    "rank",
    "task",
    "test_set",
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
    "paper's tables); PSNR on 8-bit RGB, no crop. gain CI: 95% cluster-bootstrap interval of the paired per-frame "
    "gain over the input (whole sequences resampled, not frames: frames of one sequence are correlated)."
)


class LeaderboardError(PipelineError):
    """A metrics file or experiment record cannot be read into the leaderboard; the message names it."""


def _test_set_label(task: str, row: ModeScores | None = None) -> str:
    """What a row's scores average: the task's one test set (``pipeline.tasks``), or ``all N sets`` for a task that
    reports several (Rain13K; each set's scores are in ``leaderboard_test_sets.csv``)."""
    sets = row.test_sets if row is not None else None
    if sets and len(sets) > 1:
        return f"all {len(sets)} sets"
    if sets:
        return next(iter(sets))
    name = task.split("/")[0]
    known = TASKS[name].test_set_names if name in TASKS else ("val300",)
    return known[0] if len(known) == 1 else f"all {len(known)} sets"


def per_test_set_table(eval_jsons: Sequence[str | Path]) -> pd.DataFrame:
    """Per test set of a task that reports several (Rain13K): one row per entry x set (its means and frames) plus the
    task's reported average; empty for single-set tasks."""
    rows = []
    for p in eval_jsons:
        ev = EvalRecord.read(p, error=LeaderboardError)
        for mode, row in ev.tta.items():
            entry = f"{ev.model}/{mode}"
            for name, sc in (row.test_sets or {}).items():
                rows.append({"entry": entry, "test_set": name, **sc.to_json()})
            if row.test_sets and row.reported is not None:
                rep = row.reported
                scores = {"psnr": rep.psnr, "ssim": rep.ssim, "ssim3d": rep.ssim3d}
                rows.append({"entry": entry, "test_set": f"reported ({rep.average})", **scores})
    return pd.DataFrame(rows, columns=["entry", "test_set", "psnr", "ssim", "ssim3d", "frames"])


def _read_json(path: str | Path) -> dict:
    """Read one training metrics JSON object, naming the file on any problem."""
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


def _tta_settings(mode: str, row: ModeScores, crops: CropsConfig | None) -> str:
    """Short description of a TTA mode: the runtime's own description, the crops (``tta.crops``), precision."""
    parts = [f"tta={mode}"]
    if row.settings and row.settings != mode:
        parts.append(f"({row.settings})")
    if "crops" in mode and crops is not None and "n=" not in row.settings:
        parts.append(f"crops n={crops.n} side={crops.side}")
    if row.precision:
        parts.append(row.precision)
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
    *,
    data_json: str | Path | None,
    eval_jsons: Sequence[str | Path],
    train_jsons: Sequence[str | Path],
    ensemble_json: str | Path | None = None,
    crops: CropsConfig | None = None,
    per_frame: dict[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """One row per scored thing (input, base, model x TTA mode, ensemble), sorted by PSNR with rank and Pareto columns.

    Each fact is read from the stage that made it: the input row from the data stage's ``data_json`` (its ``input``
    means; no input row without it), model facts (``params``, ``macs_g_256``, ``variant``, ``steps``...) from the
    training metrics ``train_jsons`` (NaN when absent), scores from the :func:`pipeline.evaluate.evaluate_model`
    summaries ``eval_jsons`` (the base's among them: ``metrics/eval/base.json``, its model facts from
    ``pretrained/base.json`` among ``train_jsons``) and the :func:`pipeline.ensemble.run_ensemble` summary
    ``ensemble_json``. ``crops`` (``tta.crops``) describes the crop modes. ``per_frame`` (entry -> per-frame scores,
    :func:`pipeline.leaderboard.ladder.read_per_frame`) adds each row's 95% interval of its paired gain over the input
    (``gain_ci_low`` / ``gain_ci_high``, sequences resampled); NaN without it.
    """
    train = {}
    for path in train_jsons:
        data = _read_json(path)
        train[str(data.get("model", Path(path).stem))] = data
    evals = [(Path(p), EvalRecord.read(p, error=LeaderboardError)) for p in eval_jsons]
    ens = EnsembleRecord.read(ensemble_json, error=LeaderboardError) if ensemble_json else None

    rows = []
    task = ""
    if data_json is not None:
        stats = DataRecord.read(data_json, error=LeaderboardError)
        task = stats.label
        shown = rounded_scores(stats.input.to_json())
        rows.append(
            {
                "entry": "input",
                "model": "",
                "tta": "",
                "psnr": shown["psnr"],
                "ssim": shown["ssim"],
                "ssim3d": shown["ssim3d"],
                "gain_db": 0.0,
                "params": math.nan,
                "macs_g": math.nan,
                "seconds_per_frame": 0.0,
                "device": "",
                "settings": f"blurry input, {stats.input.frames} frames",
            }
        )

    scored_tasks = {ev.task for _, ev in evals}
    if len(scored_tasks) > 1:
        listed = ", ".join(f"{p} ({ev.task})" for p, ev in evals)
        raise LeaderboardError(f"evaluations of several tasks {sorted(scored_tasks)} in one ranking: {listed}")
    for path, ev in evals:
        if not ev.tta:
            raise LeaderboardError(f"{path}: no 'tta' scores (expected an evaluate_model summary)")
        tr = train.get(ev.model, {})
        for mode, row in ev.tta.items():
            settings = " ".join(s for s in (_model_settings(tr), _tta_settings(mode, row, crops)) if s)
            rows.append(
                {
                    "test_set": _test_set_label(task or ev.task, row),
                    "entry": f"{ev.model}/{mode}",
                    "model": ev.model,
                    "tta": mode,
                    "psnr": row.psnr,
                    "ssim": row.ssim,
                    "ssim3d": row.ssim3d,
                    "gain_db": row.gain_db,
                    "params": _num(tr.get("params")),
                    "macs_g": _num(tr.get("macs_g_256")),
                    "seconds_per_frame": row.seconds_per_frame,
                    "device": row.device,
                    "settings": settings,
                }
            )

    if ens is not None:
        rows.extend(_ensemble_rows(ens, train))

    if not rows:
        raise LeaderboardError("nothing to rank: no evaluation, ensemble or input scores given")
    df = pd.DataFrame(rows)
    df["task"] = task = task or next(iter(scored_tasks), "reds")
    if "test_set" not in df:
        df["test_set"] = math.nan
    df["test_set"] = df["test_set"].fillna(_test_set_label(task))
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


def _ensemble_rows(ens: EnsembleRecord, train: dict) -> list[dict]:
    """The published ensemble (entry ``ensemble``) and, beside it, every other weighting scored (``ensemble/equal``)."""
    member_params = [_num(train.get(m, {}).get("params")) for m in ens.members]
    member_macs = [_num(train.get(m, {}).get("macs_g_256")) for m in ens.members]
    rows = []
    for name, var in ens.variants.items():
        settings = f"{name} weights " + " ".join(f"{m}={w:.3f}" for m, w in var.weights.items())
        if name == "fitted" and ens.fit is not None:
            settings += f" (held-out {ens.fit.heldout_gain_db:+.3f} dB vs equal)"
        if ens.settings:
            settings += f"; {ens.settings}"
        is_published = name == ens.published
        rows.append(
            {
                "entry": "ensemble" if is_published else f"ensemble/{name}",
                "model": "+".join(ens.members),
                "tta": "ensemble",
                "psnr": var.psnr,
                "ssim": var.ssim,
                "ssim3d": var.ssim3d,
                "gain_db": var.gain_db,
                "params": float(sum(member_params)) if ens.members else math.nan,
                "macs_g": float(sum(member_macs)) if ens.members else math.nan,
                # Members with weight 0 need not run; the published runtime already says so.
                "seconds_per_frame": ens.seconds_per_frame if is_published else math.nan,
                "device": ens.device,
                "settings": settings + ("" if is_published else f" (scored only; {ens.published} is submitted)"),
            }
        )
    return rows


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
    scope = ", ".join(dict.fromkeys([*df.get("task", []), *df.get("test_set", [])])) or "val-300"
    text = f"# Leaderboard ({scope})\n\n{table}\n\n{SSIM_NOTE} `pareto` *: on the Pareto front.\n"
    if steps is not None and len(steps):
        st = steps.copy()
        st["gain_db"] = st["gain_db"].map(lambda v: f"{v:+.4f}")
        st["95% CI"] = [f"[{lo:+.4f}, {hi:+.4f}]" for lo, hi in zip(steps["ci_low"], steps["ci_high"], strict=True)]
        st["significant"] = st["significant"].map(lambda v: "yes" if v else "not significant")
        st = st[["step", "model", "before", "after", "gain_db", "95% CI", "frames", "clusters", "significant"]]
        text += (
            "\n## Every step, paired per frame\n\nGain of `after` over `before` on the same val-300 frames: mean, 95% "
            "cluster-bootstrap interval (whole sequences resampled, not frames, since frames of one sequence are "
            "correlated; 10,000 resamples, fixed seed) and whether the interval excludes zero. `clusters`: the "
            "sequences.\n\n" + st.to_markdown(index=False, disable_numparse=True) + "\n"
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
    per_source: pd.DataFrame | None = None,
    test_sets: pd.DataFrame | None = None,
) -> dict[str, Path]:
    """Write leaderboard.csv/.md/.json, ladder_steps.csv, ablation_ladder.png and pareto.png, each atomically.

    ``test_sets`` (:func:`per_test_set_table`, non-empty for a task that reports several sets) adds
    ``leaderboard_test_sets.csv`` and its Markdown section.
    ``steps`` (:func:`.ladder.step_table`) and ``spreads`` (:func:`.ladder.seed_spreads`) add the
    paired statistics; ``per_frame`` adds the intervals to the ablation-ladder chart; ``per_source``
    (:func:`pipeline.leaderboard.sources.per_source_table`) adds ``per_source.csv`` and its Markdown section.
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
    text = _markdown(df, steps, spreads)
    if per_source is not None:
        paths["per_source"] = out / "per_source.csv"
        with atomic_path(paths["per_source"]) as tmp:
            per_source.to_csv(tmp, index=False)
        text += (
            "\n## By source photo\n\nPer photo of val-300: its frames, the blurry input's PSNR, and per entry the mean "
            "gain over the input (dB) and the frames below the input.\n\n"
            + per_source.to_markdown(index=False, floatfmt="+.3f")
            + "\n"
        )
    if test_sets is not None and len(test_sets):
        paths["test_sets"] = out / "leaderboard_test_sets.csv"
        with atomic_path(paths["test_sets"]) as tmp:
            test_sets.to_csv(tmp, index=False)
        text += (
            "\n## By test set\n\nEach entry's means per test set and the average the task reports (its paper's "
            "row).\n\n" + test_sets.to_markdown(index=False, floatfmt=".4f") + "\n"
        )
    write_text(paths["md"], text)
    ladder = ablation_ladder(df, per_frame)
    plot_ladder(ladder, paths["ladder"])
    plot_pareto(df, paths["pareto"])

    def first(mask) -> pd.Series | None:
        sub = df[mask].dropna(subset=["psnr"])
        return sub.iloc[0] if len(sub) else None

    best = first(df["entry"] != "input")
    single = first((df["model"] != "") & (df["model"] != BASE) & (df["tta"] != "ensemble"))
    ens = first(df["entry"] == "ensemble")
    base = first(df["entry"] == BASE_ENTRY)
    inp = first(df["entry"] == "input")
    summary = {
        "best_entry": None if best is None else best["entry"],
        "best_psnr": None if best is None else round(float(best["psnr"]), 4),
        "best_single_entry": None if single is None else single["entry"],
        "best_single_psnr": None if single is None else round(float(single["psnr"]), 4),
        "ensemble_psnr": None if ens is None else round(float(ens["psnr"]), 4),
        "base_psnr": None if base is None else round(float(base["psnr"]), 4),
        "input_psnr": None if inp is None else round(float(inp["psnr"]), 4),
        "n_rows": len(df),
        "task": str(df["task"].iloc[0]) if "task" in df and len(df) else None,
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
