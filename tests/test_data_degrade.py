"""The embedded set's degradations (pipeline.data.degrade) and its tasks: noise statistics, rain geometry and blending,
lossless deblur frames, one content for every task, the manifest naming the task, bad task params."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import ConfigError, SynthConfig
from pipeline.data.degrade import (
    NoiseParams,
    RainLayer,
    add_rain,
    add_sensor_noise,
    draw_noise,
    draw_rain,
    rain_layer,
    streak_kernel,
)
from pipeline.data.reds import DatasetError, index_reds
from pipeline.data.synth import manifest_matches, manifest_task, render_sequence, synthesize_reds
from pipeline.fileio import read_image

TINY = SynthConfig(
    seed=3,
    height=64,
    width=96,
    train_sequences=2,
    val_sequences=1,
    test_sequences=1,
    frames_per_sequence=10,
    subframes=5,
)
TASKS = ("deblur_jpeg", "deblur", "denoise", "derain")


def test_sensor_noise_variance_is_affine_in_the_signal():
    """On a ramp of flat grey levels, the per-level variance against the level fits ``a * x + b`` per channel."""
    levels = np.linspace(0.05, 0.95, 19)
    ramp = np.repeat(levels, 128 * 128).reshape(19, 128, 128, 1) * np.ones(3)
    noise = NoiseParams(shot=(0.01, 0.005, 0.02), read=(1e-3, 5e-4, 2e-3))
    noisy = add_sensor_noise(ramp, np.random.default_rng(0), noise)
    for c in range(3):
        mean = noisy[..., c].mean(axis=(1, 2))
        var = noisy[..., c].var(axis=(1, 2))
        np.testing.assert_allclose(mean, levels, atol=2e-3)  # unbiased before the camera curve
        slope, intercept = np.polyfit(mean, var, 1)
        assert slope == pytest.approx(noise.shot[c], rel=0.05), c
        assert intercept == pytest.approx(noise.read[c], rel=0.2), c
    again = add_sensor_noise(ramp, np.random.default_rng(0), noise)
    assert np.array_equal(noisy, again)


def test_noise_draws_stay_in_their_ranges():
    rng = np.random.default_rng(1)
    flat = [draw_noise(rng, (0.002, 0.02), (1e-5, 1e-3), 0.0) for _ in range(400)]
    a = np.array([n.shot[0] for n in flat])
    b = np.array([n.read[0] for n in flat])
    assert all(n.shot[0] == n.shot[1] == n.shot[2] for n in flat)  # spread 0: one gain for every channel
    assert a.min() >= 0.002 and a.max() <= 0.02 and b.min() >= 1e-5 and b.max() <= 1e-3
    assert np.median(a) == pytest.approx(np.sqrt(0.002 * 0.02), rel=0.15)  # log-uniform: median at the geometric mean
    spread = draw_noise(rng, (0.01, 0.01), (1e-4, 1e-4), 0.25)
    gains = np.array(spread.shot) / 0.01
    assert np.all((gains >= 0.75) & (gains <= 1.25)) and len(set(gains)) == 3
    np.testing.assert_allclose(np.array(spread.read) / 1e-4, gains)  # one gain scales a and b alike


def test_denoise_frames_are_noisy_sharp_frames_darker_noisier():
    """The denoise input is the (unblurred) sharp frame plus noise, noisier in shadows after the camera curve."""
    cfg = dataclasses.replace(TINY, task="denoise", frames_per_sequence=2)
    for noisy, sharp in render_sequence(cfg, "val", 0):
        diff = noisy.astype(float) - sharp
        assert 1.0 < diff.std() < 40.0 and abs(diff.mean()) < 3.0
        dark, bright = sharp.mean(axis=2) < 60, sharp.mean(axis=2) > 180
        if dark.sum() > 200 and bright.sum() > 200:
            assert diff[dark].std() > diff[bright].std()


def test_streak_kernel_is_a_centred_line():
    k = streak_kernel(21.0, 1, 0.0)
    assert k.max() == pytest.approx(1.0) and np.array_equal(k, k[::-1, ::-1])
    rows, cols = np.nonzero(k > 0.5)
    assert rows.max() - rows.min() in (20, 21, 22) and cols.max() - cols.min() <= 1  # vertical, 21 px long
    tilted = streak_kernel(21.0, 2, 45.0)
    r, c = np.nonzero(tilted > 0.5)
    assert np.corrcoef(r, c)[0, 1] > 0.95  # leans right going down


def test_rain_layer_covers_what_its_density_says():
    """A pixel is rained on when a seed lies in its kernel footprint: expected share ``1 - (1 - d)^K``."""
    layer = RainLayer(density=0.004, length=15.0, width=1, angle_deg=20.0, brightness=0.6)
    rain = rain_layer((256, 320), np.random.default_rng(2), layer)
    footprint = int((streak_kernel(15.0, 1, 20.0) > 0).sum())
    expected = 1 - (1 - 0.004) ** footprint
    assert (rain > 0).mean() == pytest.approx(expected, rel=0.08)
    assert rain.min() >= 0.0 and rain.max() <= 0.6 + 1e-6 and rain.max() > 0.5
    denser = rain_layer((256, 320), np.random.default_rng(2), dataclasses.replace(layer, density=0.008))
    assert (denser > 0).mean() > (rain > 0).mean() * 1.5
    vertical = rain_layer((256, 320), np.random.default_rng(3), dataclasses.replace(layer, angle_deg=0.0))
    assert np.abs(np.diff(vertical, axis=0)).mean() < 0.5 * np.abs(np.diff(vertical, axis=1)).mean()


@pytest.mark.parametrize("blend", ["screen", "add"])
def test_rain_only_brightens_and_leaves_dry_pixels_alone(blend: str):
    frame = np.random.default_rng(4).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    layers = draw_rain(np.random.default_rng(5), (3, 3), (0.003, 0.006), (8.0, 20.0), (1, 2), (-30.0, 30.0), (0.3, 0.8))
    assert len(layers) == 3 and len({round(la.angle_deg, 6) for la in layers}) == 3
    rainy = add_rain(frame, np.random.default_rng(6), layers, blend)
    rng = np.random.default_rng(6)
    rain = [rain_layer(frame.shape[:2], rng, la).astype(np.float64) for la in layers]
    wet = np.sum(rain, axis=0) > 0
    assert np.all(rainy.astype(int) >= frame)
    assert np.array_equal(rainy[~wet], frame[~wet])  # unchanged where no streak lies
    assert 0.05 < wet.mean() < 0.9 and (rainy[wet] > frame[wet]).mean() > 0.5
    b = frame / 255.0
    if blend == "add":
        want = np.clip(b + np.sum(rain, axis=0)[..., None], 0, 1)
    else:
        want = 1 - (1 - b) * np.prod([1 - r for r in rain], axis=0)[..., None]
    assert np.array_equal(rainy, np.round(want * 255).astype(np.uint8))


@pytest.mark.parametrize("task", TASKS)
def test_each_task_renders_deterministically_on_the_same_content(task: str):
    cfg = dataclasses.replace(TINY, task=task, frames_per_sequence=3)
    first, again = render_sequence(cfg, "train", 0), render_sequence(cfg, "train", 0)
    assert all(np.array_equal(a, b) for pa, pb in zip(first, again, strict=True) for a, b in zip(pa, pb, strict=True))
    reference = render_sequence(dataclasses.replace(TINY, frames_per_sequence=3), "train", 0)
    for (inp, sharp), (ref_inp, ref_sharp) in zip(first, reference, strict=True):
        assert np.array_equal(sharp, ref_sharp)  # same scene, camera and target for every task
        assert np.array_equal(inp, ref_inp) == (task in ("deblur_jpeg", "deblur"))
    other = render_sequence(dataclasses.replace(cfg, seed=4), "train", 0)
    assert not np.array_equal(other[0][0], first[0][0])


def test_deblur_is_stored_losslessly_and_indexed_strictly(tmp_path: Path):
    cfg = dataclasses.replace(TINY, task="deblur")
    root = synthesize_reds(cfg, tmp_path / "reds", workers=1)
    inputs = sorted(root.rglob("*_blur_jpeg/*/*"))
    assert inputs and {p.suffix for p in inputs} == {".png"}
    rendered = render_sequence(cfg, "val", 0)
    for k, (blur, _) in enumerate(rendered):
        assert np.array_equal(read_image(root / f"val/val_blur_jpeg/000/{k:08d}.png"), blur)  # no JPEG artefacts
    tables = index_reds(root, workers=1, blur_ext=".png")
    assert len(tables["train"]) == 20 and tables["val300"]["blur_path"].str.endswith(".png").all()
    with pytest.raises(DatasetError, match=r"00000000.png: unexpected entry \(expected <8-digit frame>.jpg\)"):
        index_reds(root, workers=1)  # the REDS default stays strict: a PNG input is not a REDS Track 2 tree
    with pytest.raises(ValueError, match="blur_ext"):
        index_reds(root, workers=1, blur_ext=".bmp")
    assert manifest_task(root) == "deblur"
    assert manifest_matches(cfg, root) and not manifest_matches(TINY, root)
    assert not manifest_matches(dataclasses.replace(cfg, task="denoise"), root)


def test_manifest_names_the_task_and_only_its_params(tmp_path: Path):
    from pipeline.data.synth import _manifest

    default = _manifest(TINY)["config"]
    assert "task" not in default and not any(k.startswith(("noise_", "rain_")) for k in default)
    noise = _manifest(dataclasses.replace(TINY, task="denoise"))["config"]
    assert noise["task"] == "denoise" and noise["noise_shot"] == (0.002, 0.02)
    assert not any(k.startswith("rain_") for k in noise)
    rain = _manifest(dataclasses.replace(TINY, task="derain"))["config"]
    assert rain["task"] == "derain" and rain["rain_blend"] == "screen" and "noise_read" not in rain
    root = tmp_path / "t"
    root.mkdir()
    (root / "manifest.json").write_text(json.dumps(_manifest(TINY)))
    assert manifest_task(root) == "deblur_jpeg"  # a manifest that names no task: a tree from before tasks
    assert manifest_matches(TINY, root) and not manifest_matches(dataclasses.replace(TINY, task="deblur"), root)
    # A task's own params rebuild its tree; another task's params do not concern it.
    (root / "manifest.json").write_text(json.dumps(_manifest(dataclasses.replace(TINY, task="derain"))))
    derain = dataclasses.replace(TINY, task="derain")
    assert manifest_matches(dataclasses.replace(derain, noise_channel_spread=0.5), root)
    assert not manifest_matches(dataclasses.replace(derain, rain_layers=(2, 3)), root)


def test_every_new_synth_field_belongs_to_a_task():
    """A field added to SynthConfig after the tasks must be placed: in the manifest of every task (then the default
    manifest, and its data fingerprint, changes: bump SYNTH_VERSION) or in the tasks that read it (TASK_FIELDS)."""
    from pipeline.data.synth import TASK_FIELDS

    before_tasks = {"seed", "height", "width", "train_sequences", "val_sequences", "test_sequences",
                    "frames_per_sequence", "train_photos", "leaves_fraction", "val_photos", "test_photos",
                    "leaves_rmin", "subframes", "max_translation", "max_rotation_deg", "max_zoom", "gamma",
                    "jpeg_quality", "train_magnify_max", "train_minify_max"}  # fmt: skip
    placed = {f for fields in TASK_FIELDS.values() for f in fields}
    assert {f.name for f in dataclasses.fields(SynthConfig)} == before_tasks | placed
    assert set(TASK_FIELDS) == set(TASKS) and not placed & before_tasks


@pytest.mark.parametrize("task", ["denoise", "derain"])
def test_prepare_indexes_a_task_tree(tmp_path: Path, task: str):
    from pipeline.config import DataConfig, PathsConfig
    from pipeline.data.prepare import prepare
    from pipeline.data.reds import read_index

    paths = PathsConfig(data=str(tmp_path / "data"), synthetic_reds=str(tmp_path / "data/reds"),
                        metrics=str(tmp_path / "m"), plots=str(tmp_path / "p"))  # fmt: skip
    stats = prepare(DataConfig(workers=1, contact_sheet_pairs=1, synth=dataclasses.replace(TINY, task=task)), paths)
    assert stats.counts.train == 20 and 8.0 < stats.input.psnr < 40.0
    val300 = read_index(tmp_path / "data/index/val300.csv")
    assert val300["blur_path"].tolist() == [str(tmp_path / "data/reds/val/val_blur_jpeg/000/00000009.png")]
    assert manifest_task(tmp_path / "data/reds") == task


@pytest.mark.parametrize(
    "change,message",
    [
        ({"task": "dehaze"}, "data.synth.task: got 'dehaze', must be one of ['deblur_jpeg', 'deblur', 'denoise',"),
        ({"noise_shot": (0.02, 0.002)}, "data.synth.noise_shot: got [0.02, 0.002], must be a [low, high] range in"),
        ({"noise_read": (0.0, 1e-3)}, "data.synth.noise_read: got [0.0, 0.001], must be a [low, high] range in (0,"),
        ({"noise_channel_spread": 1.0}, "data.synth.noise_channel_spread: got 1.0, must be in [0, 1)"),
        ({"rain_layers": (0, 2)}, "data.synth.rain_layers: got [0, 2], must be a [low, high] range in [1, 8]"),
        ({"rain_density": (0.01, 0.5)}, "data.synth.rain_density: got [0.01, 0.5], must be a [low, high] range in"),
        ({"rain_length": (8.0, 100.0)}, "data.synth.rain_length: got [8.0, 100.0], must be a [low, high] range in [1,"),
        ({"rain_width": (1, 9)}, "data.synth.rain_width: got [1, 9], must be a [low, high] range in [1, 5]"),
        ({"rain_angle_deg": (-120.0, 0.0)}, "data.synth.rain_angle_deg: got [-120.0, 0.0], must be a [low, high]"),
        ({"rain_brightness": (0.0, 0.5)}, "data.synth.rain_brightness: got [0.0, 0.5], must be a [low, high] range"),
        ({"rain_blend": "multiply"}, "data.synth.rain_blend: got 'multiply', must be one of ['screen', 'add']"),
    ],
)
def test_bad_task_params_fail_naming_the_key(change: dict, message: str):
    with pytest.raises(ConfigError) as info:
        dataclasses.replace(TINY, **change)
    assert str(info.value).startswith(message)


def test_bad_task_fails_at_params_load(tmp_path: Path):
    import yaml

    from pipeline.config import load_params

    params = yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text())
    params["data"]["synth"]["task"] = "denoising"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match=r"params.yaml: data.synth.task: got 'denoising', must be one of"):
        load_params(path)
