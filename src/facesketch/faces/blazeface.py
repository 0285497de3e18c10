"""Face detection with MediaPipe's BlazeFace (our port, ``faces/mediapipe.py``), tiled so that small faces are found.

The front-camera BlazeFace sees a 128 x 128 letterboxed copy of its input, so on a whole wide shot a face narrower
than about a tenth of the frame is lost. ``BlazeFaceDetector`` also runs it on overlapping square tiles of a third
and a half of the short side (half-tile stride), maps the detections back to the frame and merges them. Its boxes are
converted to the Haar detector's box geometry (the FS2K alignment template in ``faces/align.py`` is defined on Haar
boxes) and its eye keypoints become ``Face.left_eye`` / ``right_eye``, so ``align_face`` works unchanged.

The conversion constants were measured by ``scripts/blazeface_calibration.py`` on FS2K photo1 training photos where
both detectors find exactly one face (medians; the script prints them and their spread). Detection rates of both
detectors on FS2K test photos and on synthetic wide shots: ``scripts/face_detection_rates.py``, ``docs/results.md``.

Needs the MediaPipe files (``facesketch weights fetch blazeface blazeface-anchors``); they are not on PyPI, which
is why the Haar cascades stay the default of ``facesketch translate`` (``--detector blazeface`` picks this one).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from facesketch.faces.detect import Face
from facesketch.faces.mediapipe import BlazeFace, box_intersection

# Haar-equivalent box from a BlazeFace box (bx, by, bw, bh): centre shifted by (dx, dy) * bw, side = scale * bw.
# Eye keypoints shifted by (ex, ey) * bw onto where the Haar eye cascade puts the eye centres.
# Measured by scripts/blazeface_calibration.py (see its docstring for the last run).
# Last run (--limit 300): 285 of 300 photos; spreads (1.4826 x MAD) 0.048, 0.033, 0.074, 0.010, 0.013; the alignment
# eye points of the two paths then differ by 2.8 % of the Haar box width (median), 6.0 % (90th percentile).
BOX_DX, BOX_DY, BOX_SCALE = -0.0070, -0.1191, 1.0797
EYE_DX, EYE_DY = -0.0111, -0.0175

TILE_FRACTIONS = (1 / 2, 1 / 3)  # tile sides as fractions of the frame's short side (plus the whole frame)
MERGE_OVERLAP = 0.5  # a detection is a duplicate when its intersection covers > this of the smaller box
EDGE_MARGIN = 0.04  # tile detections whose box reaches this close (fraction of the tile) to an inner tile edge are cut-off faces


def _tiles(h: int, w: int, side: int) -> list[tuple[int, int]]:
    """Top-left corners of square ``side`` tiles covering an h x w frame at half-tile stride."""

    def starts(n: int) -> list[int]:
        if n <= side:
            return [0]
        s = list(range(0, n - side + 1, max(1, side // 2)))
        return s if s[-1] == n - side else s + [n - side]

    return [(y, x) for y in starts(h) for x in starts(w)]


def _merge(dets: torch.Tensor) -> torch.Tensor:
    """(N, 17) frame detections -> the highest-scoring ones, duplicates (same face from several tiles) dropped."""
    if dets.shape[0] == 0:
        return dets
    dets = dets[torch.argsort(dets[:, 16], descending=True)]
    area = (dets[:, 2] - dets[:, 0]).clamp(min=0) * (dets[:, 3] - dets[:, 1]).clamp(min=0)
    keep: list[int] = []
    for i in range(dets.shape[0]):
        inter = box_intersection(dets[i], dets[keep])
        if not (inter > MERGE_OVERLAP * torch.minimum(area[i], area[keep]).clamp(min=1e-6)).any():
            keep.append(i)
    return dets[keep]


class BlazeFaceDetector:
    """Find faces (and their eyes) in an RGB image with tiled BlazeFace; the same ``detect`` as ``FaceDetector``.

    folder: a folder with ``blazeface.pth`` and ``anchors_face.npy`` (default: the weight cache), sha256-checked.
    min_relative, max_faces: as ``FaceDetector`` (drop faces narrower than this fraction of the widest; keep the N
    largest; 0 keeps all). Faces are returned left to right.
    """

    def __init__(self, folder: str | Path | None = None, *, min_relative: float = 0.25, max_faces: int = 0,
                 tile_fractions: tuple[float, ...] = TILE_FRACTIONS):  # fmt: skip
        self._bf = BlazeFace(folder)
        self.min_relative, self.max_faces = float(min_relative), int(max_faces)
        self.tile_fractions = tuple(float(f) for f in tile_fractions)

    def raw(self, img: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 RGB -> merged (N, 17) BlazeFace detections in frame pixels ([ymin, xmin, ymax, xmax],
        6 keypoints (x, y), score), whole frame and tiles."""
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"expected (H, W, 3) uint8 RGB, got {img.shape} {img.dtype}")
        h, w = img.shape[:2]
        found = list(self._bf.detect([img]))
        for frac in self.tile_fractions:
            side = round(min(h, w) * frac)
            if side < 32:
                continue
            corners = _tiles(h, w, side)
            dets = self._bf.detect([img[y : y + side, x : x + side] for y, x in corners])
            for d, (y, x) in zip(dets, corners):
                if not len(d):
                    continue
                m = EDGE_MARGIN * side  # a face cut by an inner tile edge is found whole in a neighbouring tile
                inner = torch.ones(len(d), dtype=torch.bool)
                if y > 0:
                    inner &= d[:, 0] > m
                if x > 0:
                    inner &= d[:, 1] > m
                if y + side < h:
                    inner &= d[:, 2] < side - m
                if x + side < w:
                    inner &= d[:, 3] < side - m
                d = d[inner].clone()
                d[:, [0, 2]] += y
                d[:, [1, 3]] += x
                d[:, 4:16:2] += x
                d[:, 5:16:2] += y
                found.append(d)
        return _merge(torch.cat([f for f in found if len(f)] or [torch.zeros(0, 17)]))

    def detect(self, img: np.ndarray) -> list[Face]:
        """img: (H, W, 3) uint8 RGB at full resolution -> faces in its pixel coordinates, left to right."""
        faces = [self.to_face(d) for d in self.raw(img).tolist()]
        if faces and self.min_relative > 0:
            widest = max(f.box[2] for f in faces)
            faces = [f for f in faces if f.box[2] >= self.min_relative * widest]
        if self.max_faces > 0:
            faces = sorted(faces, key=lambda f: -f.box[2] * f.box[3])[: self.max_faces]
        return sorted(faces, key=lambda f: f.center[0])

    @staticmethod
    def to_face(det: list[float]) -> Face:
        """One (17,) frame detection -> a ``Face`` with a Haar-equivalent box and the two eye keypoints."""
        y0, x0, y1, x1 = det[:4]
        bw = x1 - x0
        cx, cy = (x0 + x1) / 2 + BOX_DX * bw, (y0 + y1) / 2 + BOX_DY * bw
        side = BOX_SCALE * bw
        # keypoint 0 is the person's right eye: image-left on an upright, unmirrored face
        left = (det[4] + EYE_DX * bw, det[5] + EYE_DY * bw)
        right = (det[6] + EYE_DX * bw, det[7] + EYE_DY * bw)
        if left[0] > right[0]:
            left, right = right, left
        return Face((cx - side / 2, cy - side / 2, side, side), left, right)
