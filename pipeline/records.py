"""The JSON records one stage writes and later stages read: one frozen dataclass per file, the one owner of its shape.

=======================================================  ===============  =======================================
file                                                     record           written by / read by
=======================================================  ===============  =======================================
``paths.metrics/eval/<model>.json``                      EvalRecord       ``evaluate_model`` / ensemble, leaderboard
``paths.metrics/ensemble.json``                          EnsembleRecord   ``run_ensemble`` / leaderboard
``paths.metrics/data.json``, ``paths.data/stats.json``   DataRecord       ``prepare`` / leaderboard
``paths.data/index/val300.json``                         InputSummary     ``prepare`` / ``ValFrames.from_prepared``
=======================================================  ===============  =======================================

``write`` puts the JSON exactly where and as the writers always did (keys in field order, an optional field left out
while None, :func:`pipeline.fileio.write_json`'s atomic write and indentation), so DVC metrics do not change.
``read`` is strict: a missing key, a value of the wrong type or an unknown key is one error, of the class the caller
names (its own module's error), naming the file and the dotted key.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import types
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from pipeline.fileio import read_json, write_json

__all__ = [
    "DataRecord",
    "DataCounts",
    "EnsembleRecord",
    "EvalRecord",
    "FitReport",
    "InputSummary",
    "MeanScores",
    "ModeScores",
    "PatchSettings",
    "Record",
    "ReportedScores",
    "ShardSummary",
    "Variant",
    "task_label",
]


class _Json:
    """A record or a part of one: its JSON object in field order, the fields that are None left out."""

    def to_json(self) -> dict:
        return {f.name: _dump(v) for f in dataclasses.fields(self) if (v := getattr(self, f.name)) is not None}


def _dump(value: Any) -> Any:
    if isinstance(value, _Json):
        return value.to_json()
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_dump(v) for v in value]
    return value


class Record(_Json):
    """One JSON file's record: ``write`` it atomically, ``read`` it back checked."""

    WHAT: ClassVar[str]  # what the file is, in error messages

    def write(self, path: str | os.PathLike) -> None:
        write_json(path, self.to_json())

    @classmethod
    def read(cls, path: str | os.PathLike, *, error: type[Exception]) -> Self:
        """The record in ``path``; a missing file, invalid JSON or a bad shape raises ``error`` naming the file."""
        return cls.from_json(read_json(path, what=cls.WHAT, error=error), where=path, error=error)

    @classmethod
    def from_json(cls, data: Any, *, where: str | os.PathLike, error: type[Exception]) -> Self:
        """Build the record from a parsed JSON object, checking every key; ``where`` names the file in errors."""
        return _Reader(f"{where}: {cls.WHAT}", error).load(cls, data, "")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@dataclass(frozen=True)
class _Reader:
    """Checks parsed JSON against a record's field types: numbers, strings, records, ``dict[str, T]``,
    ``tuple[T, ...]`` and ``T | None`` (an optional field, absent from the file while None)."""

    prefix: str
    error: type[Exception]

    def fail(self, problem: str) -> Exception:
        return self.error(f"{self.prefix}: {problem}")

    def load(self, tp: Any, value: Any, key: str) -> Any:
        origin = typing.get_origin(tp)
        if origin is types.UnionType:
            (tp,) = [a for a in typing.get_args(tp) if a is not type(None)]
            origin = typing.get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, _Json):
            return self.load_record(tp, self.expect(value, dict, key, "an object"), key)
        if origin is dict:
            item = typing.get_args(tp)[1]
            return {k: self.load(item, v, f"{key}.{k}") for k, v in self.expect(value, dict, key, "an object").items()}
        if origin is tuple:
            item = typing.get_args(tp)[0]
            return tuple(
                self.load(item, v, f"{key}[{i}]") for i, v in enumerate(self.expect(value, list, key, "a list"))
            )
        if tp is float:
            return float(self.expect(value, (int, float), key, "a number"))
        if tp is int:
            return self.expect(value, int, key, "an integer")
        if tp is str:
            return self.expect(value, str, key, "a string")
        raise TypeError(f"records: no reader for field type {tp!r}")

    def expect(self, value: Any, kind: type | tuple[type, ...], key: str, name: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, kind):
            raise self.fail(f"{f'key {key!r}' if key else 'the record'} must be {name}, got {value!r}")
        return value

    def load_record(self, cls: type[_Json], data: dict, key: str) -> _Json:
        fields = dataclasses.fields(cls)
        dotted = [f"{key}.{f.name}" if key else f.name for f in fields]
        missing = [
            d for f, d in zip(fields, dotted, strict=True) if f.name not in data and f.default is dataclasses.MISSING
        ]
        if missing:
            raise self.fail(f"missing key(s) {', '.join(map(repr, missing))}")
        unknown = [f"{key}.{k}" if key else k for k in data if k not in {f.name for f in fields}]
        if unknown:
            raise self.fail(f"unknown key(s) {', '.join(map(repr, unknown))}")
        hints = _hints(cls)
        present = [(f.name, d) for f, d in zip(fields, dotted, strict=True) if f.name in data]
        return cls(**{name: self.load(hints[name], data[name], d) for name, d in present})


