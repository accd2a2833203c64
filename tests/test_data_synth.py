"""Synthetic REDS: deterministic bytes, exact REDS layout, linear-light blur from the camera motion."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import SynthConfig
from pipeline.data.reds import index_reds
from pipeline.data.synth import DEAD_LEAVES, PHOTOS, manifest_matches, render_sequence, synthesize_reds

TINY = SynthConfig(
    seed=3,
    height=64,
    width=96,
    train_sequences=2,
    val_sequences=1,
    test_sequences=1,
    frames_per_sequence=10,
    subframes=5,
    leaves_fraction=0.5,  # one photo and one leaves training sequence, so both paths render
)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return synthesize_reds(TINY, tmp_path_factory.mktemp("synth") / "reds", workers=1)


def test_deterministic_bytes(tiny: Path, tmp_path: Path):
    again = synthesize_reds(TINY, tmp_path / "again", workers=2)
    first, second = _tree(tiny), _tree(again)
    assert first.keys() == second.keys()
    assert all(first[k] == second[k] for k in first)
    other = synthesize_reds(dataclasses.replace(TINY, seed=4), tmp_path / "other", workers=1)
    assert _tree(other)["val/val_sharp/000/00000000.png"] != first["val/val_sharp/000/00000000.png"]


def test_exact_reds_layout(tiny: Path):
    frames = [f"{k:08d}" for k in range(10)]
    expected = {"manifest.json"}
    for split, n in (("train", 2), ("val", 1), ("test", 1)):
        for seq in range(n):
            expected |= {f"{split}/{split}_blur_jpeg/{seq:03d}/{f}.jpg" for f in frames}
            if split != "test":
                expected |= {f"{split}/{split}_sharp/{seq:03d}/{f}.png" for f in frames}
    assert set(_tree(tiny)) == expected
    assert {str(p.relative_to(tiny)) for p in tiny.iterdir()} == {"train", "val", "test", "manifest.json"}
    tables = index_reds(tiny, workers=1)
    assert [len(tables[k]) for k in ("train", "val", "val300", "test300")] == [20, 10, 1, 1]
    assert tables["val300"]["name"].tolist() == ["000_00000009"]
    assert set(tables["train"]["height"]) == {64} and set(tables["train"]["width"]) == {96}


def test_manifest(tiny: Path):
    assert manifest_matches(TINY, tiny)
    assert not manifest_matches(dataclasses.replace(TINY, jpeg_quality=61), tiny)
    assert not manifest_matches(TINY, tiny / "missing")


def test_default_manifest_is_pinned():
    """The default manifest (what the data fingerprint hashes: version, config, sources, photo hashes) is pinned, so a
    change that alters the default set without bumping ``SYNTH_VERSION`` or a default fails here. Rendered bytes are
    not pinned: OpenCV's cubic warp differs in the last bits between CPUs (AVX2 vs AVX-512 kernels; measured:
    val-300 input PSNR 26.36785787867 dB on an AMD Zen 3, 26.36785806566 dB on an Intel Xeon), so a frame hash would
    fail on another machine. Updated for SYNTH_VERSION 4 (magnified training sequences, ``train_magnify_max``) and
    for the photos-only default (``leaves_fraction`` 0), and for SYNTH_VERSION 5 (``train_minify_max``, 120 training
    sequences), and for pool v2 (the two-octave sharpness rule)."""
    import hashlib
    import json

    from pipeline.data.synth import _manifest

    manifest = json.dumps(_manifest(SynthConfig()), indent=2) + "\n"  # as write_json writes it
    assert hashlib.sha256(manifest.encode()).hexdigest()[:16] == "385a1098282574f4"


def test_blur_comes_from_motion():
    still = dataclasses.replace(TINY, max_translation=0.0, max_rotation_deg=0.0, max_zoom=0.0, frames_per_sequence=2)
    for blur, sharp in render_sequence(still, "train", 0):
        assert np.array_equal(blur, sharp)  # no motion: averaging identical sub-frames changes nothing
    moving = render_sequence(dataclasses.replace(TINY, frames_per_sequence=2), "train", 0)
    for blur, sharp in moving:
        err = np.abs(blur.astype(int) - sharp.astype(int))
        assert err.mean() > 1.0
    # Consecutive sharp frames differ: the window drifts along the sequence.
    assert not np.array_equal(moving[0][1], moving[1][1])


def _gradient_energy(img: np.ndarray) -> float:
    g = img.astype(np.float64).mean(axis=2)
    return float(np.mean(np.diff(g, axis=0) ** 2) + np.mean(np.diff(g, axis=1) ** 2))


def test_training_zoom_changes_train_frames_only():
    """Magnified training frames are softer, minified ones denser (more gradient energy); val and test frames do not
    depend on either key, byte for byte."""
    still = dataclasses.replace(TINY, max_translation=0.0, max_rotation_deg=0.0, max_zoom=0.0, frames_per_sequence=2)
    flat = dataclasses.replace(still, train_magnify_max=1.0, train_minify_max=1.0)
    magnified = dataclasses.replace(flat, train_magnify_max=4.0)
    minified = dataclasses.replace(flat, train_minify_max=4.0)
    for split in ("val", "test"):  # held-out frames do not depend on it, byte for byte
        for zoomed in (magnified, minified):
            for (b1, s1), (b2, s2) in zip(
                render_sequence(flat, split, 0), render_sequence(zoomed, split, 0), strict=True
            ):
                assert np.array_equal(b1, b2) and np.array_equal(s1, s2)
    # Training sequence 0 films a photo: magnified, its sharp frame is interpolated, so it has less gradient energy;
    # minified (area-downscaled), the same field of view holds more of the photo, so it has more.
    photo_seq = next(k for k in range(4) if not _leaves(flat, k))
    energy = {
        name: _gradient_energy(render_sequence(cfg, "train", photo_seq)[0][1])
        for name, cfg in (("flat", flat), ("magnified", magnified), ("minified", minified))
    }
    assert energy["magnified"] < 0.8 * energy["flat"] < 0.8 * energy["minified"]


def test_training_zoom_draw_keeps_the_magnify_only_stream():
    """With minification off, a training sequence draws its zoom exactly as the magnify-only renderer did (the
    same generator call), so the key's default 1 reproduces those frames."""
    from pipeline.data.synth import _train_zoom

    cfg = dataclasses.replace(TINY, train_magnify_max=2.0, train_minify_max=1.0)
    zoom = _train_zoom(cfg, np.random.default_rng(7), "train")
    assert zoom == math.exp(np.random.default_rng(7).uniform(0.0, math.log(2.0)))
    assert _train_zoom(cfg, np.random.default_rng(7), "val") == 1.0
    both = dataclasses.replace(cfg, train_minify_max=2.0)
    draws = [_train_zoom(both, np.random.default_rng(k), "train") for k in range(200)]
    assert 0.5 <= min(draws) < 0.6 and 1.8 < max(draws) <= 2.0


