"""MediaPipe's face models, our port: the BlazeFace front-camera detector and the 468-point face-mesh landmark network.

Architectures as the MediaPipePyTorch conversion defines them (``zmurez/MediaPipePyTorch@b38dbe3``), so its
``blazeface.pth`` and ``blazeface_landmark.pth`` load strictly (same parameter names and shapes), plus the
pre/post-processing of that code: letterbox resize, anchor decoding, weighted non-maximum suppression, detection
to rotated ROI, ROI crop and landmark de-normalisation. TFLite's "same" padding for stride 2 is explicit: the
detector's first 5x5 conv pads (left 1, right 2, top 1, bottom 2), the landmark net's first 3x3 conv (0, 1, 0, 1),
every stride-2 block (0, 2, 0, 2) before its depthwise conv, with a 2x2 max-pool plus zero channels on the skip path.
No normalisation layers (TFLite folded them into the convs). Both networks take **RGB in [0, 1]**, (B, 3, H, W):
the pinned code divides by 255 (MediaPipe's own graph feeds [-1, 1]; the weights are the same either way; we follow
the code whose outputs the conformance vectors hold).

Weights: ``facesketch weights fetch blazeface blazeface-anchors facemesh face-mesh-topology`` (from the
MediaPipePyTorch and MediaPipe repositories, or ``--source DIR`` with a folder holding the files); every file is
checked against its pinned sha256 before it is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from facesketch.errors import UserError
from facesketch.priors.weights import MEDIAPIPE_SHA256

SHA256 = MEDIAPIPE_SHA256  # pinned in the weight registry
DETECTOR_SIZE = 128
LANDMARK_SIZE = 192
N_ANCHORS = 896
N_LANDMARKS = 468
MIN_SCORE = 0.75  # candidates: sigmoid(logit) >= this
NMS_IOU = 0.3  # a box joins a cluster when its IoU with the cluster's top box is > this
SCORE_CLIP = 100.0
ROI_SCALE = 1.5  # the face-mesh crop is 1.5x the detection box's width


# ============================================================================================== the networks
class _Block(nn.Module):
    """Depthwise 3x3 (stride 1 or 2) + pointwise 1x1, residual, then ReLU or per-channel PReLU.

    Stride 2: the depthwise input is padded (0, 2, 0, 2) as TFLite does, the skip path is a 2x2 max-pool; extra output
    channels are zeros on the skip path. Parameter names (``convs.0``, ``convs.1``, ``act``) are the converted files'.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1, prelu: bool = False):
        super().__init__()
        self.stride, self.extra = stride, c_out - c_in
        self.convs = nn.Sequential(
            nn.Conv2d(c_in, c_in, 3, stride=stride, padding=0 if stride == 2 else 1, groups=c_in),
            nn.Conv2d(c_in, c_out, 1),
        )
        self.act = nn.PReLU(c_out) if prelu else nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 2:
            h, x = F.pad(x, (0, 2, 0, 2)), F.max_pool2d(x, 2)
        else:
            h = x
        if self.extra > 0:
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra))
        return self.act(self.convs(h) + x)


