"""Face and eye detection with OpenCV's Haar cascades (shipped inside ``opencv-python-headless``; no downloads).

Coordinates are full-resolution image pixels, x to the right and y down, with pixel centres at integers + 0.5
(a box (x, y, w, h) covers columns x .. x + w). "Left" and "right" eye mean image-left and image-right (the
subject's right and left eye).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facesketch.errors import UserError

# Chosen on the first 200 FS2K test photos of photo1 (portraits) and photo3 (wide shots): the "alt2" frontal
# cascade (minNeighbors 5, no histogram equalisation) finds a face in 99.5% / 97% with a second box in 0% / 1%;
# "default" finds about as many but fires on 0% / 5.5% of the backgrounds, so it only gets a second look at
# photos where alt2 found nothing, and its boxes count only with an eye pair inside (99.5% / 99% together).
# Histogram equalisation before detection lowered alt2's hit rate on photo3 (94%), so it is not used.
FACE_CASCADE = "haarcascade_frontalface_alt2.xml"
FALLBACK_FACE_CASCADE = "haarcascade_frontalface_default.xml"
EYE_CASCADE = "haarcascade_eye.xml"

# Eye search: the face box is resampled to this width so eye sizes do not depend on the photo's resolution,
# and eyes are looked for in this vertical band of the box (Haar face boxes put the eyes near 0.39 of the height).
EYE_SEARCH_WIDTH = 200
EYE_BAND = (0.15, 0.62)
# Faces narrower than this fraction of the widest face are kept only when an eye pair confirms them.
CONFIRM_BELOW = 0.5


def require_cv2():
    """The ``cv2`` module, or a UserError saying how to install it (the face path is an optional extra)."""
    try:
        import cv2
    except ImportError:
        raise UserError("face detection needs OpenCV: pip install 'opencv-python-headless<5' "
                        "(or facesketch[faces]); or pass --no-align to translate whole frames") from None  # fmt: skip
    return cv2


@dataclass(frozen=True)
class Face:
    """One detected face in full-resolution pixel coordinates.

    box: (x, y, w, h) of the detector's square-ish face box.
    left_eye, right_eye: (x, y) eye centres (image-left, image-right), or None when the eye cascade did not
        find a plausible pair; alignment then falls back to the box.
    """

    box: tuple[float, float, float, float]
    left_eye: tuple[float, float] | None = None
    right_eye: tuple[float, float] | None = None

    @property
    def has_eyes(self) -> bool:
        return self.left_eye is not None and self.right_eye is not None

    @property
    def center(self) -> tuple[float, float]:
        x, y, w, h = self.box
        return (x + w / 2, y + h / 2)


class FaceDetector:
    """Find upright frontal faces (and their eyes) in an RGB image.

    detect_size: detection runs on a copy whose long side is at most this many pixels (big photos are slow
        and Haar needs no detail beyond that); boxes are mapped back to the full-resolution image.
    min_face: smallest face side as a fraction of the detection image's short side (or 20 px, whichever is larger).
    min_relative: drop faces narrower than this fraction of the widest face found (background specks and
        false positives next to a main face); 0 keeps all. Faces under CONFIRM_BELOW of the widest need an eye pair.
    max_faces: keep at most this many (the largest); 0 keeps all.
    When the main cascade finds nothing, a second cascade has a look; its boxes count only with an eye pair.
    Faces are returned left to right, so ``<stem>_face0`` is the leftmost.
    """

    def __init__(self, *, detect_size: int = 800, min_face: float = 0.06, min_neighbors: int = 5,
                 min_relative: float = 0.25, max_faces: int = 0):  # fmt: skip
        cv2 = require_cv2()
        self.detect_size, self.min_face, self.min_neighbors = int(detect_size), float(min_face), int(min_neighbors)
        self.min_relative, self.max_faces = float(min_relative), int(max_faces)
        self._face, self._fallback, self._eye = (cv2.CascadeClassifier(cv2.data.haarcascades + name)
                                                 for name in (FACE_CASCADE, FALLBACK_FACE_CASCADE, EYE_CASCADE))  # fmt: skip
        if self._face.empty() or self._fallback.empty() or self._eye.empty():
            raise UserError(f"OpenCV's Haar cascades ({FACE_CASCADE}, {EYE_CASCADE}) are missing from {cv2.data.haarcascades}; "
                            "reinstall opencv-python-headless")  # fmt: skip

    def detect(self, img: np.ndarray) -> list[Face]:
        """img: (H, W, 3) uint8 RGB at full resolution -> faces in its pixel coordinates, left to right."""
        cv2 = require_cv2()
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"expected (H, W, 3) uint8 RGB, got {img.shape} {img.dtype}")
        from facesketch.data.images import image_bounds_problem

        problem = image_bounds_problem(img.shape[1], img.shape[0])
        if problem:  # before any resize: a thin strip would be enlarged into a huge buffer
            raise UserError(f"face detection: {problem}")
        grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        h, w = grey.shape
        # shrink big photos; enlarge thumbnails a little so a face filling them is above the 20 px cascade window
        scale = min(1.0, self.detect_size / max(h, w))
        if min(h, w) * scale < 200:
            scale = 200 / min(h, w)
        small = grey if scale == 1.0 else cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))),
                                                     interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)  # fmt: skip
        side = max(20, round(self.min_face * min(small.shape)))
        found = self._face.detectMultiScale(small, scaleFactor=1.1, minNeighbors=self.min_neighbors, minSize=(side, side))
        confirm_all = False  # second-look boxes must show an eye pair
        if len(found) == 0:
            found = self._fallback.detectMultiScale(small, scaleFactor=1.1, minNeighbors=self.min_neighbors + 1, minSize=(side, side))
            confirm_all = True
        sx, sy = w / small.shape[1], h / small.shape[0]
        boxes = [(bx * sx, by * sy, bw * sx, bh * sy) for bx, by, bw, bh in (found if len(found) else [])]
        if boxes and self.min_relative > 0:
            widest = max(b[2] for b in boxes)
            boxes = [b for b in boxes if b[2] >= self.min_relative * widest]
        faces = []
        widest = max((b[2] for b in boxes), default=0)
        for b in boxes:
            eyes = self._eyes(grey, b)
            # a much smaller second "face" without eyes is more often a pattern on clothes than a face
            if eyes is None and (confirm_all or b[2] < CONFIRM_BELOW * widest):
                continue
            faces.append(Face(tuple(float(v) for v in b), *(eyes or (None, None))))
        if self.max_faces > 0:
            faces = sorted(faces, key=lambda f: -f.box[2] * f.box[3])[: self.max_faces]
        return sorted(faces, key=lambda f: f.center[0])

    def _eyes(self, grey: np.ndarray, box) -> tuple[tuple[float, float], tuple[float, float]] | None:
        """Both eye centres inside ``box`` (full-resolution grey image), or None without a plausible pair."""
        cv2 = require_cv2()
        x, y, w, h = box
        x0, y0 = max(0, int(x)), max(0, int(y + EYE_BAND[0] * h))
        x1, y1 = min(grey.shape[1], int(np.ceil(x + w))), min(grey.shape[0], int(np.ceil(y + EYE_BAND[1] * h)))
        if x1 - x0 < 8 or y1 - y0 < 4:
            return None
        s = EYE_SEARCH_WIDTH / w  # resample so that the face box is EYE_SEARCH_WIDTH px wide
        band = grey[y0:y1, x0:x1]
        band = cv2.resize(band, (max(1, round((x1 - x0) * s)), max(1, round((y1 - y0) * s))),
                          interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)  # fmt: skip
        # no histogram equalisation here: on FS2K it lowered the pair rate (97% -> 90% on photo1 test photos)
        lo, hi = round(0.1 * EYE_SEARCH_WIDTH), round(0.4 * EYE_SEARCH_WIDTH)
        found = self._eye.detectMultiScale(band, scaleFactor=1.05, minNeighbors=3, minSize=(lo, lo), maxSize=(hi, hi))
        # eye centres back in full-resolution pixels
        pts = [(x0 + (ex + ew / 2) / s, y0 + (ey + eh / 2) / s) for ex, ey, ew, eh in (found if len(found) else [])]
        mid = x + w / 2
        left = [p for p in pts if p[0] < mid]
        right = [p for p in pts if p[0] >= mid]
        best, best_cost = None, np.inf
        for lp in left:
            for rp in right:
                d, dy = (rp[0] - lp[0]) / w, abs(rp[1] - lp[1]) / w
                # plausible pairs: eye distance 25-65% of the box (typical 39%), eye line within ~27 degrees
                if 0.25 < d < 0.65 and dy < 0.5 * d:
                    cost = abs(d - 0.39) + dy + abs((lp[0] + rp[0]) / 2 - mid) / w
                    if cost < best_cost:
                        best, best_cost = (lp, rp), cost
        return best


def draw_faces(img: np.ndarray, faces: list[Face]) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> a copy with each face's box (green with eyes, orange box-only), index and eye marks."""
    from PIL import Image, ImageDraw

    im = Image.fromarray(img).copy()
    d = ImageDraw.Draw(im)
    lw = max(2, round(max(img.shape[:2]) / 300))
    for i, f in enumerate(faces):
        x, y, w, h = f.box
        colour = (40, 220, 60) if f.has_eyes else (255, 150, 0)
        d.rectangle([x, y, x + w, y + h], outline=colour, width=lw)
        d.text((x + lw + 2, y + lw + 1), f"face{i}", fill=colour)
        if f.has_eyes:
            for ex, ey in (f.left_eye, f.right_eye):
                r = max(3, w * 0.03)
                d.ellipse([ex - r, ey - r, ex + r, ey + r], outline=(255, 40, 40), width=max(1, lw // 2))
    return np.asarray(im)
