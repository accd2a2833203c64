"""The photo pool: the sharpness rule that selects it, and the checks that stop prepare on a pool that does not match
its record."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.data import pool
from pipeline.data.deadleaves import dead_leaves
from pipeline.data.pool import PoolError, best_window, block_sharpness, load_pool, select_window


@pytest.fixture(scope="module")
def sharp() -> np.ndarray:
    return dead_leaves(384, 640, [7, 1], rmin=1.0)  # hard anti-aliased edges everywhere


def test_sharp_content_passes_and_blurred_content_fails(sharp: np.ndarray):
    structured, is_sharp = block_sharpness(sharp)
    assert structured.shape == (12, 20)
    assert structured.mean() > 0.9 and is_sharp.sum() >= 0.9 * structured.sum()
    for sigma in (1.0, 1.5, 3.0):  # defocus / motion blur of a pixel or more: structure stays, sharpness goes
        s, k = block_sharpness(cv2.GaussianBlur(sharp, (0, 0), sigma))
        assert s.mean() > 0.5 and k.sum() == 0, sigma
    flat = np.full((384, 640, 3), 128, np.uint8)  # flat is neither structured nor blurred
    s, k = block_sharpness(flat)
    assert not s.any() and not k.any()


def test_fine_noise_does_not_hide_defocus(sharp: np.ndarray):
    """Grain on a defocused region adds energy at the finest octave only: pool v1's one-ratio rule (full resolution
    over one octave down) passed every block of this, the two-octave rule passes too few for any window."""
    from pipeline.data.pool import SHARP_RATIO, STRUCTURE, _luma, _octave_laplacian

    grain = np.random.default_rng(0).normal(0.0, 4.0, sharp.shape)
    soft = np.clip(cv2.GaussianBlur(sharp, (0, 0), 2.0) + grain, 0, 255).astype(np.uint8)
    y = _luma(soft)
    fine, coarse = _octave_laplacian(y, 0, pool.BLOCK), _octave_laplacian(y, 1, pool.BLOCK)
    assert ((coarse > STRUCTURE) & (fine >= SHARP_RATIO * coarse)).all()  # v1's rule: all sharp
    structured, is_sharp = block_sharpness(soft)
    assert structured.all() and is_sharp.sum() < 0.1 * structured.size
    assert select_window(soft) is None


def test_window_lands_on_the_in_focus_part(sharp: np.ndarray):
    img = np.concatenate([sharp, cv2.GaussianBlur(sharp, (0, 0), 2.0)], axis=1)  # 384 x 1280: right half defocused
    assert best_window(img, (384, 640)) == (0, 0, 640, 384)
    # The widest window (768 px, clipped to the 384 rows there are) still starts on the sharp side: its last 4 of 24
    # block columns are soft, under the quarter the rule tolerates; one more soft column and it would not qualify.
    assert select_window(img) == (0, 0, 768, 384)
    assert select_window(cv2.GaussianBlur(img, (0, 0), 2.0)) is None  # all soft: the photo is rejected
    assert best_window(img[:, :400], (384, 640)) is None  # smaller than a sequence's window


def test_committed_pool_matches_its_record():
    photos = load_pool()
    record = json.loads((pool.POOL_DIR / "sources.json").read_text())
    assert len(photos) == len(record["images"]) == 19
    assert {p.split for p in photos.values()} == {"train", "val", "test"}
    total = sum(p.path.stat().st_size for p in photos.values())
    assert total < 40 * 2**20
    for p in photos.values():
        assert p.licence and p.record["attribution"] and p.record["package"] and p.record["package_file_sha256"]
        img = pool.pool_photo(p.name)
        structured, is_sharp = block_sharpness(img)
        assert is_sharp.sum() >= pool.MIN_SHARP_BLOCKS  # the rule holds for what was committed
    for text in ("GPL-2", "GPL-3", "LGPL-3", "CC0-1.0"):
        assert (pool.POOL_DIR / f"LICENSE.{text}").stat().st_size > 1000


def _copy_pool(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    shutil.copytree(pool.POOL_DIR, root)
    return root


def _edit_record(root: Path, edit) -> None:
    path = root / "sources.json"
    record = json.loads(path.read_text())
    edit(record)
    path.write_text(json.dumps(record))


def test_bad_pool_is_named(tmp_path: Path):
    root = _copy_pool(tmp_path)
    (root / "life.png").write_bytes((root / "life.png").read_bytes()[:-10] + b"0123456789")
    with pytest.raises(PoolError, match=r"life\.png: sha256 .* does not match sources\.json"):
        load_pool(root)
    root = _copy_pool(tmp_path / "b")
    (root / "fig.png").unlink()
    with pytest.raises(PoolError, match=r"fig\.png: pool image listed in sources\.json is missing"):
        load_pool(root)
    root = _copy_pool(tmp_path / "c")
    _edit_record(root, lambda r: next(e for e in r["images"] if e["name"] == "wine").update(licence=""))
    with pytest.raises(PoolError, match=r"sources\.json: entry 'wine' has no licence"):
        load_pool(root)
    (root / "sources.json").write_text("{")
    with pytest.raises(PoolError, match="sources.json: not valid JSON"):
        load_pool(root)


def test_prepare_stops_on_a_bad_pool_and_keeps_the_previous_outputs(tmp_path: Path, monkeypatch):
    """One line naming the file; the previous prepared data is not touched."""
    import subprocess
    import sys

    root = _copy_pool(tmp_path)
    (root / "kite.png").write_bytes(b"not a png")
    work = tmp_path / "run"
    (work / "data/prepared").mkdir(parents=True)
    (work / "data/prepared/keep.txt").write_text("previous outputs")
    shutil.copy(Path(__file__).parents[1] / "params.yaml", work / "params.yaml")
    code = (
        "import pipeline.data.pool as p, pathlib, runpy, sys; p.POOL_DIR = pathlib.Path(sys.argv[1]); "
        f"sys.argv = ['prepare']; runpy.run_path({str(Path(__file__).parents[1] / 'stages/prepare.py')!r}, "
        "run_name='__main__')"
    )
    res = subprocess.run([sys.executable, "-c", code, str(root)], cwd=work, capture_output=True, text=True)
    assert res.returncode == 1, res.stderr
    assert res.stderr.strip().splitlines() == [
        f"error: {root / 'kite.png'}: sha256 {pool._sha256(root / 'kite.png')[:16]}... does not match sources.json "
        f"({load_pool()['kite'].sha256})"
    ]
    assert (work / "data/prepared/keep.txt").read_text() == "previous outputs"
