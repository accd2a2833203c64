"""HINet (Chen et al., 2021): a two-stage UNet with Half Instance Normalization, state-dict compatible with the release.

Attribute paths, parameter shapes and the state-dict key order match the public ``HINet`` checkpoints exactly when
``extra_blocks=0``; ``extra_blocks > 0`` adds residual blocks (the "wider, deeper" NTIRE variant, whose exact form the
release does not contain) under new ``extra.*`` keys only. Inputs of any size are padded to a multiple of
``2 ** (depth - 1)`` and the outputs cropped back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import PipelineError

__all__ = ["HINet", "ModelError", "identity_init"]


class ModelError(PipelineError):
    """A variant name or width that cannot build a HINet (an unknown variant, an odd width where HIN normalises half
    the channels); the message names the value."""


def _conv3x3(in_chn: int, out_chn: int) -> nn.Conv2d:
    return nn.Conv2d(in_chn, out_chn, kernel_size=3, padding=1, bias=True)


class ResidualBlock(nn.Module):
    """conv3x3 -> LeakyReLU -> conv3x3 plus the input: one of the extra blocks of the deeper NTIRE variant."""

    def __init__(self, channels: int, relu_slope: float):
        super().__init__()
        self.relu_slope = relu_slope
        self.conv_1 = _conv3x3(channels, channels)
        self.conv_2 = _conv3x3(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_2(F.leaky_relu(self.conv_1(x), self.relu_slope))


class UNetConvBlock(nn.Module):
    """Two 3x3 convs with a 1x1 shortcut; optional HIN (first half of the channels), cross-stage fusion, downsampling.

    Returns ``(downsampled, features)`` when it downsamples, else ``features``.
    """

    def __init__(
        self,
        in_size: int,
        out_size: int,
        downsample: bool,
        relu_slope: float,
        use_csff: bool = False,
        use_hin: bool = False,
        extra_blocks: int = 0,
    ):
        super().__init__()
        self.relu_slope = relu_slope
        self.use_hin = use_hin
        self.use_csff = use_csff
        # Registration order reproduces the release's state-dict key order.
        self.identity = nn.Conv2d(in_size, out_size, kernel_size=1, bias=True)
        self.conv_1 = _conv3x3(in_size, out_size)
        self.conv_2 = _conv3x3(out_size, out_size)
        if use_csff:
            self.csff_enc = _conv3x3(out_size, out_size)
            self.csff_dec = _conv3x3(out_size, out_size)
        if use_hin:
            self.norm = nn.InstanceNorm2d(out_size // 2, affine=True)
        if extra_blocks:
            self.extra = nn.ModuleList(ResidualBlock(out_size, relu_slope) for _ in range(extra_blocks))
        self.downsample = (
            nn.Conv2d(out_size, out_size, kernel_size=4, stride=2, padding=1, bias=False) if downsample else None
        )

    def forward(self, x: torch.Tensor, enc: torch.Tensor | None = None, dec: torch.Tensor | None = None):
        out = self.conv_1(x)
        if self.use_hin:
            first, second = torch.chunk(out, 2, dim=1)
            # Normalise in fp32 even under bf16 autocast: on a flat patch the variance is ~0 and bf16 rounding noise
            # (0.4%) would be amplified up to 1/sqrt(eps) ~ 300x (seen as loss spikes training on dead leaves).
            normed = self.norm(first.float()).to(first.dtype)
            out = torch.cat([normed, second], dim=1)
        out = F.leaky_relu(out, self.relu_slope)
        out = F.leaky_relu(self.conv_2(out), self.relu_slope)
        out = out + self.identity(x)
        if enc is not None or dec is not None:
            if not self.use_csff or enc is None or dec is None:
                raise ValueError("cross-stage features need a block built with use_csff and both enc and dec")
            out = out + self.csff_enc(enc) + self.csff_dec(dec)
        if hasattr(self, "extra"):
            for block in self.extra:
                out = block(out)
        if self.downsample is not None:
            return self.downsample(out), out
        return out


class UNetUpBlock(nn.Module):
    """2x2 transposed-conv upsampling, concatenation with the (already convolved) skip, then a conv block."""

    def __init__(self, in_size: int, out_size: int, relu_slope: float, extra_blocks: int = 0):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_size, out_size, kernel_size=2, stride=2, bias=True)
        self.conv_block = UNetConvBlock(in_size, out_size, False, relu_slope, extra_blocks=extra_blocks)

    def forward(self, x: torch.Tensor, bridge: torch.Tensor) -> torch.Tensor:
        return self.conv_block(torch.cat([self.up(x), bridge], dim=1))


class SAM(nn.Module):
    """Supervised attention module: predicts the stage-1 image and gates the features passed to stage 2."""

    def __init__(self, n_feat: int, in_chn: int):
        super().__init__()
        self.conv1 = _conv3x3(n_feat, n_feat)
        self.conv2 = _conv3x3(n_feat, in_chn)
        self.conv3 = _conv3x3(in_chn, n_feat)

    def forward(self, x: torch.Tensor, x_img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        img = self.conv2(x) + x_img
        x1 = self.conv1(x) * torch.sigmoid(self.conv3(img)) + x
        return x1, img


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad bottom/right so H and W are multiples of ``multiple``: reflect where the size allows, replicate otherwise.

    Inputs no larger than one ``multiple`` in both directions get a second column of blocks, because instance
    normalisation at the deepest level needs more than one spatial element.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if h + ph == multiple and w + pw == multiple:
        pw += multiple
    if ph:
        x = F.pad(x, (0, 0, 0, ph), mode="reflect" if ph < h else "replicate")
    if pw:
        x = F.pad(x, (0, pw, 0, 0), mode="reflect" if pw < w else "replicate")
    return x


class HINet(nn.Module):
    """Two-stage HINet; ``forward(x)`` returns ``[out_1, out_2]`` (SAM image, final image), both the size of ``x``.

    HIN is used in the encoder blocks of levels ``hin_position_left..hin_position_right`` (inclusive) of both stages:
    REDS/GoPro configs use 3..4, SIDD 0..4; an empty range (left > right) disables it. ``extra_blocks`` residual blocks
    follow every encoder and decoder conv block (0 = the public architecture). The constructor arguments are kept in
    ``self.config`` so checkpoints can rebuild the model.
    """

    def __init__(
        self,
        in_chn: int = 3,
        wf: int = 64,
        depth: int = 5,
        relu_slope: float = 0.2,
        hin_position_left: int = 0,
        hin_position_right: int = 4,
        extra_blocks: int = 0,
    ):
        super().__init__()
        for name, value, low in (
            ("in_chn", in_chn, 1),
            ("wf", wf, 1),
            ("depth", depth, 2),
            ("extra_blocks", extra_blocks, 0),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"HINet: {name} must be an integer >= {low}, got {value!r}")
        hin_levels = [i for i in range(depth) if hin_position_left <= i <= hin_position_right]
        if hin_levels and wf % 2:
            raise ModelError(f"HINet: wf must be even when HIN is used (it normalises half the channels), got {wf}")
        self.config = {
            "in_chn": in_chn,
            "wf": wf,
            "depth": depth,
            "relu_slope": float(relu_slope),
            "hin_position_left": int(hin_position_left),
            "hin_position_right": int(hin_position_right),
            "extra_blocks": extra_blocks,
        }
        self.depth = depth
        self.multiple = 2 ** (depth - 1)
        self.in_chn = in_chn

        self.down_path_1 = nn.ModuleList()
        self.down_path_2 = nn.ModuleList()
        self.conv_01 = _conv3x3(in_chn, wf)
        self.conv_02 = _conv3x3(in_chn, wf)
        prev = wf
        for i in range(depth):
            out, not_last, hin = (2**i) * wf, i + 1 < depth, i in hin_levels
            self.down_path_1.append(
                UNetConvBlock(prev, out, not_last, relu_slope, use_hin=hin, extra_blocks=extra_blocks)
            )
            self.down_path_2.append(
                UNetConvBlock(
                    prev, out, not_last, relu_slope, use_csff=not_last, use_hin=hin, extra_blocks=extra_blocks
                )
            )
            prev = out

        self.up_path_1 = nn.ModuleList()
        self.up_path_2 = nn.ModuleList()
        self.skip_conv_1 = nn.ModuleList()
        self.skip_conv_2 = nn.ModuleList()
        for i in reversed(range(depth - 1)):
            out = (2**i) * wf
            self.up_path_1.append(UNetUpBlock(prev, out, relu_slope, extra_blocks))
            self.up_path_2.append(UNetUpBlock(prev, out, relu_slope, extra_blocks))
            self.skip_conv_1.append(_conv3x3(out, out))
            self.skip_conv_2.append(_conv3x3(out, out))
            prev = out
        self.sam12 = SAM(prev, in_chn)
        self.cat12 = nn.Conv2d(prev * 2, prev, kernel_size=1, bias=True)
        self.last = _conv3x3(prev, in_chn)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != self.in_chn:
            raise ValueError(f"HINet expects an (N, {self.in_chn}, H, W) tensor, got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        out_1, out_2 = self._forward_padded(_pad_to_multiple(x, self.multiple))
        return [out_1[..., :h, :w], out_2[..., :h, :w]]

    def _forward_padded(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Stage 1: encoder (keeping skips), decoder (keeping features per level), SAM.
        x1 = self.conv_01(image)
        encs = []
        for down in self.down_path_1:
            if down.downsample is not None:
                x1, skip = down(x1)
                encs.append(skip)
            else:
                x1 = down(x1)
        decs = []
        for i, up in enumerate(self.up_path_1):
            x1 = up(x1, self.skip_conv_1[i](encs[-i - 1]))
            decs.append(x1)
        sam_feature, out_1 = self.sam12(x1, image)

        # Stage 2: fuse SAM features; the encoder takes stage-1 features of its scale (decs runs deep -> shallow).
        x2 = self.cat12(torch.cat([self.conv_02(image), sam_feature], dim=1))
        blocks = []
        for i, down in enumerate(self.down_path_2):
            if down.downsample is not None:
                x2, skip = down(x2, encs[i], decs[-i - 1])
                blocks.append(skip)
            else:
                x2 = down(x2)
        for i, up in enumerate(self.up_path_2):
            x2 = up(x2, self.skip_conv_2[i](blocks[-i - 1]))
        out_2 = self.last(x2) + image
        return out_1, out_2


@torch.no_grad()
def identity_init(model: HINet) -> HINet:
    """Zero the output convolutions (``last``, ``sam12.conv2``) so both outputs equal the input exactly; returns model.

    Short training runs then start from the identity instead of from noise added to the input.
    """
    for conv in (model.last, model.sam12.conv2):
        conv.weight.zero_()
        conv.bias.zero_()
    return model