def _leaves(cfg: SynthConfig, seq: int) -> bool:
    from pipeline.data.synth import sequence_source

    return sequence_source(cfg, "train", seq) == DEAD_LEAVES


def test_photo_list_is_color():
    from pipeline.data.pool import load_pool
    from pipeline.data.synth import _photo

    pool = load_pool()
    assert set(PHOTOS) == {"astronaut", "coffee", "chelsea", "rocket", "grace_hopper"} | set(pool)
    assert len(PHOTOS) == 5 + 19
    for name in PHOTOS:
        img = _photo(name)
        assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8
        if name in pool:  # committed crops: at least a sequence's window (coldripple is a black-and-white photo)
            assert img.shape[0] >= 384 and img.shape[1] >= 512
        else:
            assert np.abs(img[..., 0].astype(int) - img[..., 2].astype(int)).mean() > 5  # genuinely colour


def test_no_source_in_two_splits(tiny: Path):
    """Held-out content, checked on the rendered tree's manifest: no source (by name or by pixel hash) in two splits."""
    import json

    manifest = json.loads((tiny / "manifest.json").read_text())
    sources = manifest["sources"]
    assert set(sources) == {"train", "val", "test"}
    # The tree holds exactly the sequences the manifest describes.
    for split, seqs in sources.items():
        assert sorted(seqs) == sorted(p.name for p in (tiny / split / f"{split}_blur_jpeg").iterdir())
    assert set(sources["train"].values()) == {TINY.train_photos[0], DEAD_LEAVES}  # seq 0 a photo, seq 1 leaves
    per_split = {split: set(seqs.values()) for split, seqs in sources.items()}
    hashes = {split: {manifest["sha256"][s] for s in names - {DEAD_LEAVES}} for split, names in per_split.items()}
    for a in per_split:
        for b in per_split:
            if a < b:
                assert not per_split[a] & per_split[b], (a, b)
                assert not hashes[a] & hashes[b], (a, b)
    assert per_split["val"] <= set(TINY.val_photos) and per_split["test"] <= set(TINY.test_photos)


