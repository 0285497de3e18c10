"""DSINE v02 surface-normal estimator (Bae & Davison, CVPR 2024): the network, its inference recipe, and weight loading.

Our port of ``baegwangbin/DSINE@ef0c2af`` ``models/dsine/v02.py`` with the configuration of the paper's checkpoint
(``exp001_cvpr2024``): EfficientNet-B5 encoder, decoder width 2048 at 1/8 resolution with weight-standardised convs
and GroupNorm, learned convex 8x upsampling, 5 refinement steps of a ConvGRU that rotates the normals of a 5x5
neighbourhood, and the ray-ReLU that keeps every normal within 89.4 deg of its viewing ray. ``DSINE.state_dict()``
has exactly the official key names, so the authors' ``dsine.pt`` loads strictly.

Fixes relative to the official code (none changes the output):
- ``pixel_coords`` is a non-persistent buffer built on the default device, so ``.to(device)`` moves it (the official
  code pins it to ``cuda:0`` and keeps it outside the module's state).
- the +0.5 principal-point shift is applied to a copy; the caller's intrinsics are never written to.

Output convention (all predictions): unit normals (B, 3, H, W), range [-1, 1], as DSINE defines them (maintainer,
issues #8/#12; enforced by the ray-ReLU, cos(n, ray) >= 0.01 with ray = K^-1 (u, v, 1)): the components, in the camera
frame x right / y down / z forward, of the normal pointing *into* the surface, i.e. the outward normal read in an
x-left / y-up / z-towards-the-camera frame. A wall facing the camera is (0, 0, 1); a surface facing image-left has
x > 0, one facing up has y > 0.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facesketch.errors import UserError
from facesketch.priors.efficientnet import tf_efficientnet_b5_ap
from facesketch.priors.frozen import FrozenPrior, InputConvention

# --- configuration of the published checkpoint (projects/dsine/experiments/exp001_cvpr2024/dsine.txt) -------------
ENCODER_CHANNELS = {"f6": 64, "f8": 176, "f11": 2048}  # B5: stage 2 (1/8), stage 4 (1/16), conv_head (1/32)
DECODER_NF = 2048
DOWNSAMPLE = 8  # the decoder predicts at 1/8 resolution
OUTPUT_DIM, FEATURE_DIM, HIDDEN_DIM = 3, 64, 64
PROP_PS = 5  # refinement neighbourhood 5x5
NUM_ITER = 5
RAY_RELU_EPS = 1e-2
MAX_COORD = 2000  # pixel_coords cap (at 1/8 resolution: inputs up to 16000 px per side)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_FOV_DEG = 60.0

_MISSING_WEIGHTS = (
    "DSINE weights (dsine.pt) are needed: they come from the DSINE authors under a non-commercial licence and are "
    "not redistributable; run `facesketch weights fetch dsine` or pass --dsine-weights PATH"
)


# ================================================================================================= building blocks
class WSConv2d(nn.Conv2d):
    """Conv2d with weight standardisation: each filter is centred and divided by its (unbiased) std + 1e-5."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        # mean over (in, kh, kw) taken one axis at a time, as the official code does: same rounding, same output
        w = w - w.mean(dim=1, keepdim=True).mean(dim=2, keepdim=True).mean(dim=3, keepdim=True)
        std = w.view(w.shape[0], -1).std(dim=1).view(-1, 1, 1, 1) + 1e-5
        return F.conv2d(x, w / std, self.bias, self.stride, self.padding, self.dilation, self.groups)


