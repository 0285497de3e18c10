"""The face path on real photos: Haar detection, alignment to the FS2K framing, paste-back, and `translate` using them."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import smooth_image
from PIL import Image

from facesketch.cli import main

cv2 = pytest.importorskip("cv2", reason="the face path needs opencv-python-headless (the faces extra)")

from facesketch.data.images import load_rgb  # noqa: E402
from facesketch.faces import (  # noqa: E402
    Face,
    FaceDetector,
    align_face,
    alignment_matrix,
    eye_points,
    paste_back,
)
from facesketch.faces import align as A  # noqa: E402
from facesketch.faces.align import warp_to_crop  # noqa: E402
from facesketch.translate import translate_files  # noqa: E402
from facesketch.translate.load import load_translator

# FS2K *test* photos (the template was derived from the training photos): portraits and wide shots
PORTRAITS = ["photo1/image0788", "photo1/image0789", "photo1/image0790", "photo1/image0793", "photo1/image0796"]
WIDE = ["photo3/image0201", "photo3/image0204", "photo3/image0205", "photo3/image0209"]


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()




def photo(root, name: str) -> np.ndarray:
    return np.asarray(load_rgb(next((root / "photo").glob(name + ".*"))))


def box_close(a, b, tol: float = 0.12) -> bool:
    """Boxes (x, y, w, h) agree to ``tol`` of the first box's width in position and size."""
    return all(abs(p - q) <= tol * a[2] for p, q in zip(a, b))


def similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = np.radians(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx], [scale * np.sin(a), scale * np.cos(a), ty]])


def compose(m2: np.ndarray, m1: np.ndarray) -> np.ndarray:
    """(2, 3) affine maps: first m1, then m2."""
    return (np.vstack([m2, [0, 0, 1]]) @ np.vstack([m1, [0, 0, 1]]))[:2]


def crop_points_disagree(m_a: np.ndarray, m_b: np.ndarray, size: int) -> float:
    """Largest distance (crop pixels) between where two image->crop maps send the crop's corners and centre back from."""
    inv = cv2.invertAffineTransform(m_b)
    pts = np.array([[0, 0], [size, 0], [0, size], [size, size], [size / 2, size / 2]], np.float64)
    img_pts = pts @ inv[:, :2].T + inv[:, 2]
    return float(np.abs(img_pts @ m_a[:, :2].T + m_a[:, 2] - pts).max())


# ---------------------------------------------------------------------------------------------------------------
# geometry


def test_alignment_matrix_puts_the_eyes_on_the_template():
    left, right = (310.0, 420.0), (400.0, 450.0)  # tilted eye line, edges-at-integers coordinates
    m = alignment_matrix(left, right, 256)
    for eye, tpl in ((left, A.TEMPLATE_LEFT_EYE), (right, A.TEMPLATE_RIGHT_EYE)):
        idx = np.array(eye) - 0.5  # pixel-index convention of the matrix
        got = m[:, :2] @ idx + m[:, 2] + 0.5
        np.testing.assert_allclose(got, np.array(tpl) * 256, atol=1e-9)
    assert np.isclose(np.degrees(np.arctan2(m[1, 0], m[0, 0])), -np.degrees(np.arctan2(30, 90)))  # rotation undoes the tilt


def test_template_constants_are_consistent():
    # a face of the template's size puts its box-estimated eyes exactly where the template has them
    assert 0.3 < A.TEMPLATE_LEFT_EYE[0] < 0.5 < A.TEMPLATE_RIGHT_EYE[0] < 0.7 and A.TEMPLATE_LEFT_EYE[1] == A.TEMPLATE_RIGHT_EYE[1]
    box_dist = (A.BOX_RIGHT_EYE[0] - A.BOX_LEFT_EYE[0]) * A.TEMPLATE_FACE_WIDTH
    assert abs(box_dist - (A.TEMPLATE_RIGHT_EYE[0] - A.TEMPLATE_LEFT_EYE[0])) < 0.01


