"""Training frames in a few large shard files, read a block at a time: REDS-scale training input that DVC handles.

Why: 24,000 REDS training pairs as PNG patches are ~288k files (DVC hashes and links each one; a DataLoader worker
opens one or two per sample), and cropping a random 256 px sample from a full 720p frame decodes ~1.8 M pixels per
side to use 65 k of them. A shard stores whole frames cut into ``block`` x ``block`` tiles, each compressed on its
own (a horizontal delta filter, then zstd level 1: about PNG's size, decoded ~20x faster), so a crop decodes only
the tiles it touches. The crop is exactly the one the full frame gives, so training on shards draws the same samples
as training on frames (a test checks it).

Layout of one shard (``train-00000.shard``), all integers little-endian::

    MAGIC | tile 0 | tile 1 | ... | table: int64 (tiles, 2) = offset, length | footer JSON | uint64 length | MAGIC

Tiles run frame by frame, blurry before sharp, row-major. The footer records the format, the data version (a hash of
the training index's names and file md5s), the codec, the block size, the frames (name, height, width, first tile)
and the shard's size. ``index.json`` beside the shards lists them with the same data version. A truncated shard (no
trailing MAGIC, or another size than its footer says), a shard from another data version and a corrupt tile (zstd's
frame checksum) are errors that name the file; they are never read as data.

Readers map a shard once per process (read-only ``mmap``: no system call per tile, no shared file position), so any
number of DataLoader workers read the same files safely.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import zstandard
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from pipeline.errors import PipelineError
from pipeline.fileio import atomic_path, read_image, write_json

__all__ = [
    "CODEC",
    "INDEX",
    "ShardError",
    "ShardReader",
    "ShardSet",
    "data_version",
    "read_shard_index",
    "write_shards",
]

MAGIC = b"HINSHRD1"
FORMAT = 1
CODEC = "delta-x+zstd-1"
INDEX = "index.json"
_TAIL = struct.Struct("<Q8s")  # footer length, MAGIC


class ShardError(PipelineError):
    """A shard is truncated, from another data version, or corrupt (or a frame pair to store differs in shape); the
    message names the file and the fix."""


def data_version(table: pd.DataFrame) -> str:
    """A hash of a frame table's names and per-file md5s (the ``blur_md5``/``sharp_md5`` columns of the index)."""
    missing = [c for c in ("name", "blur_md5", "sharp_md5") if c not in table.columns]
    if missing:
        raise ValueError(f"data_version: the frame table lacks column(s) {missing}")
    rows = table[["name", "blur_md5", "sharp_md5"]].astype(str).itertuples(index=False)
    return hashlib.sha256("\n".join(",".join(r) for r in rows).encode()).hexdigest()[:20]


def _encode(tile: np.ndarray, cctx: zstandard.ZstdCompressor) -> bytes:
    """Horizontal delta (mod 256) of an HWC uint8 tile, then zstd: neighbouring pixels differ little, so it shrinks."""
    delta = tile.copy()
    delta[:, 1:] -= tile[:, :-1]
    return cctx.compress(delta.tobytes())


