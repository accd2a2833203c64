"""PSNR / L1 loss values, stage weighting, gradients and bf16-autocast behaviour."""

import math

import pytest
import torch

from pipeline.losses import L1Loss, PSNRLoss, build_loss, stage_loss


def test_psnr_loss_single_image_is_weighted_log10_mse():
    target = torch.zeros(1, 3, 4, 4)
    pred = torch.full((1, 3, 4, 4), 0.1)  # MSE 0.01 -> PSNR 20 dB
    m = 0.01
    loss = PSNRLoss(weight=0.5)(pred, target)
    assert loss.item() == pytest.approx(0.5 * 10 * math.log10(m + 1e-8), rel=1e-6)
    assert loss.item() == pytest.approx(-0.5 * 20.0, abs=1e-5)


def test_psnr_loss_is_mean_of_per_image_logs_not_log_of_mean():
    target = torch.zeros(2, 3, 4, 4)
    pred = torch.stack([torch.full((3, 4, 4), 0.1), torch.full((3, 4, 4), 0.01)])  # MSE 1e-2 and 1e-4
    expected = (10 * math.log10(1e-2 + 1e-8) + 10 * math.log10(1e-4 + 1e-8)) / 2
    assert PSNRLoss()(pred, target).item() == pytest.approx(expected, rel=1e-6)
    assert PSNRLoss(eps=1e-8)(target, target).item() == pytest.approx(-80.0, abs=1e-4)  # log10(1e-8) * 10


def test_l1_loss_value():
    pred = torch.tensor([0.0, 0.5, 1.0, 0.25]).view(1, 1, 2, 2)
    target = torch.zeros(1, 1, 2, 2)
    assert L1Loss(weight=2.0)(pred, target).item() == pytest.approx(2.0 * 1.75 / 4)


def test_stage_loss_weights_each_output():
    target = torch.zeros(1, 3, 4, 4)
    out1, out2 = torch.full((1, 3, 4, 4), 0.1), torch.full((1, 3, 4, 4), 0.01)
    got = stage_loss([out1, out2], target, (0.5, 0.5))
    expected = 0.5 * 10 * math.log10(1e-2 + 1e-8) + 0.5 * 10 * math.log10(1e-4 + 1e-8)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    got = stage_loss([out1, out2], target, (0.0, 1.0), kind="l1")
    assert got.item() == pytest.approx(0.01, rel=1e-6)


def test_stage_loss_errors():
    t = torch.zeros(1, 3, 4, 4)
    with pytest.raises(ValueError, match="1 stage weight"):
        stage_loss([t, t], t, (1.0,))
    with pytest.raises(ValueError, match="single tensor"):
        stage_loss(t, t, (1.0,))
    with pytest.raises(ValueError, match="loss kind"):
        stage_loss([t], t, (1.0,), kind="mse")
    with pytest.raises(ValueError, match="equal shape"):
        stage_loss([torch.zeros(1, 3, 4, 5)], t, (1.0,))
    with pytest.raises(ValueError, match="loss kind"):
        build_loss("ssim")


def test_gradient_flows_to_every_stage_and_reduces_loss():
    torch.manual_seed(0)
    target = torch.rand(2, 3, 8, 8)
    a = torch.rand(2, 3, 8, 8, requires_grad=True)
    b = torch.rand(2, 3, 8, 8, requires_grad=True)
    loss = stage_loss([a, b], target, (0.5, 0.5))
    loss.backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0
    with torch.no_grad():
        after = stage_loss([a - 0.01 * a.grad, b - 0.01 * b.grad], target, (0.5, 0.5))
    assert after < loss


def test_loss_is_float32_under_bf16_autocast():
    torch.manual_seed(0)
    target = torch.rand(2, 3, 8, 8)
    pred = (target + 1e-3 * torch.randn_like(target)).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = stage_loss([pred, pred], target, (0.5, 0.5))
    assert loss.dtype == torch.float32
    ref = PSNRLoss()(pred.float(), target)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-6)
