"""Tiling, blending, dihedral and random-crop TTA through the Restorer: exact round trips and agreement with
whole-image inference."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from pipeline.config import CropsConfig, TTAConfig
from pipeline.device import prepare_model, resolve_precision
from pipeline.inference import Restorer, random_crops
from pipeline.tiling import Tiler, blend_window, dihedral, dihedral_inverse, restore_tiled, tile_patches, tile_positions


def settings(tile=256, overlap=32, tiling="blended", batch=8, precision="auto", crops=None) -> TTAConfig:
    """A TTAConfig with these tiling settings (the ladder is irrelevant: modes are given per call)."""
    crops = CropsConfig() if crops is None else crops
    return TTAConfig(tile=tile, overlap=overlap, tiling=tiling, batch=batch, precision=precision, crops=crops)


def restore(model, image, *, tta="plain", clamp=True, **kw):
    """One mode through a Restorer built from these settings."""
    return Restorer(model, settings(**kw)).restore(image, (tta,), clamp=clamp)[tta]


def plan_patches(height, width, *, tta, **kw):
    """Every patch one mode runs, parts flattened in order."""
    parts = Restorer(Identity(), settings(**kw)).plan(height, width, (tta,))
    return [p for part in parts.values() for p in part]


def accumulate(model, image, patches, *, overlap, tile=256):
    """(sum, weight) maps of one list of patches."""
    return Tiler(model, tile=tile, overlap=overlap).accumulate(image, {"all": patches})["all"]


class Identity(nn.Module):
    """Returns its input as the last output (the first output is deliberately different)."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))
        self.eval()

    def forward(self, x):
        return [x.flip(-1), x]


class Counting(Identity):
    """Identity that records the batch shape of every call."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[int, ...]] = []

    def forward(self, x):
        self.calls.append(tuple(x.shape))
        return super().forward(x)


def asymmetric_conv() -> nn.Module:
    """A conv with weight only on one off-centre tap: not invariant under any non-trivial dihedral transform."""
    conv = nn.Conv2d(3, 3, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[:, :, 0, 2] = torch.tensor([[0.9, 0.2, -0.1], [0.1, 0.7, 0.3], [-0.2, 0.4, 0.8]])
    return conv.eval()


def two_conv_net() -> nn.Module:
    """Translation-equivariant (zero-padded) net with receptive radius 2."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(8, 3, 3, padding=1)).eval()


