"""Independent functional reference of the public HINet forward pass, for equivalence tests only.

Written from the architecture description (reference-facts.md), not from ``pipeline.models``: a pure function over a
state-dict mapping that calls ``torch.nn.functional`` directly. The structure (depth, which levels use HIN,
cross-stage fusion, extra residual blocks) is read off the keys present, so a model that builds the wrong modules
fails here too. Inputs must already be multiples of ``2 ** (depth - 1)``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
import torch.nn.functional as F

Params = Mapping[str, torch.Tensor]


def _conv(sd: Params, name: str, x: torch.Tensor, *, stride: int = 1) -> torch.Tensor:
    w = sd[f"{name}.weight"]
    pad = (w.shape[-1] - 1) // 2 if stride == 1 else 1  # 3x3 -> 1, 1x1 -> 0, 4x4 stride 2 -> 1
    return F.conv2d(x, w, sd.get(f"{name}.bias"), stride=stride, padding=pad)


def _lrelu(x: torch.Tensor, slope: float) -> torch.Tensor:
    return torch.where(x >= 0, x, x * slope)


def _half_instance_norm(sd: Params, name: str, x: torch.Tensor) -> torch.Tensor:
    """Instance-normalise the first half of the channels with affine params, keep the second half."""
    half = x.shape[1] // 2
    normed = F.instance_norm(x[:, :half], weight=sd[f"{name}.weight"], bias=sd[f"{name}.bias"], eps=1e-5)
    return torch.cat([normed, x[:, half:]], dim=1)


def _block(sd: Params, p: str, x: torch.Tensor, slope: float, enc=None, dec=None) -> torch.Tensor:
    """One conv block without its downsampling; HIN and extra residual blocks follow from the keys under ``p``."""
    y = _conv(sd, f"{p}.conv_1", x)
    if f"{p}.norm.weight" in sd:
        y = _half_instance_norm(sd, f"{p}.norm", y)
    y = _lrelu(y, slope)
    y = _lrelu(_conv(sd, f"{p}.conv_2", y), slope)
    y = y + _conv(sd, f"{p}.identity", x)
    if enc is not None:
        y = y + _conv(sd, f"{p}.csff_enc", enc) + _conv(sd, f"{p}.csff_dec", dec)
    j = 0
    while f"{p}.extra.{j}.conv_1.weight" in sd:
        y = y + _conv(sd, f"{p}.extra.{j}.conv_2", _lrelu(_conv(sd, f"{p}.extra.{j}.conv_1", y), slope))
        j += 1
    return y


def _up(sd: Params, p: str, x: torch.Tensor, bridge: torch.Tensor, slope: float) -> torch.Tensor:
    up = F.conv_transpose2d(x, sd[f"{p}.up.weight"], sd[f"{p}.up.bias"], stride=2)
    return _block(sd, f"{p}.conv_block", torch.cat([up, bridge], dim=1), slope)


def reference_hinet(sd: Params, image: torch.Tensor, relu_slope: float = 0.2) -> list[torch.Tensor]:
    """Return ``[out_1, out_2]`` of HINet with weights ``sd`` (official key names) on ``image`` (N, C, H, W)."""
    levels = sorted({int(m.group(1)) for k in sd if (m := re.match(r"down_path_1\.(\d+)\.", k))})
    depth = len(levels)
    assert levels == list(range(depth)), levels

    # Stage 1.
    x = _conv(sd, "conv_01", image)
    stage1_enc = []
    for i in range(depth):
        feat = _block(sd, f"down_path_1.{i}", x, relu_slope)
        if i < depth - 1:
            stage1_enc.append(feat)
            x = _conv(sd, f"down_path_1.{i}.downsample", feat, stride=2)
        else:
            x = feat
    stage1_dec = {}  # keyed by encoder level
    for j in range(depth - 1):
        level = depth - 2 - j
        x = _up(sd, f"up_path_1.{j}", x, _conv(sd, f"skip_conv_1.{j}", stage1_enc[level]), relu_slope)
        stage1_dec[level] = x

    # Supervised attention.
    out_1 = _conv(sd, "sam12.conv2", x) + image
    gate = torch.sigmoid(_conv(sd, "sam12.conv3", out_1))
    sam_feat = _conv(sd, "sam12.conv1", x) * gate + x

    # Stage 2.
    x = _conv(sd, "cat12", torch.cat([_conv(sd, "conv_02", image), sam_feat], dim=1))
    stage2_enc = []
    for i in range(depth):
        if i < depth - 1:
            feat = _block(sd, f"down_path_2.{i}", x, relu_slope, stage1_enc[i], stage1_dec[i])
            stage2_enc.append(feat)
            x = _conv(sd, f"down_path_2.{i}.downsample", feat, stride=2)
        else:
            x = _block(sd, f"down_path_2.{i}", x, relu_slope)
    for j in range(depth - 1):
        level = depth - 2 - j
        x = _up(sd, f"up_path_2.{j}", x, _conv(sd, f"skip_conv_2.{j}", stage2_enc[level]), relu_slope)
    out_2 = _conv(sd, "last", x) + image
    return [out_1, out_2]
