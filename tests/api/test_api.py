"""facesketch from Python: every input kind in and the same kind out, lists, clear errors, and the same pixels as
`facesketch translate`."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import facesketch
from facesketch.cli import main

pytest.importorskip("cv2", reason="the face path needs opencv-python-headless (the faces extra)")

PORTRAIT = "photo1/image0788"


@pytest.fixture(scope="module")
def sketcher():
    return facesketch.load("default", device="cpu")


@pytest.fixture(scope="module")
def photo(fs2k_dir) -> np.ndarray:
    from facesketch.data.images import load_rgb

    return np.asarray(load_rgb(fs2k_dir / "photo" / f"{PORTRAIT}.jpg"))


def test_every_input_kind_gives_back_its_own_kind(sketcher, photo, fs2k_dir):
    small = np.asarray(Image.fromarray(photo).resize((96, 96), Image.BICUBIC))  # whole frames: quick and exact
    ref = sketcher(small, align=False)
    assert isinstance(ref, np.ndarray) and ref.dtype == np.uint8 and ref.shape == (sketcher.size, sketcher.size, 3)
    pil = sketcher(Image.fromarray(small), align=False)
    assert isinstance(pil, Image.Image) and pil.mode == "RGB" and np.array_equal(np.asarray(pil), ref)
    assert np.array_equal(sketcher(small.astype(np.float32) / 255.0, align=False), ref)  # float in [0, 1]
    assert np.array_equal(sketcher(small.astype(np.uint16) * 257, align=False), ref)  # uint16
    rgba = np.dstack([small, np.full(small.shape[:2], 255, np.uint8)])
    assert np.array_equal(sketcher(rgba, align=False), ref)  # opaque alpha changes nothing
    grey = small[..., 1]
    assert np.array_equal(sketcher(grey, align=False), sketcher(np.dstack([grey] * 3), align=False))
    path_out = sketcher(str(fs2k_dir / "photo" / f"{PORTRAIT}.jpg"), align=False)
    assert isinstance(path_out, Image.Image)
    both = sketcher([Image.fromarray(small), small], align=False)
    assert isinstance(both, list) and isinstance(both[0], Image.Image) and isinstance(both[1], np.ndarray)
    assert np.array_equal(np.asarray(both[0]), ref) and np.array_equal(both[1], ref)
    assert sketcher((small,), align=False)[0].shape == ref.shape  # a tuple is a list too


def test_options_size_masks_paste_back_direction_and_device(sketcher, photo):
    y, masks = sketcher(photo, size=128, masks=True)
    assert y.shape == (128, 128, 3) and masks.shape == (10, 128, 128)
    assert np.allclose(masks.sum(0), 1, atol=1e-4)  # softmax masks
    pasted = sketcher(photo, paste_back=True)
    assert pasted.shape == photo.shape
    back = sketcher(y, direction="BtoA")
    assert back.shape == (sketcher.size, sketcher.size, 3)
    assert sketcher.to("cpu") is sketcher
    t = sketcher.translate(photo)
    assert len(t.faces) == 1 and not t.no_face and t.outputs[0].shape == (sketcher.size, sketcher.size, 3)


@pytest.mark.parametrize("bad, kind, words", [
    (3, TypeError, "cannot translate a int"),
    (b"bytes", TypeError, "cannot translate a bytes"),
    (np.zeros((8, 8, 2), np.uint8), ValueError, "shape (8, 8, 2)"),
    (np.zeros((8,), np.uint8), ValueError, "shape (8,)"),
    (np.full((8, 8, 3), 2.0), ValueError, "values in [0, 1]"),
    (np.full((8, 8, 3), np.nan), ValueError, "non-finite"),
    (np.zeros((8, 8, 3), bool), TypeError, "dtype bool"),
    ("no/such/photo.png", ValueError, "photo.png"),
])  # fmt: skip
def test_unsupported_inputs_name_what_was_given_and_what_is_accepted(sketcher, bad, kind, words):
    with pytest.raises(kind, match=words.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        sketcher(bad, align=False)


def test_bad_options_and_models_name_the_argument(sketcher):
    with pytest.raises(ValueError, match="size 102: use a multiple of 4"):
        sketcher(np.zeros((8, 8, 3), np.uint8), size=102)
    with pytest.raises(ValueError, match="size 4097"):
        sketcher(np.zeros((8, 8, 3), np.uint8), size=4097)
    with pytest.raises(ValueError, match="direction='sideways'"):
        sketcher(np.zeros((8, 8, 3), np.uint8), direction="sideways")
    with pytest.raises(ValueError, match="has no styles"):
        sketcher(np.zeros((8, 8, 3), np.uint8), style=1)
    with pytest.raises(facesketch.UserError, match=r"^model nope\.safetensors: no such file"):
        facesketch.load("nope.safetensors")


def test_the_call_equals_facesketch_translate_pixel_for_pixel(sketcher, photo, fs2k_dir, tmp_path):
    src = fs2k_dir / "photo" / f"{PORTRAIT}.jpg"
    assert main(["translate", "--quiet", "--out", str(tmp_path / "face"), str(src)]) == 0
    assert main(["translate", "--quiet", "--no-align", "--size", "160", "--out", str(tmp_path / "whole"), str(src)]) == 0
    stem = src.stem
    assert np.array_equal(np.asarray(sketcher(src)), np.asarray(Image.open(tmp_path / "face" / f"{stem}.png").convert("RGB")))
    whole = np.asarray(Image.open(tmp_path / "whole" / f"{stem}.png").convert("RGB"))
    assert whole.shape == (160, 160, 3) and np.array_equal(sketcher(photo, align=False, size=160), whole)


def test_library_reports_through_logging_and_can_be_silenced(caplog, capsys):
    import logging

    with caplog.at_level(logging.INFO, logger="facesketch"):
        facesketch.load()
    assert any("default FS2K model" in r.getMessage() for r in caplog.records)
    assert capsys.readouterr().err == ""  # nothing printed by the library itself
