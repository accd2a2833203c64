"""The HINet ladder with honest statistics: every step as a paired per-frame gain with a cluster-bootstrap interval.

Steps: blurry input -> the pretrained base (``base/plain``); per member: the base -> its plain mode (what fine-tuning
gained), then blurry input -> plain -> x8 -> x8+crops (the ``tta.ladder`` order); then each member's submit mode -> the
ensemble, and the equal-weight ensemble -> fitted (or configured) weights when those are used. Each step is scored on
the same val-300 frames, resampling whole sequences (``pipeline.stats.paired_gain``), so the table says which steps
are gains and which are noise. Inputs are the per-frame CSVs written by ``evaluate`` (members and base) and
``ensemble``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from pipeline.fileio import read_table
from pipeline.layout import BASE, BASE_MODE, Layout
from pipeline.stats import paired_gain, seed_spread

__all__ = ["BASE_ENTRY", "STEP_COLUMNS", "ensemble_csvs", "read_per_frame", "seed_spreads", "step_table"]

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


def _step(label: str, model: str, before: str, after: str, per_frame: dict[str, pd.DataFrame], seed: int) -> dict:
    gain = paired_gain(per_frame[before]["psnr"], per_frame[after]["psnr"], seed=seed)
    return {"step": label, "model": model, "before": before, "after": after, **gain}


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
    rows = []
    if BASE_ENTRY in per_frame and "input" in per_frame:
        rows.append(_step(f"input -> {BASE_ENTRY}", BASE, "input", BASE_ENTRY, per_frame, seed))
    for model in models:
        if BASE_ENTRY in per_frame and f"{model}/{BASE_MODE}" in per_frame:
            after = f"{model}/{BASE_MODE}"
            rows.append(_step(f"{BASE_ENTRY} -> {_short(after)}", model, BASE_ENTRY, after, per_frame, seed))
        chain = ["input", *(f"{model}/{mode}" for mode in ladder)]
        for before, after in zip(chain, chain[1:], strict=False):
            rows.append(_step(f"{_short(before)} -> {_short(after)}", model, before, after, per_frame, seed))
    if "ensemble" in per_frame and submit is not None:
        for model in models:
            rows.append(_step(f"{submit} -> ensemble", model, f"{model}/{submit}", "ensemble", per_frame, seed))
        for entry in per_frame:
            if entry.startswith("ensemble/"):
                rows.append(_step(f"{_short(entry)} -> ensemble", "", entry, "ensemble", per_frame, seed))
    return pd.DataFrame(rows, columns=STEP_COLUMNS)


def seed_spreads(per_frame: dict[str, pd.DataFrame], models: Sequence[str], modes: Sequence[str]) -> dict[str, dict]:
    """Per TTA mode, the spread of the members' mean PSNR (they differ by seed only)."""
    return {
        mode: seed_spread({m: float(per_frame[f"{m}/{mode}"]["psnr"].mean()) for m in models})
        for mode in modes
        if all(f"{m}/{mode}" in per_frame for m in models)
    }
