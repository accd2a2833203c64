"""The HINet ladder with honest statistics: every step as a paired per-frame gain with a cluster-bootstrap interval.

One pairing (:func:`paired_steps`: the gain of ``after`` over ``before`` on the same val-300 frames, whole sequences
resampled by :func:`pipeline.leaderboard.stats.paired_gain`) serves two views of the steps:

- :func:`step_table` (``ladder_steps.csv``, the Markdown and JSON): every step. Blurry input -> the pretrained base
  (``base/plain``); per member: the base -> its plain mode (what fine-tuning gained), then blurry input -> plain -> x8
  -> x8+crops (the ``tta.ladder`` order); then each member's submit mode -> the ensemble, and every other weighting ->
  the published ensemble.
- :func:`ablation_ladder` (``ablation_ladder.png``): the paper's NTIRE ladder, one chain through the leaderboard's
  rows (input -> base -> best member -> + x8 -> + crops -> ensemble), each step with the same interval.

Inputs are the per-frame CSVs written by ``evaluate`` (members and base) and ``ensemble`` (:func:`read_per_frame`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from pipeline.fileio import read_table
from pipeline.layout import BASE, BASE_MODE, Layout
from pipeline.leaderboard.stats import paired_gain, seed_spread

__all__ = [
    "BASE_ENTRY",
    "STEP_COLUMNS",
    "ablation_ladder",
    "ensemble_csvs",
    "paired_steps",
    "read_per_frame",
    "seed_spreads",
    "step_table",
]

STEP_COLUMNS = ["step", "model", "before", "after", "gain_db", "ci_low", "ci_high", "frames", "clusters", "significant"]
BASE_ENTRY = f"{BASE}/{BASE_MODE}"  # the pretrained base's leaderboard entry, ``base/plain``


def ensemble_csvs(per_image_csv: str | Path) -> dict[str, Path]:
    """Entry -> per-frame CSV of the ensemble: ``ensemble`` (published) and ``ensemble/<variant>`` beside it."""
    path = Path(per_image_csv)
    out = {"ensemble": path}
    for other in sorted(path.parent.glob(f"{path.stem}_*{path.suffix}")):
        out[f"ensemble/{other.stem[len(path.stem) + 1 :]}"] = other
    return out


def read_per_frame(
    layout: Layout,
    models: Sequence[str],
    modes: Sequence[str],
    *,
    with_ensemble: bool = True,
    with_base: bool = True,
) -> dict[str, pd.DataFrame]:
    """Per-frame scores by leaderboard entry (``input``, ``<model>/<mode>``, ``base/plain``, ``ensemble``...),
    indexed by frame name.

    Reads ``layout.eval_csv(model, mode)`` (written by ``evaluate``; its ``input_psnr`` column gives the input row),
    (``with_base``) the base's ``layout.eval_csv(BASE, BASE_MODE)`` (``evaluate_base``) and (``with_ensemble``) the
    ensemble CSVs. Missing files are errors naming the file: the leaderboard never silently drops a row.
    """
    out: dict[str, pd.DataFrame] = {}
    runs = [(model, mode) for model in models for mode in modes] + ([(BASE, BASE_MODE)] if with_base else [])
    for model, mode in runs:
        path = layout.eval_csv(model, mode)
        table = read_table(path, ("name", "psnr", "input_psnr"), "per-frame scores").set_index("name")
        out[f"{model}/{mode}"] = table
        if "input" not in out:
            out["input"] = table[["input_psnr"]].rename(columns={"input_psnr": "psnr"})
    if with_ensemble:
        for entry, path in ensemble_csvs(layout.ensemble_eval_csv).items():
            out[entry] = read_table(path, ("name", "psnr"), "per-frame scores").set_index("name")
    return out


def _short(entry: str) -> str:
    """``wd_s1/x8`` -> ``x8``; ``ensemble/equal`` -> ``ensemble (equal)``; others unchanged."""
    head, _, tail = entry.partition("/")
    if not tail:
        return entry
    return f"ensemble ({tail})" if head == "ensemble" else tail


def paired_steps(
    per_frame: dict[str, pd.DataFrame], steps: Iterable[tuple[str, str, str, str]], *, seed: int = 0
) -> pd.DataFrame:
    """Each ``(label, model, before, after)`` step as the paired per-frame PSNR gain of entry ``after`` over entry
    ``before`` with its 95% cluster-bootstrap interval: one row per step, columns ``STEP_COLUMNS``."""
    rows = [
        {
            "step": label,
            "model": model,
            "before": before,
            "after": after,
            **paired_gain(per_frame[before]["psnr"], per_frame[after]["psnr"], seed=seed),
        }
        for label, model, before, after in steps
    ]
    return pd.DataFrame(rows, columns=STEP_COLUMNS)


def step_table(
    per_frame: dict[str, pd.DataFrame],
    models: Sequence[str],
    ladder: Sequence[str],
    submit: str | None = None,
    *,
    seed: int = 0,
) -> pd.DataFrame:
    """Every step of the ladder as a paired gain with its 95% cluster-bootstrap interval (columns ``STEP_COLUMNS``).

    With the base's scores in ``per_frame`` (``base/plain``): first ``input -> base/plain`` (model ``base``), and for
    each member whose plain mode is scored, ``base/plain -> plain`` (fine-tuning) before its TTA chain.
    """
    steps = []
    if BASE_ENTRY in per_frame and "input" in per_frame:
        steps.append((f"input -> {BASE_ENTRY}", BASE, "input", BASE_ENTRY))
    for model in models:
        if BASE_ENTRY in per_frame and f"{model}/{BASE_MODE}" in per_frame:
            after = f"{model}/{BASE_MODE}"
            steps.append((f"{BASE_ENTRY} -> {_short(after)}", model, BASE_ENTRY, after))
        chain = ["input", *(f"{model}/{mode}" for mode in ladder)]
        for before, after in zip(chain, chain[1:], strict=False):
            steps.append((f"{_short(before)} -> {_short(after)}", model, before, after))
    if "ensemble" in per_frame and submit is not None:
        for model in models:
            steps.append((f"{submit} -> ensemble", model, f"{model}/{submit}", "ensemble"))
        for entry in per_frame:
            if entry.startswith("ensemble/"):
                steps.append((f"{_short(entry)} -> ensemble", "", entry, "ensemble"))
    return paired_steps(per_frame, steps, seed=seed)


def seed_spreads(per_frame: dict[str, pd.DataFrame], models: Sequence[str], modes: Sequence[str]) -> dict[str, dict]:
    """Per TTA mode, the spread of the members' mean PSNR (they differ by seed only)."""
    return {
        mode: seed_spread({m: float(per_frame[f"{m}/{mode}"]["psnr"].mean()) for m in models})
        for mode in modes
        if all(f"{m}/{mode}" in per_frame for m in models)
    }


