"""Style control: one unpaired model that draws in each of several sketch styles (model.styles)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import make_unpaired, tiny_overrides
from PIL import Image

from facesketch.cli import main
from facesketch.config import LossConfig, load_config
from facesketch.errors import UserError
from facesketch.training.loop import train


def _styled_data(root: Path) -> Path:
    data = make_unpaired(root, n_a=6, n_b=6)
    stems = sorted(p.stem for p in (data / "trainB").iterdir())
    (data / "styles.json").write_text(json.dumps({s: i % 3 for i, s in enumerate(stems)}))
    return data


@pytest.fixture(scope="module")
def styled_run(tmp_path_factory) -> Path:
    data = _styled_data(tmp_path_factory.mktemp("styled_data"))
    run = tmp_path_factory.mktemp("styled") / "run"
    train(load_config(None, tiny_overrides(data, **{"model.styles": 3, "train.max_steps": 2})), run)
    return run


def test_two_training_steps_with_styles_write_a_styled_export(styled_run):
    from facesketch.models.export_file import read_export

    meta, sds = read_export(styled_run / "export" / "model.safetensors")
    assert meta["model"]["styles"] == 3
    # G_A reads the photo and 3 style planes; D_A has one patch map per style; G_B is unchanged
    assert sds["G_A"]["encoder.1.weight"].shape[1] == 6 and sds["G_B"]["encoder.1.weight"].shape[1] == 3
    last = [json.loads(x) for x in (styled_run / "stats.jsonl").read_text().splitlines()][-1]
    assert "D_A_style" in last  # real sketches judged as another style than their own


def test_the_style_label_reaches_the_discriminator():
    """D_A's map for style k outputs k / 2: real sketches labelled 2 score 1 (real) only when judged as style 2."""
    from facesketch.models import build_generator
    from facesketch.training.step import CycleDiscriminators, CycleGANStep, CycleGenerators, StepSettings

    class PerStyle(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x):
            b = x.shape[0]
            return torch.arange(3.0).view(1, 3, 1, 1).expand(b, 3, 4, 4) / 2 + 0 * self.w

    class One(PerStyle):
        def forward(self, x):
            return torch.ones(x.shape[0], 1, 4, 4) + 0 * self.w

    torch.manual_seed(0)
    G = CycleGenerators(build_generator("attention", ngf=4, n_blocks=1, n_masks=2), build_generator("attention", ngf=4, n_blocks=1, n_masks=2))
    G.G_A = __import__("facesketch.models.generators", fromlist=["x"]).AttentionGenerator(ngf=4, n_blocks=1, n_masks=2, styles=3)
    D = CycleDiscriminators(PerStyle(), One())
    opt_G, opt_D = torch.optim.Adam(G.parameters(), 1e-4), torch.optim.Adam(D.parameters(), 1e-4)
    step = CycleGANStep(G, D, opt_G, opt_D, StepSettings.from_config(LossConfig(lambda_cycle_A=0, lambda_cycle_B=0)))
    a, b = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    own = step(a, b, styles={"A": torch.tensor([2, 2]), "B": torch.tensor([2, 2])})
    # judged as style 2 (map value 1): the generator's LSGAN loss is 0; judged as style 0 (value 0): it would be 1
    assert own["G_A"].item() == pytest.approx(0.0)
    zero = step(a, b, styles={"A": torch.tensor([0, 0]), "B": torch.tensor([0, 0])})
    assert zero["G_A"].item() == pytest.approx(1.0)


def test_style_labels_of_a_folder_layout_are_checked(tmp_path):
    data = _styled_data(tmp_path / "d")
    table = json.loads((data / "styles.json").read_text())
    first = sorted(table)[0]
    del table[first]
    (data / "styles.json").write_text(json.dumps(table))
    with pytest.raises(UserError, match=f"styles.json: no style for sketch {first}"):
        train(load_config(None, tiny_overrides(data, **{"model.styles": 3, "train.max_steps": 1})), tmp_path / "r1")
    table[first] = "bold"
    (data / "styles.json").write_text(json.dumps(table))
    with pytest.raises(UserError, match="use a non-negative integer"):
        train(load_config(None, tiny_overrides(data, **{"model.styles": 3, "train.max_steps": 1})), tmp_path / "r2")
    (data / "styles.json").unlink()
    with pytest.raises(UserError, match="model.styles=3: the sketches .* carry no style labels"):
        train(load_config(None, tiny_overrides(data, **{"model.styles": 3, "train.max_steps": 1})), tmp_path / "r3")


