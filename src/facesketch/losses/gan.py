"""Adversarial losses against constant targets and CycleGAN's history pool of generated images."""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F


def gan_loss(pred: torch.Tensor, target_is_real: bool, mode: str = "lsgan") -> torch.Tensor:
    """Loss of discriminator logits ``pred`` (any shape) against an all-1 (real) or all-0 (fake) map.

    'lsgan': mean squared error (CycleGAN's GANLoss('lsgan')); 'vanilla': BCE with logits. Computed in fp32.
    """
    pred = pred.float()
    target = torch.ones_like(pred) if target_is_real else torch.zeros_like(pred)
    if mode == "lsgan":
        return F.mse_loss(pred, target)
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(pred, target)
    raise ValueError(f"unknown gan mode {mode!r}")


class ImagePool:
    """CycleGAN's buffer of up to ``size`` past generated images (detached).

    For each image of a batch: while the pool is filling, store it and return it; afterwards, with
    probability 0.5 return a uniformly chosen stored image and put the new one in its place, else return
    the new one. Has its own RNG so that saving/restoring it makes a resumed run exact.
    """

    def __init__(self, size: int, seed: int = 0):
        self.size = int(size)
        self.images: list[torch.Tensor] = []
        self.rng = random.Random(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images.detach()
        out = []
        for img in images.detach():
            img = img.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
            elif self.rng.random() > 0.5:
                j = self.rng.randint(0, self.size - 1)
                out.append(self.images[j].clone())
                self.images[j] = img.clone()
            else:
                out.append(img)
        return torch.cat(out, 0)

    def state_dict(self) -> dict:
        """Plain tensors/lists only (loadable with ``torch.load(weights_only=True)``)."""
        state = self.rng.getstate()
        return {
            "size": self.size,
            "images": torch.cat(self.images).cpu() if self.images else torch.empty(0),
            "rng": [state[0], list(state[1]), state[2]],
        }

    def load_state_dict(self, sd: dict, device: torch.device | str = "cpu") -> None:
        self.size = int(sd["size"])
        imgs = sd["images"]
        self.images = [imgs[i : i + 1].to(device) for i in range(imgs.shape[0])] if imgs.numel() else []
        v, internal, gauss = sd["rng"]
        self.rng.setstate((v, tuple(internal), gauss))
