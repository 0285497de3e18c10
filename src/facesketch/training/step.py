"""One CycleGAN optimisation step: the generator phase, then the discriminator phase, in one place.

Forward order and losses follow CycleGAN / AttentionGAN (reference.md section 2) with the paper's weights:
    fake_B = G_A(real_A); rec_A = G_B(fake_B); fake_A = G_B(real_B); rec_B = G_A(fake_A)
    L_G = lambda_gan (lsgan(D_A(fake_B), 1) + lsgan(D_B(fake_A), 1))
        + lambda_cycle_A |rec_A - real_A|_1 + lambda_cycle_B |rec_B - real_B|_1
        + identity terms (optional) + sum_k weight_k term_k (edge, normal, ...)
    L_D_A = 0.5 (lsgan(D_A(real_B), 1) + lsgan(D_A(pool_B(fake_B)), 0)), L_D_B likewise on domain A.
Generator calls that do not depend on each other are batched together: instance norm is per sample, so
G_B(cat[fake_B, real_B]) computes exactly G_B(fake_B) and G_B(real_B); likewise D on cat[real, fake].
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from facesketch.losses.gan import ImagePool, gan_loss
from facesketch.losses.registry import CycleTensors, loss_weights


class CycleGenerators(nn.Module):
    """G_A: A -> B and G_B: B -> A, run together so that one (DDP-wrapped) forward serves one backward."""

    def __init__(self, G_A: nn.Module, G_B: nn.Module):
        super().__init__()
        self.G_A, self.G_B = G_A, G_B

    def forward(self, real_A: torch.Tensor, real_B: torch.Tensor, identity: bool = False, fake_B_noise: float = 0.0,
                style_A: torch.Tensor | None = None, style_B: torch.Tensor | None = None) -> dict[str, torch.Tensor]:  # fmt: skip
        """``fake_B_noise``: std (model range, [-1, 1]) of Gaussian noise on fake_B where G_B reads it to rebuild the photo
        (what the discriminator and the result see stays noise-free). ``style_A``: (B,) the style each photo is drawn
        in; ``style_B``: each real sketch's own style (G_A redraws fake_A in it for the sketch cycle). None: no styles."""
        n = real_A.shape[0]
        styles_in = None if style_A is None else (torch.cat([style_A, style_B]) if identity else style_A)
        out_A = _g(self.G_A, torch.cat([real_A, real_B]) if identity else real_A, styles_in)
        fake_B = out_A.image[:n]
        noisy_B = fake_B + fake_B_noise * torch.randn_like(fake_B) if fake_B_noise > 0 else fake_B
        inputs_B = [noisy_B, real_B] + ([real_A] if identity else [])
        out_B = self.G_B(torch.cat(inputs_B))
        rec_A, fake_A = out_B.image[:n], out_B.image[n : 2 * n]
        rec_B = _g(self.G_A, fake_A, style_B).image
        res = {"fake_B": fake_B, "rec_A": rec_A, "fake_A": fake_A, "rec_B": rec_B}
        if identity:
            res["idt_A"], res["idt_B"] = out_A.image[n:], out_B.image[2 * n :]
        if out_A.attention is not None:
            res["attention_A"] = out_A.attention[:n]  # G_A's masks on the photos, for the collapse monitor
            res["attention_B"] = out_B.attention[n : 2 * n]  # G_B's masks on the sketches
        return res


def _g(G: nn.Module, x: torch.Tensor, style: torch.Tensor | None):
    """Run a generator, passing the style only to a style-conditioned one (plain generators take just the image)."""
    return G(x) if style is None else G(x, style)


def judged_as(pred: torch.Tensor, style: torch.Tensor | None) -> torch.Tensor:
    """A per-style PatchGAN's (B, S, h, w) logits -> the (B, 1, h, w) map of the style each image claims; a plain
    discriminator's one map is returned as it is."""
    if style is None or pred.shape[1] == 1:
        return pred
    idx = style.to(pred.device).long().view(-1, 1, 1, 1).expand(-1, 1, pred.shape[2], pred.shape[3])
    return pred.gather(1, idx)


