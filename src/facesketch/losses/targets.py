"""Precomputed pseudo-ground-truth normal maps for the training photos (the library behind `facesketch normals`).

``--estimator dsine`` (default, the paper's) or ``--estimator facemesh`` (the offline substitute: MediaPipe's face mesh
rasterised over the face, zero vectors elsewhere; default folder ROOT/normals-facemesh).

Each photo is resized exactly as the training pipeline resizes it before the random crop (bicubic to
load_size x load_size), DSINE runs on that image (fov-60 intrinsics, final prediction), and the map is saved as
float16 (3, L, L) ``.npy`` under the photo's relative path (plus a ``.png`` preview, RGB = (n+1)/2). The dataset
later crops and flips each map together with its photo. Resumable: finished maps are skipped; a manifest
records the weights' checksum and the settings, and a mismatch refuses to mix maps from different settings.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from facesketch.config import NORMAL_ESTIMATORS
from facesketch.errors import UserError
from facesketch.logs import stdout

MANIFEST = "manifest.json"


def default_normals_dir(root: Path, estimator: str) -> Path:
    """Where ``facesketch normals`` puts an estimator's maps by default: ROOT/normals (DSINE), ROOT/normals-facemesh."""
    return Path(root) / ("normals" if estimator == "dsine" else f"normals-{estimator}")


def _save_npy_atomic(arr: np.ndarray, path: Path) -> None:
    from facesketch.atomic import atomic_output

    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, arr, allow_pickle=False)


def settings_for(size: int, weights_id: str, prediction: int) -> dict:
    """What must match for two maps to be interchangeable."""
    return {"size": int(size), "resize": "PIL bicubic, aspect not kept (CycleGAN resize)", "fov_deg": 60.0,
            "prediction": int(prediction), "weights": weights_id, "dtype": "float16", "layout": "(3, H, W) x right, y down, z to camera"}  # fmt: skip


def facemesh_settings(size: int) -> dict:
    """What must match for two face-mesh maps to be interchangeable (the pinned files, the resize, the layout)."""
    from facesketch.faces.mediapipe import SHA256

    return {"estimator": "facemesh", "size": int(size), "resize": "PIL bicubic, aspect not kept (CycleGAN resize)",
            "files": {k: SHA256[k] for k in sorted(SHA256)}, "dtype": "float16",
            "layout": "(3, H, W) DSINE's convention; zero vectors off the face (the mask)"}  # fmt: skip


def _weights_id(weights: str | None, synthetic_seed: int | None) -> tuple[str, str | None]:
    """(id for the manifest, resolved weights path or None)."""
    if synthetic_seed is not None:
        return f"synthetic:{synthetic_seed}", None
    from facesketch.download import sha256_file

    if weights:
        p = Path(weights)
        if not p.is_file():
            raise UserError(f"--dsine-weights {p}: file not found")
    else:
        from facesketch.priors.weights import resolve

        p = resolve("dsine")
    return f"sha256:{sha256_file(p)}", str(p)


def precompute_normals(root: str | Path, out: str | Path | None = None, *, size: int = 286, split: str = "train",
                       source: str = "auto", weights: str | None = None, synthetic_seed: int | None = None,
                       prediction: int = -1, batch_size: int = 4, device: str = "cpu", limit: int = 0,
                       previews: bool = True, progress: bool = True, estimator: str = "dsine",
                       mediapipe_dir: str | None = None) -> dict:  # fmt: skip
    """Compute (or finish computing) the normal maps of ``split``'s photos; returns counts {'done', 'skipped', 'total',
    'unreadable'} (and 'no_face' for the face-mesh estimator: photos whose map is empty)."""
    import torch
    from PIL import Image
    from tqdm import tqdm

    from facesketch.data.datasets import discover, target_path
    from facesketch.data.images import UnreadableImageError, load_rgb_array, save_image_atomic
    from facesketch.priors.dsine import build_normal_estimator, normals_to_rgb

    if estimator not in NORMAL_ESTIMATORS:
        raise UserError(f"estimator {estimator!r}: use one of {', '.join(NORMAL_ESTIMATORS)}")
    root = Path(root)
    out = Path(out) if out else default_normals_dir(root, estimator)
    files = discover(root, split, source)
    if limit < 0:
        raise UserError(f"limit {limit}: use 0 (all photos) or a positive count", arg="limit")
    photos = files.A[:limit] if limit else files.A
    if estimator == "facemesh":
        settings = facemesh_settings(size)
    else:
        wid, wpath = _weights_id(weights, synthetic_seed)
        settings = settings_for(size, wid, prediction)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UserError(f"--out {out}: not writable ({e.strerror}); pass --out to a writable folder "
                        f"and train with data.normals_dir=THAT_FOLDER") from None  # fmt: skip
    mpath = out / MANIFEST
    if mpath.exists():
        old = json.loads(mpath.read_text())
        if old.get("settings") != settings:
            raise UserError(f"{mpath}: existing maps were computed with other settings ({old.get('settings')}); "
                            f"use another --out, or delete {out} to recompute")  # fmt: skip
    todo = [p for p in photos if not target_path(out, root, p).is_file()]
    counts = {"total": len(photos), "skipped": len(photos) - len(todo), "done": 0, "unreadable": 0}
    if estimator == "facemesh":
        counts["no_face"] = 0
    if todo:
        dev = torch.device(device)
        if estimator == "facemesh":
            from facesketch.faces.normals import build_facemesh_estimator

            fm = build_facemesh_estimator(mediapipe_dir, device=dev)
            est = lambda x: fm(x)[0]  # noqa: E731  (normals; the mask is where they are non-zero)
        else:
            est = build_normal_estimator(wpath, synthetic_seed=synthetic_seed, prediction=prediction, device=dev)
        bar = tqdm(total=len(todo), desc="normals", unit="img", disable=not progress)
        for i in range(0, len(todo), batch_size):
            chunk, imgs = [], []
            for p in todo[i : i + batch_size]:
                try:
                    imgs.append(load_rgb_array(p, (size, size)))
                    chunk.append(p)
                except UnreadableImageError as e:
                    counts["unreadable"] += 1
                    stdout().info(f"warning: skipping {e}")
            if chunk:
                x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float().div(255).to(dev)
                with torch.no_grad():
                    n = est(x).float().cpu().numpy()
                for p, m in zip(chunk, n):
                    if "no_face" in counts and not np.any(m):
                        counts["no_face"] += 1
                    dest = target_path(out, root, p)
                    _save_npy_atomic(m.astype(np.float16), dest)
                    if previews:
                        save_image_atomic(Image.fromarray(normals_to_rgb(m)), dest.with_suffix(".png"))
                    counts["done"] += 1
            bar.update(len(todo[i : i + batch_size]))
        bar.close()
    manifest = {"settings": settings, "dataset_root": str(root.resolve()), "split": split, "count": len(photos) - counts["unreadable"],
                "tool": "facesketch normals"}  # fmt: skip
    if "no_face" in counts:
        old_no_face = json.loads(mpath.read_text()).get("no_face", 0) if mpath.exists() else 0
        manifest["no_face"] = old_no_face + counts["no_face"]
    from facesketch.atomic import atomic_write_text

    atomic_write_text(mpath, json.dumps(manifest, indent=1))
    return counts
