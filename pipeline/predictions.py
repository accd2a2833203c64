"""The prediction folder: one model's (or the ensemble's) restored frames of one split, and how they were made.

The layout is spelled here only::

    png16/<name>.png   16-bit RGB PNG of the float result (unrounded to 8 bits: what ensembles average)
    png8/<name>.png    8-bit RGB PNG, ``round(x * 255)`` of the same float result (what is scored and submitted)
    runtime.json       a :class:`Runtime` record: seconds per frame, frames, device, precision, TTA settings

Every file is written atomically; a whole folder is built in a staging directory and renamed into place
(:meth:`PredictionFolder.build`), so an interrupted stage never leaves a folder that looks finished.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import PipelineError
from pipeline.fileio import atomic_dir, read_image, read_image16, to_uint8, write_image, write_image16, write_json

__all__ = ["PNG8", "PNG16", "RUNTIME_NAME", "PredictionFolder", "PredictionsError", "Runtime"]

PNG16, PNG8, RUNTIME_NAME = "png16", "png8", "runtime.json"


class PredictionsError(PipelineError):
    """A prediction folder or its runtime record is missing, truncated or malformed; the message names the file."""


@dataclass(frozen=True)
class Runtime:
    """What ``runtime.json`` records: the model seconds per frame (TTA included, no file I/O), how many frames, on
    which device and precision, and under which TTA mode. An ensemble's record adds its members, their weights and
    its own averaging time; those fields are None (and absent from the file) for a single model."""

    seconds_per_frame: float
    frames: int
    device: str
    precision: str
    tta: str
    members: tuple[str, ...] | None = None
    weights: tuple[float, ...] | None = None
    averaging_seconds_per_frame: float | None = None

    def to_json(self) -> dict:
        """The JSON object, in field order; the ensemble-only fields only when set."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_json(cls, data: dict, path: str | os.PathLike) -> Runtime:
        """Build a record from a parsed ``runtime.json``; a missing or mistyped field raises naming ``path``."""
        types = {"seconds_per_frame": (int, float), "frames": (int,), "device": (str,), "precision": (str,)}
        types |= {"tta": (str,), "averaging_seconds_per_frame": (int, float)}
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
        missing = [k for k in required if k not in data]
        if missing:
            raise PredictionsError(f"{path}: runtime record lacks {missing}")
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise PredictionsError(f"{path}: runtime record has unknown key(s) {unknown}")
        for key, ok in types.items():
            value = data.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, ok)):
                raise PredictionsError(f"{path}: runtime record {key!r} has the wrong type: {value!r}")
        members, weights = data.get("members"), data.get("weights")
        return cls(
            seconds_per_frame=float(data["seconds_per_frame"]),
            frames=int(data["frames"]),
            device=data["device"],
            precision=data["precision"],
            tta=data["tta"],
            members=None if members is None else tuple(str(m) for m in members),
            weights=None if weights is None else tuple(float(w) for w in weights),
            averaging_seconds_per_frame=data.get("averaging_seconds_per_frame"),
        )


class PredictionFolder:
    """One prediction folder (see the module docstring): write and read frames and the runtime record by name."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"PredictionFolder({str(self.path)!r})"

    @classmethod
    @contextmanager
    def build(cls, path: str | os.PathLike) -> Iterator[PredictionFolder]:
        """Yield an empty folder staged beside ``path``; on success it replaces ``path`` whole, on error it goes."""
        with atomic_dir(path) as tmp:
            folder = cls(tmp)
            folder.create()
            yield folder

    @property
    def png16_dir(self) -> Path:
        return self.path / PNG16

    @property
    def png8_dir(self) -> Path:
        """The 8-bit frames: what scoring, packaging and the comparison sheet read."""
        return self.path / PNG8

    @property
    def runtime_path(self) -> Path:
        return self.path / RUNTIME_NAME

    def png16(self, name: str) -> Path:
        return self.png16_dir / f"{name}.png"

    def png8(self, name: str) -> Path:
        return self.png8_dir / f"{name}.png"

    def create(self) -> None:
        """Make the two frame folders (a folder with no frames yet is still a well-formed one)."""
        self.png16_dir.mkdir(parents=True, exist_ok=True)
        self.png8_dir.mkdir(parents=True, exist_ok=True)

    def write(self, name: str, image: np.ndarray) -> None:
        """Write frame ``name`` from a float HWC RGB image in [0, 1]: the 16-bit PNG first, then its 8-bit
        rounding, each file atomically."""
        write_image16(self.png16(name), image)
        write_image(self.png8(name), to_uint8(image))

    def read16(self, name: str) -> np.ndarray:
        """Frame ``name`` as float32 HWC in [0, 1] from its 16-bit PNG (:class:`pipeline.fileio.ImageReadError`
        naming the file when missing or unreadable)."""
        return read_image16(self.png16(name))

    def read8(self, name: str) -> np.ndarray:
        """Frame ``name`` as uint8 HWC from its 8-bit PNG."""
        return read_image(self.png8(name))

    def names(self) -> list[str]:
        """The sorted frame names present as 16-bit PNGs."""
        if not self.png16_dir.is_dir():
            raise PredictionsError(f"{self.png16_dir}: no 16-bit predictions folder")
        return sorted(p.stem for p in self.png16_dir.glob("*.png"))

    def write_runtime(self, runtime: Runtime) -> None:
        write_json(self.runtime_path, runtime.to_json())

    def read_runtime(self) -> Runtime:
        """The runtime record; a missing, truncated or malformed ``runtime.json`` raises naming it."""
        path = self.runtime_path
        if not path.is_file():
            raise PredictionsError(f"{path}: runtime record not found")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PredictionsError(f"{path}: runtime record is not valid JSON (truncated?): {exc}") from None
        if not isinstance(data, dict):
            raise PredictionsError(f"{path}: runtime record must be a JSON object")
        return Runtime.from_json(data, path)