class CycleDiscriminators(nn.Module):
    """D_A judges domain B (fake_B vs real_B); D_B judges domain A (fake_A vs real_A) — CycleGAN's naming."""

    def __init__(self, D_A: nn.Module, D_B: nn.Module):
        super().__init__()
        self.D_A, self.D_B = D_A, D_B

    def forward(self, images_B: torch.Tensor, images_A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.D_A(images_B), self.D_B(images_A)


@dataclass
class StepSettings:
    """The step's switches. ``weights``: every loss term's weight by name, as the registry reads them from the loss
    config (``losses.registry.loss_weights``): the core terms' and the built terms' alike."""

    weights: dict[str, float]
    gan_mode: str = "lsgan"
    fake_B_noise: float = 0.0  # model range ([-1, 1]): 2 * grey levels / 255
    amp_dtype: torch.dtype | None = None  # torch.bfloat16 / torch.float16 / None (fp32)
    channels_last: bool = False

    @classmethod
    def from_config(cls, loss_cfg, *, amp_dtype: torch.dtype | None = None, channels_last: bool = False) -> "StepSettings":
        return cls(weights=loss_weights(loss_cfg), gan_mode=loss_cfg.gan_mode, fake_B_noise=2.0 * loss_cfg.fake_B_noise / 255.0,
                   amp_dtype=amp_dtype, channels_last=channels_last)  # fmt: skip

    @property
    def identity(self) -> bool:
        return self.weights.get("idt_A", 0) > 0 or self.weights.get("idt_B", 0) > 0


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def _unwrap(m: nn.Module) -> nn.Module:
    m = getattr(m, "module", m)  # DistributedDataParallel
    return getattr(m, "_orig_mod", m)  # torch.compile


class CycleGANStep:
    """Callable doing one full step; returns a dict of named, detached 0-dim tensors (no host sync).

    ``G`` / ``D`` are CycleGenerators / CycleDiscriminators, possibly wrapped by DDP or torch.compile.
    ``terms`` are extra generator-loss terms (see ``facesketch.losses.priors``).
    """

    def __init__(self, G, D, opt_G, opt_D, settings: StepSettings, terms=(), pool_A: ImagePool | None = None,
                 pool_B: ImagePool | None = None, scaler: torch.amp.GradScaler | None = None):  # fmt: skip
        self.G, self.D, self.opt_G, self.opt_D, self.s = G, D, opt_G, opt_D, settings
        self.terms = list(terms)
        self.pool_A = pool_A or ImagePool(0)
        self.pool_B = pool_B or ImagePool(0)
        self.scaler = scaler
        self.D_plain = _unwrap(D)  # used in the G phase: no DDP gradient sync for frozen D

    def _autocast(self, device_type: str):
        if self.s.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device_type, dtype=self.s.amp_dtype)

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.s.channels_last else x

    def _backward_step(self, loss: torch.Tensor, opt: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(opt)
        else:
            loss.backward()
            opt.step()

    def __call__(self, real_A: torch.Tensor, real_B: torch.Tensor, targets: dict[str, torch.Tensor] | None = None,
                 context: dict[str, torch.Tensor] | None = None, styles: dict[str, torch.Tensor] | None = None) -> dict:  # fmt: skip
        """real_A, real_B: (B, 3, S, S) in [-1, 1]; targets / context: what the enabled terms asked the batch for
        (``CycleTensors``); styles: for a style-conditioned model, {'A': (B,) the style each photo is drawn in,
        'B': (B,) each real sketch's own style}. Returns the named, detached scalars of the step."""
        style_A = styles["A"].to(real_A.device).long() if styles else None
        style_B = styles["B"].to(real_B.device).long() if styles else None
        s, w, dev = self.s, self.s.weights, real_A.device.type
        real_A, real_B = self._prep(real_A), self._prep(real_B)
        identity = s.identity
        stats: dict[str, torch.Tensor] = {}

        # ---- generator phase: D frozen, one backward through G_A and G_B (and through the frozen priors)
        set_requires_grad(self.D_plain, False)
        self.opt_G.zero_grad(set_to_none=True)
        with self._autocast(dev):
            o = self.G(real_A, real_B, identity, s.fake_B_noise, style_A, style_B)
            pred_fake_B = judged_as(self.D_plain.D_A(o["fake_B"]), style_A)
            pred_fake_A = self.D_plain.D_B(o["fake_A"])
        losses = {
            "G_A": gan_loss(pred_fake_B, True, s.gan_mode) * w["G_A"],
            "G_B": gan_loss(pred_fake_A, True, s.gan_mode) * w["G_B"],
            "cycle_A": F.l1_loss(o["rec_A"].float(), real_A.float()) * w["cycle_A"],
            "cycle_B": F.l1_loss(o["rec_B"].float(), real_B.float()) * w["cycle_B"],
        }
        if identity:
            losses["idt_A"] = F.l1_loss(o["idt_A"].float(), real_B.float()) * w["idt_A"]
            losses["idt_B"] = F.l1_loss(o["idt_B"].float(), real_A.float()) * w["idt_B"]
        if self.terms:
            t = CycleTensors(real_A, real_B, o["fake_B"], o["rec_A"], o["fake_A"], o["rec_B"], targets or {}, context or {})
            for term in self.terms:
                with self._autocast(dev):
                    value = term(t)
                losses[term.name] = value.float() * term.weight
                if hasattr(term, "stats"):
                    stats.update({k: v.detach().float() for k, v in term.stats().items()})
        loss_G = sum(losses.values())
        self._backward_step(loss_G, self.opt_G)

        # ---- discriminator phase: real vs pooled fakes, 0.5 * (real + fake) each
        set_requires_grad(self.D_plain, True)
        self.opt_D.zero_grad(set_to_none=True)
        if style_A is None:
            fake_B, fake_style = self._prep(self.pool_B.query(o["fake_B"])), None
        else:  # a pooled fake comes back with the style it was drawn in
            fake_B, fake_style = self.pool_B.query(o["fake_B"], style_A)
            fake_B = self._prep(fake_B)
        fake_A = self._prep(self.pool_A.query(o["fake_A"]))
        n_B, n_A = real_B.shape[0], real_A.shape[0]
        with self._autocast(dev):
            pred_B, pred_A = self.D(torch.cat([real_B, fake_B]), torch.cat([real_A, fake_A]))
        if style_A is None:
            loss_D_A = 0.5 * (gan_loss(pred_B[:n_B], True, s.gan_mode) + gan_loss(pred_B[n_B:], False, s.gan_mode))
        else:
            # real sketches are real as their own style and fake as any other (so the style maps learn the styles
            # apart, not only real from fake); fakes are fake as the style they were asked for
            n_styles = pred_B.shape[1]
            other = (style_B + torch.randint(1, n_styles, style_B.shape, device=style_B.device)) % n_styles
            real_own = gan_loss(judged_as(pred_B[:n_B], style_B), True, s.gan_mode)
            real_other = gan_loss(judged_as(pred_B[:n_B], other), False, s.gan_mode)
            fake = gan_loss(judged_as(pred_B[n_B:], fake_style), False, s.gan_mode)
            loss_D_A = 0.5 * (real_own + 0.5 * (fake + real_other))
            stats["D_A_style"] = real_other.detach()
        loss_D_B = 0.5 * (gan_loss(pred_A[:n_A], True, s.gan_mode) + gan_loss(pred_A[n_A:], False, s.gan_mode))
        self._backward_step(loss_D_A + loss_D_B, self.opt_D)
        if self.scaler is not None:
            self.scaler.update()

        for k, v in losses.items():
            stats[k] = v.detach()
        stats["G_total"] = loss_G.detach()
        stats["D_A"], stats["D_B"] = loss_D_A.detach(), loss_D_B.detach()
        if "attention_A" in o:
            # mean background-mask weight: near 1 means attention collapse (the generator copies its input)
            stats["attn_bg_A"] = o["attention_A"][:, -1].detach().float().mean()
            stats["attn_bg_B"] = o["attention_B"][:, -1].detach().float().mean()
        return stats
