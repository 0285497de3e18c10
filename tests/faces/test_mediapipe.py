"""Our port of MediaPipe's BlazeFace detector and face-mesh landmark net against the official code's vectors (real weights)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conformance_utils import CONF, ROOT

from facesketch.errors import UserError
from facesketch.faces import mediapipe as mp

pytestmark = pytest.mark.conformance
MP_CONF = CONF / "mediapipe"
WEIGHTS = Path(os.environ.get("FACESKETCH_MEDIAPIPE_DIR", ROOT / ".." / "shared" / "weights" / "mediapipe")).resolve()


def _cases(prefix: str) -> list[Path]:
    files = sorted(MP_CONF.glob(f"{prefix}_case*.npz"))
    if not files:
        pytest.skip(f"no mediapipe/{prefix}_case*.npz in {CONF} (set FACESKETCH_CONFORMANCE_DIR)")
    return files


def _weights() -> Path:
    if not (WEIGHTS / "blazeface.pth").is_file():
        pytest.skip(f"MediaPipe weights not found in {WEIGHTS} (set FACESKETCH_MEDIAPIPE_DIR)")
    return WEIGHTS


def _close(net: str, name: str, got, ref) -> float:
    t = json.loads((MP_CONF / "tolerances.json").read_text())[net][name]
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    assert got.shape == ref.shape, (name, got.shape, ref.shape)
    if t.get("exact"):
        assert np.array_equal(got, ref), name
        return 0.0
    atol = t["atol_frac_of_max"] * np.abs(ref).max() if "atol_frac_of_max" in t else t["atol"]
    err = np.abs(got - ref)
    assert (err - t.get("rtol", 0.0) * np.abs(ref)).max(initial=0) <= atol, (name, float(err.max(initial=0)), atol)
    return float(err.max(initial=0))


def _frames(z) -> list[np.ndarray]:
    hw = z["frame_hw"]
    parts = np.split(z["frames_u8"], np.cumsum(hw.prod(1) * 3)[:-1])
    return [p.reshape(int(h), int(w), 3) for p, (h, w) in zip(parts, hw)]


@pytest.fixture(scope="module")
def blazeface():
    return mp.load_blazeface(_weights())


@pytest.fixture(scope="module")
def facemesh():
    return mp.load_facemesh(_weights())


@pytest.mark.parametrize("case", [p.name for p in sorted(MP_CONF.glob("blazeface_case*.npz"))] or ["none"])
def test_blazeface_matches_the_official_pipeline(case, blazeface):
    if case == "none":
        _cases("blazeface")
    net, anchors = blazeface
    z = np.load(MP_CONF / case, allow_pickle=False)
    assert str(z["weights_sha256"]) == mp.SHA256["blazeface.pth"] and str(z["anchors_sha256"]) == mp.SHA256["anchors_face.npy"]
    x = torch.from_numpy(z["input"]).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        reg, cls = net(x)
    _close("blazeface", "regressors", reg, z["regressors"])
    _close("blazeface", "classificators", cls, z["classificators"])
    # decoding and suppression from the stored raw outputs: the post-processing alone
    dec = mp.decode(torch.from_numpy(z["regressors"]), anchors)
    sc = mp.scores(torch.from_numpy(z["classificators"]))
    _close("blazeface", "decoded", dec, z["decoded"])
    _close("blazeface", "scores", sc, z["scores"])
    dets, frame_of, counts = [], [], []
    for i in range(x.shape[0]):
        keep = sc[i] >= mp.MIN_SCORE
        d = mp.weighted_nms(torch.cat([dec[i, keep], sc[i, keep, None]], 1))
        dets.append(d), frame_of.extend([i] * len(d)), counts.append(len(d))
    dets = torch.cat(dets)
    _close("blazeface", "num_detections", counts, z["num_detections"])
    _close("blazeface", "detection_frame", frame_of, z["detection_frame"])
    _close("blazeface", "detections", dets, z["detections"])
    _close("blazeface", "det_scores", dets[:, 16], z["det_scores"])
    # back to frame pixels with the stored letterbox, and the face-mesh ROI
    if len(dets):
        where = torch.tensor(frame_of)
        lbs = [mp.Letterbox(float(z["resize_scale"][i]), tuple(int(v) for v in z["resize_pad"][i])) for i in range(x.shape[0])]
        img = torch.cat([mp.to_frame(dets[where == i], lbs[i]) for i in range(x.shape[0])])
        # coordinates only: the official denormalize_detections's x slice (4::2) also reaches the score column (16)
        # and maps it like an x coordinate; ours keeps the score
        _close("blazeface", "detections_image", img[:, :16], z["detections_image"][:, :16])
        assert torch.equal(img[:, 16], dets[:, 16])
        _close("blazeface", "roi", mp.detection_roi(torch.from_numpy(z["detections_image"])), z["roi"])
    # the letterbox itself (OpenCV, as the official code) and the whole chain from the frames
    for i, frame in enumerate(_frames(z)):
        u8, lb = mp.letterbox(frame)
        assert np.abs(u8.astype(int) - z["input_u8"][i].astype(int)).max() <= 1
        assert lb.scale == pytest.approx(float(z["resize_scale"][i])) and lb.pad == tuple(int(v) for v in z["resize_pad"][i])


@pytest.mark.parametrize("case", [p.name for p in sorted(MP_CONF.glob("facemesh_case*.npz"))] or ["none"])
def test_facemesh_matches_the_official_network_and_crop(case, facemesh):
    if case == "none":
        _cases("facemesh")
    z = np.load(MP_CONF / case, allow_pickle=False)
    assert str(z["weights_sha256"]) == mp.SHA256["blazeface_landmark.pth"]
    x = torch.from_numpy(z["input"]).contiguous(memory_format=torch.channels_last)
    grad = "grad_sum_z" in z.files
    x.requires_grad_(grad)
    with torch.set_grad_enabled(grad):
        lm, logit = facemesh(x)
    _close("facemesh", "landmarks", lm.detach(), z["landmarks"])
    _close("facemesh", "flag_logit", logit.detach(), z["flag_logit"])
    _close("facemesh", "flag", logit.detach().sigmoid(), z["flag"])
    if grad:
        lm[:, :, 2].sum().backward()
        _close("facemesh", "grad_sum_z", x.grad, z["grad_sum_z"])
    affine = torch.from_numpy(z["affine"])
    _close("facemesh", "landmarks_image", mp.landmarks_to_frame(torch.from_numpy(z["landmarks"]), affine), z["landmarks_image"])
    # our ROI geometry gives the official affine, and our differentiable crop the official pixels (cv2 is fixed-point)
    ours = mp.roi_affine(torch.from_numpy(z["roi"]).double()).float()
    assert torch.allclose(ours, affine, atol=2e-3), (ours - affine).abs().max()
    frames = _frames(z)
    for i in range(x.shape[0]):
        f = torch.from_numpy(frames[int(z["crop_frame"][i])]).permute(2, 0, 1).float() / 255
        crop = mp.crop_faces(f, affine[i : i + 1])[0]
        diff = (crop - torch.from_numpy(z["input"][i])).abs() * 255
        assert diff.max() <= 7 and diff.mean() <= 1.0, (float(diff.max()), float(diff.mean()))


def test_weights_are_checked_before_use(tmp_path):
    src = _weights()
    bad = tmp_path / "blazeface.pth"
    data = bytearray((src / "blazeface.pth").read_bytes())
    data[-10] ^= 1
    bad.write_bytes(bytes(data))
    (tmp_path / "anchors_face.npy").write_bytes((src / "anchors_face.npy").read_bytes())
    with pytest.raises(UserError, match="sha256"):
        mp.load_blazeface(tmp_path)
    with pytest.raises(UserError, match="not found"):
        mp.load_facemesh(tmp_path)


def test_canonical_mesh_has_898_triangles_over_468_vertices():
    tri = mp.load_canonical_triangles(_weights())
    assert tri.shape == (898, 3) and set(tri.flatten().tolist()) == set(range(468))


def test_detector_finds_the_faces_of_fs2k_test_photos(blazeface, fs2k_dir):
    from facesketch.data.images import load_rgb_array

    det = mp.BlazeFace(_weights())
    photos = [fs2k_dir / "photo" / "photo1" / "image0788.jpg", fs2k_dir / "photo" / "photo3" / "image0204.jpg"]
    found = det.detect([load_rgb_array(p) for p in photos])
    assert [len(d) for d in found] == [1, 1]
    for d, p in zip(found, photos):
        h, w = load_rgb_array(p).shape[:2]
        ymin, xmin, ymax, xmax = d[0, :4].tolist()
        assert 0 <= xmin < xmax <= w and 0 <= ymin < ymax <= h and d[0, 16] > 0.75


def test_the_weight_manager_imports_the_four_files_from_a_folder_and_the_loaders_find_them(tmp_path, monkeypatch, capsys):
    from facesketch.cli import main
    from facesketch.priors import weights

    src = _weights()
    monkeypatch.setenv("FACESKETCH_HOME", str(tmp_path / "home"))
    with pytest.raises(UserError, match="weights fetch blazeface"):
        mp.load_blazeface()
    names = list(weights.MEDIAPIPE_ARTIFACTS)
    assert main(["weights", "fetch", *names, "--source", str(src)]) == 0
    for name in names:
        path = weights.resolve(name)  # verified against the pinned sha256
        assert path.is_file() and weights.check_cached(weights.get_artifact(name).sources[0], path)[0]
        assert weights.get_artifact(name).sources[0].url.startswith("https://raw.githubusercontent.com/")
    net, anchors = mp.load_blazeface()
    assert anchors.shape == (896, 4) and mp.load_canonical_triangles().shape == (898, 3)
    capsys.readouterr()
    assert main(["weights", "list"]) == 0
    listing = capsys.readouterr().out
    assert all(n in listing for n in names)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["weights", "fetch", "facemesh", "--source", str(empty)]) == 2
    assert "blazeface_landmark.pth" in capsys.readouterr().err
