"""The model shipped inside the package: integrity, quality against the pencil filter, use without --model, packaging."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import numpy as np
import pytest
from conftest import ROOT

from facesketch import default_model
from facesketch.errors import UserError


def test_bundled_file_matches_its_recorded_sha256_and_limits():
    path = default_model.default_model_path()  # verifies the sha256
    assert default_model.sha256_file(path) == default_model.SHA256
    assert path.stat().st_size <= 30 * 2**20
    from facesketch.models.export_file import read_export

    meta, sds = read_export(path)
    assert set(sds) == {"G_A", "G_B"}
    assert meta["image_size"] >= 256  # output resolution caps every FS2K score: the shipped model is >= 256 px
    import torch
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}
    assert torch.float16 in dtypes and not dtypes & {torch.float32, torch.float64}  # float16 on disk


def test_a_damaged_bundled_file_is_refused_in_one_line(tmp_path, monkeypatch):
    src = default_model.default_model_path()
    bad = tmp_path / default_model.FILENAME
    data = bytearray(src.read_bytes())
    data[-100] ^= 0xFF
    bad.write_bytes(bytes(data))
    monkeypatch.setattr(default_model, "ASSETS", tmp_path)
    with pytest.raises(UserError, match="damaged"):
        default_model.default_model_path()
    monkeypatch.setattr(default_model, "ASSETS", tmp_path / "nowhere")
    with pytest.raises(UserError, match="missing"):
        default_model.default_model_path()


_SCORES: dict = {}


@pytest.fixture
def sixteen_scores(fs2k_dir):
    """Mean LPIPS and SCOOT on 16 spread FS2K test photos: the shipped model, the pencil filter, copy-the-input, grey.
    (Function-scoped so that the weight cache of the test session is set; computed once.)"""
    if _SCORES:
        return _SCORES
    from facesketch.data import fs2k
    from facesketch.evaluation.baselines import pencil_sketch
    from facesketch.evaluation.during_training import evaluate_translator, spread_subset
    from facesketch.evaluation.runner import lpips_model
    from facesketch.translate.load import load_translator

    try:
        lpips_model("alex", "cpu")
    except UserError as e:
        pytest.skip(f"LPIPS weights not cached ({e}); `make test` fetches them")
    test = [r for r in fs2k.load_split(fs2k_dir, "test") if r.photo and r.sketch]
    records = spread_subset(test, 16)
    assert len(records) == 16 and {r.source for r in records} == {r.source for r in test}  # photo1 and photo3
    tr = load_translator(default_model.default_model_path())

    def score(fn):
        return evaluate_translator(fn, records, metrics=("lpips", "scoot"))

    _SCORES.update({
        "ours": score(lambda imgs: tr.translate_arrays(imgs)),
        "pencil": score(lambda imgs: [pencil_sketch(p) for p in imgs]),
        "copy": score(lambda imgs: imgs),
        "grey": score(lambda imgs: [np.full_like(p, 128) for p in imgs]),
    })
    return _SCORES


@pytest.mark.slow
def test_default_model_beats_copying_the_photo_and_a_grey_image(sixteen_scores):
    ours = sixteen_scores["ours"]
    for other in ("copy", "grey"):
        assert ours["lpips"] < sixteen_scores[other]["lpips"] and ours["scoot"] > sixteen_scores[other]["scoot"], sixteen_scores


@pytest.mark.slow
def test_default_model_beats_the_pencil_filter_on_16_fs2k_test_photos(sixteen_scores):
    ours, pencil = sixteen_scores["ours"], sixteen_scores["pencil"]
    assert ours["lpips"] < pencil["lpips"] and ours["scoot"] > pencil["scoot"], sixteen_scores


def test_translate_without_model_uses_the_default_and_says_so(fs2k_dir, tmp_path, capsys):
    from facesketch.cli import main

    photo = fs2k_dir / "photo" / "photo1" / "image0788.jpg"
    assert main(["translate", "--out", str(tmp_path / "out"), "--no-align", "--quiet", str(photo)]) == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("model:")]
    assert len(lines) == 1 and "default" in lines[0]
    from PIL import Image

    from facesketch.models.export_file import read_export

    size = read_export(default_model.default_model_path())[0]["image_size"]
    out = Image.open(tmp_path / "out" / "image0788.png")
    assert size >= 256 and out.size == (size, size)  # the export's own inference size
    a = np.asarray(out.convert("L"), np.float64)
    assert a.std() > 10  # not blank
    assert main(["translate", "--model", "default", "--out", str(tmp_path / "out2"), "--no-align", "--quiet", str(photo)]) == 0


def test_pencil_filter_whitens_flat_regions_and_keeps_edges():
    from facesketch.evaluation.baselines import pencil_sketch

    img = np.full((64, 64, 3), 120, np.uint8)
    img[:, 32:] = 30
    s = pencil_sketch(img, sigma=3)
    assert s.shape == (64, 64) and s.dtype == np.uint8
    assert s[:, :20].min() >= 250 and s[:, 45:].min() >= 250  # flat: white
    assert s[:, 30:34].min() < 200  # the edge stays dark


@pytest.mark.slow
def test_wheel_carries_the_default_model_and_the_presets(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    if r.returncode != 0 and "No module named" in r.stderr:
        pytest.skip(f"cannot build a wheel here: {r.stderr.strip().splitlines()[-1]}")
    assert r.returncode == 0, r.stderr
    (wheel,) = tmp_path.glob("facesketch-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert f"facesketch/assets/{default_model.FILENAME}" in names
    assert {"facesketch/configs/paper.yaml", "facesketch/configs/fs2k-cpu.yaml", "facesketch/configs/debug.yaml"} <= names