# --- scores -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Scores(_Json):
    psnr: float
    ssim: float
    ssim3d: float


@dataclass(frozen=True)
class MeanScores(_Scores):
    """Mean PSNR / SSIM / SSIM3D over ``frames`` frames (a test set's, or the degraded inputs')."""

    frames: int


@dataclass(frozen=True)
class ReportedScores(_Scores):
    """The scores a task's paper reports and how they average (``pipeline.tasks.Task.average``)."""

    average: str


@dataclass(frozen=True)
class ModeScores(_Scores):
    """One TTA mode of an evaluation: means, gain over the input, its runtime record's cost and settings; a task with
    several test sets (Rain13K) adds each set's means and the reported average."""

    gain_db: float
    seconds_per_frame: float
    device: str
    precision: str
    settings: str
    test_sets: dict[str, MeanScores] | None = None
    reported: ReportedScores | None = None


@dataclass(frozen=True)
class EvalRecord(Record):
    """``metrics/eval/<model>.json``: a model's val-300 scores per TTA mode, under ``task``'s protocol."""

    WHAT: ClassVar[str] = "evaluation metrics"

    model: str
    task: str
    frames: int
    tta: dict[str, ModeScores]


# --- ensemble -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Summary(_Scores):
    gain_db: float
    frames: int


@dataclass(frozen=True)
class Variant(_Summary):
    """One weighting of the ensemble's members scored on val-300 (``pipeline.evaluate.summarize``) and its weights."""

    weights: dict[str, float]


@dataclass(frozen=True)
class FitReport(_Json):
    """How fitted weights did on the fit part of val-300 and on the held-out part, against equal weights."""

    fit_frames: int
    heldout_frames: int
    fit_fraction: float
    seed: int
    weights: dict[str, float]
    fit_psnr_fitted: float
    fit_psnr_equal: float
    heldout_psnr_fitted: float
    heldout_psnr_equal: float
    heldout_gain_db: float


@dataclass(frozen=True)
class EnsembleRecord(_Summary, Record):
    """``metrics/ensemble.json``: the published ensemble's val-300 summary, its members and weights, every weighting
    scored (``variants``, the published one among them), its cost, the members' own PSNR and, with fitted weights,
    the fit's report."""

    WHAT: ClassVar[str] = "ensemble metrics"

    members: tuple[str, ...]
    weights: dict[str, float]
    published: str
    variants: dict[str, Variant]
    seconds_per_frame: float
    device: str
    member_psnr: dict[str, float]
    best_member: str
    best_member_psnr: float
    gain_over_best_member_db: float
    settings: str
    fit: FitReport | None = None


# --- data ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataCounts(_Json):
    """Sequences and frames per split, training patches, and frames per test set for a task with several."""

    train_sequences: int
    train: int
    val_sequences: int
    val: int
    val300: int
    test300: int
    patches: int
    test_sets: dict[str, int] | None = None


@dataclass(frozen=True)
class ShardSummary(_Json):
    files: int
    bytes: int
    block: int


@dataclass(frozen=True)
class PatchSettings(_Json):
    size: int
    stride: int
    format: str


def task_label(task: str, synth_task: str | None) -> str:
    """The task a data set describes: its task, with the embedded set's degradation after a slash
    (``synthetic/denoise``); rankings of different labels never mix."""
    return f"{task}/{synth_task}" if task == "synthetic" and synth_task else task


@dataclass(frozen=True)
class DataRecord(Record):
    """``metrics/data.json`` (and ``paths.data/stats.json``): what the data stage built, and the val-300 inputs'
    mean scores. ``synth_task``: the embedded set's degradation when it is not the default deblurring."""

    WHAT: ClassVar[str] = "data statistics"

    source: str
    task: str
    frame_height: int
    frame_width: int
    counts: DataCounts
    store: str
    shards: ShardSummary
    patch: PatchSettings
    input: MeanScores
    synth_task: str | None = None

    @property
    def label(self) -> str:
        return task_label(self.task, self.synth_task)


@dataclass(frozen=True)
class InputSummary(Record):
    """``paths.data/index/val300.json``: the val-300 inputs' mean scores, beside the index they describe."""

    WHAT: ClassVar[str] = "input scores summary"

    input: MeanScores
