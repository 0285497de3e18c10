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
        self.labels: list[torch.Tensor] = []  # each stored image's label (the style it was drawn in), when given
        self.rng = random.Random(seed)

    def query(self, images: torch.Tensor, labels: torch.Tensor | None = None):
        """The images to show the discriminator; with ``labels`` ((B,) long, e.g. each fake sketch's style) also the
        labels of the images returned (a stored image comes back with its own label)."""
        if self.size == 0:
            return images.detach() if labels is None else (images.detach(), labels)
        out, out_labels = [], []
        lab = labels if labels is not None else torch.zeros(images.shape[0], dtype=torch.long, device=images.device)
        for img, lb in zip(images.detach(), lab):
            img, lb = img.unsqueeze(0), lb.reshape(1)
            if len(self.images) < self.size:
                self.images.append(img.clone())
                self.labels.append(lb.clone())
                out.append(img), out_labels.append(lb)
            elif self.rng.random() > 0.5:
                j = self.rng.randint(0, self.size - 1)
                out.append(self.images[j].clone()), out_labels.append(self.labels[j].clone())
                self.images[j], self.labels[j] = img.clone(), lb.clone()
            else:
                out.append(img), out_labels.append(lb)
        images_out = torch.cat(out, 0)
        return images_out if labels is None else (images_out, torch.cat(out_labels, 0))

    def state_dict(self) -> dict:
        """Plain tensors/lists only (loadable with ``torch.load(weights_only=True)``)."""
        state = self.rng.getstate()
        return {
            "size": self.size,
            "images": torch.cat(self.images).cpu() if self.images else torch.empty(0),
            "labels": torch.cat(self.labels).cpu() if self.labels else torch.empty(0, dtype=torch.long),
            "rng": [state[0], list(state[1]), state[2]],
        }

    def load_state_dict(self, sd: dict, device: torch.device | str = "cpu") -> None:
        self.size = int(sd["size"])
        imgs = sd["images"]
        self.images = [imgs[i : i + 1].to(device) for i in range(imgs.shape[0])] if imgs.numel() else []
        labels = sd.get("labels")  # checkpoints from before styles: every stored image had the one style, 0
        if labels is None or labels.numel() != len(self.images):
            labels = torch.zeros(len(self.images), dtype=torch.long)
        self.labels = [labels[i : i + 1].to(device) for i in range(len(self.images))]
        v, internal, gauss = sd["rng"]
        self.rng.setstate((v, tuple(internal), gauss))
