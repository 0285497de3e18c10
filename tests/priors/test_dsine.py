"""Tests of the DSINE port: conformance with the official code, the inference recipe, weight loading, helpers."""

from __future__ import annotations

import json

import conformance_utils as cu
import numpy as np
import pytest
import torch

from facesketch.errors import UserError
from facesketch.priors.dsine import (
    DSINE,
    NormalEstimator,
    build_normal_estimator,
    intrinsics_from_fov,
    load_dsine_state_dict,
    normals_to_rgb,
    pad_to_multiple,
)
from facesketch.priors.frozen import FrozenPrior

DSINE_PARAMS = 72_564_759
CASES = sorted(cu.CONF.glob("dsine_case*.npz"))


# ------------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def conf_net() -> DSINE:
    """One bare network, reloaded with each case's synthetic weights."""
    return DSINE().eval()


@pytest.fixture(scope="module")
def prior() -> FrozenPrior:
    """The frozen recipe with our own deterministic synthetic weights (no dsine.pt needed)."""
    return build_normal_estimator(synthetic_seed=0)


def _rgb(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=g)


def _meta_state_dict() -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        return DSINE().state_dict()


# --------------------------------------------------------------------------------------------------- conformance
@pytest.mark.conformance
def test_state_dict_matches_official_keys():
    keys = cu.CONF / "dsine_keys.txt"
    if not keys.exists():
        pytest.skip(f"dsine_keys.txt not found in {cu.CONF} (set FACESKETCH_CONFORMANCE_DIR)")
    ref = [line.split("\t") for line in keys.read_text().splitlines() if line]
    sd = _meta_state_dict()
    assert list(sd) == [r[0] for r in ref]
    for name, shape, dtype in ref:
        assert list(sd[name].shape) == json.loads(shape), name
        assert str(sd[name].dtype) == "torch." + dtype, name


@pytest.mark.conformance
@pytest.mark.parametrize("path", CASES or [None], ids=[p.name for p in CASES] or ["none"])
def test_conformance_case(path, conf_net):
    if path is None:
        cu.case_files("dsine")  # skips with a message naming the directory
    case = np.load(path, allow_pickle=False)
    sd = cu.synth_state_dict(case)  # asserts the fingerprint first
    res = conf_net.load_state_dict(sd, strict=True)
    assert not res.missing_keys and not res.unexpected_keys
    assert len(sd) == len(conf_net.state_dict())  # every official key used exactly once
    est = NormalEstimator(conf_net).eval()
    rgb = torch.from_numpy(case["input"])
    rgb_before = rgb.clone()
    with torch.no_grad():
        tr = est.trace(rgb)
    assert torch.equal(rgb, rgb_before)

    got = {
        "lrtb": np.asarray(tr.lrtb),
        "intrins_fov60": tr.intrins_fov60.numpy(),
        "intrins": tr.intrins.numpy(),
        "pred_initial": tr.pred_all[0].numpy(),
        "pred_final": tr.pred_all[-1].numpy(),
        "model_input": tr.model_input.numpy(),
        "pred_all": torch.stack(tr.pred_all).numpy(),
        "enc_feat6": tr.enc_feat6.numpy(),
        "enc_feat8": tr.enc_feat8.numpy(),
        "enc_feat11": tr.enc_feat11.numpy(),
    }
    required = {"lrtb", "intrins_fov60", "intrins", "pred_initial", "pred_final"}
    assert required <= set(case.files)
    checked = []
    for name, value in got.items():
        if name in case.files:
            cu.assert_close("dsine", name, value, case[name])
            checked.append(name)
    assert required <= set(checked)


# ---------------------------------------------------------------------------------------------------- the network
def test_param_count_and_pixel_coords_buffer(conf_net):
    assert sum(p.numel() for p in conf_net.parameters()) == DSINE_PARAMS
    assert len(conf_net.state_dict()) == 918
    assert "pixel_coords" not in conf_net.state_dict()  # non-persistent: never in checkpoints
    assert "pixel_coords" in dict(conf_net.named_buffers())  # but a buffer: .to(device) moves it
    assert conf_net.pixel_coords.device.type == "cpu"
    assert conf_net.pixel_coords[0, :, 3, 7].tolist() == [7.5, 3.5, 1.0]


