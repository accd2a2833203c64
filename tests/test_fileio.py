"""Atomic writes: outputs follow the umask, temps of a killed write are removed by the next; truncated images."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.fileio import (
    ImageReadError,
    atomic_dir,
    atomic_path,
    read_image,
    temp_sibling,
    write_image,
    write_json,
    write_text,
)


@pytest.fixture()
def umask():
    """Set the process umask for one test (restored after)."""
    saved = os.umask(0o022)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(saved)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("mask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_published_files_and_folders_follow_the_umask(tmp_path, umask, mask, file_mode, dir_mode):
    umask(mask)
    write_text(tmp_path / "a.txt", "x")
    write_json(tmp_path / "m.json", {"a": 1})
    write_image(tmp_path / "i.png", np.zeros((4, 4, 3), np.uint8))
    with atomic_dir(tmp_path / "preds") as tmp:
        (tmp / "f.txt").write_text("y")
    assert [_mode(tmp_path / n) for n in ("a.txt", "m.json", "i.png")] == [file_mode] * 3
    assert _mode(tmp_path / "preds") == dir_mode
    assert _mode(tmp_path / "preds" / "f.txt") == file_mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "i.png", "m.json", "preds"]


def test_a_rewrite_removes_the_temps_a_killed_write_left(tmp_path):
    target = tmp_path / "prepared"
    stale = [temp_sibling(target), tmp_path / ".prepared.k3_x9q0a.tmp", tmp_path / ".prepared.old"]
    for folder in stale:  # what kill -9 during atomic_dir leaves: today's temp, an old mkdtemp one, a half swap
        (folder / "index").mkdir(parents=True)
        (folder / "index" / "train.csv").write_text("partial")
    unrelated = [
        tmp_path / ".prepared2.abcdefgh.tmp",
        tmp_path / ".other.abcdefgh.tmp",
        tmp_path / ".prepared.tmpx",
        tmp_path / "prepared.txt",
        tmp_path / ".prepared.toolongname.tmp",
    ]
    for folder in unrelated:
        folder.mkdir()
    with atomic_dir(target) as tmp:
        (tmp / "done").write_text("ok")
    assert not any(p.exists() for p in stale)
    assert all(p.is_dir() for p in unrelated)
    assert (target / "done").read_text() == "ok"

    out = tmp_path / "models" / "wd_s1.safetensors"
    out.parent.mkdir()
    temp_sibling(out).write_bytes(b"half a checkpoint")  # what kill -9 during atomic_path leaves
    (out.parent / "wd_s2.safetensors").write_bytes(b"other")
    with atomic_path(out) as tmp:
        assert tmp == out.parent / ".wd_s1.tmp.safetensors" and tmp.read_bytes() == b""
        tmp.write_bytes(b"weights")
    assert sorted(p.name for p in out.parent.iterdir()) == ["wd_s1.safetensors", "wd_s2.safetensors"]
    assert out.read_bytes() == b"weights"


def test_a_failed_write_leaves_no_temp_and_keeps_the_old_output(tmp_path):
    write_text(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "a.txt") as tmp:
        tmp.write_text("new")
        raise RuntimeError("killed")
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "d") as tmp:
        raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    assert (tmp_path / "a.txt").read_text() == "old"


@pytest.mark.parametrize(
    ("name", "kind", "why"), [("cut.png", "PNG", "no IEND chunk"), ("cut.jpg", "JPEG", "no end-of-image marker")]
)
def test_images_cut_in_half_are_reported_truncated(tmp_path, name, kind, why):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(Path(name).suffix, img)
    assert ok
    data = buf.tobytes()
    (tmp_path / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError) as info:
        read_image(tmp_path / name)
    assert str(info.value) == f"{tmp_path / name}: truncated {kind} ({why})"
    (tmp_path / name).write_bytes(data)
    assert read_image(tmp_path / name).shape == (64, 96, 3)


def test_garbage_is_not_decodable(tmp_path):
    (tmp_path / "x.png").write_bytes(b"not an image at all")
    with pytest.raises(ImageReadError, match=r"x\.png: not a decodable image"):
        read_image(tmp_path / "x.png")
