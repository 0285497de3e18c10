"""The face path's second detector: tiled BlazeFace (faces/blazeface.py), its Haar-equivalent faces, and `translate --detector`."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT
from helpers import smooth_image
from PIL import Image

from facesketch.cli import main

cv2 = pytest.importorskip("cv2", reason="the face path needs opencv-python-headless (the faces extra)")

from facesketch.data.images import load_rgb  # noqa: E402
from facesketch.faces import FaceDetector, eye_points  # noqa: E402
from facesketch.faces.blazeface import BlazeFaceDetector, _merge, _tiles  # noqa: E402

WEIGHTS = Path(os.environ.get("FACESKETCH_MEDIAPIPE_DIR", ROOT / ".." / "shared" / "weights" / "mediapipe")).resolve()
PORTRAITS = ["photo1/image0788", "photo1/image0789", "photo1/image0790", "photo1/image0793", "photo3/image0201"]


@pytest.fixture(scope="module")
def blazeface():
    if not (WEIGHTS / "blazeface.pth").is_file():
        pytest.skip(f"MediaPipe weights not found in {WEIGHTS} (set FACESKETCH_MEDIAPIPE_DIR)")
    return BlazeFaceDetector(WEIGHTS)


def photo(root, name: str) -> np.ndarray:
    return np.asarray(load_rgb(next((root / "photo").glob(name + ".*"))))


def small_faces_canvas(root) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """Two FS2K portraits shrunk to 120 px (faces ~73 px, 4.6 % of the width) on a 1600 x 1000 smooth background."""
    canvas = np.array(smooth_image(np.random.default_rng(3), 1000, 1600))
    spots = [(250, 600, 120), (1200, 200, 120)]
    for name, (x, y, s) in zip(PORTRAITS[:2], spots):
        canvas[y : y + s, x : x + s] = np.asarray(Image.fromarray(photo(root, name)).resize((s, s), Image.BICUBIC))
    return canvas, spots


def test_tiles_cover_the_frame_at_half_stride():
    for h, w, side in ((1000, 1600, 333), (250, 250, 125), (200, 90, 90), (101, 300, 100)):
        cover = np.zeros((h, w), bool)
        corners = _tiles(h, w, side)
        for y, x in corners:
            assert 0 <= y <= h - min(h, side) and 0 <= x <= w - min(w, side)
            cover[y : y + side, x : x + side] = True
        assert cover.all()
        ys = sorted({y for y, _ in corners})
        assert all(b - a <= side // 2 for a, b in zip(ys, ys[1:]))


def test_merge_keeps_the_best_of_overlapping_detections():
    d = np.zeros((3, 17), np.float32)
    d[0, :4], d[0, 16] = (0, 0, 100, 100), 0.8  # a face
    d[1, :4], d[1, 16] = (10, 5, 95, 90), 0.9  # the same face from another tile, better score
    d[2, :4], d[2, 16] = (0, 300, 100, 400), 0.77  # another face
    import torch

    out = _merge(torch.from_numpy(d))
    assert out[:, 16].tolist() == pytest.approx([0.9, 0.77])


def test_one_face_per_fs2k_photo_with_eyes_where_haar_puts_them(fs2k_dir, blazeface):
    haar = FaceDetector()
    for name in PORTRAITS:
        img = photo(fs2k_dir, name)
        (f,) = blazeface.detect(img)
        assert f.has_eyes and f.left_eye[0] < f.right_eye[0]
        (h,) = haar.detect(img)
        # the alignment points of both paths agree to a few % of the face (the Haar-equivalent box conversion)
        (al, ar, _), (bl, br, _) = eye_points(h), eye_points(f)
        worst = max(np.hypot(*np.subtract(al, bl)), np.hypot(*np.subtract(ar, br))) / h.box[2]
        assert worst < 0.1, (name, worst)
        assert 0.8 < f.box[2] / h.box[2] < 1.25, name


def test_eyes_follow_a_rotated_and_mirrored_face(fs2k_dir, blazeface):
    img = photo(fs2k_dir, PORTRAITS[0])
    (f,) = blazeface.detect(img)
    (m,) = blazeface.detect(np.ascontiguousarray(img[:, ::-1]))
    w = img.shape[1]
    assert abs((w - m.center[0]) - f.center[0]) < 0.05 * f.box[2]  # mirrored box
    rot = np.ascontiguousarray(np.rot90(img, k=-1))  # 90 degrees clockwise: the eye line turns vertical
    for g in blazeface.detect(rot):
        (lx, ly), (rx, ry) = g.left_eye, g.right_eye
        assert abs(ry - ly) > abs(rx - lx)


def test_tiling_finds_small_faces_the_whole_frame_pass_misses(fs2k_dir, blazeface):
    canvas, spots = small_faces_canvas(fs2k_dir)
    faces = blazeface.detect(canvas)
    assert len(faces) == 2
    for f, (x, y, s) in zip(faces, spots):  # left to right, each inside its photo
        assert x < f.center[0] < x + s and y < f.center[1] < y + s
    assert len(BlazeFaceDetector(WEIGHTS, tile_fractions=()).detect(canvas)) < 2
    assert blazeface.detect(np.array(smooth_image(np.random.default_rng(3), 1000, 1600))) == []  # no face: nothing


def test_translate_with_blazeface(fs2k_dir, blazeface, tiny_model, tmp_path, capsys):
    canvas, _ = small_faces_canvas(fs2k_dir)
    Image.fromarray(canvas).save(tmp_path / "crowd.png")
    out = tmp_path / "out"
    assert main(["translate", str(tmp_path / "crowd.png"), "--model", str(tiny_model), "--out", str(out),
                 "--detector", "blazeface", "--mediapipe-dir", str(WEIGHTS), "--quiet"]) == 0  # fmt: skip
    assert "(2 face(s), blazeface detector)" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["crowd_face0.png", "crowd_face1.png"]
    # missing weights: a one-line error naming the file and the fetch command, nothing written
    empty = tmp_path / "no_weights"
    empty.mkdir()
    rc = main(["translate", str(tmp_path / "crowd.png"), "--model", str(tiny_model), "--out", str(tmp_path / "o2"),
               "--detector", "blazeface", "--mediapipe-dir", str(empty), "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc != 0 and "blazeface.pth: not found" in err and "facesketch weights fetch blazeface" in err
    assert not (tmp_path / "o2").exists() or not any((tmp_path / "o2").iterdir())