def test_box_fallback_without_eyes_and_implausible_pairs():
    box = (100.0, 50.0, 200.0, 200.0)
    left, right, from_eyes = eye_points(Face(box))
    assert not from_eyes and left[1] == right[1]  # no rotation without eyes
    np.testing.assert_allclose(left, (100 + A.BOX_LEFT_EYE[0] * 200, 50 + A.BOX_LEFT_EYE[1] * 200))
    # an "eye pair" at 60 degrees is an eye and something else: the box wins
    assert not eye_points(Face(box, (150.0, 120.0), (190.0, 190.0)))[2]
    # a plausible pair tilted by 15 degrees: kept, and its tilt is what the alignment removes
    c, d = np.array([200.0, 128.0]), 78 * np.array([np.cos(np.radians(15)), np.sin(np.radians(15))])
    l2, r2, ok = eye_points(Face(box, tuple(c - d / 2), tuple(c + d / 2)))
    assert ok and np.isclose(np.degrees(np.arctan2(r2[1] - l2[1], r2[0] - l2[0])), 15)


def test_big_reductions_are_antialiased():
    stripes = np.zeros((1200, 1200, 3), np.uint8)
    stripes[:, ::2] = 255  # 1-pixel stripes: bilinear sampling at 1/8 scale would keep picking columns
    m = similarity(0, 1 / 8, 0, 0)
    crop = warp_to_crop(stripes, m, 128)
    assert abs(float(crop.mean()) - 127.5) < 3 and crop.std() < 8


def test_paste_back_keeps_the_frame_size_and_touches_only_the_face(fs2k_dir, detector):
    img = photo(fs2k_dir, WIDE[1])
    (face,) = detector.detect(img)
    a = align_face(img, face, 64)
    black = np.zeros((64, 64, 3), np.uint8)
    out = paste_back(img, black, a.matrix)
    assert out.shape == img.shape and out.dtype == np.uint8
    cx, cy = (int(v) for v in face.center)
    assert out[cy, cx].max() <= 2  # the face centre is the pasted crop
    assert np.array_equal(out[:20, :20], img[:20, :20])  # far from the face nothing changes
    # a crop at another size (e.g. a model that outputs 2x) lands in the same place
    out2 = paste_back(img, np.zeros((128, 128, 3), np.uint8), a.matrix, aligned_size=64)
    assert np.abs(out2.astype(int) - out.astype(int)).mean() < 1.0


# ---------------------------------------------------------------------------------------------------------------
# detection and alignment on real photos


def test_fs2k_portraits_and_wide_shots(fs2k_dir, detector):
    found = {name: detector.detect(photo(fs2k_dir, name)) for name in PORTRAITS + WIDE}
    assert all(len(f) == 1 for f in found.values()), {k: len(v) for k, v in found.items()}
    assert sum(f[0].has_eyes for f in found.values()) >= len(found) - 2
    for name in WIDE:  # wide shots: the face is a small part of the frame, not the frame
        x, y, w, h = found[name][0].box
        assert w < 0.7 * 340


def test_fs2k_portraits_are_already_in_the_template_framing(fs2k_dir, detector):
    # FS2K photo1 test photos were not used for the template: aligning them at their own size must be close to
    # the identity (the point of the template is to reproduce exactly this framing). Over 150 photo1 test photos
    # the crop corners land a median 4.5% (95th percentile 9.8%) of the frame away from the photo's own.
    errs = []
    for name in PORTRAITS:
        img = photo(fs2k_dir, name)
        (face,) = detector.detect(img)
        a = align_face(img, face, 250)
        errs.append(crop_points_disagree(a.matrix, np.array([[1.0, 0, 0], [0, 1.0, 0]]), 250) / 250)
        assert 0.9 < np.sqrt(abs(np.linalg.det(a.matrix[:, :2]))) < 1.1, name
    assert max(errs) < 0.12 and np.mean(errs) < 0.07, errs


def test_alignment_undoes_rotation_scale_and_offset(fs2k_dir, detector):
    src = photo(fs2k_dir, PORTRAITS[1])
    (face,) = detector.detect(src)
    m_src = align_face(src, face, 128).matrix
    # put the portrait, rotated 12 degrees and enlarged 1.8x, into a wider scene
    t = similarity(12, 1.8, 420, 90)
    bg = smooth_image(np.random.default_rng(3), 700, 1100)
    warped = cv2.warpAffine(src, t, (1100, 700), flags=cv2.INTER_LINEAR)
    inside = cv2.warpAffine(np.ones(src.shape[:2], np.float32), t, (1100, 700))[..., None]
    scene = (bg * (1 - inside) + warped * inside).astype(np.uint8)
    faces = detector.detect(scene)
    assert len(faces) == 1 and faces[0].has_eyes
    a = align_face(scene, faces[0], 128)
    assert a.from_eyes
    # scene alignment after the scene transform = portrait alignment, to a few crop pixels
    assert crop_points_disagree(compose(a.matrix, t), m_src, 128) < 0.07 * 128