class UpSampleGN(nn.Module):
    """Upsample ``x`` bilinearly (align_corners=False) to the skip's size, concatenate the skip, then twice
    (weight-standardised conv3x3, GroupNorm(8), LeakyReLU(0.01))."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self._net = nn.Sequential(
            WSConv2d(in_ch, out_ch, 3, padding=1),
            nn.GroupNorm(8, out_ch),
            nn.LeakyReLU(0.01),
            WSConv2d(out_ch, out_ch, 3, padding=1),
            nn.GroupNorm(8, out_ch),
            nn.LeakyReLU(0.01),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self._net(torch.cat([up, skip], dim=1))


def prediction_head(in_ch: int, hidden: int, out_ch: int) -> nn.Sequential:
    """conv3x3 -> ReLU -> conv1x1 -> ReLU -> conv1x1 (keys .0, .2, .4)."""
    return nn.Sequential(
        nn.Conv2d(in_ch, hidden, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(hidden, hidden, 1),
        nn.ReLU(),
        nn.Conv2d(hidden, out_ch, 1),
    )


class ConvGRU(nn.Module):
    """Convolutional GRU cell; h (B, hidden, h, w), x (B, input, h, w)."""

    def __init__(self, hidden_dim: int, input_dim: int, ks: int):
        super().__init__()
        p = (ks - 1) // 2
        self.convz = nn.Conv2d(hidden_dim + input_dim, hidden_dim, ks, padding=p)
        self.convr = nn.Conv2d(hidden_dim + input_dim, hidden_dim, ks, padding=p)
        self.convq = nn.Conv2d(hidden_dim + input_dim, hidden_dim, ks, padding=p)

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        hx = torch.cat([h, x], dim=1)
        z = torch.sigmoid(self.convz(hx))
        r = torch.sigmoid(self.convr(hx))
        q = torch.tanh(self.convq(torch.cat([r * h, x], dim=1)))
        return (1 - z) * h + z * q


def ray_relu(normal: torch.Tensor, ray: torch.Tensor, eps: float = RAY_RELU_EPS) -> torch.Tensor:
    """Move each normal along its viewing ray until cos(normal, ray) >= eps, then renormalise (channel dim 1)."""
    cos = torch.cosine_similarity(normal, ray, dim=1).unsqueeze(1)
    diff = ray * (torch.relu(cos - eps) + eps) - ray * cos
    return F.normalize(normal + diff, dim=1)


def unfold_replicate(x: torch.Tensor, ps: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, ps*ps, H, W): each pixel's ps x ps neighbourhood (row*ps + col), borders replicated."""
    b, c, h, w = x.shape
    pad = (ps - 1) // 2
    x = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    return F.unfold(x, [ps, ps]).view(b, c, ps * ps, h, w)


def convex_upsample(x: torch.Tensor, mask_logits: torch.Tensor, k: int) -> torch.Tensor:
    """Upsample (B, C, H, W) by k: every output pixel is a softmax-weighted mix of its 3x3 low-res neighbours.

    mask_logits: (B, 9*k*k, H, W), laid out (9, k, k). Borders are replicate-padded. Returns (B, C, k*H, k*W).
    """
    b, c, h, w = x.shape
    mask = torch.softmax(mask_logits.view(b, 1, 9, k, k, h, w), dim=2)
    nbr = F.unfold(F.pad(x, (1, 1, 1, 1), mode="replicate"), [3, 3]).view(b, c, 9, 1, 1, h, w)
    up = torch.sum(mask * nbr, dim=2)  # (B, C, k, k, H, W)
    return up.permute(0, 1, 4, 2, 5, 3).reshape(b, c, k * h, k * w)


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) from axis-angle vectors (..., 3) (angle = norm, right-hand rule).

    Goes through the unit quaternion q = (cos(t/2), sin(t/2)/t * axis_angle), with the Taylor expansion of sin(t/2)/t
    near 0 so a zero vector gives the identity with finite gradients. The same arithmetic as pytorch3d's
    axis_angle_to_matrix, which the official code uses, so the refinement reproduces it to the last bit.
    """
    theta = torch.linalg.vector_norm(axis_angle, dim=-1, keepdim=True)
    small = theta.abs() < 1e-6
    safe = torch.where(small, torch.ones_like(theta), theta)
    s = torch.where(small, 0.5 - theta * theta / 48, torch.sin(safe * 0.5) / safe)
    q = torch.cat([torch.cos(theta * 0.5), axis_angle * s], dim=-1)
    r, i, j, k = torch.unbind(q, -1)
    two_s = 2.0 / (q * q).sum(-1)
    m = torch.stack(
        (
            1 - two_s * (j * j + k * k), two_s * (i * j - k * r), two_s * (i * k + j * r),
            two_s * (i * j + k * r), 1 - two_s * (i * i + k * k), two_s * (j * k - i * r),
            two_s * (i * k - j * r), two_s * (j * k + i * r), 1 - two_s * (i * i + j * j),
        ),
        -1,
    )
    return m.reshape(axis_angle.shape[:-1] + (3, 3))


def pixel_coords(h: int, w: int) -> torch.Tensor:
    """(1, 3, h, w) float32: pixel-centre coordinates (x + 0.5, y + 0.5, 1)."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    return torch.stack([xs + 0.5, ys + 0.5, torch.ones_like(xs)], dim=0).unsqueeze(0)


