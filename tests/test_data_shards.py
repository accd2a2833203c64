"""Shards: exact round trip of frames and crops, the same training samples as frames, several DataLoader workers,
and every kind of bad shard (truncated, appended, other data version, corrupt tile, half-written) named, never read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from pipeline.data.dataset import PairedPatchDataset
from pipeline.data.shards import INDEX, ShardError, ShardReader, ShardSet, data_version, write_shards
from pipeline.fileio import ImageReadError, read_image, write_image

H, W = 45, 70  # not multiples of the block: edge tiles are partial


def _table(tmp: Path, n: int = 5, *, salt: int = 0) -> pd.DataFrame:
    rows = []
    for k in range(n):
        rng = np.random.default_rng([k, salt])
        sharp = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        blur = (sharp // 2 + rng.integers(0, 64, (H, W, 3))).astype(np.uint8)
        bp, sp = tmp / f"b{salt}_{k}.png", tmp / f"s{salt}_{k}.png"
        write_image(bp, blur)
        write_image(sp, sharp)
        name = f"{k:03d}_00000000"
        rows.append(("train", f"{k:03d}", "00000000", name, str(bp), str(sp), H, W, f"{k}{salt}b", f"{k}{salt}s"))
    cols = ["split", "seq", "frame", "name", "blur_path", "sharp_path", "height", "width", "blur_md5", "sharp_md5"]
    return pd.DataFrame(rows, columns=cols)


@pytest.fixture
def stored(tmp_path: Path):
    table = _table(tmp_path)
    index = write_shards(table, tmp_path / "shards", frames_per_shard=2, block=16, workers=1)
    return table, index, tmp_path / "shards"


def test_round_trip_is_exact_and_files_are_few(stored):
    table, index, folder = stored
    shards = ["train-00000.shard", "train-00001.shard", "train-00002.shard"]
    assert sorted(p.name for p in folder.iterdir()) == [INDEX, *shards]
    assert [s["frames"] for s in index["shards"]] == [2, 2, 1] and index["frames"] == 5
    assert index["bytes"] == sum((folder / s["file"]).stat().st_size for s in index["shards"])
    assert index["data_version"] == data_version(table)
    shards = ShardSet(folder)
    assert shards.names == table["name"].tolist() and shards.sizes == [(H, W)] * 5
    reader = ShardReader(folder / "train-00001.shard")
    for slot, k in enumerate((2, 3)):
        blur, sharp = reader.crop(slot, 0, 0, H, W)  # the whole frame
        assert np.array_equal(blur, read_image(table["blur_path"][k]))
        assert np.array_equal(sharp, read_image(table["sharp_path"][k]))
    rng = np.random.default_rng(0)
    full = read_image(table["sharp_path"][4])
    for _ in range(50):  # crops inside one tile, across tile borders, at the partial edge tiles
        size = int(rng.integers(1, 40))
        y, x = int(rng.integers(0, H - size + 1)), int(rng.integers(0, W - size + 1))
        assert np.array_equal(shards.crop(4, y, x, size)[1], full[y : y + size, x : x + size])
    with pytest.raises(ValueError, match="outside frame 004_00000000"):
        shards.crop(4, 40, 0, 16)


def test_training_samples_from_shards_equal_samples_from_frames(stored):
    table, _, folder = stored
    frames = PairedPatchDataset(table, 24)
    shards = PairedPatchDataset.from_shards(ShardSet(folder), 24)
    assert len(shards) == len(frames) == 5
    for i in range(5):
        for seed in (0, 1, 2):
            a, b = frames.sample(i, seed=seed), shards.sample(i, seed=seed)
            assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(ValueError, match=r"patch_size 50 exceeds the size 70x45 of frame 000_00000000 \(5 of 5"):
        PairedPatchDataset.from_shards(ShardSet(folder), 50)


class _Samples(torch.utils.data.Dataset):
    def __init__(self, base):
        self.base = base

    def __len__(self):
        return 20

    def __getitem__(self, i):
        return self.base.sample(i % len(self.base), seed=i)


def test_two_dataloader_workers_read_the_same_batches(stored):
    _, _, folder = stored
    ds = _Samples(PairedPatchDataset.from_shards(ShardSet(folder), 16))
    serial = [b for b in DataLoader(ds, batch_size=4)]
    parallel = [b for b in DataLoader(ds, batch_size=4, num_workers=2)]
    assert len(serial) == len(parallel) == 5
    for (a0, a1), (b0, b1) in zip(serial, parallel, strict=True):
        assert torch.equal(a0, b0) and torch.equal(a1, b1)


def test_from_prepared_uses_shards_when_listed(stored, tmp_path: Path):
    table, _, folder = stored
    (tmp_path / "index").mkdir()
    table.to_csv(tmp_path / "index" / "train.csv", index=False)
    ds = PairedPatchDataset.from_prepared(tmp_path, 16)
    assert ds.shards is not None and len(ds) == 5
    write_shards(table.iloc[:0], folder, frames_per_shard=2, block=16, workers=1)  # an index of no shards
    assert PairedPatchDataset.from_prepared(tmp_path, 16).shards is None


def test_truncated_or_appended_shard_is_named(stored):
    _, _, folder = stored
    shard = folder / "train-00001.shard"
    data = shard.read_bytes()
    shard.write_bytes(data[:-100])
    with pytest.raises(ShardError, match=r"train-00001\.shard: truncated or not a shard"):
        ShardSet(folder)
    shard.write_bytes(data[:30])
    with pytest.raises(ShardError, match=r"train-00001\.shard: truncated"):
        ShardReader(shard)
    shard.write_bytes(data + b"extra")
    with pytest.raises(ShardError, match=r"train-00001\.shard: truncated or not a shard"):
        ShardReader(shard)
    shard.write_bytes(b"x" * 5 + data)
    with pytest.raises(ShardError, match=r"train-00001\.shard: truncated or not a shard"):
        ShardReader(shard)
    shard.unlink()
    with pytest.raises(ShardError, match=r"train-00001\.shard: shard not found"):
        ShardSet(folder)


def test_shard_from_another_data_version_is_named(stored, tmp_path: Path):
    _, _, folder = stored
    other = write_shards(_table(tmp_path, salt=1), tmp_path / "other", frames_per_shard=2, block=16, workers=1)
    (folder / "train-00002.shard").write_bytes((tmp_path / "other" / "train-00000.shard").read_bytes())
    with pytest.raises(ShardError, match=rf"train-00002\.shard: from data version {other['data_version']}"):
        ShardSet(folder)


def test_corrupt_tile_is_named_not_returned(stored):
    _, index, folder = stored
    shard = folder / "train-00000.shard"
    reader = ShardReader(shard)
    offset, length = reader.table[3]
    data = bytearray(shard.read_bytes())
    data[offset + length // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    reader = ShardReader(shard)
    with pytest.raises(ShardError, match=r"train-00000\.shard: tile 3 of frame 000_00000000 is corrupt"):
        reader.crop(0, 0, 0, H, W)


def test_a_failed_write_publishes_no_shard(tmp_path: Path):
    table = _table(tmp_path, n=3)
    Path(table["sharp_path"][2]).write_bytes(b"not a png")
    with pytest.raises(ImageReadError, match=r"s0_2\.png"):
        write_shards(table, tmp_path / "shards", frames_per_shard=2, block=16, workers=1)
    left = {p.name for p in (tmp_path / "shards").iterdir()}
    assert left <= {"train-00000.shard"}  # a finished first shard at most: no temp, no half shard, no index
    # (prepare builds the whole folder in a temporary sibling, so even that is never published)
