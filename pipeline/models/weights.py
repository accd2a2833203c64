"""Checkpoint I/O: our self-describing safetensors files and the public-release ``.pth`` files.

Our format: a safetensors file whose string metadata holds ``format``, ``format_version``, ``variant``, ``config``
(HINet constructor arguments as JSON) and ``metadata`` (user metadata as JSON), so :func:`load_model` can rebuild the
model from the file alone. Public releases are ``torch.save({'params': state_dict})`` (BasicSR style, sometimes
``params_ema`` or a raw state dict, keys possibly prefixed ``module.``); their constructor arguments are inferred
from the keys and shapes. Every mismatch is reported with the file name and the offending keys.
"""

from __future__ import annotations

import json
import os
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from safetensors.torch import save as save_bytes
from torch import nn

from pipeline.errors import PipelineError
from pipeline.fileio import atomic_path

from .hinet import HINet

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "LoadReport",
    "WeightsError",
    "infer_config",
    "load_model",
    "load_state_dict",
    "load_weights",
    "read_metadata",
    "save_weights",
]

FORMAT_NAME = "hinet-ntire-pipeline/weights"
FORMAT_VERSION = 1
_PARAM_KEYS = ("params", "params_ema")  # BasicSR's checkpoint keys, in the order BasicSR's loader prefers them
_MAX_LISTED = 20


class WeightsError(PipelineError):
    """A checkpoint file cannot be read or does not fit the model; the message names the file."""


@dataclass
class LoadReport:
    """What did not line up when loading a state dict (all empty after a successful strict load)."""

    missing_keys: list[str] = field(default_factory=list)
    unexpected_keys: list[str] = field(default_factory=list)
    shape_mismatches: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing_keys or self.unexpected_keys or self.shape_mismatches)


def _is_safetensors(path: Path) -> bool:
    return path.suffix.lower() == ".safetensors"


def _check_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    return path


