"""Generators: AttentionGAN's attention-guided ResNet generator (scheme II) and CycleGAN's plain ResNet generator.

Both take and return RGB images in [-1, 1] of shape (B, 3, H, W) with H, W multiples of 4.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch
from torch import nn


class GeneratorOutput(NamedTuple):
    """What a generator returns.

    image: (B, 3, H, W) in [-1, 1], the translated image.
    attention: (B, K+1, H, W) softmax masks summing to 1 per pixel (K foreground masks, then the
        background mask that copies the input), or None for generators without attention.
    content: (B, K, 3, H, W) tanh content images in [-1, 1], or None.
    """

    image: torch.Tensor
    attention: torch.Tensor | None = None
    content: torch.Tensor | None = None


def mask_labels(k: int) -> list[str]:
    """The names of an attention generator's ``k`` masks, in order: 'A1' ... 'A{k-1}' (foreground), 'background'."""
    return [f"A{i + 1}" for i in range(k - 1)] + ["background"]


def _norm(ch: int) -> nn.Module:
    # AttentionGAN hard-codes InstanceNorm without affine parameters or running statistics
    return nn.InstanceNorm2d(ch, affine=False, track_running_stats=False)


class ResidualBlock(nn.Module):
    """reflect-pad 1, conv 3x3, IN, ReLU, reflect-pad 1, conv 3x3, IN; out = x + block(x) (no ReLU after the add)."""

    def __init__(self, ch: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), _norm(ch), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), _norm(ch),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def _encoder(in_ch: int, ngf: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ReflectionPad2d(3), nn.Conv2d(in_ch, ngf, 7), _norm(ngf), nn.ReLU(True),
        nn.Conv2d(ngf, ngf * 2, 3, stride=2, padding=1), _norm(ngf * 2), nn.ReLU(True),
        nn.Conv2d(ngf * 2, ngf * 4, 3, stride=2, padding=1), _norm(ngf * 4), nn.ReLU(True),
    )  # fmt: skip


UPSAMPLERS = ("transpose", "resize")


def _up2(cin: int, cout: int, kind: str) -> list[nn.Module]:
    """One x2 upsampling stage. 'transpose': ConvTranspose 3x3 stride 2 (CycleGAN/AttentionGAN); 'resize': nearest x2
    then reflect-pad 1 + conv 3x3 (Odena et al. 2016: every output pixel sees the same kernel taps, no checkerboard)."""
    if kind == "transpose":
        return [nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1)]
    if kind == "resize":
        return [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)]
    raise ValueError(f"upsample must be one of {UPSAMPLERS}, got {kind!r}")


def _upsampler(ngf: int, kind: str = "transpose") -> nn.Sequential:
    return nn.Sequential(
        *_up2(ngf * 4, ngf * 2, kind), _norm(ngf * 2), nn.ReLU(True),
        *_up2(ngf * 2, ngf, kind), _norm(ngf), nn.ReLU(True),
    )  # fmt: skip


def style_planes(style: torch.Tensor, n_styles: int, like: torch.Tensor) -> torch.Tensor:
    """(B,) style indices -> (B, n_styles, H, W) one-hot planes at ``like``'s size, dtype and device."""
    if style is None:
        raise ValueError(f"this generator draws {n_styles} styles: pass style=(B,) indices in 0..{n_styles - 1}")
    style = torch.as_tensor(style, device=like.device).reshape(-1).long()
    if style.numel() == 1 and like.shape[0] > 1:
        style = style.expand(like.shape[0])
    if style.shape[0] != like.shape[0] or bool(((style < 0) | (style >= n_styles)).any()):
        raise ValueError(f"style must hold {like.shape[0]} indices in 0..{n_styles - 1}, got {style.tolist()}")
    b, _, h, w = like.shape
    return torch.nn.functional.one_hot(style, n_styles).to(like.dtype)[:, :, None, None].expand(b, n_styles, h, w)


def _with_style(x: torch.Tensor, style, n_styles: int) -> torch.Tensor:
    """The encoder's input: the image, and for a style-conditioned generator its one-hot style planes after it."""
    return torch.cat([x, style_planes(style, n_styles, x)], dim=1) if n_styles else x