# ========================================================================================================= network
class DSINEEncoder(nn.Module):
    """Holds the EfficientNet-B5 as ``original_model`` (the official key prefix) and returns its module-walk list."""

    def __init__(self):
        super().__init__()
        self.original_model = tf_efficientnet_b5_ap()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.original_model.feature_list(x)


class DSINEDecoder(nn.Module):
    """Initial normal (1/8), feature map and GRU hidden state from encoder features + uv ray encodings."""

    def __init__(self):
        super().__init__()
        nf = DECODER_NF
        self.conv2 = nn.Conv2d(ENCODER_CHANNELS["f11"] + 2, nf, 1)
        self.up1 = UpSampleGN(nf + ENCODER_CHANNELS["f8"] + 2, nf // 2)
        self.up2 = UpSampleGN(nf // 2 + ENCODER_CHANNELS["f6"] + 2, nf // 4)
        i_dim, h_dim = nf // 4 + 2, 128
        self.normal_head = prediction_head(i_dim, h_dim, OUTPUT_DIM)
        self.feature_head = prediction_head(i_dim, h_dim, FEATURE_DIM)
        self.hidden_head = prediction_head(i_dim, h_dim, HIDDEN_DIM)

    def forward(self, feats: list[torch.Tensor], uvs: tuple[torch.Tensor, torch.Tensor, torch.Tensor]):
        uv_32, uv_16, uv_8 = uvs
        x = self.conv2(torch.cat([feats[11], uv_32], dim=1))
        x = self.up1(x, torch.cat([feats[8], uv_16], dim=1))
        x = self.up2(x, torch.cat([feats[6], uv_8], dim=1))
        x = torch.cat([x, uv_8], dim=1)
        normal = F.normalize(self.normal_head(x), dim=1)
        return normal, self.feature_head(x), self.hidden_head(x)


@dataclass
class _Camera:
    """Intrinsics (each (B, 1, 1, 1)) at the model input's full resolution, principal point already shifted by +0.5."""

    fx: torch.Tensor
    fy: torch.Tensor
    cx: torch.Tensor
    cy: torch.Tensor
    full_h: int
    full_w: int

    def at(self, h: int, w: int):
        """(fu, cu, fv, cv) rescaled to an h x w feature map."""
        sx, sy = w / self.full_w, h / self.full_h
        return self.fx * sx, self.cx * sx, self.fy * sy, self.cy * sy


class DSINE(nn.Module):
    """DSINE v02 as configured by the published checkpoint; 72,564,759 parameters, 918 state-dict keys.

    ``forward(x, intrins, num_iter=5)``:
      x: (B, 3, H, W) ImageNet-normalised RGB (``(rgb01 - mean) / std``), H and W multiples of 32 (pad first).
      intrins: (B, 3, 3) (or (1, 3, 3)) pixel intrinsics of *x*, padding offset included, top-left pixel centre at
        (0, 0). Not modified.
      returns: list of ``num_iter + 1`` unit-normal maps (B, 3, H, W): [0] the decoder's initial estimate after convex
        upsampling, [k] after k refinement steps; [-1] is the paper's output.

    ``detach_refinement_input``: the official model feeds ``pred.detach()`` into every refinement step, so the gradient
    of [-1] reaches the image only through the hidden state, features and heads. False lets it also flow through the
    initial estimate (not the official behaviour; the forward values are identical).
    """

    def __init__(self, *, detach_refinement_input: bool = True):
        super().__init__()
        self.detach_refinement_input = detach_refinement_input
        self.downsample_ratio = DOWNSAMPLE
        self.ps = PROP_PS
        self.encoder = DSINEEncoder()
        self.decoder = DSINEDecoder()
        self.register_buffer("pixel_coords", pixel_coords(MAX_COORD, MAX_COORD), persistent=False)
        self.gru = ConvGRU(HIDDEN_DIM, FEATURE_DIM + 2, PROP_PS)
        head_in = HIDDEN_DIM + 2
        self.prob_head = prediction_head(head_in, 64, PROP_PS * PROP_PS)  # weight of each neighbour
        self.xy_head = prediction_head(head_in, 64, PROP_PS * PROP_PS * 2)  # in-plane direction defining the axis
        self.angle_head = prediction_head(head_in, 64, PROP_PS * PROP_PS)  # rotation angle
        self.up_prob_head = prediction_head(head_in, 64, 9 * DOWNSAMPLE * DOWNSAMPLE)  # convex upsampling weights

    # ----------------------------------------------------------------------------------------------- geometry helpers
    def _camera(self, intrins: torch.Tensor, x: torch.Tensor) -> _Camera:
        if intrins.dim() != 3 or intrins.shape[-2:] != (3, 3) or intrins.shape[0] not in (1, x.shape[0]):
            raise ValueError(f"intrins must be (B, 3, 3) with B = {x.shape[0]} (or 1), got {tuple(intrins.shape)}")
        k = intrins.to(device=x.device, dtype=x.dtype).reshape(-1, 9, 1, 1)
        fx, fy, cx, cy = k[:, 0:1], k[:, 4:5], k[:, 2:3], k[:, 5:6]  # each (B, 1, 1, 1)
        # the official forward adds 0.5 to the principal point (its pixel_coords are pixel centres x + 0.5); done on
        # new tensors here, where the official code writes into the caller's matrix
        return _Camera(fx, fy, cx + 0.5, cy + 0.5, x.shape[-2], x.shape[-1])

    def _uv(self, cam: _Camera, h: int, w: int, batch: int) -> torch.Tensor:
        """(B, 2, h, w): normalised image-plane coordinates ((u - cx)/fx, (v - cy)/fy) of each pixel centre."""
        fu, cu, fv, cv = cam.at(h, w)
        pc = self.pixel_coords[:, :, :h, :w]
        u = (pc[:, 0:1] - cu) / fu
        v = (pc[:, 1:2] - cv) / fv
        return torch.cat([u, v], dim=1).expand(batch, -1, -1, -1)  # intrins may be shared (1, 3, 3)

    @staticmethod
    def _ray(uv: torch.Tensor) -> torch.Tensor:
        """Unit viewing rays (B, 3, h, w) from uv."""
        return F.normalize(torch.cat([uv, torch.ones_like(uv[:, :1])], dim=1), dim=1)

    def _upsample(self, h: torch.Tensor, pred: torch.Tensor, uv_8: torch.Tensor) -> torch.Tensor:
        mask = self.up_prob_head(torch.cat([h, uv_8], dim=1))
        return F.normalize(convex_upsample(pred, mask, self.downsample_ratio), dim=1)

    def _refine(self, h, feat_map, pred, cam: _Camera, uv_8, ray_8):
        """One refinement step at 1/8: GRU update, then each pixel's normal = weighted sum of its rotated neighbours."""
        b, _, hh, ww = pred.shape
        ps = self.ps
        fu, cu, fv, cv = cam.at(hh, ww)
        h_new = self.gru(h, feat_map)
        head_in = torch.cat([h_new, uv_8], dim=1)

        prob = torch.sigmoid(self.prob_head(head_in)).unsqueeze(1)  # (B, 1, ps*ps, h, w)
        nbr_n = unfold_replicate(pred, ps)  # (B, 3, ps*ps, h, w)
        xy = F.normalize(self.xy_head(head_in).view(b, 2, ps * ps, hh, ww), dim=1)  # first ps*ps channels x, then y
        angle = torch.sigmoid(self.angle_head(head_in)).unsqueeze(1) * math.pi  # (B, 1, ps*ps, h, w)
        nbr_pc = unfold_replicate(self.pixel_coords[:, :2, :hh, :ww], ps)  # (1, 2, ps*ps, h, w)

        # rotation axis: the in-plane direction (dx, dy) lifted onto the neighbour's tangent plane
        du = xy[:, 0] / fu
        dv = xy[:, 1] / fv
        term_u = (nbr_pc[:, 0] + xy[:, 0] - cu) / fu
        term_v = (nbr_pc[:, 1] + xy[:, 1] - cv) / fv
        nx, ny, nz = nbr_n[:, 0], nbr_n[:, 1], nbr_n[:, 2]
        num = -(du * nx + dv * ny)
        den = term_u * nx + term_v * ny + nz
        den = torch.where(den.abs() < 1e-8, 1e-8 * torch.sign(den), den)
        dz = num / den
        axes = F.normalize(torch.stack([du + dz * term_u, dv + dz * term_v, dz], dim=1), dim=1)
        invalid = (~torch.isfinite(axes)).any(dim=1, keepdim=True)
        axes = torch.where(invalid, torch.zeros_like(axes), axes)

        # rotate each neighbour's normal about its axis; channels-last so the 3x3 products run as one bmm
        rmat = axis_angle_to_matrix((axes * angle).permute(0, 2, 3, 4, 1))  # (B, ps*ps, h, w, 3, 3)
        n_last = nbr_n.permute(0, 2, 3, 4, 1).reshape(-1, 3, 1)
        rot = torch.bmm(rmat.reshape(-1, 3, 3), n_last).reshape(b, ps * ps, hh, ww, 3).permute(0, 4, 1, 2, 3)
        rot = F.normalize(rot, dim=1)  # (B, 3, ps*ps, h, w)
        rot = ray_relu(rot, ray_8.unsqueeze(2))
        pred = F.normalize(torch.sum(prob * rot, dim=2), dim=1)
        return h_new, pred, self._upsample(h_new, pred, uv_8)

    # ------------------------------------------------------------------------------------------------------ forward
    def forward_with_features(
        self, x: torch.Tensor, intrins: torch.Tensor, num_iter: int = NUM_ITER
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Like ``forward``, also returning the encoder's module-walk list (items 6, 8, 11 feed the decoder)."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"DSINE expects (B, 3, H, W), got {tuple(x.shape)}")
        b, _, hh, ww = x.shape
        if hh % 32 or ww % 32:
            raise ValueError(f"DSINE needs H and W divisible by 32 (pad first, see pad_to_multiple), got {hh}x{ww}")
        if hh // 8 > self.pixel_coords.shape[-2] or ww // 8 > self.pixel_coords.shape[-1]:
            raise ValueError(f"input {hh}x{ww} exceeds DSINE's coordinate grid ({8 * MAX_COORD} px per side)")
        feats = self.encoder(x)
        cam = self._camera(intrins, x)
        uv_32 = self._uv(cam, hh // 32, ww // 32, b)
        uv_16 = self._uv(cam, hh // 16, ww // 16, b)
        uv_8 = self._uv(cam, hh // 8, ww // 8, b)
        ray_8 = self._ray(uv_8)

        pred, feat_map, h = self.decoder(feats, (uv_32, uv_16, uv_8))
        pred = ray_relu(pred, ray_8)
        feat_map = torch.cat([feat_map, uv_8], dim=1)

        preds = [self._upsample(h, pred, uv_8)]
        for _ in range(num_iter):
            inp = pred.detach() if self.detach_refinement_input else pred
            h, pred, up = self._refine(h, feat_map, inp, cam, uv_8, ray_8)
            preds.append(up)
        return preds, feats

    def forward(self, x: torch.Tensor, intrins: torch.Tensor, num_iter: int = NUM_ITER) -> list[torch.Tensor]:
        return self.forward_with_features(x, intrins, num_iter)[0]


# ======================================================================================================= the recipe
def pad_to_multiple(h: int, w: int, multiple: int = 32) -> tuple[int, int, int, int]:
    """Padding (l, r, t, b) that makes h, w multiples of ``multiple``; split evenly, the odd pixel right/bottom.

    The official ``utils.get_padding`` rule (no padding when already a multiple). ``F.pad(x, (l, r, t, b))`` applies it.
    """

    def split(n: int) -> tuple[int, int]:
        if n % multiple == 0:
            return 0, 0
        total = multiple * (n // multiple + 1) - n
        return total // 2, total - total // 2

    l, r = split(w)
    t, b = split(h)
    return l, r, t, b


def intrinsics_from_fov(
    h: int, w: int, fov_deg: float = DEFAULT_FOV_DEG, batch: int = 1, device: torch.device | str | None = None
) -> torch.Tensor:
    """Pinhole intrinsics (batch, 3, 3) float32 for an h x w image with the given field of view over its longer side.

    f = (max(h, w) / 2) / tan(fov / 2) (computed in float64), cx = w/2 - 0.5, cy = h/2 - 0.5 (top-left pixel centre is
    (0, 0)), as the official ``intrins_from_fov``. 256x256 at 60 deg: f = 221.70, cx = cy = 127.5.
    """
    f = (max(h, w) / 2.0) / math.tan(math.radians(fov_deg / 2.0))
    k = torch.tensor([[f, 0.0, w / 2.0 - 0.5], [0.0, f, h / 2.0 - 0.5], [0.0, 0.0, 1.0]], dtype=torch.float64)
    return k.to(device=device, dtype=torch.float32).unsqueeze(0).repeat(batch, 1, 1)


@dataclass
class DSINETrace:
    """Every intermediate of one :class:`NormalEstimator` call (names as in the conformance vectors)."""

    model_input: torch.Tensor  # (B, 3, H+t+b, W+l+r) padded, ImageNet-normalised
    intrins_fov60: torch.Tensor  # (B, 3, 3) intrinsics of the unpadded image (fov-60 default or the caller's)
    intrins: torch.Tensor  # (B, 3, 3) the same with the l/t padding added: what DSINE receives
    lrtb: tuple[int, int, int, int]
    pred_all: list[torch.Tensor]  # num_iter + 1 maps (B, 3, H, W), cropped back
    enc_feat6: torch.Tensor  # encoder stage 2 output (B, 64, H'/8, W'/8) of the padded input
    enc_feat8: torch.Tensor  # stage 4 (B, 176, H'/16, W'/16)
    enc_feat11: torch.Tensor  # conv_head (B, 2048, H'/32, W'/32), before bn2


class NormalEstimator(nn.Module):
    """The differentiable DSINE recipe: RGB in [0, 1] (B, 3, H, W), any H, W -> unit normals (B, 3, H, W).

    Steps (official ``test_minimal.py``, batched): zero-pad the [0, 1] image to multiples of 32 (``pad_to_multiple``),
    ImageNet-normalise, intrinsics = fov-60 on the *unpadded* size (or the caller's ``intrins`` (B, 3, 3) for the
    unpadded image) plus the l/t padding, run DSINE, crop the padding off. Normals in [-1, 1]: a wall facing the
    camera is (0, 0, 1), a surface facing image-left has x > 0, facing up y > 0 (see the module docstring). Never
    modifies its inputs; intrinsics are built on the input's device.

    prediction: which entry of DSINE's list to return: -1 (paper, after all refinement steps), 0 (initial estimate),
    or k (after k steps). Only the needed refinement steps are run.
    """

    def __init__(self, dsine: DSINE | None = None, *, prediction: int = -1, fov_deg: float = DEFAULT_FOV_DEG,
                 num_iter: int = NUM_ITER):
        super().__init__()
        if not -(num_iter + 1) <= prediction <= num_iter:
            raise ValueError(f"prediction must index a list of {num_iter + 1} predictions, got {prediction}")
        self.dsine = dsine if dsine is not None else DSINE()
        self.prediction = prediction
        self.fov_deg = fov_deg
        self.num_iter = num_iter
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def _prepare(self, rgb: torch.Tensor, intrins: torch.Tensor | None):
        if rgb.dim() != 4 or rgb.shape[1] != 3:
            raise ValueError(f"NormalEstimator expects RGB (B, 3, H, W) in [0, 1], got {tuple(rgb.shape)}")
        b, _, h, w = rgb.shape
        lrtb = pad_to_multiple(h, w)
        x = F.pad(rgb, lrtb, mode="constant", value=0.0) if any(lrtb) else rgb
        x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        if intrins is None:
            k0 = intrinsics_from_fov(h, w, self.fov_deg, batch=b, device=rgb.device)
        else:
            k0 = intrins.detach().to(device=rgb.device, dtype=torch.float32)
            if k0.dim() == 2:
                k0 = k0.unsqueeze(0)
            if k0.shape[-2:] != (3, 3) or k0.shape[0] not in (1, b):
                raise ValueError(f"intrins must be (B, 3, 3) or (3, 3), got {tuple(intrins.shape)}")
            k0 = k0.expand(b, 3, 3).clone()
        k = k0.clone()
        k[:, 0, 2] += lrtb[0]
        k[:, 1, 2] += lrtb[2]
        return x, k0, k, lrtb

    def _run(self, rgb: torch.Tensor, intrins: torch.Tensor | None, num_iter: int) -> DSINETrace:
        x, k0, k, lrtb = self._prepare(rgb, intrins)
        preds, feats = self.dsine.forward_with_features(x, k, num_iter=num_iter)
        l, _, t, _ = lrtb
        h, w = rgb.shape[-2:]
        return DSINETrace(
            model_input=x,
            intrins_fov60=k0,
            intrins=k,
            lrtb=lrtb,
            pred_all=[p[:, :, t : t + h, l : l + w] for p in preds],
            enc_feat6=feats[6],
            enc_feat8=feats[8],
            enc_feat11=feats[11],
        )

    def forward(self, rgb: torch.Tensor, intrins: torch.Tensor | None = None) -> torch.Tensor:
        """rgb (B, 3, H, W) RGB in [0, 1] -> unit normals (B, 3, H, W) in DSINE's convention (module docstring)."""
        # list entry i needs exactly i refinement steps: skip the ones after it
        return self._run(rgb, intrins, self.prediction % (self.num_iter + 1)).pred_all[-1]

    def trace(self, rgb: torch.Tensor, intrins: torch.Tensor | None = None) -> DSINETrace:
        """Run the full recipe (all refinement steps) and return every intermediate, for tests and debugging."""
        return self._run(rgb, intrins, self.num_iter)


# ================================================================================================ weights and factory
@lru_cache(maxsize=1)
def _expected_shapes() -> dict[str, tuple[int, ...]]:
    """Official key -> shape, from a DSINE built on the meta device (no memory, no init cost)."""
    with torch.device("meta"):
        net = DSINE()
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def load_dsine_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a DSINE checkpoint (``dsine.pt``: ``{'model': state_dict, 'iter': n}``, or a bare state dict) without
    executing code (``weights_only``); strips a ``module.`` (DataParallel) prefix; returns official key -> tensor (CPU).
    Raises UserError naming the file if it is not a DSINE v02 state dict (missing/unexpected keys, wrong shapes)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"DSINE weights file not found: {path} (pass --dsine-weights PATH or run `facesketch weights fetch dsine`)"
        )
    from facesketch.tensorfile import load_tensors

    sd = load_tensors(path, "a DSINE checkpoint (a state dict or {'model': state_dict})", unwrap=("model",),
                      strip_prefix="module.")  # fmt: skip
    expected = _expected_shapes()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    wrong = [f"{k} {tuple(sd[k].shape)}!={v}" for k, v in expected.items() if k in sd and tuple(sd[k].shape) != v]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
        if wrong:
            parts.append(f"{len(wrong)} shape mismatches (e.g. {', '.join(wrong[:2])})")
        raise UserError(f"{path} is not a DSINE v02 checkpoint (exp001_cvpr2024): " + "; ".join(parts))
    return sd


# Gains of the synthetic initialisation for the EfficientNet encoder. Its BatchNorms run on fixed statistics, so
# nothing re-normalises the signal: without compensation each Swish and each SE gate shrinks it and the deepest
# features stop depending on the image. The depthwise convs of stages 1-6 see Swish outputs (rms ~0.6); the
# projections after the SE gate (conv_pwl, and conv_pw in stage 0's separable blocks) see Swish x gate (~0.3).
_SYNTH_GAINS = (
    (re.compile(r"^encoder\.original_model\.blocks\.[1-6]\.\d+\.conv_dw\.weight$"), 1.7),
    (re.compile(r"^encoder\.original_model\.blocks\.[1-6]\.\d+\.conv_pwl\.weight$"), 2.5),
    (re.compile(r"^encoder\.original_model\.blocks\.0\.\d+\.conv_pw\.weight$"), 2.5),
)


def _synth_gain(name: str) -> float:
    return next((gain for rx, gain in _SYNTH_GAINS if rx.match(name)), 1.0)


@torch.no_grad()
def synthetic_init_(net: DSINE, seed: int) -> DSINE:
    """Overwrite every parameter and BN statistic with deterministic random values (for tests and benchmarks only).

    Convs N(0, 1) * gain / sqrt(fan_in); norm scales 1 + 0.1 N; biases 0.1 N; BN running mean 0.1 N and
    var 1 + 0.5 U[0, 1). A torch.Generator seeded with ``seed`` walks the state dict in order, so the result depends
    only on the seed. The values keep activations in a sane range and the output input-dependent; they mean nothing.
    """
    gen = torch.Generator().manual_seed(int(seed))
    for name, t in net.state_dict().items():
        if name.endswith("num_batches_tracked"):
            t.zero_()
            continue
        shape = t.shape
        if name.endswith("running_var"):
            val = 1.0 + 0.5 * torch.rand(shape, generator=gen)
        elif name.endswith("weight") and len(shape) == 4:
            fan_in = int(np.prod(shape[1:]))
            val = torch.randn(shape, generator=gen) * (_synth_gain(name) / math.sqrt(fan_in))
        elif name.endswith("weight") and len(shape) == 1:
            val = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        else:  # biases, running_mean
            val = 0.1 * torch.randn(shape, generator=gen)
        t.copy_(val)
    return net


def build_normal_estimator(
    weights: str | Path | None = None,
    *,
    synthetic_seed: int | None = None,
    prediction: int = -1,
    device: torch.device | str = "cpu",
    detach_refinement_input: bool = True,
) -> FrozenPrior:
    """The frozen DSINE prior: a :class:`NormalEstimator` (RGB in [0, 1]) in a :class:`FrozenPrior`.

    weights: path of ``dsine.pt`` (strict load). synthetic_seed: deterministic random weights instead (tests,
    benchmarks). Neither: UserError explaining where dsine.pt comes from. Never downloads.
    The result's ``forward(rgb, intrins=None)`` maps RGB in [0, 1] (B, 3, H, W) to unit normals (B, 3, H, W); its
    ``.net`` is the :class:`NormalEstimator` (``.net.trace`` gives the intermediates, ``.net.dsine`` the network).
    """
    if weights is not None and synthetic_seed is not None:
        raise ValueError("build_normal_estimator: pass weights or synthetic_seed, not both")
    if weights is not None:
        sd = load_dsine_state_dict(weights)
        source = str(weights)
    elif synthetic_seed is None:
        raise UserError(_MISSING_WEIGHTS)
    else:
        sd = None
        source = f"synthetic(seed={int(synthetic_seed)})"
    net = DSINE(detach_refinement_input=detach_refinement_input)
    if sd is None:
        synthetic_init_(net, synthetic_seed)
    else:
        net.load_state_dict(sd, strict=True)
    est = NormalEstimator(net, prediction=prediction).to(device)
    return FrozenPrior(est, name="dsine", convention=InputConvention((0.0, 1.0), "RGB"), weights_source=source)


# ========================================================================================================= helpers
def normals_to_rgb(n) -> np.ndarray:
    """Preview of a normal map: (3, H, W) or (1, 3, H, W) tensor/array in [-1, 1] -> uint8 (H, W, 3).

    RGB = (n + 1) / 2 * 255 truncated (as the official ``test_minimal.py``), R <- x, G <- y, B <- z. For viewing only:
    store normals as float (float16 .npy is enough), uint8 loses precision.
    """
    a = n.detach().float().cpu().numpy() if isinstance(n, torch.Tensor) else np.asarray(n, dtype=np.float32)
    if a.ndim == 4:
        if a.shape[0] != 1:
            raise ValueError(f"normals_to_rgb takes one map, got a batch of {a.shape[0]}")
        a = a[0]
    if a.ndim != 3 or a.shape[0] != 3:
        raise ValueError(f"normals_to_rgb expects (3, H, W), got {a.shape}")
    return np.clip((a.transpose(1, 2, 0) + 1.0) * 0.5 * 255.0, 0, 255).astype(np.uint8)
