"""`facesketch export`: ONNX generators match PyTorch under onnxruntime (dynamic batch), and the light safetensors export."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from facesketch.cli import main
from facesketch.models.generators import build_generator

ort = pytest.importorskip("onnxruntime", reason="ONNX tests need the onnx extra (onnx, onnxruntime)")
onnx = pytest.importorskip("onnx", reason="ONNX tests need the onnx extra (onnx, onnxruntime)")

from facesketch.export.onnx import export_onnx, onnx_parity  # noqa: E402
from facesketch.translate.load import load_translator

TOL = 1e-4  # measured: ~3e-7 for these small nets, 1.8e-6 for the paper-size AttentionGAN generator at 256 px




def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("kind", ["attention", "resnet"])
def test_onnx_matches_pytorch_with_a_dynamic_batch(tmp_path, kind):
    torch.manual_seed(0)
    g = build_generator(kind, ngf=8, n_blocks=2, n_masks=4).eval()
    path = export_onnx(g, tmp_path / "g.onnx", size=48)
    errs = onnx_parity(path, g, size=48, batch=3)
    print(f"{kind}: max |onnxruntime - torch| = {errs}")
    assert set(errs) == ({"translated", "attention"} if kind == "attention" else {"translated"})
    assert max(errs.values()) < TOL
    s = session(path)
    (inp,) = s.get_inputs()
    assert inp.name == "image" and inp.shape[1:] == [3, 48, 48] and isinstance(inp.shape[0], str)  # symbolic batch
    for n in (1, 5):
        outs = s.run(None, {"image": np.zeros((n, 3, 48, 48), np.float32)})
        assert outs[0].shape == (n, 3, 48, 48)
        if kind == "attention":
            assert outs[1].shape == (n, 5, 48, 48)
            np.testing.assert_allclose(outs[1].sum(1), 1.0, atol=1e-5)  # softmax masks survive the export


def test_export_cli_onnx_from_a_run(tiny_model, tmp_path, capsys):
    out = tmp_path / "m" / "sketch.onnx"
    assert main(["export", "--model", str(tiny_model), "--onnx", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "onnxruntime vs PyTorch" in printed
    model = onnx.load(str(out))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["direction"] == "AtoB" and json.loads(meta["facesketch_config"])["crop_size"] == 32
    tr = load_translator(tiny_model)
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    got = session(out).run(None, {"image": x.numpy()})
    ref = tr.forward(x)
    assert np.abs(got[0] - ref.image.numpy()).max() < TOL and np.abs(got[1] - ref.attention.numpy()).max() < TOL
    # B -> A at another size, from the export file
    out2 = tmp_path / "photo.onnx"
    assert main(["export", "--model", str(tiny_model / "export" / "model.safetensors"), "--onnx", str(out2),
                 "--direction", "BtoA", "--size", "64", "--opset", "13"]) == 0  # fmt: skip
    assert session(out2).get_inputs()[0].shape[1:] == [3, 64, 64]


def test_export_cli_safetensors_half(tiny_model, tmp_path):
    from safetensors import safe_open

    out = tmp_path / "half.safetensors"
    assert main(["export", "--model", str(tiny_model), "--safetensors", str(out), "--half"]) == 0
    with safe_open(str(out), framework="pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys() if f.get_tensor(k).is_floating_point()} == {torch.float16}
        assert {k.split(".")[0] for k in f.keys()} == {"G_A", "G_B"}
    full, half = load_translator(tiny_model), load_translator(out)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1
    assert (full.forward(x).image - half.forward(x).image).abs().max() < 2e-2  # float16 weights, float32 compute


@pytest.mark.parametrize("argv, msg", [
    (["--model", "{tmp}/nope", "--onnx", "{tmp}/x.onnx"], "no such file or run directory"),
    (["--model", "{run}"], "nothing to write"),
    (["--model", "{run}", "--onnx", "{tmp}/x.onnx", "--opset", "7"], "--opset 7"),
    (["--model", "{run}", "--onnx", "{tmp}/x.onnx", "--size", "30"], "--size 30"),
    (["--model", "{tmp}/fake.safetensors", "--safetensors", "{tmp}/y.safetensors"], "not a safetensors file"),
])  # fmt: skip
def test_export_mistakes_are_one_line_errors(tiny_model, tmp_path, capsys, argv, msg):
    (tmp_path / "fake.safetensors").write_bytes(b"\x00" * 64)
    argv = [a.format(tmp=tmp_path, run=tiny_model) for a in argv]
    assert main(["export", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert msg in err and len(err.splitlines()) == 1, err
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob(".*.tmp"))  # nothing half-written