def ablation_ladder(df: pd.DataFrame, per_frame: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """The paper's NTIRE ladder from a leaderboard: input -> pretrained base (no TTA) -> best single model (no TTA) ->
    + x8 -> + crops -> ensemble.

    The single model is the member with the best plain (no-TTA) PSNR (never the base: the members are fine-tuned from
    it); steps whose rows do not exist are skipped.
    Columns: step, entry, psnr, ssim, delta_db (over the previous step), total_db (over the first), seconds_per_frame,
    and with ``per_frame`` the 95% interval of each step's paired per-frame gain (``ci_low``, ``ci_high``,
    ``significant``).
    """
    by_entry = df.set_index("entry")
    steps: list[tuple[str, str]] = []
    if "input" in by_entry.index:
        steps.append(("blurry input", "input"))
    if BASE_ENTRY in by_entry.index:
        steps.append(("pretrained base (no TTA)", BASE_ENTRY))
    singles = df[(df["model"] != "") & (df["model"] != BASE) & (df["tta"] != "ensemble")]
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
        links = [(i, entries[i - 1], entries[i]) for i in range(1, len(entries))]
        links = [(i, before, after) for i, before, after in links if before in per_frame and after in per_frame]
        gains = paired_steps(per_frame, [(ladder.at[i, "step"], "", before, after) for i, before, after in links])
        for (i, _, _), gain in zip(links, gains.itertuples(), strict=True):
            ladder.loc[i, ["ci_low", "ci_high"]] = gain.ci_low, gain.ci_high
            ladder.loc[i, "significant"] = gain.significant
    return ladder
