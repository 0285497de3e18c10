"""Measure the constants that turn BlazeFace detections into Haar-equivalent faces (faces/blazeface.py).

    python scripts/blazeface_calibration.py --fs2k ../shared/data/FS2K [--mediapipe-dir DIR] [--limit N]

On FS2K photo1 *training* photos where the Haar FaceDetector finds exactly one face with an eye pair and BlazeFace
exactly one face, it prints the medians (and 1.4826 x MAD) of: the Haar box centre minus the BlazeFace box centre and
the Haar box side over the BlazeFace box width (BOX_DX, BOX_DY, BOX_SCALE), and the Haar eye midpoint minus the
BlazeFace eye-keypoint midpoint (EYE_DX, EYE_DY), all in BlazeFace box widths; then, with the printed constants
applied, how far the eye points alignment uses (``faces.align.eye_points``) land from the Haar path's, in % of the
Haar box width.

Last run (--limit 300): 285 of 300 photos; the constants and their spread are in faces/blazeface.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from facesketch.data.fs2k import load_split  # noqa: E402
from facesketch.data.images import load_rgb  # noqa: E402
from facesketch.faces import FaceDetector, eye_points  # noqa: E402
from facesketch.faces.blazeface import BlazeFaceDetector  # noqa: E402


def robust(v: np.ndarray) -> tuple[float, float]:
    med = float(np.median(v))
    return med, float(1.4826 * np.median(np.abs(v - med)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fs2k", type=Path, required=True)
    ap.add_argument("--mediapipe-dir", type=Path, default=None, help="folder with blazeface.pth and anchors_face.npy (default: the weight cache)")
    ap.add_argument("--limit", type=int, default=0, help="use the first N photo1 training photos (0: all)")
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    recs = [r for r in load_split(a.fs2k, "train") if r.photo and r.photo.parent.name == "photo1"]
    recs = recs[: a.limit] if a.limit else recs
    haar, bf = FaceDetector(), BlazeFaceDetector(a.mediapipe_dir)
    rows, pairs = [], []
    for r in recs:
        img = np.asarray(load_rgb(r.photo))
        hf = haar.detect(img)
        bd = bf.raw(img)
        if len(hf) != 1 or not hf[0].has_eyes or len(bd) != 1:
            continue
        f, d = hf[0], bd[0].tolist()
        y0, x0, y1, x1 = d[:4]
        bw = x1 - x0
        hx, hy, hw, _ = f.box
        hmx, hmy = (f.left_eye[0] + f.right_eye[0]) / 2, (f.left_eye[1] + f.right_eye[1]) / 2
        bmx, bmy = (d[4] + d[6]) / 2, (d[5] + d[7]) / 2
        rows.append([(hx + hw / 2 - (x0 + x1) / 2) / bw, (hy + hw / 2 - (y0 + y1) / 2) / bw, hw / bw,
                     (hmx - bmx) / bw, (hmy - bmy) / bw])  # fmt: skip
        pairs.append((f, d))
    if not rows:
        print("no photo with one face in both detectors", file=sys.stderr)
        return 1
    v = np.array(rows)
    names = ["BOX_DX", "BOX_DY", "BOX_SCALE", "EYE_DX", "EYE_DY"]
    consts = {}
    print(f"{len(rows)} of {len(recs)} photo1 training photos with one face (Haar with eyes) in both detectors")
    for i, n in enumerate(names):
        med, spread = robust(v[:, i])
        consts[n] = med
        print(f"  {n} = {med:.4f}   (spread {spread:.4f})")
    import facesketch.faces.blazeface as B

    for n, c in consts.items():
        setattr(B, n, round(c, 4))
    err = []
    for f, d in pairs:
        g = BlazeFaceDetector.to_face(d)
        (al, ar, _), (bl, br, _) = eye_points(f), eye_points(g)
        err.append(np.hypot(*np.subtract(al, bl)) / f.box[2])
        err.append(np.hypot(*np.subtract(ar, br)) / f.box[2])
    e = np.array(err) * 100
    print(f"alignment eye points, BlazeFace path vs Haar path: median {np.median(e):.2f} %, 90th percentile "
          f"{np.percentile(e, 90):.2f} % of the Haar box width")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
