"""Import state dicts saved by the official AttentionGAN / CycleGAN code (``latest_net_G_A.pth`` etc.) into our modules."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from facesketch.errors import UserError


def _strip(sd: dict) -> dict:
    """Drop a DataParallel ``module.`` prefix and the InstanceNorm running stats that old torch versions saved."""
    out = {}
    for k, v in sd.items():
        if k.startswith("module."):
            k = k[len("module."):]
        if k.endswith(("running_mean", "running_var", "num_batches_tracked")):
            continue  # InstanceNorm2d(track_running_stats=False) has no such buffers; CycleGAN's loader drops them too
        out[k] = v
    return out


def attention_generator_key(name: str) -> str:
    """Official ``ResnetGenerator_our`` key -> our ``AttentionGenerator`` key (KeyError if unknown)."""
    fixed = {
        "conv1": "encoder.1", "conv2": "encoder.4", "conv3": "encoder.7",
        "deconv1_content": "content_up.0", "deconv2_content": "content_up.3", "deconv3_content": "content_head.1",
        "deconv1_attention": "attention_up.0", "deconv2_attention": "attention_up.3", "deconv3_attention": "attention_head",
    }  # fmt: skip
    mod, _, param = name.rpartition(".")
    if mod in fixed:
        return f"{fixed[mod]}.{param}"
    m = re.fullmatch(r"resnet_blocks\.(\d+)\.conv([12])", mod)
    if m:
        return f"resblocks.{m[1]}.block.{1 if m[2] == '1' else 5}.{param}"
    raise KeyError(name)


def resnet_generator_key(name: str, n_blocks: int = 9) -> str:
    """Official CycleGAN ``ResnetGenerator`` key (``model.<i>...``) -> our ``ResnetGenerator`` key."""
    m = re.fullmatch(r"model\.(\d+)\.(?:conv_block\.(\d+)\.)?(weight|bias)", name)
    if not m:
        raise KeyError(name)
    i, sub, param = int(m[1]), m[2], m[3]
    first_block, up = 10, 10 + n_blocks
    if sub is not None:
        # conv_block: [pad, conv, norm, relu, (dropout), pad, conv, norm]; with dropout the second conv sits at 6
        if not first_block <= i < up or sub not in ("1", "5", "6"):
            raise KeyError(name)
        return f"resblocks.{i - first_block}.block.{1 if sub == '1' else 5}.{param}"
    table = {1: "encoder.1", 4: "encoder.4", 7: "encoder.7", up: "decoder.0.0", up + 3: "decoder.0.3", up + 7: "decoder.2"}
    if i in table:
        return f"{table[i]}.{param}"
    raise KeyError(name)


def patch_discriminator_key(name: str) -> str:
    """Official ``NLayerDiscriminator`` keys are ``model.<i>.weight``; ours use the same layout."""
    if not re.fullmatch(r"model\.\d+\.(weight|bias)", name):
        raise KeyError(name)
    return name


def convert_state_dict(sd: dict, kind: str, *, n_blocks: int = 9) -> dict:
    """Map an official state dict to our names. ``kind``: 'attention', 'resnet' or 'discriminator'.

    Every key must map exactly once; unknown keys raise ValueError listing them.
    """
    sd = _strip(sd)
    fn = {
        "attention": attention_generator_key,
        "attention-geo": attention_generator_key,
        "resnet": lambda k: resnet_generator_key(k, n_blocks),
        "discriminator": patch_discriminator_key,
    }[kind]
    out, unknown = {}, []
    for k, v in sd.items():
        try:
            nk = fn(k)
        except KeyError:
            unknown.append(k)
            continue
        if nk in out:
            raise ValueError(f"two official keys map to {nk}")
        out[nk] = v
    if unknown:
        raise ValueError(f"unrecognised keys for a {kind} network: {unknown[:5]}{' ...' if len(unknown) > 5 else ''}")
    return out


def load_official(path: str | Path, module: torch.nn.Module, kind: str, *, n_blocks: int = 9) -> torch.nn.Module:
    """Load an official ``*_net_G_A.pth``-style file into ``module`` strictly (never unpickles code)."""
    path = Path(path)
    from facesketch.tensorfile import load_tensors

    sd = load_tensors(path, f"a plain PyTorch state dict of a {kind} network")
    try:
        mapped = convert_state_dict(sd, kind, n_blocks=n_blocks)
        module.load_state_dict(mapped, strict=True)
    except (ValueError, RuntimeError) as e:
        raise UserError(f"{path}: does not match a {kind} network of this size ({str(e).splitlines()[0]})") from None
    return module
