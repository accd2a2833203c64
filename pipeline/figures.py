"""Saving matplotlib figures: headless (Agg), atomic, closed after saving. The one place charts are written from."""

from __future__ import annotations

import os

from pipeline.fileio import atomic_path

__all__ = ["pyplot", "save_figure"]


def pyplot():
    """matplotlib's pyplot on the non-interactive Agg backend (stages run headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike, *, dpi: int = 120, tight: bool = True) -> None:
    """Save ``fig`` as a PNG atomically (``tight``: cropped to its content) and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, **({"bbox_inches": "tight"} if tight else {}))
    pyplot().close(fig)