def test_default_embedded_set_is_held_out_and_large_enough():
    """The default params render a 60-frame val-300 and 30 test frames, every photo in exactly one split."""
    from pipeline.config import load_params
    from pipeline.data.pool import load_pool
    from pipeline.data.synth import _manifest

    cfg = load_params(Path(__file__).parents[1] / "params.yaml").data.synth
    assert cfg == SynthConfig()  # the defaults are the committed params
    manifest = _manifest(cfg)
    sources = manifest["sources"]
    val300 = cfg.val_sequences * len([f for f in range(cfg.frames_per_sequence) if f % 10 == 9])
    test300 = cfg.test_sequences * len([f for f in range(cfg.frames_per_sequence) if f % 10 == 9])
    assert val300 >= 60 and test300 >= 30
    assert set(sources["val"].values()) == set(cfg.val_photos) and len(cfg.val_photos) >= 10  # every one used
    assert set(sources["test"].values()) == set(cfg.test_photos)
    assert {"astronaut", "coffee", "chelsea", "rocket", "grace_hopper"} <= set(cfg.val_photos)  # comparable to before
    train = list(sources["train"].values())
    assert set(train) == ({DEAD_LEAVES} if cfg.leaves_fraction else set()) | set(cfg.train_photos)
    assert train.count(DEAD_LEAVES) == round(cfg.leaves_fraction * cfg.train_sequences)
    # By name, by pixel hash and by the pool's file hash: no photo in two splits.
    per_split = {split: set(seqs.values()) - {DEAD_LEAVES} for split, seqs in sources.items()}
    pool = load_pool()
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not per_split[a] & per_split[b]
        assert not {manifest["sha256"][s] for s in per_split[a]} & {manifest["sha256"][s] for s in per_split[b]}
        files = {split: {pool[s].sha256 for s in per_split[split] if s in pool} for split in (a, b)}
        assert not files[a] & files[b]
    for split, names in per_split.items():
        assert all(pool[s].split == split for s in names if s in pool)