def test_bare_network_keeps_intrinsics_and_checks_size(prior):
    net = prior.net.dsine
    x = torch.randn(1, 3, 64, 64)
    k = intrinsics_from_fov(64, 64)
    k_before = k.clone()
    with torch.no_grad():
        preds = net(x, k, num_iter=1)
    assert torch.equal(k, k_before)  # the official forward adds 0.5 to cx, cy in place; ours must not
    assert len(preds) == 2 and preds[0].shape == (1, 3, 64, 64)
    with pytest.raises(ValueError, match="divisible by 32"):
        net(torch.randn(1, 3, 64, 48 + 1), k)


# ----------------------------------------------------------------------------------------------------- the recipe
def test_pad_and_intrinsics_rules():
    assert pad_to_multiple(256, 256) == (0, 0, 0, 0)
    assert pad_to_multiple(237, 203) == (10, 11, 9, 10)  # (l, r, t, b): extra pixel right / bottom
    assert pad_to_multiple(33, 63) == (0, 1, 15, 16)
    k = intrinsics_from_fov(256, 256, batch=2)
    assert k.shape == (2, 3, 3) and k.dtype == torch.float32
    assert k[0, 0, 0].item() == pytest.approx(221.7025, abs=1e-4) and k[0, 0, 0] == k[0, 1, 1]
    assert k[1, 0, 2].item() == 127.5 and k[1, 1, 2].item() == 127.5 and k[1, 2, 2].item() == 1.0
    k2 = intrinsics_from_fov(237, 203)
    assert (k2[0, 0, 2].item(), k2[0, 1, 2].item()) == (101.0, 118.0)  # cx = w/2 - 0.5 on the unpadded size


def test_odd_size_is_padded_and_cropped_back(prior):
    rgb = _rgb(2, 45, 70)
    with torch.no_grad():
        tr = prior.net.trace(rgb)
        out = prior(rgb)
    l, r, t, b = tr.lrtb
    assert (l, r, t, b) == pad_to_multiple(45, 70) == (13, 13, 9, 10)
    assert tr.model_input.shape == (2, 3, 64, 96)
    # padding is zero in [0, 1], i.e. -mean/std after normalisation
    pad_val = (0 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(tr.model_input[0, :, 0, 0], pad_val)
    assert torch.allclose(tr.model_input[:, :, t : t + 45, l : l + 70], (rgb - prior.net.mean) / prior.net.std)
    assert torch.allclose(tr.intrins[:, 0, 2], tr.intrins_fov60[:, 0, 2] + l)
    assert torch.allclose(tr.intrins[:, 1, 2], tr.intrins_fov60[:, 1, 2] + t)
    assert out.shape == rgb.shape and len(tr.pred_all) == 6
    assert torch.allclose(out, tr.pred_all[-1], atol=1e-6)
    norms = out.norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-4)
    # the normals depend on the image (the synthetic weights do not wash the input out)
    assert (out[0] - out[1]).abs().mean() > 1e-3


def test_wrapper_never_mutates_inputs_and_uses_given_intrinsics(prior):
    rgb = _rgb(1, 40, 40, seed=1)
    k = intrinsics_from_fov(40, 40, fov_deg=45.0)
    rgb0, k0 = rgb.clone(), k.clone()
    with torch.no_grad():
        tr = prior.net.trace(rgb, k)
        default = prior.net.trace(rgb)
    assert torch.equal(rgb, rgb0) and torch.equal(k, k0)
    assert torch.equal(tr.intrins_fov60, k)
    assert tr.intrins[0, 0, 2].item() == k[0, 0, 2].item() + tr.lrtb[0]
    # a different focal length gives different normals
    assert (tr.pred_all[-1] - default.pred_all[-1]).abs().max() > 1e-4


def test_prediction_option_selects_list_entry(prior):
    rgb = _rgb(1, 32, 64, seed=2)
    est0 = NormalEstimator(prior.net.dsine, prediction=0)
    est2 = NormalEstimator(prior.net.dsine, prediction=2)
    with torch.no_grad():
        tr = prior.net.trace(rgb)
        assert torch.allclose(est0(rgb), tr.pred_all[0], atol=1e-6)
        assert torch.allclose(est2(rgb), tr.pred_all[2], atol=1e-6)
    assert (tr.pred_all[0] - tr.pred_all[-1]).abs().max() > 1e-3  # refinement changes the normals
    with pytest.raises(ValueError):
        NormalEstimator(prior.net.dsine, prediction=6)