def luma(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB -> (B, 1, H, W) grey with ITU-R 601 weights (PIL's 'L'); works in [-1, 1] as in [0, 1]."""
    w = x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


class AttentionGenerator(nn.Module):
    """AttentionGAN-v2 generator ("our" in Ha0Tang/AttentionGAN), as used by the paper.

    Shared encoder (conv 7x7, two stride-2 convs) and ``n_blocks`` residual blocks, then two decoders
    with separate weights on the same trunk:
      - content branch: two ConvTranspose stages, reflect-pad 3, conv 7x7 -> ``3 * n_masks`` channels, tanh:
        ``n_masks`` candidate RGB images C_1..C_K;
      - attention branch: two ConvTranspose stages, conv 1x1 -> ``n_masks + 1`` channels, softmax over them:
        K foreground masks and one background mask.
    out = sum_i C_i * A_i + background * A_{K+1}, where background is the input image (variant "our")
    or an extra generated image (variant "geo", AttentionGAN's geometric-change variant).

    ``grey``: the content images are one-channel and the output is grey, repeated over 3 channels (the input the
    "our" background copies is turned grey by ``luma`` first), so a sketch generator cannot emit colour.
    ``upsample``: 'transpose' (AttentionGAN) or 'resize' (nearest + conv, see ``_up2``) in both decoders.

    Input/output: RGB in [-1, 1], (B, 3, H, W); the output stays in [-1, 1] as a convex combination.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, n_blocks: int = 9,
                 n_masks: int = 9, variant: str = "our", *, grey: bool = False, upsample: str = "transpose",
                 styles: int = 0):  # fmt: skip
        super().__init__()
        self.styles = styles
        if variant not in ("our", "geo"):
            raise ValueError(f"variant must be 'our' or 'geo', got {variant!r}")
        if variant == "our" and in_channels != out_channels:
            raise ValueError("the 'our' variant copies the input through the background mask: in_channels must equal out_channels")
        self.variant, self.n_masks, self.out_channels, self.grey = variant, n_masks, out_channels, grey
        n_images = n_masks + (1 if variant == "geo" else 0)
        head_ch = 1 if grey else out_channels
        self.encoder = _encoder(in_channels + styles, ngf)
        self.resblocks = nn.Sequential(*[ResidualBlock(ngf * 4) for _ in range(n_blocks)])
        self.content_up = _upsampler(ngf, upsample)
        self.content_head = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(ngf, head_ch * n_images, 7), nn.Tanh())
        self.attention_up = _upsampler(ngf, upsample)
        self.attention_head = nn.Conv2d(ngf, n_masks + 1, 1)

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> GeneratorOutput:
        feat = self.resblocks(self.encoder(_with_style(x, style, self.styles)))
        b, _, h, w = x.shape
        content = self.content_head(self.content_up(feat)).view(b, -1, 1 if self.grey else self.out_channels, h, w)
        attention = torch.softmax(self.attention_head(self.attention_up(feat)).float(), dim=1)  # fp32 masks under autocast too
        if self.variant == "our":
            background = luma(x) if self.grey else x
            images = torch.cat([content, background.unsqueeze(1)], dim=1)  # background mask copies the input
        else:
            images = content
        image = (images * attention.unsqueeze(2)).sum(dim=1)
        if self.grey:
            image, content = image.expand(-1, self.out_channels, -1, -1), content.expand(-1, -1, self.out_channels, -1, -1)
        return GeneratorOutput(image, attention, content[:, : self.n_masks])


class ResnetGenerator(nn.Module):
    """CycleGAN's ``resnet_9blocks`` generator: encoder, residual blocks, two ConvTranspose stages, conv 7x7, tanh.

    Input/output: RGB in [-1, 1], (B, 3, H, W). No dropout (CycleGAN's default for unpaired training).
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, n_blocks: int = 9, *,
                 grey: bool = False, upsample: str = "transpose", styles: int = 0):  # fmt: skip
        super().__init__()
        self.out_channels, self.grey, self.styles = out_channels, grey, styles
        self.encoder = _encoder(in_channels + styles, ngf)
        self.resblocks = nn.Sequential(*[ResidualBlock(ngf * 4) for _ in range(n_blocks)])
        self.decoder = nn.Sequential(_upsampler(ngf, upsample), nn.ReflectionPad2d(3),
                                     nn.Conv2d(ngf, 1 if grey else out_channels, 7), nn.Tanh())  # fmt: skip

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> GeneratorOutput:
        y = self.decoder(self.resblocks(self.encoder(_with_style(x, style, self.styles))))
        return GeneratorOutput(y.expand(-1, self.out_channels, -1, -1) if self.grey else y)


def init_weights(net: nn.Module, std: float = 0.02) -> nn.Module:
    """CycleGAN's 'normal' init: every Conv/ConvTranspose/Linear weight ~ N(0, std), bias 0."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):  # only used by users' custom variants; CycleGAN's rule
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
    return net


@dataclass(frozen=True)
class GeneratorSpec:
    """A generator architecture in the registry: ``build(model)`` makes it from the model config as a dict (the
    ``ModelConfig`` fields: ngf, n_blocks, n_masks, ...); ``attention`` says whether its output carries masks."""

    name: str
    build: Callable[[dict], nn.Module]
    attention: bool = False
    doc: str = ""


GENERATORS: dict[str, GeneratorSpec] = {}


def register_generator(spec: GeneratorSpec) -> GeneratorSpec:
    """Add (or replace) a generator architecture; the only place to edit to add one."""
    GENERATORS[spec.name] = spec
    return spec


def _attention(m: dict, default_variant: str) -> AttentionGenerator:
    # model.background ('input' | 'generated') chooses the variant for the generator being built; 'attention-geo'
    # is the same network with 'generated' for both generators
    bg = m.get("background") or ("generated" if default_variant == "geo" else "input")
    return AttentionGenerator(ngf=m["ngf"], n_blocks=m["n_blocks"], n_masks=m["n_masks"],
                              variant="geo" if bg == "generated" else "our", grey=m.get("grey", False),
                              upsample=m.get("upsample", "transpose"), styles=m.get("style_inputs", 0))  # fmt: skip


register_generator(GeneratorSpec("attention", lambda m: _attention(m, "our"), attention=True,
                                 doc="AttentionGAN-v2 (the paper's): background mask copies the input"))  # fmt: skip
register_generator(GeneratorSpec("attention-geo", lambda m: _attention(m, "geo"), attention=True,
                                 doc="AttentionGAN-v2 with the background mask on a generated image"))  # fmt: skip
register_generator(GeneratorSpec("resnet", lambda m: ResnetGenerator(ngf=m["ngf"], n_blocks=m["n_blocks"],
                                 grey=m.get("grey", False), upsample=m.get("upsample", "transpose"),
                                 styles=m.get("style_inputs", 0)),
                                 doc="CycleGAN's resnet_9blocks generator"))  # fmt: skip


def generator_spec(arch: str) -> GeneratorSpec:
    if arch not in GENERATORS:
        raise ValueError(f"unknown generator architecture {arch!r} ({', '.join(GENERATORS)})")
    return GENERATORS[arch]


ROLES = ("G_A", "G_B")


def role_options(model: dict, role: str) -> dict:
    """The architecture options of one generator of the pair: ``G_A`` (photo -> sketch) reads ``background_A``,
    ``grey_sketch`` (only the sketch side is grey) and ``styles`` (only the sketch side draws styles); ``G_B`` reads
    ``background_B``; both read ``upsample``."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    side = role[-1]
    bg = model.get(f"background_{side}", "auto")
    return {"background": None if bg in ("auto", "", None) else bg,
            "grey": bool(model.get("grey_sketch", False)) and role == "G_A",
            "style_inputs": int(model.get("styles", 0) or 0) if role == "G_A" else 0,
            "upsample": model.get("upsample", "transpose")}  # fmt: skip


def build_generator_from(model: dict, role: str = "G_A") -> nn.Module:
    """A generator from the model config as a whole (what exports carry): ``model['generator']`` names it in the
    registry, the other fields configure it (``role`` picks the per-generator ones, see ``role_options``);
    initialised N(0, init_std)."""
    m = {"ngf": 64, "n_blocks": 9, "n_masks": 9, "init_std": 0.02, **model}
    m.update(role_options(m, role))
    return init_weights(generator_spec(m["generator"]).build(m), m["init_std"])


def build_generator(arch: str = "attention", *, ngf: int = 64, n_blocks: int = 9, n_masks: int = 9,
                    init_std: float = 0.02) -> nn.Module:  # fmt: skip
    """Factory used by training and by exports: ``arch`` is a registered name ('attention', 'attention-geo', 'resnet')."""
    return build_generator_from({"generator": arch, "ngf": ngf, "n_blocks": n_blocks, "n_masks": n_masks, "init_std": init_std})