def test_train_sequences_film_their_own_dead_leaves():
    from pipeline.data.synth import _scene

    leaves = dataclasses.replace(TINY, leaves_fraction=1.0)
    a, b = _scene(leaves, "train", 0), _scene(leaves, "train", 1)
    assert a.shape == b.shape == (2 * TINY.height, TINY.width * 8 // 5, 3) and a.dtype == np.uint8
    assert not np.array_equal(a, b)
    assert np.array_equal(a, _scene(leaves, "train", 0))  # pure function of the seed


def test_textured_leaves_draw_from_the_given_photos_only():
    from pipeline.data.deadleaves import dead_leaves

    red = np.zeros((64, 64, 3), np.uint8)
    red[..., 0] = 200
    img = dead_leaves(64, 80, [0, 5], photos=[red])
    # Every colour comes from the photo (pure red), mixed only with the grey textures' brightness and edges.
    assert img[..., 1].max() == 0 and img[..., 2].max() == 0 and img[..., 0].max() > 150
    assert not np.array_equal(img, dead_leaves(64, 80, [0, 5]))  # untextured leaves differ


def test_dead_leaves_statistics():
    from pipeline.data.deadleaves import dead_leaves

    img = dead_leaves(128, 160, [0, 1])
    assert img.shape == (128, 160, 3) and img.dtype == np.uint8
    assert np.array_equal(img, dead_leaves(128, 160, [0, 1]))
    assert not np.array_equal(img, dead_leaves(128, 160, [0, 2]))
    # Colourful, full range and full of edges: many distinct colours and strong gradients.
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 2000
    assert np.abs(img[..., 0].astype(int) - img[..., 2].astype(int)).mean() > 5
    grad = np.abs(np.diff(img.astype(np.float32), axis=1)).mean(axis=2)
    assert (grad > 30).mean() > 0.01
    with pytest.raises(ValueError, match="rmin"):
        dead_leaves(64, 64, 0, rmin=30.0, rmax=20.0)


@pytest.mark.parametrize(
    "change,message",
    [
        ({"height": 60}, "multiple of 16"),
        ({"width": 100}, "multiple of 16"),
        ({"subframes": 4}, "odd"),
        ({"val_photos": ("astronaut", "rocket"), "test_photos": ("rocket",)}, "both val_photos and test_photos"),
        ({"train_photos": ("fig", "life")}, r"pool photos of the train split \(\[\('life', 'val'\)\]"),
        ({"train_photos": ("fig", "coffee"), "val_photos": ("coffee",)}, "both train_photos and val_photos"),
        ({"leaves_fraction": 1.5}, r"leaves_fraction: got 1.5, must be in \[0, 1\]"),
        ({"val_photos": ("retina",)}, "unknown photo"),
        ({"val_photos": ("lena",)}, "unknown photo"),
        ({"test_photos": ()}, r"test_photos: got \[\], must be at least one of"),
        ({"train_magnify_max": 0.5}, r"train_magnify_max: got 0.5, must be in \[1, 4\]"),
        ({"train_minify_max": 0.5}, r"train_minify_max: got 0.5, must be in \[1, 4\]"),
    ],
)
def test_bad_config(tmp_path: Path, change: dict, message: str):
    with pytest.raises(ValueError, match=message):
        synthesize_reds(dataclasses.replace(TINY, **change), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("nested", [True, False])
def test_prepare_synthetic(tmp_path: Path, nested: bool):
    from pipeline.config import DataConfig, PathsConfig
    from pipeline.data.prepare import prepare
    from pipeline.data.reds import read_index

    synth_root = tmp_path / ("data/reds" if nested else "synthetic_reds")
    paths = PathsConfig(
        data=str(tmp_path / "data"),
        synthetic_reds=str(synth_root),
        metrics=str(tmp_path / "m"),
        plots=str(tmp_path / "p"),
    )
    cfg = DataConfig(workers=1, store="patches", patch_size=32, patch_stride=32, contact_sheet_pairs=1, synth=TINY)
    stats = prepare(cfg, paths)
    assert stats.counts.train == 20 and stats.counts.patches == 20 * 2 * 3
    assert 15.0 < stats.input.psnr < 40.0
    val300 = read_index(tmp_path / "data/index/val300.csv")
    assert val300["blur_path"].tolist() == [str(synth_root / "val/val_blur_jpeg/000/00000009.jpg")]
    assert Path(val300["sharp_path"][0]).is_file()
    assert not list(tmp_path.rglob("*.tmp"))
    stamp = (synth_root / "manifest.json").stat().st_mtime_ns
    assert prepare(cfg, paths) == stats
    # Outside the data dir the rendered tree is reused while its manifest matches; inside it is rebuilt with it.
    assert ((synth_root / "manifest.json").stat().st_mtime_ns == stamp) is not nested


def test_prepare_stores_training_frames_in_shards_by_default(tmp_path: Path):
    from pipeline.config import DataConfig, PathsConfig
    from pipeline.data.dataset import PairedPatchDataset
    from pipeline.data.prepare import prepare
    from pipeline.data.reds import read_index
    from pipeline.data.shards import ShardSet

    paths = PathsConfig(data=str(tmp_path / "data"), synthetic_reds=str(tmp_path / "data/reds"),
                        metrics=str(tmp_path / "m"), plots=str(tmp_path / "p"))  # fmt: skip
    stats = prepare(DataConfig(workers=1, shard_frames=8, contact_sheet_pairs=1, synth=TINY), paths)
    assert stats.store == "shards" and stats.shards.files == 3  # 20 frames, 8 per shard
    shards = ShardSet(tmp_path / "data/shards")
    train = read_index(tmp_path / "data/index/train.csv")
    assert shards.names == train["name"].tolist()
    assert stats.shards.bytes == sum(p.stat().st_size for p in (tmp_path / "data/shards").glob("*.shard"))
    frames, stored = PairedPatchDataset(train, 32), PairedPatchDataset.from_prepared(tmp_path / "data", 32)
    assert stored.shards is not None
    for i in (0, 7, 19):
        assert all(a.equal(b) for a, b in zip(frames.sample(i, seed=1), stored.sample(i, seed=1), strict=True))