def test_frozen_and_differentiable(prior):
    assert isinstance(prior, FrozenPrior) and prior.convention.value_range == (0.0, 1.0)
    assert prior.convention.channel_order == "RGB"
    prior.train()
    assert not prior.training and not prior.net.dsine.training
    assert all(not p.requires_grad for p in prior.parameters())

    rgb = _rgb(1, 32, 48, seed=3).requires_grad_(True)
    target = torch.zeros(1, 3, 32, 48)
    target[:, 2] = 1.0
    loss = torch.nn.functional.mse_loss(prior(rgb), target)
    loss.backward()
    g = rgb.grad
    assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0
    assert all(p.grad is None for p in prior.parameters())


def test_detach_option_changes_gradient_not_values(prior):
    dsine = prior.net.dsine
    rgb = _rgb(1, 32, 32, seed=4)
    grads, outs = [], []
    for detach in (True, False):
        dsine.detach_refinement_input = detach
        x = rgb.clone().requires_grad_(True)
        out = NormalEstimator(dsine, num_iter=2)(x)
        out[:, 2].sum().backward()
        grads.append(x.grad)
        outs.append(out.detach())
    dsine.detach_refinement_input = True
    assert torch.equal(outs[0], outs[1])
    assert not torch.allclose(grads[0], grads[1])


# ----------------------------------------------------------------------------------------------- weights loading
def test_load_state_dict_handles_wrapping_and_prefix(tmp_path):
    # stride-0 tensors keep the file tiny while every key has its real shape and dtype
    sd = {"module." + k: torch.zeros((), dtype=v.dtype).expand(v.shape) for k, v in _meta_state_dict().items()}
    path = tmp_path / "dsine.pt"
    torch.save({"model": sd, "iter": 7}, path)
    loaded = load_dsine_state_dict(path)
    assert len(loaded) == 918 and not any(k.startswith("module.") for k in loaded)
    assert loaded["gru.convz.weight"].shape == (64, 130, 5, 5)
    prior = build_normal_estimator(path)
    assert prior.weights_source == str(path)
    assert prior.net.dsine.gru.convz.weight.abs().sum() == 0  # values came from the file


def test_load_rejects_wrong_files(tmp_path):
    wrong = tmp_path / "hed.pth"
    torch.save({"moduleVggOne.0.weight": torch.zeros(64, 3, 3, 3)}, wrong)
    with pytest.raises(UserError, match="not a DSINE") as e:
        load_dsine_state_dict(wrong)
    assert str(wrong) in str(e.value) and "missing" in str(e.value) and "moduleVggOne" in str(e.value)
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint")
    with pytest.raises(UserError, match="notes.txt"):
        load_dsine_state_dict(text)
    with pytest.raises(UserError, match="not found"):
        load_dsine_state_dict(tmp_path / "absent.pt")


def test_missing_weights_error_names_the_fix():
    with pytest.raises(UserError) as e:
        build_normal_estimator()
    msg = str(e.value)
    assert "dsine.pt" in msg and "facesketch weights fetch dsine" in msg and "--dsine-weights" in msg
    assert "non-commercial" in msg
    with pytest.raises(ValueError, match="not both"):
        build_normal_estimator("dsine.pt", synthetic_seed=0)


# -------------------------------------------------------------------------------------------------------- helpers
def test_normals_to_rgb():
    n = torch.zeros(3, 2, 3)
    n[2] = 1.0  # wall facing the camera
    n[:, 0, 0] = torch.tensor([-1.0, 0.0, 0.0])
    img = normals_to_rgb(n)
    assert img.dtype == np.uint8 and img.shape == (2, 3, 3)
    assert img[1, 1].tolist() == [127, 127, 255] and img[0, 0].tolist() == [0, 127, 127]
    assert np.array_equal(normals_to_rgb(n.unsqueeze(0).numpy()), img)

