"""Scores by source photo: where a model gains and where it loses, for the embedded set whose manifest names the
photo each val sequence films (a real REDS tree has no manifest and gets no such table).

A mean over 66 frames hides a model that deblurs strongly blurred faces and paints fur flat; this table shows, per
photo, the input PSNR, each entry's mean gain over the input and how many of its frames fall below the input.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from pipeline.leaderboard.stats import sequence_of

__all__ = ["frames_below_input", "per_source_table", "read_sources"]


def read_sources(manifest: str | Path, split: str = "val") -> dict[str, str] | None:
    """Sequence -> source photo of ``split`` from the embedded set's ``manifest.json``; None when there is none."""
    path = Path(manifest)
    if not path.is_file():
        return None
    return dict(json.loads(path.read_text())["sources"][split])


def frames_below_input(per_frame: dict[str, pd.DataFrame], entry: str) -> tuple[int, int]:
    """(frames where ``entry`` scores below the blurry input, frames scored)."""
    gain = per_frame[entry]["psnr"] - per_frame["input"]["psnr"].reindex(per_frame[entry].index)
    return int((gain < 0).sum()), len(gain)


def per_source_table(
    per_frame: dict[str, pd.DataFrame], sources: dict[str, str], entries: Sequence[str]
) -> pd.DataFrame:
    """One row per source photo: frames, input PSNR, and per entry the mean gain (dB) and frames below the input."""
    inp = per_frame["input"]["psnr"]
    source = pd.Series([sources[sequence_of(n)] for n in inp.index], index=inp.index, name="source")
    out = pd.DataFrame({"frames": inp.groupby(source).size(), "input_psnr": inp.groupby(source).mean()})
    for entry in entries:
        gain = per_frame[entry]["psnr"].reindex(inp.index) - inp
        out[f"{entry} gain_db"] = gain.groupby(source).mean()
        out[f"{entry} below_input"] = (gain < 0).groupby(source).sum().astype(int)
    return out.reset_index().rename(columns={"index": "source"}).sort_values("input_psnr").reset_index(drop=True)
