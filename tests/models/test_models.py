"""Generators and discriminator: shapes, ranges, attention masks, parameter counts, importers, official conformance."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from conformance_utils import assert_close, case_params, synth_state_dict

from facesketch.errors import UserError
from facesketch.models import AttentionGenerator, PatchDiscriminator, build_generator
from facesketch.models.importers import (
    convert_state_dict,
    load_official,
    resnet_generator_key,
)


def _ngf_from(sd):
    return int(sd["conv1.weight"].shape[0])


@pytest.mark.conformance
@pytest.mark.parametrize("path", case_params("attention_generator"), ids=lambda p: p.stem)
def test_attention_generator_matches_official(path):
    case = np.load(path, allow_pickle=False)
    sd = synth_state_dict(case)
    n_blocks = len({k.split(".")[1] for k in sd if k.startswith("resnet_blocks.")})
    net = AttentionGenerator(ngf=_ngf_from(sd), n_blocks=n_blocks).eval()
    mapped = convert_state_dict(sd, "attention")
    assert len(mapped) == len(sd)  # every official key used exactly once
    net.load_state_dict(mapped, strict=True)
    with torch.no_grad():
        out = net(torch.from_numpy(case["input"]))
    assert_close("attention_generator", "out", out.image.numpy(), case["out"])
    assert_close("attention_generator", "attention", out.attention.numpy(), case["attention"])
    assert_close("attention_generator", "content", out.content.numpy(), case["content"])
    if "weighted" in case.files:
        x = torch.from_numpy(case["input"])
        images = torch.cat([out.content, x.unsqueeze(1)], 1)
        weighted = images * out.attention.unsqueeze(2)
        assert_close("attention_generator", "weighted", weighted.numpy(), case["weighted"])


@pytest.mark.conformance
@pytest.mark.parametrize("path", case_params("patch_discriminator"), ids=lambda p: p.stem)
def test_patch_discriminator_matches_official(path):
    case = np.load(path, allow_pickle=False)
    sd = synth_state_dict(case)
    ndf = int(sd["model.0.weight"].shape[0])
    n_layers = len([k for k in sd if k.endswith(".weight")]) - 2
    net = PatchDiscriminator(ndf=ndf, n_layers=n_layers).eval()
    net.load_state_dict(convert_state_dict(sd, "discriminator"), strict=True)
    with torch.no_grad():
        out = net(torch.from_numpy(case["input"]))
    assert_close("patch_discriminator", "out", out.numpy(), case["out"])


def test_parameter_counts_match_reference():
    # reference.md: 11,822,949 (attention "our"), 11,832,360 (geo), 11,378,179 (resnet_9blocks), 2,764,737 (PatchGAN)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(build_generator("attention")) == 11_822_949
    assert count(build_generator("attention-geo")) == 11_832_360
    assert count(build_generator("resnet")) == 11_378_179
    assert count(PatchDiscriminator()) == 2_764_737


@pytest.mark.parametrize("arch", ["attention", "attention-geo", "resnet"])
def test_generator_shapes_and_range(arch):
    torch.manual_seed(0)
    g = build_generator(arch, ngf=8, n_blocks=2)
    x = torch.rand(2, 3, 36, 44) * 2 - 1
    out = g(x)
    assert out.image.shape == x.shape
    assert out.image.min() >= -1 and out.image.max() <= 1
    if arch.startswith("attention"):
        assert out.attention.shape == (2, 10, 36, 44)
        assert out.content.shape == (2, 9, 3, 36, 44)
        torch.testing.assert_close(out.attention.sum(1), torch.ones(2, 36, 44))
        assert (out.attention >= 0).all()
    else:
        assert out.attention is None and out.content is None


def test_background_mask_copies_the_input():
    g = AttentionGenerator(ngf=8, n_blocks=1).eval()
    with torch.no_grad():
        # force the attention to the background mask: the output must then be the input itself
        g.attention_head.weight.zero_()
        g.attention_head.bias.copy_(torch.tensor([-50.0] * 9 + [50.0]))
        x = torch.rand(1, 3, 16, 16) * 2 - 1
        torch.testing.assert_close(g(x).image, x, atol=1e-6, rtol=0)


def test_init_is_normal_002_with_zero_bias():
    torch.manual_seed(0)
    g = build_generator("attention")
    w = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))])
    b = torch.cat([m.bias for m in g.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))])
    assert abs(w.std().item() - 0.02) < 5e-4 and abs(w.mean().item()) < 5e-4
    assert (b == 0).all()


def test_official_resnet_keys_map_onto_ours():
    ours = build_generator("resnet", ngf=8, n_blocks=3)
    official = {}
    # CycleGAN's Sequential layout: conv at 1, 4, 7; blocks 10..12 with conv_block.1/.5; convT at 13, 16; conv at 20
    for k, v in ours.state_dict().items():
        official[k] = v
    inverse = {}
    for i in range(40):
        for sub in (None, 1, 5):
            for p in ("weight", "bias"):
                name = f"model.{i}.{p}" if sub is None else f"model.{i}.conv_block.{sub}.{p}"
                try:
                    inverse[resnet_generator_key(name, 3)] = name
                except KeyError:
                    pass
    renamed = {inverse[k]: v for k, v in official.items()}
    assert {re.sub(r"\d+", "#", k) for k in renamed} >= {"model.#.weight", "model.#.conv_block.#.weight"}
    back = convert_state_dict(renamed, "resnet", n_blocks=3)
    assert back.keys() == ours.state_dict().keys()


def test_load_official_file_and_reject_wrong_ones(tmp_path):
    g = AttentionGenerator(ngf=8, n_blocks=2)
    inv = {"encoder.1": "conv1", "encoder.4": "conv2", "encoder.7": "conv3", "content_up.0": "deconv1_content",
           "content_up.3": "deconv2_content", "content_head.1": "deconv3_content", "attention_up.0": "deconv1_attention",
           "attention_up.3": "deconv2_attention", "attention_head": "deconv3_attention"}  # fmt: skip
    official = {}
    for k, v in g.state_dict().items():
        mod, _, p = k.rpartition(".")
        m = re.fullmatch(r"resblocks\.(\d+)\.block\.(\d)", mod)
        name = f"resnet_blocks.{m[1]}.conv{1 if m[2] == '1' else 2}" if m else inv[mod]
        official[f"module.{name}.{p}"] = v.clone() + 1  # DataParallel prefix, distinct values
    path = tmp_path / "latest_net_G_A.pth"
    torch.save(official, path)
    h = load_official(path, AttentionGenerator(ngf=8, n_blocks=2), "attention")
    for k, v in g.state_dict().items():
        torch.testing.assert_close(h.state_dict()[k], v + 1)
    with pytest.raises(UserError, match="does not match"):
        load_official(path, AttentionGenerator(ngf=16, n_blocks=2), "attention")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="bad.pth"):
        load_official(bad, g, "attention")
