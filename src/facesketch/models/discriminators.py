"""CycleGAN's PatchGAN discriminator (70x70 receptive field for n_layers=3): raw patch logits, no sigmoid."""

from __future__ import annotations

import torch
from torch import nn


class PatchDiscriminator(nn.Module):
    """conv4x4 s2 + LReLU(0.2); (n_layers-1) x [conv4x4 s2, IN, LReLU]; conv4x4 s1, IN, LReLU; conv4x4 s1 -> 1.

    Input RGB in [-1, 1] (B, 3, H, W); output logits (B, out_channels, h, w) (30x30 for 256x256 with n_layers=3): one
    map, or one per sketch style for a style-conditioned model.
    All convs carry a bias (instance norm has no affine shift).
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3, out_channels: int = 1):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=2, padding=1),
                       nn.InstanceNorm2d(ndf * mult), nn.LeakyReLU(0.2, True)]  # fmt: skip
        prev, mult = mult, min(2**n_layers, 8)
        layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=1, padding=1),
                   nn.InstanceNorm2d(ndf * mult), nn.LeakyReLU(0.2, True),
                   nn.Conv2d(ndf * mult, out_channels, 4, stride=1, padding=1)]  # fmt: skip
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def build_discriminator(*, ndf: int = 64, n_layers: int = 3, init_std: float = 0.02, out_channels: int = 1) -> PatchDiscriminator:
    """Factory used by training, symmetric with ``build_generator``: a PatchGAN with CycleGAN's 'normal' init."""
    from facesketch.models.generators import init_weights

    return init_weights(PatchDiscriminator(ndf=ndf, n_layers=n_layers, out_channels=out_channels), init_std)


def build_discriminator_from(model: dict, role: str = "D_A") -> PatchDiscriminator:
    """A discriminator from the model config as a whole (``ndf``, ``n_layers_D``, ``init_std``), like
    ``build_generator_from``. ``D_A`` judges sketches: with ``styles`` > 0 it has one patch map per style (a sketch is
    judged real or fake as the style it claims); ``D_B`` judges photos with one map."""
    styles = int(model.get("styles", 0) or 0) if role == "D_A" else 0
    return build_discriminator(ndf=model.get("ndf", 64), n_layers=model.get("n_layers_D", 3), init_std=model.get("init_std", 0.02),
                               out_channels=max(1, styles))  # fmt: skip
