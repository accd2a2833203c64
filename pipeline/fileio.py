"""Atomic file writes and strict image reading shared by every stage.

Every output goes through a temporary sibling and ``os.replace`` so an interrupted stage never leaves a file that
looks finished; the sibling has a fixed name per output, so the next write of that output removes what a killed run
left, and it is created with the process umask, so published files get the same permissions as any other. Every
image read names the file when it fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from pipeline.errors import PipelineError

__all__ = [
    "ImageReadError",
    "TableError",
    "atomic_dir",
    "atomic_path",
    "read_image",
    "read_image16",
    "read_json",
    "read_table",
    "to_uint8",
    "write_image",
    "write_image16",
    "write_json",
    "write_text",
]


class ImageReadError(PipelineError):
    """An image file is missing, unreadable, truncated or of an unexpected kind; the message names the file."""


class TableError(PipelineError):
    """A CSV table (an index, per-frame scores) is missing, lacks columns or holds rows that cannot be used; the
    message names the file."""


def temp_sibling(path: str | os.PathLike) -> Path:
    """The temporary sibling :func:`atomic_path` / :func:`atomic_dir` build ``path`` in: ``.<stem>.tmp<suffix>``.

    Fixed per output (one writer per output at a time, as under DVC), so a rerun finds and removes it in O(1) even in a
    folder of a million patches.
    """
    path = Path(path)
    return path.with_name(f".{path.stem}.tmp{path.suffix}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _remove_stale_dir_temps(path: Path) -> None:
    """Remove what a killed :func:`atomic_dir` of ``path`` left: its temp sibling, the ``.<name>.old`` of an
    interrupted swap, and the ``.<name>.<8 random chars>.tmp`` folders earlier versions made with ``mkdtemp``."""
    legacy = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp")
    for entry in os.scandir(path.parent):
        if entry.name in (temp_sibling(path).name, f".{path.name}.old") or legacy.fullmatch(entry.name):
            _remove(Path(entry.path))


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a new empty file beside ``path`` (mode 0666 less the umask); on success rename it over ``path``, on
    error delete it. A temp left by a killed earlier write of ``path`` is replaced."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    _remove(tmp)
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary directory beside ``path`` (mode 0777 less the umask); on success it replaces
    ``path`` whole. Temps left by a killed earlier write of ``path`` are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_dir_temps(path)
    tmp = temp_sibling(path)
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj) -> None:
    """Write pretty JSON atomically (what DVC metrics files and reports use)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


_PNG_SIGNATURE, _PNG_END = b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"
_JPEG_START, _JPEG_END = b"\xff\xd8\xff", b"\xff\xd9"


def _decode(path: Path, flags: int) -> np.ndarray:
    if not path.is_file():
        raise ImageReadError(f"{path}: no such image file")
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        raise ImageReadError(f"{path}: empty file")
    # Truncation is judged from the bytes, before decoding: OpenCV rejects a PNG cut short and fills a JPEG cut short
    # with gray, and neither says why.
    head, tail = data[:8].tobytes(), data[-12:].tobytes()
    if head.startswith(_PNG_SIGNATURE) and not tail.endswith(_PNG_END):
        raise ImageReadError(f"{path}: truncated PNG (no IEND chunk)")
    if head.startswith(_JPEG_START) and not tail.endswith(_JPEG_END):
        raise ImageReadError(f"{path}: truncated JPEG (no end-of-image marker)")
    img = cv2.imdecode(data, flags)
    if img is None:
        raise ImageReadError(f"{path}: not a decodable image (corrupt or unsupported format)")
    return img


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an 8-bit image as an RGB ``uint8`` array of shape (H, W, 3); gray images are expanded to three channels."""
    path = Path(path)
    img = _decode(path, cv2.IMREAD_UNCHANGED)
    if img.dtype != np.uint8:
        raise ImageReadError(f"{path}: expected an 8-bit image, got {img.dtype}")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    else:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(img)


def read_image16(path: str | os.PathLike) -> np.ndarray:
    """Read a 16-bit RGB PNG written by :func:`write_image16` as float32 in [0, 1], shape (H, W, 3)."""
    path = Path(path)
    img = _decode(path, cv2.IMREAD_UNCHANGED)
    if img.dtype != np.uint16 or img.ndim != 3 or img.shape[2] != 3:
        raise ImageReadError(f"{path}: expected a 16-bit RGB PNG, got dtype {img.dtype} shape {img.shape}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32) / 65535.0


def to_uint8(img: np.ndarray) -> np.ndarray:
    """A float image in [0, 1] as 8-bit the way the public code rounds: clamp, ``round(x * 255)`` (what is scored and
    submitted)."""
    return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)


def write_image(path: str | os.PathLike, img: np.ndarray, *, jpeg_quality: int | None = None) -> None:
    """Write an RGB ``uint8`` (H, W, 3) array atomically as PNG, or as JPEG when the suffix asks for it."""
    path = Path(path)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"{path}: write_image needs uint8 (H, W, 3), got {img.dtype} {img.shape}")
    params: list[int] = []
    if path.suffix.lower() in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality if jpeg_quality is not None else 95)]
    ok, buf = cv2.imencode(path.suffix, cv2.cvtColor(img, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError(f"{path}: could not encode image")
    with atomic_path(path) as tmp:
        buf.tofile(tmp)


def write_image16(path: str | os.PathLike, img: np.ndarray) -> None:
    """Write a float RGB image in [0, 1] as a 16-bit PNG atomically (keeps predictions unrounded for ensembling)."""
    path = Path(path)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"{path}: write_image16 needs (H, W, 3), got {img.shape}")
    q = np.round(np.clip(img, 0.0, 1.0) * 65535.0).astype(np.uint16)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(q, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"{path}: could not encode 16-bit PNG")
    with atomic_path(path) as tmp:
        buf.tofile(tmp)


def read_table(path: str | Path, columns: tuple[str, ...] | list[str], what: str = "REDS index table") -> pd.DataFrame:
    """Read a CSV table of the data stage keeping ``seq``/``frame``/``name`` and paths as text; check its columns."""
    path = Path(path)
    if not path.is_file():
        raise TableError(f"{path}: {what} not found")
    table = pd.read_csv(
        path, dtype={"seq": str, "frame": str, "name": str, "blur_path": str, "sharp_path": str}, keep_default_na=False
    )
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise TableError(f"{path}: not a {what}, missing column(s) {missing}")
    return table


def read_json(path: str | os.PathLike, *, what: str = "JSON file", error: type[Exception] = ValueError) -> dict:
    """Read a JSON object; a missing file, invalid JSON or a non-object raises ``error`` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {what} not found")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise error(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a JSON object")
    return data
