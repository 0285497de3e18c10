"""Alignment to the FS2K photo framing (a similarity transform from the eye line) and paste-back into the frame.

Coordinates follow ``faces.detect``: pixel edges at integers (a W-pixel image spans 0 .. W). Matrices returned
here are OpenCV-style 2x3 maps from *pixel indices* of the full image to pixel indices of the crop (centres at
integers), ready for ``cv2.warpAffine``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facesketch.faces.detect import Face, require_cv2

# ---------------------------------------------------------------------------------------------------------------
# The FS2K framing. Derived by scripts/fs2k_face_template.py: our FaceDetector (alt2 face + eye cascades) run
# over the FS2K photo1 *training* photos (250 x 250), keeping the photos with exactly one face and a plausible
# eye pair; each value is the median over those photos (eyes placed symmetrically about the median eye
# midpoint with the median eye distance, the eye line horizontal). Coordinates are fractions of the photo's
# width/height, so they hold for any model size S. Re-run the script to check or refresh them.
# Last run: 682 of the 707 photo1 training photos (698 with exactly one face, 682 with an eye pair). Spread
# (1.4826 * MAD): eye midpoint x 0.0080, y 0.0082, eye distance 0.0206, face width 0.0237, roll 2.9 degrees --
# the FS2K photos are tightly eye-aligned, which is why aligning users' photos the same way matters.
TEMPLATE_LEFT_EYE = (0.3730, 0.4295)
TEMPLATE_RIGHT_EYE = (0.6089, 0.4295)
TEMPLATE_FACE_WIDTH = 0.6080  # detector box width / photo width: the face size in the FS2K framing
# Eye centres relative to the detector's box ((x - bx) / bw, (y - by) / bh), same photos, medians: where the eyes
# are placed when the eye cascade finds no pair ("box fallback"; the eye line is then taken as horizontal).
BOX_LEFT_EYE = (0.2938, 0.3877)
BOX_RIGHT_EYE = (0.6813, 0.3877)
# ---------------------------------------------------------------------------------------------------------------

# Eye pairs whose distance disagrees with the box by more than this factor, or whose line tilts more than
# MAX_ROLL degrees, are more likely an eye + eyebrow/nostril than a real pair: the box is trusted instead.
MAX_EYE_BOX_RATIO = 1.45
MAX_ROLL = 30.0


@dataclass(frozen=True)
class AlignedFace:
    """image: (S, S, 3) uint8 RGB crop in the FS2K framing; matrix: (2, 3) float64 full-image index -> crop index;
    from_eyes: False when the alignment fell back to the detector box."""

    image: np.ndarray
    matrix: np.ndarray
    from_eyes: bool


def box_eyes(box, roll: float = 0.0) -> tuple[tuple[float, float], tuple[float, float]]:
    """Eye centres a typical FS2K face would have inside the detector box (x, y, w, h), the eye line tilted by
    ``roll`` radians (clockwise in image coordinates, y down) about the box centre."""
    x, y, w, h = box
    c, s = np.cos(roll), np.sin(roll)
    cx, cy = x + w / 2, y + h / 2
    out = []
    for ex, ey in (BOX_LEFT_EYE, BOX_RIGHT_EYE):
        dx, dy = (ex - 0.5) * w, (ey - 0.5) * h
        out.append((cx + c * dx - s * dy, cy + s * dx + c * dy))
    return out[0], out[1]


def eye_points(face: Face) -> tuple[tuple[float, float], tuple[float, float], bool]:
    """(left_eye, right_eye, from_eyes): the two points alignment maps onto the template eyes.

    With a plausible detected pair, the roll comes from the eye line, the position is the mean of the eye
    midpoint and the box's estimate, and the size comes from the box. On the FS2K photo1 training photos the
    Haar eye centres scatter more than the box (eye distance 8.7% vs box width 4.9%, relative MAD), so the
    eyes are trusted for what only they can tell: the rotation. Without a pair: the box alone, no rotation.
    """
    if face.has_eyes:
        (lx, ly), (rx, ry) = face.left_eye, face.right_eye
        d = float(np.hypot(rx - lx, ry - ly))
        expected = (BOX_RIGHT_EYE[0] - BOX_LEFT_EYE[0]) * face.box[2]
        roll = float(np.arctan2(ry - ly, rx - lx))
        if rx > lx and 1 / MAX_EYE_BOX_RATIO < d / expected < MAX_EYE_BOX_RATIO and abs(np.degrees(roll)) <= MAX_ROLL:
            (blx, bly), (brx, bry) = box_eyes(face.box, roll)
            mx, my = ((lx + rx) / 2 + (blx + brx) / 2) / 2, ((ly + ry) / 2 + (bly + bry) / 2) / 2
            hx, hy = (brx - blx) / 2, (bry - bly) / 2
            return (mx - hx, my - hy), (mx + hx, my + hy), True
    left, right = box_eyes(face.box)
    return left, right, False


def alignment_matrix(left_eye, right_eye, size: int) -> np.ndarray:
    """Similarity transform (rotation from the eye line, uniform scale, offset) taking the two eye centres
    (full-image coordinates, edges at integers) onto the template eyes of an S x S crop.

    Returns a (2, 3) float64 matrix on pixel indices (centres at integers), for ``cv2.warpAffine``.
    """
    src = np.array([left_eye, right_eye], np.float64)
    dst = np.array([TEMPLATE_LEFT_EYE, TEMPLATE_RIGHT_EYE], np.float64) * size
    vs, vd = src[1] - src[0], dst[1] - dst[0]
    if np.hypot(*vs) < 1e-6:
        raise ValueError("the two eye points coincide")
    # complex-number view of a 2D similarity: dst = a * src + t with a = vd / vs
    a = complex(*vd) / complex(*vs)
    rot = np.array([[a.real, -a.imag], [a.imag, a.real]])
    t = dst[0] - rot @ src[0]
    # edges-at-integers -> index convention: q_dst + 0.5 = rot (q_src + 0.5) + t
    t = t + rot @ np.array([0.5, 0.5]) - 0.5
    return np.hstack([rot, t[:, None]])


def _scale(matrix: np.ndarray) -> float:
    return float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))


def warp_to_crop(img: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Sample the S x S crop ``matrix`` describes from (H, W, C) uint8 ``img``; reflects beyond the image edges.

    Strong reductions (a face 1500 px wide into a 256 px crop) first shrink the face's neighbourhood with
    area averaging, since bilinear sampling alone would alias.
    """
    cv2 = require_cv2()
    m = np.asarray(matrix, np.float64)
    s = _scale(m)
    if s < 0.5:
        inv = cv2.invertAffineTransform(m)
        corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float64) - [0.5, 0.5, 0]
        pts = corners @ inv.T
        h, w = img.shape[:2]
        x0, y0 = max(0, int(np.floor(pts[:, 0].min())) - 2), max(0, int(np.floor(pts[:, 1].min())) - 2)
        x1, y1 = min(w, int(np.ceil(pts[:, 0].max())) + 3), min(h, int(np.ceil(pts[:, 1].max())) + 3)
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            f = 2 * s  # leaves a 2x reduction for the bilinear warp
            nw, nh = max(1, round((x1 - x0) * f)), max(1, round((y1 - y0) * f))
            roi = cv2.resize(img[y0:y1, x0:x1], (nw, nh), interpolation=cv2.INTER_AREA)
            fx, fy = nw / (x1 - x0), nh / (y1 - y0)
            # index in roi = (index in img - x0 + 0.5) * f - 0.5
            shrink = np.array([[fx, 0, (0.5 - x0) * fx - 0.5], [0, fy, (0.5 - y0) * fy - 0.5], [0, 0, 1]])
            m = (np.vstack([m, [0, 0, 1]]) @ np.linalg.inv(shrink))[:2]
            img = roi
    return cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def align_face(img: np.ndarray, face: Face, size: int) -> AlignedFace:
    """(H, W, 3) uint8 RGB full-resolution image + a detected face -> the S x S FS2K-framed crop."""
    left, right, from_eyes = eye_points(face)
    m = alignment_matrix(left, right, size)
    return AlignedFace(warp_to_crop(img, m, size), m, from_eyes)