class BlazeFaceNet(nn.Module):
    """The front-camera detector: (B, 3, 128, 128) RGB in [0, 1] -> regressors (B, 896, 16), logits (B, 896, 1).

    Anchors 0..511 come from the 16x16 map (2 per cell), 512..895 from the 8x8 map (6 per cell), cells in row-major
    order; per anchor dx, dy, w, h and 6 keypoints (x, y), in 128-pixel units.
    """

    def __init__(self):
        super().__init__()
        chans = [24, 24, 28, 32, 36, 42, 48, 56, 64, 72, 80, 88]
        strides = {3: 2, 6: 2}  # block index (1-based in the list below) -> stride
        blocks = [_Block(chans[i], chans[i + 1], strides.get(i + 1, 1)) for i in range(len(chans) - 1)]
        self.backbone1 = nn.Sequential(nn.Conv2d(3, 24, 5, stride=2), nn.ReLU(), *blocks)
        self.backbone2 = nn.Sequential(_Block(88, 96, 2), *[_Block(96, 96) for _ in range(4)])
        self.classifier_8, self.classifier_16 = nn.Conv2d(88, 2, 1), nn.Conv2d(96, 6, 1)
        self.regressor_8, self.regressor_16 = nn.Conv2d(88, 32, 1), nn.Conv2d(96, 96, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = x.shape[0]
        f16 = self.backbone1(F.pad(x, (1, 2, 1, 2)))  # (B, 88, 16, 16)
        f8 = self.backbone2(f16)  # (B, 96, 8, 8)

        def flat(t: torch.Tensor, per: int) -> torch.Tensor:  # NCHW -> (B, cells * anchors, per), NHWC order
            return t.permute(0, 2, 3, 1).reshape(b, -1, per)

        reg = torch.cat([flat(self.regressor_8(f16), 16), flat(self.regressor_16(f8), 16)], 1)
        cls = torch.cat([flat(self.classifier_8(f16), 1), flat(self.classifier_16(f8), 1)], 1)
        return reg, cls


class FaceMeshNet(nn.Module):
    """The face-mesh landmark net: (B, 3, 192, 192) RGB in [0, 1] -> landmarks (B, 468, 3), face-flag logit (B,).

    Landmarks: x, y in [0, 1] crop units, z in crop pixels / 192 (the raw output). ``sigmoid(flag_logit)`` is the
    face-presence score.
    """

    def __init__(self):
        super().__init__()

        def stage(c_in, c_out):
            return [_Block(c_in, c_in, prelu=True), _Block(c_in, c_in, prelu=True), _Block(c_in, c_out, 2, prelu=True)]

        self.backbone1 = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2), nn.PReLU(16),
            *stage(16, 32), *stage(32, 64), *stage(64, 128), *stage(128, 128),
            _Block(128, 128, prelu=True), _Block(128, 128, prelu=True),
        )  # fmt: skip
        self.backbone2a = nn.Sequential(
            _Block(128, 128, 2, prelu=True), _Block(128, 128, prelu=True), _Block(128, 128, prelu=True),
            nn.Conv2d(128, 32, 1), nn.PReLU(32), _Block(32, 32, prelu=True), nn.Conv2d(32, 3 * N_LANDMARKS, 3),
        )  # fmt: skip
        self.backbone2b = nn.Sequential(
            _Block(128, 128, 2, prelu=True), nn.Conv2d(128, 32, 1), nn.PReLU(32), _Block(32, 32, prelu=True),
            nn.Conv2d(32, 1, 3),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.backbone1(F.pad(x, (0, 1, 0, 1)))
        landmarks = self.backbone2a(h).reshape(-1, N_LANDMARKS, 3) / LANDMARK_SIZE
        return landmarks, self.backbone2b(h).reshape(-1)


# ============================================================================================== weights
def check_sha256(path: Path, name: str | None = None) -> Path:
    """``path`` if its sha256 is the pinned one of ``name`` (default: its file name); UserError naming it otherwise."""
    from facesketch.download import sha256_file

    path = Path(path)
    name = name or path.name
    if not path.is_file():
        raise UserError(f"{path}: not found (run `facesketch weights fetch {_ARTIFACT_OF.get(name, name)}`)")
    got = sha256_file(path)
    if got != SHA256[name]:
        raise UserError(f"{path}: sha256 {got[:12]}... is not the pinned {SHA256[name][:12]}... of {name}; "
                        f"fetch it again (`facesketch weights fetch {_ARTIFACT_OF.get(name, name)} --force`)")  # fmt: skip
    return path


def _load_strict(module: nn.Module, path: Path) -> nn.Module:
    from facesketch.tensorfile import load_tensors

    sd = load_tensors(check_sha256(path), f"a MediaPipe {type(module).__name__} state dict", unwrap=())
    try:
        module.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise UserError(f"{path}: does not fit {type(module).__name__} ({str(e).splitlines()[0][:200]})") from None
    return module.eval()


_ARTIFACT_OF = {"blazeface.pth": "blazeface", "anchors_face.npy": "blazeface-anchors",
                "blazeface_landmark.pth": "facemesh", "canonical_face_model.obj": "face-mesh-topology"}  # fmt: skip


def _file(folder: str | Path | None, name: str) -> Path:
    """``folder/name``, or the verified cached file of its artifact when no folder is given."""
    if folder is not None:
        return Path(folder) / name
    from facesketch.priors.weights import resolve

    return resolve(_ARTIFACT_OF[name])


def load_blazeface(folder: str | Path | None = None) -> tuple[BlazeFaceNet, torch.Tensor]:
    """The detector with its 896 anchors (x, y, w, h), from ``folder`` (default: the weight cache), sha256-checked."""
    net = _load_strict(BlazeFaceNet(), _file(folder, "blazeface.pth"))
    path = check_sha256(_file(folder, "anchors_face.npy"))
    anchors = np.load(path, allow_pickle=False)
    if anchors.shape != (N_ANCHORS, 4):
        raise UserError(f"{path}: shape {anchors.shape}, expected ({N_ANCHORS}, 4)")
    return net, torch.from_numpy(anchors.astype(np.float32))


def load_facemesh(folder: str | Path | None = None) -> FaceMeshNet:
    """The landmark net from ``folder`` (default: the weight cache), sha256-checked, loaded strictly."""
    return _load_strict(FaceMeshNet(), _file(folder, "blazeface_landmark.pth"))


def load_canonical_triangles(folder: str | Path | None = None) -> torch.Tensor:
    """The 898 triangles of MediaPipe's canonical face mesh over the **landmark indices**, (898, 3) int64.

    The obj numbers its vertices in another order than the landmark network (``faces/mesh_order.py``); its faces are
    renumbered to landmarks here, winding kept (counter-clockwise seen from the front, y up)."""
    path = check_sha256(_file(folder, "canonical_face_model.obj"))
    faces = []
    for line in path.read_text().splitlines():
        if line.startswith("f "):
            faces.append([int(tok.split("/")[0]) - 1 for tok in line.split()[1:4]])
    tri = torch.tensor(faces, dtype=torch.int64)
    if tri.shape != (898, 3) or int(tri.min()) < 0 or int(tri.max()) >= N_LANDMARKS:
        raise UserError(f"{path}: expected 898 triangles over {N_LANDMARKS} vertices, got {tuple(tri.shape)}")
    from facesketch.faces.mesh_order import OBJ_VERTEX_TO_LANDMARK

    return torch.tensor(OBJ_VERTEX_TO_LANDMARK, dtype=torch.int64)[tri]


# ============================================================================================== detection
@dataclass
class Letterbox:
    """How a frame was fitted into the detector's square: ``scale`` frame px per 256-grid px, ``pad`` (y, x) frame px."""

    scale: float
    pad: tuple[int, int]


def letterbox(frame: np.ndarray) -> tuple[np.ndarray, Letterbox]:
    """RGB uint8 (H, W, 3) -> the 128x128 uint8 detector input (aspect kept, zero padding centred), as the pinned code:
    bilinear resize of the long side to 256, pad to 256x256, bilinear resize to 128x128 (OpenCV)."""
    import cv2

    h, w = frame.shape[:2]
    if h >= w:
        h1, w1 = 256, 256 * w // h
        scale = w / w1
    else:
        h1, w1 = 256 * h // w, 256
        scale = h / h1
    ph, pw = 256 - h1, 256 - w1
    img = cv2.resize(frame, (w1, h1))
    img = np.pad(img, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    return cv2.resize(img, (DETECTOR_SIZE, DETECTOR_SIZE)), Letterbox(scale, (int(ph // 2 * scale), int(pw // 2 * scale)))


def decode(reg: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """(B, 896, 16) regressors -> [ymin, xmin, ymax, xmax, 6 x (x, y)] in [0, 1] units of the 128x128 input."""
    ax, ay, aw, ah = anchors[:, 0], anchors[:, 1], anchors[:, 2], anchors[:, 3]
    xc = reg[..., 0] / DETECTOR_SIZE * aw + ax
    yc = reg[..., 1] / DETECTOR_SIZE * ah + ay
    w = reg[..., 2] / DETECTOR_SIZE * aw
    h = reg[..., 3] / DETECTOR_SIZE * ah
    out = [yc - h / 2.0, xc - w / 2.0, yc + h / 2.0, xc + w / 2.0]
    for k in range(6):
        out += [reg[..., 4 + 2 * k] / DETECTOR_SIZE * aw + ax, reg[..., 5 + 2 * k] / DETECTOR_SIZE * ah + ay]
    return torch.stack(out, -1)


def scores(cls: torch.Tensor) -> torch.Tensor:
    """(B, 896, 1) logits -> (B, 896) scores (logits clipped to +-100 first)."""
    return cls.clamp(-SCORE_CLIP, SCORE_CLIP).sigmoid().squeeze(-1)


def box_intersection(box: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    """Intersection areas of one [ymin, xmin, ymax, xmax, ...] box with (N, >=4) others: (N,)."""
    lo = torch.maximum(box[:2], others[:, :2])
    hi = torch.minimum(box[2:4], others[:, 2:4])
    return (hi - lo).clamp(min=0).prod(-1)


def _iou(box: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    inter = box_intersection(box, others)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / (area(box) + area(others) - inter)


def weighted_nms(dets: torch.Tensor) -> torch.Tensor:
    """(N, 17) candidates [box, keypoints, score] -> (M, 17): BlazeFace's blending suppression.

    Repeatedly: the best remaining candidate and every remaining one with IoU > 0.3 to it form a cluster; the cluster
    becomes the score-weighted mean of its 16 coordinates with the *mean* score of its members (the pinned code;
    MediaPipe's C++ keeps the top score). Output in the order of the clusters' best scores.
    """
    if dets.shape[0] == 0:
        return dets.new_zeros((0, 17))
    remaining = torch.argsort(dets[:, 16], descending=True)
    out = []
    while remaining.numel():
        top = dets[remaining[0]]
        mask = _iou(top[:4], dets[remaining, :4]) > NMS_IOU
        members, remaining = remaining[mask], remaining[~mask]
        d = top.clone()
        if members.numel() > 1:
            s = dets[members, 16:17]
            d[:16] = (dets[members, :16] * s).sum(0) / s.sum()
            d[16] = s.sum() / members.numel()
        out.append(d)
    return torch.stack(out)


def to_frame(dets: torch.Tensor, lb: Letterbox) -> torch.Tensor:
    """Detections in [0, 1] input units -> frame pixels (y, x of boxes; x, y of keypoints); the score is kept (the
    pinned code's ``denormalize_detections`` also maps the score column as an x coordinate: its ``4::2`` slice
    reaches index 16)."""
    d = dets.clone()
    s = lb.scale * 256
    d[:, [0, 2]] = dets[:, [0, 2]] * s - lb.pad[0]
    d[:, [1, 3]] = dets[:, [1, 3]] * s - lb.pad[1]
    d[:, 4:16:2] = dets[:, 4:16:2] * s - lb.pad[1]
    d[:, 5:16:2] = dets[:, 5:16:2] * s - lb.pad[0]
    return d


def detection_roi(dets: torch.Tensor) -> torch.Tensor:
    """(N, 17) frame-pixel detections -> (N, 4) rotated ROIs [xc, yc, size, theta] for the face mesh.

    Centre of the box, size = 1.5 x the box's width, theta = the angle of the line from keypoint 0 (the person's right
    eye) to keypoint 1 (the left eye): 0 for an upright face.
    """
    xc = (dets[:, 1] + dets[:, 3]) / 2
    yc = (dets[:, 0] + dets[:, 2]) / 2
    size = (dets[:, 3] - dets[:, 1]) * ROI_SCALE
    theta = torch.atan2(dets[:, 7] - dets[:, 5], dets[:, 6] - dets[:, 4])
    return torch.stack([xc, yc, size, theta], 1)


class BlazeFace:
    """The detector with its pre/post-processing: ``detect(frames)`` -> per frame (N, 17) detections in frame pixels."""

    def __init__(self, folder: str | Path | None = None, device: str | torch.device = "cpu"):
        net, anchors = load_blazeface(folder)
        self.net, self.anchors = net.to(device), anchors.to(device)
        for p in self.net.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def detect(self, frames: list[np.ndarray]) -> list[torch.Tensor]:
        from facesketch.data.images import image_bounds_problem

        if not frames:
            return []
        ins, boxes = [], []
        for f in frames:
            problem = image_bounds_problem(f.shape[1], f.shape[0])
            if problem:
                raise UserError(f"face detection: {problem}")
            img, lb = letterbox(np.ascontiguousarray(f[..., :3]))
            ins.append(img)
            boxes.append(lb)
        x = torch.from_numpy(np.stack(ins)).to(self.anchors.device).permute(0, 3, 1, 2).float() / 255.0
        reg, cls = self.net(x)
        dec, sc = decode(reg, self.anchors), scores(cls)
        out = []
        for i, lb in enumerate(boxes):
            keep = sc[i] >= MIN_SCORE
            cand = torch.cat([dec[i, keep], sc[i, keep, None]], 1)
            out.append(to_frame(weighted_nms(cand), lb))
        return out


# ============================================================================================== landmarks
def roi_affine(roi: torch.Tensor, size: int = LANDMARK_SIZE) -> torch.Tensor:
    """(N, 4) ROIs -> (N, 2, 3) affines mapping crop pixels (x, y, 1) to frame pixels: the unit square's corners
    (-1, -1), (-1, 1), (1, -1) scaled by size/2, rotated by theta and centred on (xc, yc) land on crop pixels (0, 0),
    (0, size-1), (size-1, 0)."""
    xc, yc, s, th = roi.unbind(1)
    c, n = torch.cos(th), torch.sin(th)
    half = s / 2
    # corner (u, v) in [-1, 1]^2 -> frame: R (half u, half v) + centre; crop pixel p = (u + 1) (size - 1) / 2
    k = 2.0 / (size - 1)
    a = torch.stack([
        torch.stack([c * half * k, -n * half * k, xc - c * half + n * half], -1),
        torch.stack([n * half * k, c * half * k, yc - n * half - c * half], -1),
    ], 1)  # fmt: skip
    return a


def crop_faces(frame: torch.Tensor, affines: torch.Tensor, size: int = LANDMARK_SIZE) -> torch.Tensor:
    """Differentiable ROI crops: frame (3, H, W) (or (N, 3, H, W), one per affine) in [0, 1] -> (N, 3, size, size),
    bilinear, zeros outside (gradients flow into the frame's pixels)."""
    n = affines.shape[0]
    if frame.dim() == 3:
        frame = frame.unsqueeze(0).expand(n, -1, -1, -1)
    h, w = frame.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(size, dtype=frame.dtype, device=frame.device),
                            torch.arange(size, dtype=frame.dtype, device=frame.device), indexing="ij")  # fmt: skip
    pix = torch.stack([xs, ys, torch.ones_like(xs)], -1).reshape(-1, 3)  # (size*size, 3)
    fx = pix @ affines.to(frame.dtype).transpose(1, 2)  # (N, size*size, 2) frame pixels
    gx = fx[..., 0] / (w - 1) * 2 - 1
    gy = fx[..., 1] / (h - 1) * 2 - 1
    grid = torch.stack([gx, gy], -1).reshape(n, size, size, 2)
    return F.grid_sample(frame, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def landmarks_to_frame(landmarks: torch.Tensor, affines: torch.Tensor, size: int = LANDMARK_SIZE) -> torch.Tensor:
    """(N, 468, 3) landmarks in crop units -> frame pixels for x, y (through the ROI affine); z unchanged."""
    xy = landmarks[..., :2] * size
    xy1 = torch.cat([xy, torch.ones_like(xy[..., :1])], -1)
    return torch.cat([xy1 @ affines.transpose(1, 2), landmarks[..., 2:]], -1)
