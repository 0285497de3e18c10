"""CycleGAN's PatchGAN discriminator (70x70 receptive field for n_layers=3): raw patch logits, no sigmoid."""

from __future__ import annotations

import torch
from torch import nn


class PatchDiscriminator(nn.Module):
    """conv4x4 s2 + LReLU(0.2); (n_layers-1) x [conv4x4 s2, IN, LReLU]; conv4x4 s1, IN, LReLU; conv4x4 s1 -> 1.

    Input RGB in [-1, 1] (B, 3, H, W); output logits (B, 1, h, w) (30x30 for 256x256 with n_layers=3).
    All convs carry a bias (instance norm has no affine shift).
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3):
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
                   nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1)]  # fmt: skip
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def build_discriminator(*, ndf: int = 64, n_layers: int = 3, init_std: float = 0.02) -> PatchDiscriminator:
    """Factory used by training, symmetric with ``build_generator``: a PatchGAN with CycleGAN's 'normal' init."""
    from facesketch.models.generators import init_weights

    return init_weights(PatchDiscriminator(ndf=ndf, n_layers=n_layers), init_std)


def build_discriminator_from(model: dict) -> PatchDiscriminator:
    """A discriminator from the model config as a whole (``ndf``, ``n_layers_D``, ``init_std``), like ``build_generator_from``."""
    return build_discriminator(ndf=model.get("ndf", 64), n_layers=model.get("n_layers_D", 3), init_std=model.get("init_std", 0.02))