def feather_mask(size: int, feather: float = 0.1) -> np.ndarray:
    """(S, S) float32 in [0, 1]: 1 inside, easing to 0 at the crop border over ``feather * S`` pixels (smoothstep)."""
    r = max(1.0, feather * size)
    i = np.arange(size, dtype=np.float32) + 0.5
    edge = np.minimum(i, size - i) / r  # distance to the nearest border, in feather widths
    t = np.clip(np.minimum(edge[:, None], edge[None, :]), 0, 1)
    return t * t * (3 - 2 * t)


def paste_back(frame: np.ndarray, crop: np.ndarray, matrix: np.ndarray, *, aligned_size: int | None = None,
               feather: float = 0.1) -> np.ndarray:  # fmt: skip
    """Composite an (S', S', 3) uint8 crop (e.g. the sketch) back into the (H, W, 3) uint8 frame with the inverse
    warp and a feathered mask; returns a new (H, W, 3) uint8 image the size of ``frame``.

    ``matrix`` maps the frame to the S x S aligned crop (``AlignedFace.matrix``); when the crop comes at another
    size S' (a model that outputs a different size), pass ``aligned_size=S`` and it is rescaled.
    """
    cv2 = require_cv2()
    h, w = frame.shape[:2]
    size = crop.shape[0]
    m = np.asarray(matrix, np.float64)
    if aligned_size is not None and aligned_size != size:
        k = size / aligned_size  # index' + 0.5 = k (index + 0.5)
        m = np.array([[k, 0, 0.5 * k - 0.5], [0, k, 0.5 * k - 0.5]]) @ np.vstack([m, [0, 0, 1]])
    inverse = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    warped = cv2.warpAffine(crop, m, (w, h), flags=inverse, borderMode=cv2.BORDER_REPLICATE)
    mask = cv2.warpAffine(feather_mask(size, feather), m, (w, h), flags=inverse, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    a = mask[..., None]
    return np.clip(frame.astype(np.float32) * (1 - a) + warped.astype(np.float32) * a + 0.5, 0, 255).astype(np.uint8)
