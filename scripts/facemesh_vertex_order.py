"""Derive which face-mesh landmark each vertex of ``canonical_face_model.obj`` is (``faces/mesh_order.py`` stores it).

MediaPipe's ``canonical_face_model.obj`` (an Apple ModelIO export) lists its 468 vertices in the order its faces first
use them, not in the order of the landmark network's 468 outputs, so its 898 triangles cannot index the landmarks
directly. This script finds the correspondence by geometry:

1. our FaceMesh port predicts the 468 landmarks on frontal FS2K training photos (photo1, BlazeFace ROIs); their
   mean, in crop units, with y and z turned to the obj's axes (y up, z towards the viewer), is the template;
2. ICP with a one-to-one assignment: scale-normalise both point sets, then repeat {Hungarian assignment on the
   squared distances; Umeyama similarity fit of the obj's vertices onto their assigned landmarks} until the
   assignment stops changing.

With ``--tessellation FILE`` (MediaPipe's ``face_mesh_connections.py`` from its repository or its PyPI wheel, read as
text: only its integer pairs are parsed) it also reports how the result agrees with MediaPipe's own landmark-indexed
tessellation (a slightly different triangulation: 852 triangles; an obj edge missing there is usually the other
diagonal of the same quad). The printed table is what goes into ``src/facesketch/faces/mesh_order.py``.

    python scripts/facemesh_vertex_order.py --fs2k ../shared/data/FS2K --weights ../shared/weights/mediapipe \
        [--photos 40] [--tessellation face_mesh_connections.py]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np


def obj_vertices(path: Path) -> np.ndarray:
    v = [[float(x) for x in line.split()[1:4]] for line in path.read_text().splitlines() if line.startswith("v ")]
    return np.asarray(v, dtype=np.float64)


def mean_landmarks(fs2k: Path, weights: Path, n: int) -> tuple[np.ndarray, int]:
    import torch
    from PIL import Image

    from facesketch.data.fs2k import load_split
    from facesketch.faces import mediapipe as mp

    det, net = mp.BlazeFace(weights), mp.load_facemesh(weights).eval()
    recs = [r for r in load_split(fs2k, "train") if r.source == "photo1" and r.photo is not None]
    recs = recs[:: max(1, len(recs) // (2 * n))]
    acc, used = [], 0
    for r in recs:
        frame = np.asarray(Image.open(r.photo).convert("RGB"))
        d = det.detect([frame])[0]
        if len(d) != 1:
            continue
        roi = mp.detection_roi(d)
        if abs(float(roi[0, 3])) > 0.1:  # keep upright faces only
            continue
        x = torch.from_numpy(frame.copy()).permute(2, 0, 1).float()[None] / 255
        with torch.no_grad():
            lm, flag = net(mp.crop_faces(x[0], mp.roi_affine(roi.double()).float()))
        if float(torch.sigmoid(flag)[0]) < 0.5:
            continue
        acc.append(lm[0].double().numpy())
        used += 1
        if used >= n:
            break
    if not acc:
        sys.exit("no usable frontal face found")
    m = np.mean(acc, 0)
    return m * np.array([1.0, -1.0, -1.0]), used  # image y down, z away -> obj y up, z towards the viewer


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity (s, R, t) minimising ||s R src + t - dst||^2 (rows are points)."""
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    u, sig, vt = np.linalg.svd(b.T @ a / len(src))
    d = np.eye(3)
    if np.linalg.det(u @ vt) < 0:
        d[2, 2] = -1
    r = u @ d @ vt
    s = float(np.trace(np.diag(sig) @ d) / (a**2).sum(1).mean())
    return s, r, md - s * r @ ms


def icp_assign(v: np.ndarray, lm: np.ndarray, iters: int = 50) -> tuple[np.ndarray, float]:
    from scipy.optimize import linear_sum_assignment

    def norm(p):
        p = p - p.mean(0)
        return p / np.sqrt((p**2).sum(1).mean())

    v, lm = norm(v), norm(lm)
    cur, order = v.copy(), None
    for _ in range(iters):
        cost = ((cur[:, None, :] - lm[None, :, :]) ** 2).sum(-1)
        _, col = linear_sum_assignment(cost)
        if order is not None and np.array_equal(col, order):
            break
        order = col
        s, r, t = umeyama(v, lm[order])
        cur = s * v @ r.T + t
    resid = float(np.sqrt(((cur - lm[order]) ** 2).sum(1)).mean())
    return order, resid


def tessellation_edges(path: Path) -> set[tuple[int, int]]:
    text = path.read_text()
    i = text.index("FACEMESH_TESSELATION")
    j = text.index("])", i)
    return {tuple(sorted((int(a), int(b)))) for a, b in re.findall(r"\((\d+),\s*(\d+)\)", text[i:j])}


def obj_triangles(path: Path) -> np.ndarray:
    f = [[int(t.split("/")[0]) - 1 for t in line.split()[1:4]] for line in path.read_text().splitlines()
         if line.startswith("f ")]  # fmt: skip
    return np.asarray(f, dtype=np.int64)


def report_agreement(order: np.ndarray, tri: np.ndarray, edges: set) -> str:
    adj: dict[int, set] = {}
    for a, b in edges:
        adj.setdefault(a, set()).add(b)
        adj.setdefault(b, set()).add(a)
    oe = {tuple(sorted((int(t[i]), int(t[j])))) for t in tri for i, j in ((0, 1), (1, 2), (0, 2))}
    onb: dict[int, set] = {}
    for a, b in oe:
        onb.setdefault(a, set()).add(b)
        onb.setdefault(b, set()).add(a)
    hit = [(a, b) for a, b in oe if order[b] in adj.get(int(order[a]), ())]
    miss = [(a, b) for a, b in oe if order[b] not in adj.get(int(order[a]), ())]
    flips = 0
    for a, b in miss:
        c = sorted(onb[a] & onb[b])
        if len(c) == 2 and order[c[1]] in adj.get(int(order[c[0]]), ()):
            flips += 1
    return (f"obj edges {len(oe)}, in MediaPipe's tessellation ({len(edges)} edges) under this order: {len(hit)}; "
            f"of the {len(miss)} others, {flips} are the other diagonal of a quad whose four sides agree")  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fs2k", type=Path, required=True)
    ap.add_argument("--weights", type=Path, required=True, help="folder with blazeface*.pth, anchors, the obj")
    ap.add_argument("--photos", type=int, default=40, help="frontal training photos averaged into the template")
    ap.add_argument("--tessellation", type=Path, help="MediaPipe's face_mesh_connections.py, to check the result")
    a = ap.parse_args(argv)
    obj = a.weights / "canonical_face_model.obj"
    lm, used = mean_landmarks(a.fs2k, a.weights, a.photos)
    order, resid = icp_assign(obj_vertices(obj), lm)
    print(f"template: mean of {used} frontal photo1 training faces; ICP residual {resid:.4f} (unit RMS radius)")
    if a.tessellation:
        print(report_agreement(order, obj_triangles(obj), tessellation_edges(a.tessellation)))
    print("OBJ_VERTEX_TO_LANDMARK = (")
    for i in range(0, len(order), 16):
        print("    " + ", ".join(str(int(x)) for x in order[i : i + 16]) + ",")
    print(")")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
