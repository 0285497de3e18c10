"""A face-geometry normal estimator that works offline: MediaPipe's face mesh, rasterised into a dense normal map.

A **substitute** for DSINE (whose weights cannot be had offline), not DSINE: it knows the face only (forehead to chin,
cheek to cheek; no hair, ears, neck, clothes or background: those pixels are masked out), at the resolution of a
468-vertex mesh. ``priors.normal_estimator: facemesh`` selects it; ``paper`` always means DSINE.

photo (RGB in [0, 1]) -> face ROI (BlazeFace on the *real* photo; the same ROI is reused for its reconstruction, so
both are seen through the same window) -> 192x192 crop (bilinear, differentiable) -> 468 (x, y, z) landmarks ->
per-triangle normals on MediaPipe's canonical triangulation (898 triangles over the landmarks) -> area-weighted
per-vertex unit normals -> rasterised into a dense map (z-buffered; barycentric interpolation of the vertex normals,
renormalised) and a face mask. Gradients flow from the normals back through the landmark net and the crop into the
image pixels; which triangle covers a pixel is a discrete choice (no gradient), the interpolation weights are not.

Convention: DSINE's (``priors/dsine.py``): a surface facing the camera is (0, 0, 1), one facing image-left has x > 0,
one facing up y > 0. The triangles wind counter-clockwise seen from the front (the obj's convention), so the outward
normal is fixed by the winding: no per-image sign is guessed. Landmark z is MediaPipe's relative depth (smaller =
nearer), scaled to image pixels like x and y.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from facesketch.faces import mediapipe as mp

MIN_FACE_FLAG = 0.5  # the landmark net's face-presence score below which a crop counts as "no face"


def face_normals(v: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
    """(B, V, 3) vertices in image axes (x right, y down, z away from the camera) -> (B, T, 3) outward normals
    in those axes, length = twice the triangle's area (the winding is counter-clockwise seen from the front)."""
    a, b, c = v[:, tri[:, 0]], v[:, tri[:, 1]], v[:, tri[:, 2]]
    return torch.cross(b - a, c - a, dim=-1)


