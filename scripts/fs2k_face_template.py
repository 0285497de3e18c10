"""Derive the FS2K face template (canonical eye positions, face size) that ``facesketch.faces.align`` stores.

Runs our FaceDetector (OpenCV Haar face + eye cascades) over the FS2K photo1 *training* photos (250 x 250),
keeps the photos with exactly one face and a detected eye pair, and prints robust statistics (median and
MAD) of:
  - the eye positions as fractions of the photo (-> TEMPLATE_LEFT_EYE / TEMPLATE_RIGHT_EYE, made symmetric
    about the median eye midpoint with the median eye distance and a horizontal eye line),
  - the detector box width as a fraction of the photo (-> TEMPLATE_FACE_WIDTH),
  - the eyes relative to the detector box (-> BOX_LEFT_EYE / BOX_RIGHT_EYE, for the box fallback).
It also reports the detection hit rate on FS2K test photos (photo1, photo3) with ``--hit-rate N``.

    python scripts/fs2k_face_template.py --fs2k ../shared/data/FS2K [--limit 0] [--hit-rate 200]

The printed block is what goes into src/facesketch/faces/align.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def _photo(root: Path, name: str) -> Path | None:
    hits = sorted((root / "photo").glob(name + ".*"))
    return hits[0] if hits else None


def _names(root: Path, split: str, folder: str) -> list[str]:
    anno = json.loads((root / f"anno_{split}.json").read_text())
    return [a["image_name"] for a in anno if a["image_name"].split("/")[0] == folder]


def _mad(a: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(a - np.median(a))))


def measure(root: Path, limit: int) -> dict:
    """Per-photo eye/box measurements over photo1 training photos -> robust template constants."""
    from facesketch.data.images import load_rgb
    from facesketch.faces import FaceDetector

    det = FaceDetector()
    rows, n_seen, n_one, n_eyes = [], 0, 0, 0
    names = _names(root, "train", "photo1")
    for name in names[: limit or None]:
        p = _photo(root, name)
        if p is None:
            continue
        img = np.asarray(load_rgb(p))
        h, w = img.shape[:2]
        n_seen += 1
        faces = det.detect(img)
        if len(faces) != 1:
            continue
        n_one += 1
        f = faces[0]
        if not f.has_eyes:
            continue
        n_eyes += 1
        (lx, ly), (rx, ry) = f.left_eye, f.right_eye
        bx, by, bw, bh = f.box
        rows.append([lx / w, ly / h, rx / w, ry / h, bw / w, (lx - bx) / bw, (ly - by) / bh, (rx - bx) / bw, (ry - by) / bh])
    a = np.array(rows)
    lx, ly, rx, ry, fw, blx, bly, brx, bry = a.T
    mid_x, mid_y, dist = np.median((lx + rx) / 2), np.median((ly + ry) / 2), np.median(rx - lx)
    bmid_x, bmid_y, bdist = np.median((blx + brx) / 2), np.median((bly + bry) / 2), np.median(brx - blx)
    roll = np.degrees(np.arctan2(ry - ly, rx - lx))
    return {
        "photos": n_seen, "one_face": n_one, "with_eyes": n_eyes,
        "TEMPLATE_LEFT_EYE": (mid_x - dist / 2, mid_y), "TEMPLATE_RIGHT_EYE": (mid_x + dist / 2, mid_y),
        "TEMPLATE_FACE_WIDTH": float(np.median(fw)),
        "BOX_LEFT_EYE": (bmid_x - bdist / 2, bmid_y), "BOX_RIGHT_EYE": (bmid_x + bdist / 2, bmid_y),
        "spread": {"eye_mid_x": _mad((lx + rx) / 2), "eye_mid_y": _mad((ly + ry) / 2), "eye_dist": _mad(rx - lx),
                   "face_width": _mad(fw), "roll_deg": _mad(roll), "median_roll_deg": float(np.median(roll))},
    }  # fmt: skip


def hit_rate(root: Path, n: int) -> dict:
    """Share of the first ``n`` FS2K test photos of photo1 and photo3 with >= 1 face, exactly 1, and eyes found."""
    from facesketch.data.images import load_rgb
    from facesketch.faces import FaceDetector

    det = FaceDetector()
    out = {}
    for folder in ("photo1", "photo3"):
        counts = {"photos": 0, "any": 0, "one": 0, "eyes": 0}
        for name in _names(root, "test", folder)[:n]:
            p = _photo(root, name)
            if p is None:
                continue
            faces = det.detect(np.asarray(load_rgb(p)))
            counts["photos"] += 1
            counts["any"] += bool(faces)
            counts["one"] += len(faces) == 1
            counts["eyes"] += bool(faces) and faces[0].has_eyes if len(faces) == 1 else 0
        out[folder] = counts
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fs2k", default=str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "FS2K"),
                    help="FS2K root (holds anno_train.json and photo/)")  # fmt: skip
    ap.add_argument("--limit", type=int, default=0, help="use only the first N training photos (0: all)")
    ap.add_argument("--hit-rate", type=int, default=0, metavar="N", help="also report detection on N test photos per folder")
    args = ap.parse_args(argv)
    root = Path(args.fs2k)
    if not (root / "anno_train.json").is_file():
        print(f"--fs2k {root}: no anno_train.json there (point it at the FS2K root)", file=sys.stderr)
        return 2
    r = measure(root, args.limit)
    print(f"# {r['with_eyes']} of {r['photos']} FS2K photo1 training photos used "
          f"({r['one_face']} with exactly one face, {r['with_eyes']} of those with an eye pair); medians")  # fmt: skip
    for k in ("TEMPLATE_LEFT_EYE", "TEMPLATE_RIGHT_EYE", "BOX_LEFT_EYE", "BOX_RIGHT_EYE"):
        print(f"{k} = ({r[k][0]:.4f}, {r[k][1]:.4f})")
    print(f"TEMPLATE_FACE_WIDTH = {r['TEMPLATE_FACE_WIDTH']:.4f}")
    print("# spread (1.4826 * MAD, fractions of the photo; roll in degrees): "
          + ", ".join(f"{k} {v:.4f}" for k, v in r["spread"].items()))  # fmt: skip
    if args.hit_rate:
        for folder, c in hit_rate(root, args.hit_rate).items():
            n = max(1, c["photos"])
            print(f"# test {folder}: {c['photos']} photos, >=1 face {c['any'] / n:.1%}, exactly one {c['one'] / n:.1%}, "
                  f"one face with eyes {c['eyes'] / n:.1%}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