def test_several_faces_on_a_large_canvas_left_to_right(fs2k_dir, detector):
    canvas, spots = multi_face_canvas(fs2k_dir)
    faces = detector.detect(canvas)
    assert len(faces) == 3
    for f, (x, y, s) in zip(faces, spots):  # left to right, each inside the photo pasted there
        cx, cy = f.center
        assert x < cx < x + s and y < cy < y + s
    (largest,) = FaceDetector(max_faces=1).detect(canvas)  # --max-faces 1 keeps the biggest face (the middle one)
    assert largest.box == faces[1].box


def multi_face_canvas(root) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """Three FS2K portraits of different sizes pasted onto a 1600 x 700 smooth background; (x, y, size) of each."""
    canvas = np.array(smooth_image(np.random.default_rng(7), 700, 1600))
    spots = [(80, 300, 260), (640, 120, 330), (1200, 260, 300)]
    for name, (x, y, s) in zip(PORTRAITS[2:5], spots):
        canvas[y : y + s, x : x + s] = np.asarray(Image.fromarray(photo(root, name)).resize((s, s), Image.BICUBIC))
    return canvas, spots


def test_big_portrait_is_detected_on_a_downscaled_copy(fs2k_dir, detector):
    small = photo(fs2k_dir, PORTRAITS[0])
    big = np.asarray(Image.fromarray(small).resize((2400, 2400), Image.BICUBIC))
    (f_small,) = detector.detect(small)
    (f_big,) = detector.detect(big)
    k = 2400 / 250
    assert box_close(tuple(v * k for v in f_small.box), f_big.box)
    # the crop comes from the full-resolution image: same framing as the small one's, not blurrier
    a_small, a_big = align_face(small, f_small, 128), align_face(big, f_big, 128)
    assert np.abs(a_small.image.astype(int) - a_big.image.astype(int)).mean() < 15
    assert cv2.Laplacian(cv2.cvtColor(a_big.image, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var() > 0.5 * cv2.Laplacian(
        cv2.cvtColor(a_small.image, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()  # fmt: skip


def test_grey_and_rgba_files(fs2k_dir, detector, tmp_path):
    img = photo(fs2k_dir, WIDE[0])
    (ref,) = detector.detect(img)
    Image.fromarray(img).convert("L").save(tmp_path / "grey.png")
    alpha = np.zeros(img.shape[:2], np.uint8)
    x, y, w, h = (int(v) for v in ref.box)
    alpha[max(0, y - h // 2) : y + 2 * h, max(0, x - w // 2) : x + w + w // 2] = 255  # the subject, background cut out
    Image.fromarray(np.dstack([img, alpha]), "RGBA").save(tmp_path / "cutout.png")
    for name in ("grey.png", "cutout.png"):
        faces = detector.detect(np.asarray(load_rgb(tmp_path / name)))
        assert len(faces) == 1 and box_close(ref.box, faces[0].box), name


@pytest.mark.parametrize("orientation, stored_as", [(6, Image.Transpose.ROTATE_90), (8, Image.Transpose.ROTATE_270)])
def test_exif_rotated_jpeg_finds_the_face_where_it_is_shown(fs2k_dir, detector, tmp_path, orientation, stored_as):
    upright = photo(fs2k_dir, WIDE[1])  # face on the right half of a landscape shot
    (ref,) = detector.detect(upright)
    exif = Image.Exif()
    exif[0x0112] = orientation  # the camera stored the pixels sideways and says how to turn them
    Image.fromarray(upright).transpose(stored_as).save(tmp_path / "phone.jpg", quality=95, exif=exif)
    shown = np.asarray(load_rgb(tmp_path / "phone.jpg"))
    assert shown.shape == upright.shape
    faces = detector.detect(shown)
    assert len(faces) == 1 and box_close(ref.box, faces[0].box)
    # the raw (unrotated) pixels hold a sideways face the upright detector does not find at that place
    raw = np.asarray(load_rgb(tmp_path / "phone.jpg", exif_transpose=False))
    assert raw.shape == upright.shape[1::-1] + (3,)
    assert not any(box_close(ref.box, f.box) for f in detector.detect(raw))


def test_no_face(detector):
    rng = np.random.default_rng(0)
    assert detector.detect(smooth_image(rng, 300, 420)) == []
    assert detector.detect(np.full((64, 48, 3), 200, np.uint8)) == []


# ---------------------------------------------------------------------------------------------------------------
# translate


def test_translate_files_face_path(fs2k_dir, detector, tiny_model, tmp_path):
    tr = load_translator(tiny_model)
    canvas, _ = multi_face_canvas(fs2k_dir)
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(canvas).save(inputs / "group.jpg", quality=92)
    Image.fromarray(photo(fs2k_dir, WIDE[0])).save(inputs / "solo.png")
    Image.fromarray(smooth_image(np.random.default_rng(1), 200, 260)).save(inputs / "wall.png")
    files = sorted(inputs.iterdir())
    rep = translate_files(tr, files, tmp_path / "out", detector=detector, paste_back=True, save_masks=True, progress=False)
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["group_face0.png", "group_face0_attention.png", "group_face1.png", "group_face1_attention.png",
                     "group_face2.png", "group_face2_attention.png", "group_pasted.png",
                     "solo.png", "solo_attention.png", "solo_pasted.png"]  # fmt: skip
    assert rep.faces == 4 and [p.name for p in rep.no_face] == ["wall.png"] and not rep.failed
    assert Image.open(tmp_path / "out" / "group_face1.png").size == (tr.size, tr.size)
    assert Image.open(tmp_path / "out" / "group_pasted.png").size == (1600, 700)  # paste-back keeps the input size
    # the whole frame as a fallback
    rep = translate_files(tr, [inputs / "wall.png"], tmp_path / "out2", detector=detector, whole_frame_fallback=True,
                          output_size="input", progress=False)  # fmt: skip
    assert [p.name for p in rep.written] == ["wall.png"] and rep.no_face
    assert Image.open(tmp_path / "out2" / "wall.png").size == (260, 200)


def test_translate_cli_face_flags(fs2k_dir, tiny_model, tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(photo(fs2k_dir, WIDE[2])).save(inputs / "street.jpg")
    Image.fromarray(np.full((90, 120, 3), 128, np.uint8)).save(inputs / "grey_card.png")
    out = tmp_path / "out"
    rc = main(["translate", str(inputs), "--model", str(tiny_model), "--out", str(out), "--paste-back", "--save-boxes", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1  # an input without a face produced nothing
    assert "grey_card.png: no face found" in err and "1 input(s) without a detected face" in err
    assert sorted(p.name for p in out.iterdir()) == ["grey_card_faces.png", "street.png", "street_faces.png", "street_pasted.png"]
    assert Image.open(out / "street_pasted.png").size == (475, 340)
    # --whole-frame-fallback: everything gets an output, exit 0
    assert main(["translate", str(inputs), "--model", str(tiny_model), "--out", str(tmp_path / "o2"), "--whole-frame-fallback",
                 "--quiet"]) == 0  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "o2").iterdir()) == ["grey_card.png", "street.png"]
    # --no-align: today's whole-image behaviour (output at the input size shows it was not a face crop)
    assert main(["translate", str(inputs / "street.jpg"), "--model", str(tiny_model), "--out", str(tmp_path / "o3"),
                 "--no-align", "--output-size", "input", "--paste-back", "--quiet"]) == 0  # fmt: skip
    assert "--paste-back ignored" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "o3").iterdir()] == ["street.png"]
    assert Image.open(tmp_path / "o3" / "street.png").size == (475, 340)
    # BtoA does not align by default (sketches are not photos)
    assert main(["translate", str(inputs / "street.jpg"), "--model", str(tiny_model), "--out", str(tmp_path / "o4"),
                 "--direction", "BtoA", "--output-size", "input", "--quiet"]) == 0  # fmt: skip
    assert Image.open(tmp_path / "o4" / "street.png").size == (475, 340)


def test_translate_help_documents_the_face_flags(capsys):
    with pytest.raises(SystemExit):
        main(["translate", "--help"])
    out = capsys.readouterr().out
    for flag in ("--no-align", "--paste-back", "--whole-frame-fallback", "--max-faces", "--detector", "sketches are not"):
        assert flag in out