def test_style_on_the_command_line(styled_run, tiny_model, tmp_path, capsys):
    photo = tmp_path / "p.png"
    Image.fromarray(np.full((40, 40, 3), 150, np.uint8)).save(photo)
    from facesketch.translate.load import load_translator

    assert main(["translate", "--model", str(styled_run), "--no-align", "--quiet", "--precision", "fp32", "--style", "all",
                 "--out", str(tmp_path / "all"), str(photo)]) == 0  # fmt: skip
    names = sorted(p.name for p in (tmp_path / "all").iterdir())
    assert names == ["p_bold.png", "p_contour.png", "p_shaded.png"]
    tr = load_translator(styled_run)
    img = np.asarray(Image.open(photo).convert("RGB"))
    for name, k in (("p_contour.png", 0), ("p_bold.png", 1), ("p_shaded.png", 2)):  # each file is its own style's drawing
        assert np.array_equal(np.asarray(Image.open(tmp_path / "all" / name)), tr.translate_arrays([img], style=k)[0]), name
    import torch

    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert not torch.equal(tr.forward(x, 0).image, tr.forward(x, 1).image)  # the style changes the drawing
    assert main(["translate", "--model", str(styled_run), "--no-align", "--quiet", "--precision", "fp32", "--style", "bold",
                 "--out", str(tmp_path / "one"), str(photo)]) == 0  # fmt: skip
    assert np.array_equal(np.asarray(Image.open(tmp_path / "one" / "p.png")), np.asarray(Image.open(tmp_path / "all" / "p_bold.png")))
    capsys.readouterr()
    assert main(["translate", "--model", str(tiny_model), "--no-align", "--style", "1", "--out", str(tmp_path / "x"), str(photo)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--style 1: this model has no styles" in err[0]
    assert main(["translate", "--model", str(styled_run), "--no-align", "--style", "7", "--out", str(tmp_path / "x"), str(photo)]) == 2
    assert "--style '7'" in capsys.readouterr().err


def _fake_fs2k(root: Path) -> Path:
    rng = np.random.default_rng(0)
    anno = []
    for i in range(4):
        num = f"{i + 1:04d}"
        for kind, folder in (("photo", "photo/photo1"), ("sketch", "sketch/sketch1")):
            (root / folder).mkdir(parents=True, exist_ok=True)
            name = f"image{num}.jpg" if kind == "photo" else f"sketch{num}.jpg"
            Image.fromarray((rng.random((48, 40, 3)) * 255).astype(np.uint8)).save(root / folder / name)
        anno.append({"image_name": f"photo1/image{num}", "style": [2, 0, 1, 2][i]})
    (root / "anno_test.json").write_text(json.dumps(anno))
    (root / "anno_train.json").write_text("[]")
    return root


def test_the_annotation_protocol_draws_each_photo_in_its_own_style(styled_run, tmp_path, monkeypatch):
    from facesketch.data.images import load_rgb_array
    from facesketch.inference import Translator
    from facesketch.translate.load import load_translator

    fs2k = _fake_fs2k(tmp_path / "FS2K")
    out = tmp_path / "eval"
    asked = []
    real = Translator.translate_arrays

    def spy(self, images, **kw):
        asked.extend(kw.get("style") or [None] * len(images))
        return real(self, images, **kw)

    monkeypatch.setattr(Translator, "translate_arrays", spy)
    assert main(["evaluate", "--model", str(styled_run), "--fs2k", str(fs2k), "--out", str(out), "--style-from-annotations",
                 "--metrics", "ssim", "--workers", "0", "--quiet", "--precision", "fp32"]) == 0  # fmt: skip
    assert asked == [2, 0, 1, 2]  # each photo in the style of its own ground-truth sketch, in record order
    monkeypatch.setattr(Translator, "translate_arrays", real)
    tr = load_translator(styled_run)
    for i, style in enumerate([2, 0, 1, 2]):
        num = f"{i + 1:04d}"
        photo = load_rgb_array(fs2k / "photo" / "photo1" / f"image{num}.jpg")
        want = tr.translate_arrays([photo], style=style)[0]
        got = np.asarray(Image.open(out / "predictions" / f"photo1_image{num}.png").convert("RGB"))
        assert np.array_equal(got, want), num


def test_the_web_demo_offers_the_styles(styled_run, tiny_model):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from facesketch.serve.app import create_app

    import io

    buf = io.BytesIO()
    Image.fromarray(np.full((40, 40, 3), 150, np.uint8)).save(buf, format="PNG")
    client = TestClient(create_app(styled_run))
    assert client.get("/api/info").json()["styles"] == ["contour", "bold", "shaded"]
    r = client.post("/api/translate?align=false&style=all", content=buf.getvalue())
    assert r.status_code == 200 and [x["name"] for x in r.json()["results"]] == ["image_contour", "image_bold", "image_shaded"]
    r = client.post("/api/translate?align=false&style=shaded", content=buf.getvalue())
    assert r.status_code == 200 and [x["name"] for x in r.json()["results"]] == ["image"]
    plain = TestClient(create_app(tiny_model))
    assert plain.get("/api/info").json()["styles"] == []
    r = plain.post("/api/translate?align=false&style=1", content=buf.getvalue())
    assert r.status_code == 400 and "no styles" in r.json()["detail"]
