"""HINet package: official state-dict layout, equivalence with an independent reference, padding, registry, I/O."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from reference_hinet import reference_hinet

from pipeline.models import (
    HINet,
    count_macs,
    count_params,
    create_model,
    identity_init,
    list_models,
    load_model,
    load_weights,
    read_metadata,
    register_model,
    save_weights,
)
from pipeline.models.weights import infer_config

# The public release's key/shape listing: a copy under tests/data wins over the shared spec folder beside the checkout.
_SPEC_NAME = "hinet_official_state_dict.json"
_SPEC_PATHS = [
    Path(__file__).parent / "data" / _SPEC_NAME,
    Path(__file__).resolve().parents[2] / "shared/spec" / _SPEC_NAME,
]
_SPEC_PATH = next((p for p in _SPEC_PATHS if p.is_file()), None)
SPEC = json.loads(_SPEC_PATH.read_text()) if _SPEC_PATH else {}
needs_spec = pytest.mark.skipif(_SPEC_PATH is None, reason=f"{_SPEC_NAME} not found in {[str(p) for p in _SPEC_PATHS]}")


def _randomised(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Perturb every parameter (norm affines included) so no term of the forward pass is trivially zero or one."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    return model.eval()


def _input(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


@needs_spec
@pytest.mark.parametrize("name", sorted(SPEC) or ["spec-missing"])
def test_state_dict_matches_public_release(name):
    spec = SPEC[name]
    with torch.device("meta"):
        model = HINet(**spec["constructor"])
    sd = model.state_dict()
    assert list(sd) == list(spec["state_dict"])  # same keys, same order
    assert {k: list(v.shape) for k, v in sd.items()} == spec["state_dict"]
    assert count_params(model) == spec["num_params"]
    assert len(sd) == len(spec["state_dict"])


@pytest.mark.parametrize("hin", [(3, 4), (0, 4)], ids=["reds", "sidd"])
def test_forward_matches_independent_reference(hin):
    model = _randomised(HINet(wf=16, hin_position_left=hin[0], hin_position_right=hin[1]))
    x = _input(1, 3, 32, 48)
    with torch.no_grad():
        ours = model(x)
        ref = reference_hinet(model.state_dict(), x)
    for a, b in zip(ours, ref, strict=True):
        assert a.shape == x.shape
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert (ours[1] - x).abs().mean() > 1e-2  # the network does something the comparison can see
    assert (ours[0] - ours[1]).abs().mean() > 1e-3


def test_extra_blocks_match_reference_and_add_exact_keys():
    base = HINet(wf=8, hin_position_left=3, hin_position_right=4)
    deep = _randomised(HINet(wf=8, hin_position_left=3, hin_position_right=4, extra_blocks=2))
    blocks = [f"down_path_{s}.{i}" for s in (1, 2) for i in range(5)]
    blocks += [f"up_path_{s}.{j}.conv_block" for s in (1, 2) for j in range(4)]
    expected = {
        f"{b}.extra.{e}.{c}.{p}"
        for b in blocks
        for e in range(2)
        for c in ("conv_1", "conv_2")
        for p in ("weight", "bias")
    }
    assert set(deep.state_dict()) - set(base.state_dict()) == expected
    assert set(base.state_dict()) <= set(deep.state_dict())
    x = _input(1, 3, 32, 32)
    with torch.no_grad():
        for a, b in zip(deep(x), reference_hinet(deep.state_dict(), x), strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_odd_sizes_are_padded_reflect_and_cropped():
    model = _randomised(HINet(wf=8, hin_position_left=3, hin_position_right=4))
    x = _input(1, 3, 37, 53)
    with torch.no_grad():
        out = model(x)
        padded = F.pad(x, (0, 11, 0, 11), mode="reflect")  # 37x53 -> 48x64
        ref = [r[..., :37, :53] for r in reference_hinet(model.state_dict(), padded)]
    for a, b in zip(out, ref, strict=True):
        assert a.shape == (1, 3, 37, 53)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("shape", [(1, 3, 37, 53), (2, 3, 5, 7), (1, 3, 16, 16)])
def test_identity_init_returns_input_exactly(shape):
    model = identity_init(_randomised(create_model("hinet-tiny")))
    x = _input(*shape)
    with torch.no_grad():
        outs = model(x)
    assert len(outs) == 2 and all(torch.equal(o, x) for o in outs)
    assert torch.count_nonzero(model.last.weight) == 0 and torch.count_nonzero(model.sam12.conv2.bias) == 0


def test_every_parameter_gets_a_gradient():
    """No unused parameters (DDP would need find_unused_parameters) and padding is differentiable."""
    model = create_model("hinet-tiny-deep").train()
    outs = model(_input(2, 3, 20, 36))
    sum(o.square().mean() for o in outs).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_channels_last_and_bf16_autocast():
    model = _randomised(create_model("hinet-tiny"))
    x = _input(1, 3, 32, 48)
    with torch.no_grad():
        ref = model(x)
        model = model.to(memory_format=torch.channels_last)
        xc = x.contiguous(memory_format=torch.channels_last)
        cl = model(xc)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf = model(xc)
    for r, c, b in zip(ref, cl, bf, strict=True):
        torch.testing.assert_close(c, r, atol=1e-5, rtol=1e-5)
        assert b.dtype == torch.float32 and b.shape == r.shape
        assert (b - r).abs().max() < 0.05


def test_registry_variants_and_errors():
    names = list_models()
    for name in (
        "hinet-0.5x",
        "hinet-1x",
        "hinet-2x",
        "hinet-2x-deep",
        "hinet-1x-sidd",
        "hinet-0.5x-sidd",
        "hinet-1x-rain13k",
        "hinet-tiny",
        "hinet-tiny-deep",
    ):
        assert name in names
    deep = create_model("hinet-2x-deep", device="meta")
    assert deep.config == {
        "in_chn": 3,
        "wf": 128,
        "depth": 5,
        "relu_slope": 0.2,
        "hin_position_left": 3,
        "hin_position_right": 4,
        "extra_blocks": 2,
    }
    assert deep.variant == "hinet-2x-deep" and deep.last.weight.is_meta
    expected = {"hinet-0.5x": 22_176_070, "hinet-1x": 88_668_806, "hinet-1x-sidd": 88_669_702, "hinet-2x": 354_604_294}
    for name, n in expected.items():  # counts of the public code (reference-facts.md)
        assert count_params(create_model(name, device="meta")) == n
    # HIN in levels 0..2 as well adds the affine (scale, shift) of half of each level's channels, in both encoders:
    # 2 x wf x (1 + 2 + 4) = 14 wf parameters (896 at wf 64: the SIDD-1x count above).
    assert count_params(create_model("hinet-0.5x-sidd", device="meta")) == 22_176_070 + 14 * 32
    assert create_model("hinet-1x-rain13k", device="meta").config == create_model("hinet-1x-sidd", device="meta").config
    assert create_model("hinet-1x", wf=16, extra_blocks=None).config["wf"] == 16  # None overrides are ignored
    with pytest.raises(ValueError, match="hinet-tiny-deep"):
        create_model("hinet-3x")
    with pytest.raises(ValueError, match="unknown HINet argument.*width.*valid.*extra_blocks"):
        create_model("hinet-tiny", width=16)
    with pytest.raises(ValueError, match="already registered"):
        register_model("hinet-tiny", wf=4)
    register_model("test-hinet-micro", wf=4, depth=3, overwrite=True)
    assert create_model("test-hinet-micro").config["depth"] == 3


def test_safetensors_round_trip_rebuilds_model(tmp_path):
    model = _randomised(create_model("hinet-tiny-deep"))
    path = save_weights(model, tmp_path / "m.safetensors", metadata={"step": 7, "run": tmp_path})
    assert not list(tmp_path.glob(".*tmp*"))  # atomic: no temporary left behind
    meta = read_metadata(path)
    assert meta["variant"] == "hinet-tiny-deep" and meta["format_version"] == 1
    assert meta["config"] == model.config and meta["metadata"] == {"step": 7, "run": str(tmp_path)}
    loaded = load_model(path)
    assert not loaded.training and loaded.config == model.config and loaded.variant == "hinet-tiny-deep"
    x = _input(1, 3, 20, 24)
    with torch.no_grad():
        for a, b in zip(model(x), loaded(x), strict=True):
            assert torch.equal(a, b)
    fresh = create_model("hinet-tiny-deep")
    assert load_weights(fresh, path).ok
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values(), strict=True))


def test_same_weights_and_metadata_give_the_same_bytes(tmp_path):
    """safetensors writes its metadata in hash-map order, different on every save; ours sorts it, so a retrain with
    the same recipe gives the same file and DVC reruns nothing downstream."""
    torch.manual_seed(0)
    model = create_model("hinet-tiny")
    items = [("recipe", {"lr": 2e-4, "steps": 300}), ("data_fingerprint", "abc"), ("step", 300), ("name", "wd_s1")]
    paths = []
    for i in range(6):
        order = items[i % len(items) :] + items[: i % len(items)]
        metadata = dict(reversed(order)) if i % 2 else dict(order)
        paths.append(save_weights(model, tmp_path / f"w{i}.safetensors", metadata=metadata))
    data = [p.read_bytes() for p in paths]
    assert all(d == data[0] for d in data[1:])
    size = int.from_bytes(data[0][:8], "little")
    header = json.loads(data[0][8 : 8 + size])
    assert size % 8 == 0 and list(header["__metadata__"]) == sorted(header["__metadata__"])
    assert read_metadata(paths[0])["metadata"] == dict(items)
    rebuilt = load_model(paths[0])
    assert all(
        torch.equal(a, b) for a, b in zip(rebuilt.state_dict().values(), model.state_dict().values(), strict=True)
    )


@pytest.mark.parametrize("wrap", ["params", "params_ema", "raw"])
def test_public_release_pth_loads(tmp_path, wrap):
    model = _randomised(HINet(wf=8, hin_position_left=0, hin_position_right=4))  # SIDD placement
    sd = {"module." + k: v.clone() for k, v in model.state_dict().items()}
    path = tmp_path / "HINet-public.pth"
    torch.save(sd if wrap == "raw" else {wrap: sd}, path)
    fresh = HINet(wf=8, hin_position_left=0, hin_position_right=4)
    assert load_weights(fresh, path).ok
    loaded = load_model(path)
    assert loaded.config == model.config and read_metadata(path)["config"] is None
    x = _input(1, 3, 16, 32)
    with torch.no_grad():
        expected = model(x)
        for other in (fresh.eval(), loaded):
            assert all(torch.equal(a, b) for a, b in zip(expected, other(x), strict=True))


@needs_spec
def test_infer_config_on_spec_layouts():
    for spec in SPEC.values():
        sd = {k: torch.empty(v, device="meta") for k, v in spec["state_dict"].items()}
        config = infer_config(sd)
        assert {k: config[k] for k in spec["constructor"]} == spec["constructor"]
        assert config["depth"] == 5 and config["extra_blocks"] == 0 and config["in_chn"] == 3


def test_mismatching_checkpoint_names_keys(tmp_path):
    path = save_weights(create_model("hinet-tiny-deep"), tmp_path / "deep.safetensors")
    with pytest.raises(
        ValueError, match=r"deep\.safetensors: .*72 unexpected keys: down_path_1\.0\.extra\.0\.conv_1\.bias"
    ):
        load_weights(create_model("hinet-tiny"), path)
    report = load_weights(create_model("hinet-tiny"), path, strict=False)
    assert len(report.unexpected_keys) == 2 * (5 + 4) * 4 and not report.missing_keys

    path = save_weights(create_model("hinet-tiny"), tmp_path / "tiny.safetensors")
    with pytest.raises(ValueError, match=r"missing keys: .*extra\.0\.conv_1\.weight.*extra_blocks': 0"):
        load_weights(create_model("hinet-tiny-deep"), path)
    with pytest.raises(
        ValueError,
        match=r"184 shape differences: down_path_1\.0\.identity\.weight checkpoint "
        r"\(8, 8, 1, 1\) vs model \(4, 4, 1, 1\)"
        r".*\{.wf.: 8\}",
    ):
        load_weights(create_model("hinet-tiny", wf=4), path)


def test_pth_without_params_gives_clear_error(tmp_path):
    path = tmp_path / "trainer_state.pth"
    torch.save({"optimizer": {"lr": 1e-3}, "iter": 5}, path)
    with pytest.raises(ValueError, match=r"trainer_state\.pth: no model weights found.*\['iter', 'optimizer'\]"):
        load_weights(create_model("hinet-tiny"), path)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_model(tmp_path / "missing.pth")


def test_count_macs_true_convolution_cost():
    """HINet 1x at 256x256: 157.60 GMACs, checked against a hook-based count over every conv layer."""
    model = create_model("hinet-1x", device="meta")
    macs = count_macs(model, (256, 256))
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        pixels = (inputs[0] if isinstance(module, torch.nn.ConvTranspose2d) else output).shape[-2:]
        total += pixels[0] * pixels[1] * module.weight.numel()

    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d):
            m.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.zeros(1, 3, 256, 256, device="meta"))
    assert macs == total == 157_600_972_800
    assert count_macs(create_model("hinet-tiny"), (32, 32), batch=2) == 2 * count_macs(
        create_model("hinet-tiny"), (32, 32)
    )
