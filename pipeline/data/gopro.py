"""GoPro (deblurring; Nah et al., 2017) indexing and validation, in either of the two forms the download comes in.

- ``GOPRO_Large``: ``train/<scene>/blur/*.png`` and ``train/<scene>/sharp/*.png`` (2103 pairs), the same under
  ``test/`` (1111 pairs); other folders of a scene (``blur_gamma/``) are not read.
- The flattened form the HINet release reads (from MPRNet): ``train/input``, ``train/target``, ``test/input``,
  ``test/target``, one folder of PNGs each, paired by file name.

Split mapping: ``train/`` -> ``train``; ``test/`` (1111 full 1280x720 frames) -> the scored split (``val300``, and
``val``) and the packaged split (``test300``): GoPro has no held-out validation set, the paper scores on test. A frame
is ``<scene>_<frame>`` (scene folder and file stem; in the flat form the stem's numeric tail splits it, as in
``GOPR0372_07_00-000047``), so the leaderboard resamples whole scenes. The release crops training frames to 512 px
sub-images with stride 256 (``scripts/data_preparation/gopro.py``): here that is ``data.store: patches`` with
``data.patch_size: 512`` and ``data.patch_stride: 256``; the index keeps whole frames.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.data.layouts import (
    IndexOptions,
    LayoutError,
    fill_probes,
    guess_layout,
    pair_folders,
    split_stem,
    tables_from_rows,
    wrong_layout,
)
from pipeline.data.reds import DatasetError

__all__ = ["TEST_SET", "index_gopro"]

TEST_SET = "GoPro"  # pipeline.tasks' test set name of the scored rows
_EXPECTED = "train/ and test/ holding <scene>/blur + <scene>/sharp folders, or input/ + target/ folders"


def _split_pairs(split_dir: Path, problems: list[str]) -> list[tuple[str, str, Path, Path]]:
    """(seq, frame, blurry, sharp) of one split folder in whichever form it has; both forms at once is an error."""
    flat = [split_dir / d for d in ("input", "target") if (split_dir / d).exists()]
    scenes = [d for d in sorted(split_dir.iterdir()) if d.is_dir() and d.name not in ("input", "target")]
    scenes = [d for d in scenes if not d.name.startswith(".")]
    if flat and scenes:
        raise LayoutError(
            f"{split_dir}: mixed GoPro layouts: input/ + target/ beside scene folders such as {scenes[0].name}/ "
            "(expected one form per split)"
        )
    if flat:
        pairs = pair_folders(split_dir / "input", split_dir / "target", problems)
        return [(*split_stem(stem), blur, sharp) for stem, blur, sharp in pairs]
    if not scenes:
        problems.append(f"{split_dir}: no scene folders and no input/ + target/ folders (empty split)")
        return []
    out = []
    for scene in scenes:
        pairs = pair_folders(scene / "blur", scene / "sharp", problems)
        out.extend((scene.name, stem, blur, sharp) for stem, blur, sharp in pairs)
    return out


def index_gopro(root: Path, options: IndexOptions) -> dict[str, pd.DataFrame]:
    """Validate a GoPro tree and index it: ``train``, and the test frames as ``val``, ``val300`` and ``test300``.

    A tree that is not GoPro's (no ``train/``/``test/``, a Rain13K or SIDD tree) is one ``LayoutError`` line; every
    missing partner, size mismatch, unreadable or truncated image and empty split is listed in one ``DatasetError``.
    """
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"{root}: GoPro root folder does not exist")
    guesses = guess_layout(root)
    if not ((root / "train").is_dir() or (root / "test").is_dir()) or ("gopro" not in guesses and guesses):
        raise wrong_layout(root, "gopro", _EXPECTED)
    problems: list[str] = []
    rows: dict[str, list[dict]] = {}
    for split, test_set in (("train", ""), ("test", TEST_SET)):
        split_dir = root / split
        if not split_dir.is_dir():
            problems.append(f"{split_dir}: missing split folder ({split})")
            continue
        rows[split] = [
            {
                "split": split,
                "seq": seq,
                "frame": frame,
                "name": f"{seq}_{frame}",
                "blur_path": str(blur),
                "sharp_path": str(sharp),
                "test_set": test_set,
            }
            for seq, frame, blur, sharp in _split_pairs(split_dir, problems)
        ]
        seen: dict[str, str] = {}
        for r in rows[split]:
            if r["name"] in seen:
                problems.append(f"{r['blur_path']}: frame name {r['name']!r} also given by {seen[r['name']]}")
            seen[r["name"]] = r["blur_path"]
    every = [r for split_rows in rows.values() for r in split_rows]
    fill_probes(every, options.workers, problems, "GoPro")
    if problems:
        raise DatasetError(root, problems, what="GoPro")
    test = rows.get("test", [])
    return tables_from_rows({"train": rows["train"], "val": test, "val300": test, "test300": test}, "gopro")