def _undelta(canvas: np.ndarray, block: int) -> np.ndarray:
    """Undo the per-tile horizontal delta of a canvas of whole tiles in one pass (uint8 accumulation wraps mod 256,
    the exact inverse); a partial edge tile's unused columns come after its pixels, so they change nothing."""
    h, w = canvas.shape[:2]
    tiles = canvas.reshape(h, w // block, block, 3)
    return np.cumsum(tiles, axis=2, dtype=np.uint8).reshape(h, w, 3)


def _grid(height: int, width: int, block: int) -> tuple[int, int]:
    return -(-height // block), -(-width // block)


def _write_shard(path: Path, rows: list[dict], version: str, block: int) -> dict:
    """Write one shard of ``rows`` (frames with ``blur_path``/``sharp_path``) atomically; return its index entry."""
    cctx = zstandard.ZstdCompressor(level=1, write_checksum=True)
    table: list[tuple[int, int]] = []
    frames = []
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(MAGIC)
        for row in rows:
            blur, sharp = read_image(row["blur_path"]), read_image(row["sharp_path"])
            if blur.shape != sharp.shape:
                raise ShardError(f"{row['blur_path']}: shape {blur.shape} differs from {row['sharp_path']}")
            h, w = blur.shape[:2]
            frames.append({"name": str(row["name"]), "height": h, "width": w, "first": len(table)})
            for img in (blur, sharp):
                for y in range(0, h, block):
                    for x in range(0, w, block):
                        blob = _encode(np.ascontiguousarray(img[y : y + block, x : x + block]), cctx)
                        table.append((f.tell(), len(blob)))
                        f.write(blob)
        table_offset = f.tell()
        f.write(np.asarray(table, dtype="<i8").reshape(-1, 2).tobytes())
        footer = {
            "format": FORMAT,
            "codec": CODEC,
            "data_version": version,
            "block": block,
            "frames": frames,
            "tiles": len(table),
            "table_offset": table_offset,
        }
        size = 0
        while True:  # the footer holds the file size, whose digit count changes the footer's length
            body = json.dumps({**footer, "size": size}, sort_keys=True).encode()
            if f.tell() + len(body) + _TAIL.size == size:
                break
            size = f.tell() + len(body) + _TAIL.size
        f.write(body)
        f.write(_TAIL.pack(len(body), MAGIC))
        f.flush()
        os.fsync(f.fileno())
    return {"file": path.name, "frames": len(frames), "bytes": size}


def write_shards(
    table: pd.DataFrame,
    out_dir: str | Path,
    *,
    frames_per_shard: int,
    block: int = 64,
    workers: int = 2,
) -> dict:
    """Store every (blurry, sharp) frame pair of ``table`` in ``ceil(len / frames_per_shard)`` shards under
    ``out_dir``, plus ``index.json``; return the index. Each shard is written atomically by one joblib worker. An
    empty table gives an index of no shards (training then reads frames or patches)."""
    if (table["sharp_path"].fillna("") == "").any():
        raise ValueError("write_shards: every frame needs a sharp partner (test frames cannot be stored)")
    if frames_per_shard < 1 or block < 8:
        raise ValueError(f"write_shards: need frames_per_shard >= 1 and block >= 8, got {frames_per_shard}, {block}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    version = data_version(table)
    rows = table.to_dict("records")
    chunks = [rows[i : i + frames_per_shard] for i in range(0, len(rows), frames_per_shard)]
    jobs = Parallel(n_jobs=workers, return_as="generator")(
        delayed(_write_shard)(out_dir / f"train-{i:05d}.shard", chunk, version, block) for i, chunk in enumerate(chunks)
    )
    shards = []
    with tqdm(total=len(rows), desc="write shards", unit="frame", disable=None) as bar:
        for entry in jobs:
            shards.append(entry)
            bar.update(entry["frames"])
    index = {
        "format": FORMAT,
        "codec": CODEC,
        "data_version": version,
        "block": block,
        "frames": len(rows),
        "bytes": sum(s["bytes"] for s in shards),
        "shards": shards,
    }
    write_json(out_dir / INDEX, index)
    return index


class ShardReader:
    """One shard file: checked on open (trailing MAGIC, size, format, data version), then read tile by tile."""

    def __init__(self, path: str | Path, *, expect_version: str | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise ShardError(f"{self.path}: shard not found (run the prepare stage again)")
        size = self.path.stat().st_size
        with open(self.path, "rb") as f:
            if size < len(MAGIC) + _TAIL.size:
                raise ShardError(f"{self.path}: truncated ({size} bytes; run the prepare stage again)")
            f.seek(size - _TAIL.size)
            footer_len, magic = _TAIL.unpack(f.read(_TAIL.size))
            head = (f.seek(0), f.read(len(MAGIC)))[1]
            if magic != MAGIC or head != MAGIC or footer_len > size:
                raise ShardError(f"{self.path}: truncated or not a shard (no end marker; run the prepare stage again)")
            f.seek(size - _TAIL.size - footer_len)
            try:
                footer = json.loads(f.read(footer_len))
            except ValueError as e:
                raise ShardError(f"{self.path}: unreadable footer ({e}); run the prepare stage again") from None
        if footer.get("format") != FORMAT or footer.get("codec") != CODEC:
            raise ShardError(
                f"{self.path}: shard format {footer.get('format')}/{footer.get('codec')}, this code reads "
                f"{FORMAT}/{CODEC} (run the prepare stage again)"
            )
        if footer.get("size") != size:
            raise ShardError(f"{self.path}: {size} bytes, its footer says {footer.get('size')} (truncated or appended)")
        if expect_version is not None and footer["data_version"] != expect_version:
            raise ShardError(
                f"{self.path}: from data version {footer['data_version']}, the shard index expects {expect_version} "
                "(a shard of another data set; run the prepare stage again)"
            )
        self.size = size
        self.version = footer["data_version"]
        self.block = int(footer["block"])
        self.frames = footer["frames"]
        with open(self.path, "rb") as f:
            f.seek(footer["table_offset"])
            raw = f.read(footer["tiles"] * 16)
        if len(raw) != footer["tiles"] * 16:
            raise ShardError(f"{self.path}: tile table cut short (run the prepare stage again)")
        self.table = np.frombuffer(raw, "<i8").reshape(-1, 2).tolist()  # Python ints: fast to index and slice with
        self._map: mmap.mmap | None = None
        self._pid = -1
        self._dctx: zstandard.ZstdDecompressor | None = None

    def __getstate__(self) -> dict:  # DataLoader workers get a copy without the open map
        state = dict(self.__dict__)
        state.update(_map=None, _pid=-1, _dctx=None)
        return state

    def _handle(self) -> mmap.mmap:
        if self._map is None or self._pid != os.getpid():  # a forked worker maps the file itself
            with open(self.path, "rb") as f:
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            if len(self._map) != self.size:
                raise ShardError(f"{self.path}: {len(self._map)} bytes now, {self.size} when opened (rewritten?)")
            self._pid = os.getpid()
            self._dctx = zstandard.ZstdDecompressor()
        return self._map

    def crop(self, slot: int, y: int, x: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``height`` x ``width`` (blurry, sharp) crop at ``(y, x)`` of frame ``slot``, decoding only its tiles."""
        frame = self.frames[slot]
        h, w, b = frame["height"], frame["width"], self.block
        if not (0 <= y <= h - height and 0 <= x <= w - width and height > 0 and width > 0):
            where = f"frame {frame['name']} ({w}x{h})"
            raise ValueError(f"{self.path}: crop {width}x{height} at ({y}, {x}) outside {where}")
        data = self._handle()
        rows, cols = _grid(h, w, b)
        ty0, ty1, tx0, tx1 = y // b, (y + height - 1) // b, x // b, (x + width - 1) // b
        dctx = self._dctx
        out = []
        for side in range(2):
            canvas = np.zeros(((ty1 - ty0 + 1) * b, (tx1 - tx0 + 1) * b, 3), np.uint8)
            for ty in range(ty0, ty1 + 1):
                th = min(b, h - ty * b)
                for tx in range(tx0, tx1 + 1):
                    tile = frame["first"] + side * rows * cols + ty * cols + tx
                    offset, length = self.table[tile]
                    tw = min(b, w - tx * b)
                    try:
                        raw = dctx.decompress(data[offset : offset + length])
                        cy, cx = (ty - ty0) * b, (tx - tx0) * b
                        canvas[cy : cy + th, cx : cx + tw] = np.frombuffer(raw, np.uint8).reshape(th, tw, 3)
                    except (zstandard.ZstdError, ValueError) as e:
                        raise ShardError(
                            f"{self.path}: tile {tile} of frame {frame['name']} is corrupt ({e}); run the prepare "
                            "stage again"
                        ) from None
            oy, ox = y - ty0 * b, x - tx0 * b
            out.append(_undelta(canvas[oy : oy + height], b)[:, ox : ox + width])
        return out[0], out[1]


def read_shard_index(shard_dir: str | Path) -> dict:
    """``shards/index.json`` (an index with no shards when training reads frames or patches)."""
    path = Path(shard_dir) / INDEX
    if not path.is_file():
        raise ShardError(f"{path}: shard index not found (run the prepare stage again)")
    try:
        index = json.loads(path.read_text())
    except ValueError as e:
        raise ShardError(f"{path}: unreadable shard index ({e})") from None
    if index.get("format") != FORMAT or index.get("codec") != CODEC:
        found = f"{index.get('format')}/{index.get('codec')}"
        raise ShardError(f"{path}: shard index format {found}, this code reads {FORMAT}/{CODEC} (run prepare again)")
    return index


class ShardSet:
    """Every shard of a ``shards/`` folder, checked against ``index.json`` (version, frame count, names)."""

    def __init__(self, shard_dir: str | Path):
        self.dir = Path(shard_dir)
        index = read_shard_index(self.dir)
        self.version = index["data_version"]
        self.readers = [ShardReader(self.dir / s["file"], expect_version=self.version) for s in index["shards"]]
        for reader, entry in zip(self.readers, index["shards"], strict=True):
            if len(reader.frames) != entry["frames"]:
                raise ShardError(f"{reader.path}: {len(reader.frames)} frames, {INDEX} lists {entry['frames']}")
        self.slots = [(i, j) for i, r in enumerate(self.readers) for j in range(len(r.frames))]
        self.names = [f["name"] for r in self.readers for f in r.frames]
        self.sizes = [(f["height"], f["width"]) for r in self.readers for f in r.frames]

    def __len__(self) -> int:
        return len(self.slots)

    def crop(self, index: int, y: int, x: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``size`` px square (blurry, sharp) crop at ``(y, x)`` of training frame ``index``."""
        shard, slot = self.slots[index]
        return self.readers[shard].crop(slot, y, x, size, size)
