"""REDS (NTIRE 2021 Track 2) indexing, strict validation, and the REDS-val-300 rule.

``index_reds`` walks a REDS tree (``train/train_blur_jpeg``, ``train/train_sharp``, ``val/val_blur_jpeg``,
``val/val_sharp``, ``test/test_blur_jpeg``), decodes every image in parallel to catch truncation, and either returns
one table per split or raises a single ``DatasetError`` listing every problem with the offending path, so nothing
downstream runs on a half-valid data set.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from pipeline.errors import PipelineError
from pipeline.fileio import ImageReadError, TableError, read_image, read_json, read_table

__all__ = [
    "COLUMNS",
    "HASH_COLUMNS",
    "ROOT_FILE",
    "SPLITS",
    "DatasetError",
    "has_frames",
    "index_reds",
    "index_reds_layout",
    "is_val300_frame",
    "probe_images",
    "read_index",
    "relative_index",
    "resolve_paths",
    "select_val300",
]

COLUMNS = ["split", "seq", "frame", "name", "blur_path", "sharp_path", "height", "width"]
HASH_COLUMNS = ["blur_md5", "sharp_md5"]  # file contents, so an index changes exactly when its frames do
ROOT_FILE = "root.json"  # beside the index CSVs: the folder their relative paths start from
SPLITS = {  # split -> (blurry folder, sharp folder or None)
    "train": ("train/train_blur_jpeg", "train/train_sharp"),
    "val": ("val/val_blur_jpeg", "val/val_sharp"),
    "test": ("test/test_blur_jpeg", None),
}
log = logging.getLogger(__name__)
_SEQ = re.compile(r"\d{3}")
_FRAME = re.compile(r"\d{8}")
_BLUR_EXT, _SHARP_EXT = ".jpg", ".png"


class DatasetError(PipelineError):
    """A data set failed validation; ``problems`` lists every issue, each naming the offending path.

    ``what`` names the data set in the message (REDS, GoPro, SIDD, Rain13K), so one error class serves every layout.
    """

    def __init__(self, root: str | Path, problems: list[str], *, what: str = "REDS"):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{root}: {what} validation found {len(self.problems)} problem(s):\n{lines}")


def is_val300_frame(frame: str | int) -> bool:
    """The REDS-val-300 rule: frames 9, 19, ..., 99 of each sequence (frame index % 10 == 9)."""
    return int(frame) % 10 == 9


def select_val300(table: pd.DataFrame) -> pd.DataFrame:
    """Rows of an index table whose frame follows the val-300 rule (also used for the test-300 submission frames)."""
    keep = table["frame"].map(is_val300_frame).astype(bool)  # bool even when empty (an object mask selects columns)
    return table.loc[keep].reset_index(drop=True)


def _list_frames(seq_dir: Path, ext: str, problems: list[str]) -> dict[str, Path]:
    """Frame name -> path for the images in one sequence folder; anything else is a problem (hidden files ignored)."""
    frames = {}
    for path in sorted(seq_dir.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_file() and path.suffix == ext and _FRAME.fullmatch(path.stem):
            frames[path.stem] = path
        else:
            problems.append(f"{path}: unexpected entry (expected <8-digit frame>{ext})")
    return frames


def _list_seqs(folder: Path, problems: list[str]) -> dict[str, Path]:
    seqs = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir() and _SEQ.fullmatch(path.name):
            seqs[path.name] = path
        else:
            problems.append(f"{path}: unexpected entry (expected a 3-digit sequence folder)")
    return seqs


def _pair_split(root: Path, split: str, problems: list[str], blur_ext: str = _BLUR_EXT) -> list[dict]:
    """Pair blurry and sharp frames of one split by name; report missing partners, gaps and stray files."""
    blur_rel, sharp_rel = SPLITS[split]
    blur_dir = root / blur_rel
    sharp_dir = root / sharp_rel if sharp_rel else None
    missing = [d for d in (blur_dir, sharp_dir) if d is not None and not d.is_dir()]
    if split == "test" and missing and not (root / "test").exists():
        # The development phase: test inputs arrive weeks later. A note, not an error; a test/ folder that exists
        # but is broken is still an error.
        log.warning("%s: no test/ folder yet (development phase): indexing train and val only", root)
        return []
    for d in missing:
        problems.append(f"{d}: missing split folder ({split})")
    if missing:
        return []
    blur_seqs = _list_seqs(blur_dir, problems)
    sharp_seqs = _list_seqs(sharp_dir, problems) if sharp_dir else {}
    if not blur_seqs:
        problems.append(f"{blur_dir}: no sequences ({split})")
    rows = []
    for seq in sorted(set(blur_seqs) | set(sharp_seqs)):
        if sharp_dir and seq not in sharp_seqs:
            problems.append(f"{blur_seqs[seq]}: blurry sequence without sharp sequence {sharp_dir / seq}")
            continue
        if seq not in blur_seqs:
            problems.append(f"{sharp_seqs[seq]}: sharp sequence without blurry sequence {blur_dir / seq}")
            continue
        blur = _list_frames(blur_seqs[seq], blur_ext, problems)
        sharp = _list_frames(sharp_seqs[seq], _SHARP_EXT, problems) if sharp_dir else {}
        for frame in sorted(set(blur) - set(sharp)) if sharp_dir else []:
            problems.append(f"{blur[frame]}: blurry frame without sharp frame {sharp_seqs[seq] / (frame + _SHARP_EXT)}")
        for frame in sorted(set(sharp) - set(blur)):
            problems.append(f"{sharp[frame]}: sharp frame without blurry frame {blur_seqs[seq] / (frame + blur_ext)}")
        present = sorted(int(f) for f in set(blur) | set(sharp))
        if not present:
            problems.append(f"{blur_seqs[seq]}: empty sequence")
            continue
        gaps = sorted(set(range(present[-1] + 1)) - set(present))
        if gaps:
            shown = ", ".join(f"{g:08d}" for g in gaps[:10]) + (", ..." if len(gaps) > 10 else "")
            problems.append(f"{blur_seqs[seq]}: frame-name gap, missing {len(gaps)} frame(s): {shown}")
        for frame in sorted(set(blur) & set(sharp)) if sharp_dir else sorted(blur):
            rows.append(
                {
                    "split": split,
                    "seq": seq,
                    "frame": frame,
                    "name": f"{seq}_{frame}",
                    "blur_path": str(blur[frame]),
                    "sharp_path": str(sharp[frame]) if sharp_dir else "",
                }
            )
    return rows


def _probe(path: str) -> tuple[str, int, int, str, str]:
    """Decode one image fully (catches truncation); returns (path, height, width, md5 of the file, error or '')."""
    import hashlib

    from PIL import Image

    try:
        with Image.open(path) as im:
            mode = im.mode
        if mode != "RGB":
            return path, 0, 0, "", f"{path}: not an 8-bit RGB image (mode {mode})"
        img = read_image(path)
        digest = hashlib.md5(Path(path).read_bytes()).hexdigest()
    except ImageReadError as exc:
        return path, 0, 0, "", str(exc)
    except OSError as exc:
        return path, 0, 0, "", f"{path}: unreadable image ({exc})"
    return path, img.shape[0], img.shape[1], digest, ""


def _probe_chunk(paths: list[str]) -> list[tuple[str, int, int, str, str]]:
    return [_probe(p) for p in paths]


def probe_images(
    paths: list[str], workers: int, desc: str = "validate REDS images"
) -> dict[str, tuple[int, int, str, str]]:
    """Decode every image in ``paths`` over ``workers`` processes: path -> (height, width, md5, error or '')."""
    chunk = max(1, min(64, len(paths) // (4 * max(1, workers)) or 1))
    chunks = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    results = Parallel(n_jobs=workers, return_as="generator")(delayed(_probe_chunk)(c) for c in chunks)
    out = {}
    with tqdm(total=len(paths), desc=desc, unit="img", disable=None) as bar:
        for batch in results:
            for path, h, w, digest, err in batch:
                out[path] = (h, w, digest, err)
            bar.update(len(batch))
    return out


def read_index(path: str | Path, columns: Sequence[str] = COLUMNS) -> pd.DataFrame:
    """Read an index CSV written by the data stage, keeping ``seq``/``frame`` as zero-padded strings; the one reader
    of index CSVs (callers that need fewer than all ``COLUMNS`` name the ones they use).

    The data stage stores paths relative to the REDS root (so moving the data set changes no index and reruns nothing
    downstream) and the root in ``root.json`` beside the CSV; paths are returned joined with it. Absolute paths, or an
    index without ``root.json``, are returned as stored.
    """
    return resolve_paths(read_table(path, tuple(columns)), path)


def resolve_paths(table: pd.DataFrame, index_csv: str | Path) -> pd.DataFrame:
    """Join the relative ``blur_path``/``sharp_path`` of an index with the root recorded beside it (in place)."""
    root_file = Path(index_csv).parent / ROOT_FILE
    if root_file.is_file():
        root = Path(read_json(root_file, what="index root record", error=TableError)["root"])
        for col in ("blur_path", "sharp_path"):
            if col in table:
                table[col] = [str(root / p) if p and not Path(p).is_absolute() else p for p in table[col]]
    return table


def has_frames(index_csv: str | Path) -> bool:
    """True when an index CSV lists at least one frame (``test300.csv`` is empty before the test phase)."""
    return len(pd.read_csv(index_csv, dtype=str, usecols=["name"])) > 0


def relative_index(table: pd.DataFrame, root: str | Path) -> pd.DataFrame:
    """``table`` with its paths made relative to ``root`` (what the data stage writes; see :func:`read_index`); absolute
    paths outside ``root`` are kept."""
    root = Path(root)
    out = table.copy()
    for col in ("blur_path", "sharp_path"):
        out[col] = [_relative(p, root) for p in out[col]]
    return out


def _relative(path: str, root: Path) -> str:
    """``path`` relative to ``root``; an absolute path outside it (files the data stage derived, such as SIDD's
    blocks under ``paths.data``) stays absolute, which :func:`resolve_paths` returns as stored."""
    if not path:
        return path
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        if Path(path).is_absolute():
            return path
        raise


def index_reds(root: str | Path, *, workers: int = 2, blur_ext: str = _BLUR_EXT) -> dict[str, pd.DataFrame]:
    """Validate a REDS tree and index it: tables ``train``, ``val``, ``val300`` and ``test300`` (``COLUMNS`` plus the
    files' md5 in ``HASH_COLUMNS``).

    ``blur_ext`` is the one suffix the input frames must have: ``.jpg`` for REDS; the embedded set's tasks other than
    ``deblur_jpeg`` store ``.png`` (``pipeline.data.degrade.input_suffix``). Any other file is reported, as always.

    Every image is decoded (in parallel over ``workers`` processes) so truncated files are caught. All problems are
    collected and raised together as one ``DatasetError``. Paths keep ``root`` as given (relative stays relative).
    """
    root = Path(root)
    if blur_ext not in (".jpg", ".png"):
        raise ValueError(f"index_reds: blur_ext must be '.jpg' or '.png', got {blur_ext!r}")
    if not root.is_dir():
        raise DatasetError(root, [f"{root}: REDS root folder does not exist"])
    problems: list[str] = []
    rows = {split: _pair_split(root, split, problems, blur_ext) for split in SPLITS}
    paths = [r[k] for split_rows in rows.values() for r in split_rows for k in ("blur_path", "sharp_path") if r[k]]
    probed = probe_images(paths, workers) if paths else {}
    for split_rows in rows.values():
        for r in split_rows:
            bh, bw, bmd5, berr = probed[r["blur_path"]]
            problems.extend(e for e in (berr,) if e)
            r["height"], r["width"], r["blur_md5"], r["sharp_md5"] = bh, bw, bmd5, ""
            if r["sharp_path"]:
                sh, sw, r["sharp_md5"], serr = probed[r["sharp_path"]]
                if serr:
                    problems.append(serr)
                elif not berr and (sh, sw) != (bh, bw):
                    problems.append(
                        f"{r['blur_path']}: size {bw}x{bh} differs from its sharp frame {r['sharp_path']} ({sw}x{sh})"
                    )
    if problems:
        raise DatasetError(root, problems)
    tables = {split: pd.DataFrame(split_rows, columns=COLUMNS + HASH_COLUMNS) for split, split_rows in rows.items()}
    return {
        "train": tables["train"],
        "val": tables["val"],
        "val300": select_val300(tables["val"]),
        "test300": select_val300(tables["test"]),
    }


def index_reds_layout(root: str | Path, options) -> dict[str, pd.DataFrame]:
    """:func:`index_reds` under the indexer signature of ``pipeline.tasks`` (``options``: ``IndexOptions``); the tables
    keep exactly REDS's columns, so the default pipeline's index files stay as they were."""
    return index_reds(root, workers=options.workers, blur_ext=options.blur_ext)