def image(h: int, w: int, n: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.rand((n, 3, h, w), generator=torch.Generator().manual_seed(seed))


def test_dihedral_inverse_is_exact_and_transforms_distinct():
    x = torch.randn(2, 3, 5, 7)
    outs = []
    for i in range(8):
        y = dihedral(x, i)
        assert torch.equal(dihedral_inverse(y, i), x)
        outs.append(y)
    shapes = [tuple(y.shape[-2:]) for y in outs]
    assert shapes == [(5, 7), (7, 5)] * 4
    square = torch.arange(16.0).reshape(1, 1, 4, 4)
    flat = {tuple(dihedral(square, i).flatten().tolist()) for i in range(8)}
    assert len(flat) == 8
    assert torch.equal(dihedral(x, 4), x.flip(-1))
    assert torch.equal(dihedral(x, 1), torch.rot90(x, 1, (-2, -1)))
    assert torch.equal(dihedral(x, 6), x.flip(-2))
    with pytest.raises(ValueError, match="0..7"):
        dihedral(x, 8)


def test_tile_positions_cover_with_adaptive_stride():
    assert tile_positions(720, 256, 32) == [0, 154, 309, 464]
    assert tile_positions(480, 256, 32) == [0, 224]
    assert tile_positions(256, 256, 32) == [0]
    assert tile_positions(100, 256, 32) == [0]
    for size, tile, overlap in [(1280, 256, 32), (97, 32, 8), (33, 32, 31), (1000, 64, 0)]:
        pos = tile_positions(size, tile, overlap)
        assert pos[0] == 0 and pos[-1] + tile == size
        assert all(b - a <= tile - overlap for a, b in zip(pos, pos[1:], strict=False))
    with pytest.raises(ValueError, match="overlap"):
        tile_positions(100, 32, 32)
    with pytest.raises(ValueError, match="tile"):
        tile_positions(100, 0, 0)


def test_blend_window_shape():
    w = blend_window(32, 16, flush_start=False, flush_end=False)
    assert w[:4].tolist() == [0.0] * 4  # margin overlap // 4 is discarded
    assert 0 < w[4] < w[5] < w[7] < 1 and w[8:24].tolist() == [1.0] * 16
    assert torch.equal(w, w.flip(0))
    assert torch.equal(blend_window(32, 16, True, True), torch.ones(32, dtype=torch.float64))
    edge = blend_window(32, 16, True, False)
    assert edge[0] == 1 and edge[-1] == 0


@pytest.mark.parametrize(
    "h,w,tile,overlap", [(80, 112, 32, 16), (97, 61, 32, 8), (50, 50, 48, 3), (20, 300, 64, 63), (16, 16, 32, 8)]
)
def test_tiles_give_every_pixel_positive_weight(h, w, tile, overlap):
    x = image(h, w)
    _, weight = accumulate(Identity(), x, tile_patches(h, w, tile, overlap), overlap=overlap, tile=tile)
    assert weight.min().item() > 0


def test_tiled_matches_whole_image_for_translation_equivariant_model():
    model = two_conv_net()
    x = image(80, 112)
    with torch.no_grad():
        whole = model(x)
    tiled = restore(model, x, tile=32, overlap=16, precision="fp32", clamp=False)
    assert (tiled - whole).abs().max().item() < 1e-5
    # Without blending margins (overlap 0: flat windows) the cut receptive fields show as seams.
    seams = restore(model, x, tile=32, overlap=0, precision="fp32", clamp=False)
    assert (seams - whole).abs().max().item() > 1e-3


def test_x8_with_asymmetric_model_equals_hand_average():
    model = asymmetric_conv()
    x = image(24, 40, seed=3)
    with torch.no_grad():
        hand = torch.stack([dihedral_inverse(model(dihedral(x, i)), i) for i in range(8)]).mean(0)
        plain = model(x)
    for tile, overlap in [(64, 8), (16, 8)]:  # one whole-image tile, then a grid of tiles
        got = restore(model, x, tile=tile, overlap=overlap, tta="x8", precision="fp32", clamp=False)
        assert (got - hand).abs().max().item() < 1e-6
    assert (hand - plain).abs().max().item() > 1e-2


def test_identity_round_trips_exactly_through_tiles_x8_and_crops():
    x = image(40, 56, n=2)
    crops = CropsConfig(n=50, side=24, transforms="all8", seed=1)
    for tta in ("plain", "x8", "crops", "x8+crops"):
        out = restore(Identity(), x, tile=32, overlap=8, tta=tta, crops=crops, batch=4, precision="bf16")
        assert torch.equal(out, x), tta


def test_crops_and_tiles_cover_every_pixel_and_crops_contribute():
    h, w = 45, 70
    x = image(h, w)
    crops = CropsConfig(n=30, side=20, transforms="flips", seed=2)
    tiles_only = plan_patches(h, w, tile=32, overlap=8, tta="plain", crops=crops)
    both = plan_patches(h, w, tile=32, overlap=8, tta="crops", crops=crops)
    assert both[: len(tiles_only)] == tiles_only and len(both) == len(tiles_only) + 30
    _, w_tiles = accumulate(Identity(), x, tiles_only, overlap=8)
    _, w_both = accumulate(Identity(), x, both, overlap=8)
    assert w_both.min().item() > 0
    extra = w_both - w_tiles
    assert extra.min().item() >= -1e-12 and extra.sum().item() > 30 * 10  # each crop adds its (tapered) window


def test_random_crops_are_seeded_in_bounds_and_use_the_transform_set():
    cfg = CropsConfig(n=200, side=32, transforms="all8", seed=7)
    a, b = random_crops(50, 90, cfg), random_crops(50, 90, cfg)
    assert a == b and a != random_crops(50, 90, CropsConfig(n=200, side=32, seed=8))
    assert all(0 <= p.y <= 18 and 0 <= p.x <= 58 and (p.h, p.w) == (32, 32) for p in a)
    assert {p.t for p in a} == set(range(8))
    assert {p.t for p in random_crops(50, 90, CropsConfig(n=100, transforms="flips"))} == {0, 2, 4, 6}
    assert {p.t for p in random_crops(50, 90, CropsConfig(n=20, transforms="identity"))} == {0}
    small = random_crops(10, 90, CropsConfig(n=5, side=32))
    assert all((p.h, p.w) == (10, 32) for p in small)


def test_crops_are_batched_per_transform():
    model = Counting()
    crops = CropsConfig(n=37, side=16, transforms="all8", seed=0)
    x = image(32, 48)
    restore(model, x, tile=32, overlap=8, tta="crops", crops=crops, batch=8, precision="fp32")
    per_t: dict[int, int] = {}
    for p in random_crops(32, 48, crops):
        per_t[p.t] = per_t.get(p.t, 0) + 1
    crop_calls = [c for c in model.calls if c[-2:] == (16, 16)]
    assert sum(c[0] for c in crop_calls) == 37
    assert len(crop_calls) == sum(math.ceil(n / 8) for n in per_t.values())
    tile_calls = [c for c in model.calls if c[-2:] == (32, 32)]
    assert sum(c[0] for c in tile_calls) == len(tile_positions(48, 32, 8))


def test_restore_uint8_hwc_returns_float_in_unit_range():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    out = restore(Identity(), img, tile=32, overlap=8, tta="x8")
    assert out.dtype == np.float32 and out.shape == img.shape
    assert np.array_equal(out, img.astype(np.float32) / np.float32(255))
    assert np.array_equal(np.round(out * 255).astype(np.uint8), img)
    bright = restore(nn.Sequential(Identity(), _Scale(3.0)).eval(), img, tile=64, overlap=8)
    assert bright.max() == 1.0 and bright.min() >= 0.0


class _Scale(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.s = s

    def forward(self, x):
        return x[-1] * self.s - 0.5


def test_restore_leaves_model_untouched_and_precision_choices_agree():
    model = two_conv_net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = image(48, 64)
    fp32 = restore(model, x, tile=32, overlap=8, precision="fp32", clamp=False)
    bf16 = restore(model, x, tile=32, overlap=8, precision="bf16", clamp=False)
    assert 0 < (fp32 - bf16).abs().max().item() < 5e-2
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    cl = prepare_model(two_conv_net(), "cpu", channels_last=True)
    assert torch.allclose(restore(cl, x, tile=32, overlap=8, precision="fp32", clamp=False), fp32, atol=1e-5)


def test_argument_errors_are_clear():
    x = image(16, 16)
    with pytest.raises(ValueError, match="overlap"):
        restore(Identity(), x, tile=32, overlap=32)
    with pytest.raises(ValueError, match="overlap"):
        Tiler(Identity(), tile=32, overlap=32)
    with pytest.raises(ValueError, match="tta mode"):
        restore(Identity(), x, tta="x4")
    with pytest.raises(ValueError, match="at least one tta mode"):
        Restorer(Identity()).restore(x, ())
    with pytest.raises(ValueError, match="batch"):
        restore(Identity(), x, batch=0)
    with pytest.raises(ValueError, match="batch"):
        Tiler(Identity(), batch=0)
    with pytest.raises(ValueError, match="tiling"):
        Tiler(Identity(), tiling="uniform")
    with pytest.raises(ValueError, match="crops.transforms"):
        restore(Identity(), x, tta="crops", crops=CropsConfig(transforms="rot"))
    with pytest.raises(ValueError, match="fp16"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="precision"):
        restore(Identity(), x, precision="fp8")
    with pytest.raises(ValueError, match="HWC"):
        restore(Identity(), np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="floating point"):
        restore(Identity(), torch.zeros((3, 4, 4), dtype=torch.uint8))


def test_hinet_tiny_identity_init_round_trips_and_trained_tiny_is_seamless():
    from pipeline.models import create_model, identity_init

    torch.manual_seed(0)
    model = identity_init(create_model("hinet-tiny")).eval()
    x = image(32, 48)
    crops = CropsConfig(n=6, side=32, seed=0)
    out = restore(model, x, tile=32, overlap=16, tta="x8+crops", crops=crops, batch=4, precision="bf16")
    assert torch.equal(out, x)
    net = create_model("hinet-tiny").eval()
    with torch.no_grad():
        whole = net(x)[-1].clamp(0, 1)
    tiled = restore(net, x, tile=32, overlap=16, precision="fp32")
    # Instance norm and a wide receptive field make tiles differ from the whole image, but only slightly.
    assert 0 < (tiled - whole).abs().mean().item() < 0.02


def test_one_pass_ladder_equals_each_mode_computed_alone():
    """Every ladder mode from one set of forwards is bit-identical to that mode run on its own, in fp32 and bf16."""
    from pipeline.models import create_model

    torch.manual_seed(0)
    model = prepare_model(create_model("hinet-tiny"), "cpu").eval()
    img = np.random.default_rng(1).integers(0, 256, (40, 72, 3), dtype=np.uint8)
    crops = CropsConfig(n=7, side=24, transforms="all8", seed=5)
    modes = ("plain", "x8", "crops", "x8+crops")
    for precision in ("fp32", "bf16"):
        kw = dict(tile=32, overlap=8, crops=crops, batch=3, precision=precision)
        seconds: dict[str, float] = {}
        ladder = Restorer(model, settings(**kw)).restore(img, modes, seconds=seconds)
        assert set(ladder) == set(modes) and set(seconds) == {"tiles", "tiles_x7", "crops"}
        for mode in modes:
            alone = restore(model, img, tta=mode, **kw)
            assert np.array_equal(ladder[mode], alone), (precision, mode)
        # The modes really differ (so the equality above is not trivially true).
        assert not np.array_equal(ladder["plain"], ladder["x8"])
        assert not np.array_equal(ladder["x8"], ladder["x8+crops"])


def test_one_pass_ladder_runs_each_forward_once():
    model = Counting()
    img = torch.rand(3, 40, 72)
    crops = CropsConfig(n=5, side=24, seed=2)
    Restorer(model, settings(tile=32, overlap=8, crops=crops, batch=64)).restore(img, ("plain", "x8", "x8+crops"))
    tiles = len(tile_patches(40, 72, 32, 8))
    assert sum(shape[0] for shape in model.calls) == 8 * tiles + 5  # the cost of x8+crops alone


def test_hinet_tiling_reproduces_the_public_grid_and_count_average():
    """`tiling: hinet`: ceil(size/tile) tiles, stride ceil((size-tile)/(n-1)), last flush; uniform count-map mean."""
    from pipeline.tiling import hinet_positions

    assert hinet_positions(720, 256) == [0, 232, 464]
    assert hinet_positions(1280, 256) == [0, 256, 512, 768, 1024]
    assert hinet_positions(701, 256) == [0, 223, 445]  # the blended grid differs here: [0, 222, 445]
    assert tile_positions(701, 256, 0) == [0, 222, 445]
    assert hinet_positions(200, 256) == [0] and hinet_positions(256, 256) == [0]

    conv = asymmetric_conv()
    img = torch.rand(3, 40, 70)
    out = restore(conv, img, tile=32, overlap=0, tiling="hinet", precision="fp32")
    acc, count = torch.zeros(1, 3, 40, 70, dtype=torch.float64), torch.zeros(1, 1, 40, 70, dtype=torch.float64)
    with torch.no_grad():
        for y in hinet_positions(40, 32):
            for x in hinet_positions(70, 32):
                acc[..., y : y + 32, x : x + 32] += conv(img[None, :, y : y + 32, x : x + 32]).double()
                count[..., y : y + 32, x : x + 32] += 1
    torch.testing.assert_close(out, (acc / count).float()[0].clamp(0, 1), rtol=0, atol=1e-6)
    assert not torch.allclose(out, restore(conv, img, tile=32, overlap=8, precision="fp32"))  # blended differs


def test_auto_precision_is_fp32_on_a_cpu_without_native_bf16(monkeypatch):
    """Emulated bf16 runs 15-25x slower than fp32 (AVX2-only CPUs): 'auto' must not pick it there."""
    import pipeline.device as device
    from pipeline.device import accelerate_precision
    from pipeline.train import training_dtype

    monkeypatch.setattr(device.torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(device.torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert resolve_precision("auto", "cpu") is None
    assert training_dtype("auto", True) is None
    assert accelerate_precision(training_dtype("auto", True)) == "no"  # accelerate's word for fp32
    assert resolve_precision("bf16", "cpu") == torch.bfloat16  # asked for by name: still honoured
    monkeypatch.setattr(device.torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert resolve_precision("auto", "cpu") == torch.bfloat16
    assert accelerate_precision(training_dtype("auto", True)) == "bf16"


def test_restorer_resolves_its_settings_once_and_restore_tiled_equals_its_plain_mode():
    """The Restorer fixes device, precision and memory format when built; training's one tiled pass gives the same
    bits as the Restorer's plain mode."""
    model = prepare_model(two_conv_net(), "cpu", channels_last=True)
    restorer = Restorer(model, settings(tile=32, overlap=8, batch=3, precision="fp32"))
    assert (restorer.device, restorer.dtype, restorer.precision) == (torch.device("cpu"), None, "fp32")
    assert restorer.tiler.channels_last and (restorer.tiler.tile, restorer.tiler.overlap, restorer.tiler.batch) == (
        32,
        8,
        3,
    )
    assert Restorer(model, settings(precision="bf16")).precision == "bf16"
    x = image(40, 72, seed=4)
    plain = restorer.restore(x, ("plain",))["plain"]
    tiled = restore_tiled(model, x, tile=32, overlap=8, batch=3, precision="fp32")
    assert torch.equal(plain, tiled)
    both = restorer.restore(x, ("plain", "plain", "x8"))  # repeats dropped, order kept
    assert list(both) == ["plain", "x8"] and torch.equal(both["plain"], plain)
    with pytest.raises(ValueError, match="move it first"):
        Restorer(model, device="meta")


def test_cast_weights_runs_a_copy_in_the_autocast_dtype_and_leaves_the_model_alone():
    """tta.cast_weights: the forwards use a bf16 copy (no per-call weight casts), close to autocast over fp32
    weights; the caller's model keeps its fp32 weights; an fp32 run ignores the key (bit-identical)."""
    model = prepare_model(two_conv_net(), "cpu", channels_last=True)
    x = image(40, 56)
    auto = Restorer(model, TTAConfig(tile=32, overlap=8, precision="bf16"))
    cast = Restorer(model, TTAConfig(tile=32, overlap=8, precision="bf16", cast_weights=True))
    assert {p.dtype for p in cast.tiler.model.parameters()} == {torch.bfloat16}  # two convs: all cast
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    a, b = auto.restore(x)["plain"], cast.restore(x)["plain"]
    assert (a - b).abs().max() <= 1e-2  # the same bf16 weights; only ops outside autocast's lists may differ
    fp32 = TTAConfig(tile=32, overlap=8, precision="fp32")
    assert Restorer(model, dataclasses.replace(fp32, cast_weights=True)).tiler.model is model
    assert torch.equal(
        Restorer(model, fp32).restore(x)["plain"],
        Restorer(model, dataclasses.replace(fp32, cast_weights=True)).restore(x)["plain"],
    )


def test_compile_routes_every_forward_through_the_compiled_model(monkeypatch):
    """tta.compile wraps the model once in torch.compile (here a recording stand-in, so the test needs no C++
    compiler) and every patch goes through it; the result equals the eager one."""
    calls = []

    def fake_compile(net, **kwargs):
        calls.append(kwargs)

        def compiled(x):
            calls.append(tuple(x.shape))
            return net(x)

        compiled.parameters = net.parameters  # the Tiler finds the device through the parameters
        return compiled

    monkeypatch.setattr(torch, "compile", fake_compile)
    model = prepare_model(two_conv_net(), "cpu", channels_last=True)
    x = image(40, 56)
    tta = TTAConfig(tile=32, overlap=8, precision="fp32", batch=4)
    eager = Restorer(model, tta).restore(x, ("plain", "x8"))
    compiled = Restorer(model, dataclasses.replace(tta, compile=True)).restore(x, ("plain", "x8"))
    # Inductor freezing (weights as pre-packed constants), asked for once per Restorer.
    assert calls.pop(0) == {"options": {"freezing": True}}
    assert calls and sum(n for n, *_ in calls) == len(Restorer(model, tta).plan(40, 56, ("x8",))["tiles"]) * 8
    for mode in ("plain", "x8"):
        assert torch.equal(eager[mode], compiled[mode])