def vertex_normals(v: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
    """(B, V, 3) vertices (image axes) -> (B, V, 3) unit vertex normals in DSINE's convention, area-weighted."""
    fn = -face_normals(v, tri)  # outward in (right, down, away) -> DSINE's (left, up, towards) reading
    vn = torch.zeros_like(v).index_add_(1, tri[:, 0], fn).index_add_(1, tri[:, 1], fn).index_add_(1, tri[:, 2], fn)
    return vn / vn.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def rasterise(xy: np.ndarray, z: np.ndarray, tri: np.ndarray, x0: int, y0: int, h: int, w: int) -> np.ndarray:
    """Which triangle is nearest at each pixel centre of the window [y0, y0 + h) x [x0, x0 + w): (h, w) int64, -1 where
    none. ``xy`` (V, 2) in frame pixels (pixel (i, j) has its centre at x = j, y = i), ``z`` (V,) depth (smaller =
    nearer). Vectorised over (triangle, pixel) pairs of each triangle's bounding box, then a z-buffer by sorting."""
    p = xy[tri]  # (T, 3, 2)
    lo = np.maximum(np.ceil(p.min(1)).astype(np.int64), [x0, y0])
    hi = np.minimum(np.floor(p.max(1)).astype(np.int64), [x0 + w - 1, y0 + h - 1])
    nx, ny = hi[:, 0] - lo[:, 0] + 1, hi[:, 1] - lo[:, 1] + 1
    ok = (nx > 0) & (ny > 0)
    ids = np.full(h * w, -1, dtype=np.int64)
    if not ok.any():
        return ids.reshape(h, w)
    t_idx = np.flatnonzero(ok)
    counts = (nx * ny)[t_idx]
    t = np.repeat(t_idx, counts)
    local = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    px = lo[t, 0] + local % nx[t]
    py = lo[t, 1] + local // nx[t]
    l0, l1, l2 = _barycentric_np(p[t], px.astype(np.float64), py.astype(np.float64))
    eps = -1e-9
    inside = (l0 >= eps) & (l1 >= eps) & (l2 >= eps)
    t, px, py = t[inside], px[inside], py[inside]
    zt = z[tri[t]]
    depth = l0[inside] * zt[:, 0] + l1[inside] * zt[:, 1] + l2[inside] * zt[:, 2]
    pix = (py - y0) * w + (px - x0)
    order = np.lexsort((depth, pix))  # by pixel, nearest first
    pix, t = pix[order], t[order]
    first = np.ones(len(pix), dtype=bool)
    first[1:] = pix[1:] != pix[:-1]
    ids[pix[first]] = t[first]
    return ids.reshape(h, w)


def _barycentric_np(p: np.ndarray, x: np.ndarray, y: np.ndarray):
    x0, x1, x2 = p[:, 0, 0], p[:, 1, 0], p[:, 2, 0]
    y0, y1, y2 = p[:, 0, 1], p[:, 1, 1], p[:, 2, 1]
    det = (y1 - y2) * (x0 - x2) + (x2 - x1) * (y0 - y2)
    det = np.where(np.abs(det) < 1e-12, np.nan, det)  # degenerate triangles cover nothing (NaN is never inside)
    l0 = ((y1 - y2) * (x - x2) + (x2 - x1) * (y - y2)) / det
    l1 = ((y2 - y0) * (x - x2) + (x0 - x2) * (y - y2)) / det
    return l0, l1, 1 - l0 - l1


def _barycentric(pv: torch.Tensor, x: torch.Tensor, y: torch.Tensor):
    """Differentiable barycentric coordinates of points (x, y) in triangles pv (P, 3, >=2)."""
    x0, x1, x2 = pv[:, 0, 0], pv[:, 1, 0], pv[:, 2, 0]
    y0, y1, y2 = pv[:, 0, 1], pv[:, 1, 1], pv[:, 2, 1]
    det = (y1 - y2) * (x0 - x2) + (x2 - x1) * (y0 - y2)
    det = torch.where(det.abs() < 1e-12, torch.full_like(det, 1e-12), det)
    l0 = ((y1 - y2) * (x - x2) + (x2 - x1) * (y - y2)) / det
    l1 = ((y2 - y0) * (x - x2) + (x0 - x2) * (y - y2)) / det
    return l0, l1, 1 - l0 - l1


def render_normals(v: torch.Tensor, vn: torch.Tensor, tri: torch.Tensor, window: tuple[int, int, int, int]):
    """One mesh -> (3, h, w) unit normals (zeros off the face) and its (h, w) bool mask over ``window`` =
    (x0, y0, h, w) of the frame; differentiable in ``v`` (frame pixels) and ``vn``."""
    x0, y0, h, w = window
    vd = v.detach().double().cpu().numpy()
    ids = torch.from_numpy(rasterise(vd[:, :2], vd[:, 2], tri.cpu().numpy(), x0, y0, h, w)).to(v.device)
    mask = ids >= 0
    out = v.new_zeros(3, h, w)
    if not bool(mask.any()):
        return out, mask
    ys, xs = torch.nonzero(mask, as_tuple=True)
    t = tri[ids[ys, xs]]  # (P, 3) vertex indices
    l0, l1, l2 = _barycentric(v[t], (xs + x0).to(v.dtype), (ys + y0).to(v.dtype))
    n = l0[:, None] * vn[t[:, 0]] + l1[:, None] * vn[t[:, 1]] + l2[:, None] * vn[t[:, 2]]
    n = n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    out = out.index_put((torch.arange(3, device=v.device)[:, None], ys[None], xs[None]), n.t())
    return out, mask


class FaceMeshNormals(nn.Module):
    """photo RGB in [0, 1] (B, 3, H, W) -> (normals (B, 3, h, w), mask (B, 1, h, w) float).

    ``rois`` (B, 4): [xc, yc, size, theta] per image in its pixels (a NaN row: no face), as ``detect_rois`` returns
    them; None detects them on ``rgb`` itself. ``windows`` (B, 4) ints [x0, y0, h, w]: render only that part of the
    frame (the training crop inside its load-size photo); None renders the whole frame. Images without a face (no
    detection, or the landmark net's face flag below 0.5) get zero normals and an empty mask.
    """

    def __init__(self, folder: str | Path | None = None, device: str | torch.device = "cpu"):
        super().__init__()
        self.detector = mp.BlazeFace(folder, device=device)
        self.mesh = mp.load_facemesh(folder).to(device)
        self.register_buffer("tri", mp.load_canonical_triangles(folder).to(device), persistent=False)
        for p in self.mesh.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "FaceMeshNormals":  # frozen: always eval
        return super().train(False)

    @torch.no_grad()
    def detect_rois(self, rgb: torch.Tensor) -> torch.Tensor:
        """(B, 4) ROIs of the most confident face of each image (NaN rows where there is none)."""
        frames = [(x.detach().float().clamp(0, 1).permute(1, 2, 0) * 255 + 0.5).to(torch.uint8).cpu().numpy() for x in rgb]
        rois = torch.full((rgb.shape[0], 4), float("nan"), dtype=torch.float32)
        for i, d in enumerate(self.detector.detect(frames)):
            if len(d):
                rois[i] = mp.detection_roi(d[:1])[0]
        return rois.to(rgb.device)

    def landmarks(self, rgb: torch.Tensor, rois: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 468, 3) landmarks in frame pixels (x, y; z scaled alike) and (N,) face-flag scores, for ROI rows."""
        aff = mp.roi_affine(rois.double()).to(rgb.dtype)
        lm, flag = self.mesh(mp.crop_faces(rgb, aff))
        v = mp.landmarks_to_frame(lm, aff)
        scale = rois[:, 2:3].to(rgb.dtype) / (mp.LANDMARK_SIZE - 1)  # frame pixels per crop pixel
        v = torch.cat([v[..., :2], v[..., 2:] * mp.LANDMARK_SIZE * scale[:, None]], -1)
        return v, torch.sigmoid(flag)

    def forward(self, rgb: torch.Tensor, rois: torch.Tensor | None = None, windows: torch.Tensor | None = None):
        b, _, fh, fw = rgb.shape
        if rois is None:
            rois = self.detect_rois(rgb)
        if windows is None:
            windows = torch.tensor([[0, 0, fh, fw]] * b)
        h, w = int(windows[0, 2]), int(windows[0, 3])
        normals, masks = rgb.new_zeros(b, 3, h, w), rgb.new_zeros(b, 1, h, w)
        found = ~torch.isnan(rois).any(1)
        if not bool(found.any()):
            return normals, masks
        idx = torch.nonzero(found, as_tuple=True)[0]
        v, flag = self.landmarks(rgb[idx], rois[idx])
        vn = vertex_normals(v, self.tri)
        outs, ms = [], []
        for k, i in enumerate(idx.tolist()):
            x0, y0 = int(windows[i, 0]), int(windows[i, 1])
            if float(flag[k].detach()) < MIN_FACE_FLAG:
                outs.append(normals[i]), ms.append(torch.zeros(h, w, dtype=torch.bool, device=rgb.device))
                continue
            n, m = render_normals(v[k], vn[k], self.tri, (x0, y0, h, w))
            outs.append(n), ms.append(m)
        normals = normals.index_put((idx,), torch.stack(outs))
        masks = masks.index_put((idx,), torch.stack(ms)[:, None].to(rgb.dtype))
        return normals, masks


def build_facemesh_estimator(folder: str | Path | None = None, device: str | torch.device = "cpu") -> FaceMeshNormals:
    """The frozen face-mesh normal estimator, its files from ``folder`` or the weight cache (sha256-checked)."""
    return FaceMeshNormals(folder, device=device).to(device)
