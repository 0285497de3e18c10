"""EfficientNet-B5 (``tf_efficientnet_b5_ap``) for DSINE's encoder: geffnet 1.0.2's module tree and keys, no weights.

DSINE builds its encoder with ``geffnet.create_model('tf_efficientnet_b5_ap')`` and then loads its own checkpoint over
it, so what must match is geffnet's *structure*: module names (``conv_stem``, ``bn1``, ``act1``,
``blocks.<stage>.<block>.*``, ``conv_head``, ``bn2``, ``act2``, ``global_pool``, ``classifier``), channel counts, and
the numerics of the TensorFlow port (BatchNorm eps 1e-3, Swish, squeeze-excite gated by a sigmoid, TF "SAME" padding).
Nothing here downloads anything: the weights always come from the DSINE checkpoint (or a synthetic initialisation).

Differences from geffnet that do not change the computation in eval mode: no drop-connect (DSINE builds the model
with rate 0), activations are not in-place (so autograd can run through the frozen network), and the ImageNet head is
absent (``global_pool`` and ``classifier`` are ``nn.Identity``, exactly what DSINE sets them to).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# TensorFlow's BatchNorm epsilon; the PyTorch default (1e-5) measurably changes DSINE's output.
BN_EPS_TF = 1e-3

# EfficientNet-B0 stages (the compound-scaling base): block kind, repeats, kernel, stride, expansion, out channels.
# Every block has squeeze-excite with ratio 0.25 of the block's *input* channels.
_B0_STAGES: tuple[tuple[str, int, int, int, int, int], ...] = (
    ("ds", 1, 3, 1, 1, 16),
    ("ir", 2, 3, 2, 6, 24),
    ("ir", 2, 5, 2, 6, 40),
    ("ir", 3, 3, 2, 6, 80),
    ("ir", 3, 5, 1, 6, 112),
    ("ir", 4, 5, 2, 6, 192),
    ("ir", 1, 3, 1, 6, 320),
)
_SE_RATIO = 0.25


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of ``divisor`` (half up), never dropping more than 10% (TF/geffnet rule)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def tf_same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow "SAME" padding along one axis for an input of ``size``: (before, after), the odd pixel going after."""
    total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class Conv2dSameTF(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding computed from the input size at every call.

    Only needed for strided convs: with stride 2 TF pads asymmetrically (the extra pixel right/bottom), which a
    symmetric PyTorch ``padding=`` cannot express. For stride 1 and odd kernels SAME is symmetric, and those layers
    use a plain ``nn.Conv2d`` (as geffnet does).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, groups: int = 1, bias: bool = False):
        super().__init__(in_ch, out_ch, kernel, stride=stride, padding=0, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ph = tf_same_padding(x.shape[-2], self.kernel_size[0], self.stride[0], self.dilation[0])
        pw = tf_same_padding(x.shape[-1], self.kernel_size[1], self.stride[1], self.dilation[1])
        if ph != (0, 0) or pw != (0, 0):
            x = F.pad(x, (pw[0], pw[1], ph[0], ph[1]))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """A bias-free conv with TF "SAME" semantics: static symmetric padding for stride 1, dynamic for stride 2."""
    if stride == 1 and kernel % 2 == 1:
        return nn.Conv2d(in_ch, out_ch, kernel, stride=1, padding=(kernel - 1) // 2, groups=groups, bias=False)
    return Conv2dSameTF(in_ch, out_ch, kernel, stride, groups=groups)


def _bn(ch: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(ch, eps=BN_EPS_TF)


class SqueezeExcite(nn.Module):
    """Channel gate: global mean -> 1x1 conv -> Swish -> 1x1 conv -> sigmoid, multiplied onto the input."""

    def __init__(self, ch: int, reduced: int):
        super().__init__()
        self.conv_reduce = nn.Conv2d(ch, reduced, 1, bias=True)
        self.act1 = nn.SiLU()
        self.conv_expand = nn.Conv2d(reduced, ch, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        s = self.conv_expand(self.act1(self.conv_reduce(s)))
        return x * torch.sigmoid(s)


def _se_channels(in_ch: int) -> int:
    # geffnet sizes the squeeze from the block's input channels with divisor 1 (i.e. rounded to the nearest int)
    return make_divisible(in_ch * _SE_RATIO, divisor=1)


class DepthwiseSeparable(nn.Module):
    """Stage-0 block: depthwise conv -> BN -> Swish -> SE -> 1x1 conv -> BN (no activation), residual if shapes match"""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int):
        super().__init__()
        self.has_residual = stride == 1 and in_ch == out_ch
        self.conv_dw = _conv(in_ch, in_ch, kernel, stride, groups=in_ch)
        self.bn1 = _bn(in_ch)
        self.act1 = nn.SiLU()
        self.se = SqueezeExcite(in_ch, _se_channels(in_ch))
        self.conv_pw = _conv(in_ch, out_ch, 1)
        self.bn2 = _bn(out_ch)
        self.act2 = nn.Identity()  # geffnet's 'ds' blocks have no activation after the projection

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act1(self.bn1(self.conv_dw(x)))
        y = self.se(y)
        y = self.act2(self.bn2(self.conv_pw(y)))
        return y + x if self.has_residual else y


class InvertedResidual(nn.Module):
    """MBConv: 1x1 expansion -> BN -> Swish -> depthwise -> BN -> Swish -> SE -> 1x1 projection -> BN (+ residual)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expansion: int):
        super().__init__()
        mid = make_divisible(in_ch * expansion)
        self.has_residual = stride == 1 and in_ch == out_ch
        self.conv_pw = _conv(in_ch, mid, 1)
        self.bn1 = _bn(mid)
        self.act1 = nn.SiLU()
        self.conv_dw = _conv(mid, mid, kernel, stride, groups=mid)
        self.bn2 = _bn(mid)
        self.act2 = nn.SiLU()
        self.se = SqueezeExcite(mid, _se_channels(in_ch))
        self.conv_pwl = _conv(mid, out_ch, 1)
        self.bn3 = _bn(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act1(self.bn1(self.conv_pw(x)))
        y = self.act2(self.bn2(self.conv_dw(y)))
        y = self.se(y)
        y = self.bn3(self.conv_pwl(y))
        return y + x if self.has_residual else y


class EfficientNet(nn.Module):
    """A compound-scaled EfficientNet trunk without the ImageNet head.

    ``forward`` takes an ImageNet-normalised RGB batch (B, 3, H, W) and returns the output of the last top-level
    module (``act2``: (B, num_features, ceil(H/32), ceil(W/32))). DSINE instead walks the top-level modules itself,
    see :meth:`feature_list`.
    """

    def __init__(self, width_mult: float, depth_mult: float, stem_base: int = 32, head_base: int = 1280):
        super().__init__()
        stem = make_divisible(stem_base * width_mult)
        self.conv_stem = _conv(3, stem, 3, stride=2)
        self.bn1 = _bn(stem)
        self.act1 = nn.SiLU()
        stages = []
        in_ch = stem
        for kind, repeats, kernel, stride, expansion, out_base in _B0_STAGES:
            out_ch = make_divisible(out_base * width_mult)
            blocks = []
            # depth scaling rounds the repeat count up; only the first block of a stage strides
            for i in range(int(math.ceil(repeats * depth_mult))):
                s = stride if i == 0 else 1
                if kind == "ds":
                    blocks.append(DepthwiseSeparable(in_ch, out_ch, kernel, s))
                else:
                    blocks.append(InvertedResidual(in_ch, out_ch, kernel, s, expansion))
                in_ch = out_ch
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)
        self.num_features = make_divisible(head_base * width_mult)
        self.conv_head = _conv(in_ch, self.num_features, 1)
        self.bn2 = _bn(self.num_features)
        self.act2 = nn.SiLU()
        # DSINE replaces the pooling and the classifier by identities; keep the names so the module walk is the same
        self.global_pool = nn.Identity()
        self.classifier = nn.Identity()

    def feature_list(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The input followed by the output of every top-level module, each stage of ``blocks`` counted separately.

        For B5 the list is [x, conv_stem, bn1, act1, stage0..stage6, conv_head, bn2, act2, global_pool, classifier]
        (16 items); DSINE's decoder reads items 6 (stage 2, 1/8), 8 (stage 4, 1/16) and 11 (conv_head, 1/32).
        """
        feats = [x]
        for name, module in self._modules.items():
            if name == "blocks":
                for stage in module:
                    feats.append(stage(feats[-1]))
            else:
                feats.append(module(feats[-1]))
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_list(x)[-1]


def tf_efficientnet_b5_ap() -> EfficientNet:
    """``tf_efficientnet_b5_ap`` (width 1.6, depth 2.2): 39 blocks, stem 48 ch, stage outputs 24/40/64/128/176/304/512,
    head 2048 ch. Randomly initialised by PyTorch's defaults; load real weights over it."""
    return EfficientNet(width_mult=1.6, depth_mult=2.2)