def save_weights(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    variant: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write ``model``'s state dict as safetensors (atomically) with the metadata :func:`load_model` needs.

    ``variant`` defaults to ``model.variant`` (set by ``create_model``); ``metadata`` must be JSON-serialisable
    (paths and other objects are stored as strings).
    """
    path = Path(path)
    config = getattr(model, "config", None)
    if not isinstance(config, dict):
        raise ValueError(f"{path}: the model has no .config dict of constructor arguments; cannot save it rebuildably")
    tensors = {}
    for key, value in model.state_dict().items():
        if value.is_meta:
            raise ValueError(f"{path}: parameter {key!r} is on the meta device (no data to save)")
        tensors[key] = value.detach().to("cpu").contiguous()
    if variant is None:
        variant = getattr(model, "variant", None)
    header = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "variant": variant or "",
        "config": json.dumps(config, sort_keys=True),
        "metadata": json.dumps(metadata or {}, sort_keys=True, default=str),
    }
    data = save_bytes(tensors, metadata=header)
    size = int.from_bytes(data[:8], "little")
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(_canonical_header(data[8 : 8 + size]))
        f.write(memoryview(data)[8 + size :])
    return path


def _canonical_header(header: bytes) -> bytes:
    """A safetensors header (length prefix included) with its metadata keys sorted, so equal tensors and metadata give
    equal files: safetensors writes the metadata in hash-map order, which changes from one save to the next. The
    tensor entries keep their order and offsets; the JSON is padded with spaces to 8 bytes as safetensors does."""
    parsed = json.loads(header)
    if "__metadata__" in parsed:
        parsed["__metadata__"] = dict(sorted(parsed["__metadata__"].items()))
    text = json.dumps(parsed, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The stored description of a checkpoint: ``format``, ``format_version``, ``variant``, ``config``, ``metadata``.

    Public-release ``.pth`` files and foreign safetensors carry none: ``config`` is then None (see
    :func:`infer_config`), ``format`` is ``'pth'`` or ``'safetensors'``.
    """
    path = _check_file(path)
    if not _is_safetensors(path):
        return {"format": "pth", "format_version": None, "variant": None, "config": None, "metadata": {}}
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise WeightsError(f"{path}: not a readable safetensors file ({exc})") from exc
    if raw.get("format") != FORMAT_NAME:
        return {"format": "safetensors", "format_version": None, "variant": None, "config": None, "metadata": {}}
    version = int(raw.get("format_version", "0"))
    if version > FORMAT_VERSION:
        raise WeightsError(f"{path}: weights format version {version} is newer than this code ({FORMAT_VERSION})")
    try:
        config = json.loads(raw["config"])
        user = json.loads(raw.get("metadata", "{}"))
    except (KeyError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{path}: corrupt weights metadata ({exc})") from exc
    return {
        "format": FORMAT_NAME,
        "format_version": version,
        "variant": raw.get("variant") or None,
        "config": config,
        "metadata": user,
    }


def _strip_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the ``module.`` prefixes DataParallel / DistributedDataParallel checkpoints carry."""
    out = {}
    for key, value in state_dict.items():
        while key.startswith("module."):
            key = key[len("module.") :]
        out[key] = value
    return out


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def load_state_dict(path: str | os.PathLike, *, param_key: str | None = None) -> dict[str, torch.Tensor]:
    """Read a checkpoint's state dict on the CPU: our safetensors, or a ``.pth`` (``{'params': sd}``,
    ``{'params_ema': sd}`` or a raw state dict). ``param_key`` forces which top-level entry of a ``.pth`` to use;
    by default ``params`` wins over ``params_ema``, as in BasicSR. ``module.`` prefixes are stripped.
    """
    path = _check_file(path)
    if _is_safetensors(path):
        try:
            return _strip_prefix(load_file(str(path), device="cpu"))
        except (SafetensorError, OSError) as exc:
            raise WeightsError(f"{path}: not a readable safetensors file ({exc})") from exc
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise WeightsError(f"{path}: cannot read as a PyTorch checkpoint with weights_only=True ({exc})") from exc
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path}: expected a dict checkpoint, got {type(obj).__name__}")
    keys = [param_key] if param_key else [k for k in _PARAM_KEYS if k in obj]
    if param_key and param_key not in obj:
        raise WeightsError(f"{path}: no {param_key!r} entry; top-level keys are {sorted(map(str, obj))[:_MAX_LISTED]}")
    if keys:
        sd = obj[keys[0]]
        if not _is_state_dict(sd):
            raise WeightsError(f"{path}: entry {keys[0]!r} is not a state dict of tensors ({type(sd).__name__})")
        return _strip_prefix(sd)
    if _is_state_dict(obj):
        return _strip_prefix(obj)
    found = sorted(map(str, obj))
    raise WeightsError(
        f"{path}: no model weights found: expected {{'params': state_dict}}, {{'params_ema': state_dict}} or a raw "
        f"state dict, but the top-level keys are {found[:_MAX_LISTED]}" + (" ..." if len(found) > _MAX_LISTED else "")
    )


def infer_config(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """HINet constructor arguments implied by a state dict's keys and shapes (``relu_slope`` cannot be seen: 0.2)."""
    if "conv_01.weight" not in state_dict:
        raise ValueError("state dict has no 'conv_01.weight': not a HINet checkpoint")
    wf, in_chn = state_dict["conv_01.weight"].shape[:2]
    levels = sorted({int(m.group(1)) for k in state_dict if (m := re.match(r"down_path_1\.(\d+)\.", k))})
    if not levels or levels != list(range(len(levels))):
        raise ValueError(f"state dict has down_path_1 levels {levels}: not a HINet checkpoint")
    hin = [i for i in levels if f"down_path_1.{i}.norm.weight" in state_dict]
    if hin and hin != list(range(hin[0], hin[-1] + 1)):
        raise ValueError(f"state dict has HIN at non-contiguous levels {hin}")
    extra = {int(m.group(1)) for k in state_dict if (m := re.match(r"down_path_1\.0\.extra\.(\d+)\.", k))}
    return {
        "in_chn": int(in_chn),
        "wf": int(wf),
        "depth": len(levels),
        "relu_slope": 0.2,
        "hin_position_left": hin[0] if hin else 0,
        "hin_position_right": hin[-1] if hin else -1,
        "extra_blocks": len(extra),
    }


def _compare(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> LoadReport:
    expected = model.state_dict()
    report = LoadReport(
        missing_keys=[k for k in expected if k not in state_dict],
        unexpected_keys=[k for k in state_dict if k not in expected],
    )
    for key, value in expected.items():
        if key in state_dict and tuple(state_dict[key].shape) != tuple(value.shape):
            report.shape_mismatches.append((key, tuple(state_dict[key].shape), tuple(value.shape)))
    return report


def _listing(items: list) -> str:
    shown = ", ".join(map(str, items[:_MAX_LISTED]))
    return shown + (f", ... ({len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else "")


def _mismatch_error(path: Path, model: nn.Module, report: LoadReport, state_dict) -> WeightsError:
    parts = [f"{path}: checkpoint does not match the model"]
    if report.missing_keys:
        parts.append(f"{len(report.missing_keys)} missing keys: {_listing(report.missing_keys)}")
    if report.unexpected_keys:
        parts.append(f"{len(report.unexpected_keys)} unexpected keys: {_listing(report.unexpected_keys)}")
    if report.shape_mismatches:
        diffs = [f"{k} checkpoint {a} vs model {b}" for k, a, b in report.shape_mismatches]
        parts.append(f"{len(diffs)} shape differences: {_listing(diffs)}")
    try:
        implied = infer_config(state_dict)
    except ValueError:
        implied = None
    config = getattr(model, "config", None)
    if implied and isinstance(config, dict):
        diff = {k: v for k, v in implied.items() if k != "relu_slope" and config.get(k) != v}
        if diff:
            parts.append(
                f"the checkpoint looks like a model with {diff} (model has { ({k: config[k] for k in diff}) })"
            )
    return WeightsError("; ".join(parts))


def load_weights(
    model: nn.Module, path: str | os.PathLike, *, strict: bool = True, param_key: str | None = None
) -> LoadReport:
    """Load a checkpoint (our safetensors or a public-release ``.pth``) into ``model`` in place.

    ``strict=True``: any missing key, unexpected key or shape difference raises ValueError naming the file and
    listing them all. ``strict=False`` loads the keys whose shapes match and returns what did not line up.
    A model built on the meta device receives the loaded tensors themselves (``assign=True``).
    """
    path = Path(path)
    state_dict = load_state_dict(path, param_key=param_key)
    report = _compare(model, state_dict)
    if strict and not report.ok:
        raise _mismatch_error(path, model, report, state_dict)
    mismatched = {k for k, _, _ in report.shape_mismatches}
    usable = {k: v for k, v in state_dict.items() if k not in mismatched and k not in report.unexpected_keys}
    assign = any(t.is_meta for t in model.state_dict().values())
    model.load_state_dict(usable, strict=strict, assign=assign)
    return report


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> HINet:
    """Rebuild a HINet from a checkpoint alone and return it in eval mode on ``map_location``.

    Our safetensors carry the constructor arguments; for a public-release ``.pth`` they are inferred from the state
    dict (:func:`infer_config`), so a downloaded HINet checkpoint can be restored with directly.
    """
    path = _check_file(path)
    info = read_metadata(path)
    state_dict = load_state_dict(path)
    config = info["config"]
    if config is None:
        try:
            config = infer_config(state_dict)
        except ValueError as exc:
            raise WeightsError(f"{path}: {exc}") from None
    try:
        with torch.device("meta"):
            model = HINet(**config)
    except TypeError as exc:
        raise WeightsError(f"{path}: stored model config {config} does not fit HINet ({exc})") from exc
    report = _compare(model, state_dict)
    if not report.ok:
        raise _mismatch_error(path, model, report, state_dict)
    model.load_state_dict(state_dict, strict=True, assign=True)
    model.variant = info["variant"]
    return model.to(map_location).eval()
