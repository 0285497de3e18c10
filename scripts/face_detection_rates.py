"""Detection rates of the face path's detectors: Haar (faces.FaceDetector) vs BlazeFace (faces.blazeface).

    python scripts/face_detection_rates.py --fs2k ../shared/data/FS2K [--mediapipe-dir DIR] [--limit N] [--scenes 60]

1. FS2K test photos (one person each), per photo folder: the share with at least one face and with more than one.
2. Synthetic wide shots with a known answer: 1-3 FS2K test photos, each shrunk so that its face is 6-18 % of a
   1600 x 1000 frame's width, pasted onto another FS2K photo, enlarged, cut into 10 x 10 shuffled blocks and blurred (no face of its own).
   A detection whose centre lies inside a pasted photo finds that face (once); a second one inside the same photo
   is a duplicate; one outside every pasted photo is spurious. Seeded, so every run draws the same scenes.
Each detector is timed per image on this machine (one thread).
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from facesketch.data.fs2k import load_split  # noqa: E402
from facesketch.data.images import load_rgb  # noqa: E402
from facesketch.faces import FaceDetector  # noqa: E402
from facesketch.faces.blazeface import BlazeFaceDetector  # noqa: E402


def scene(rng: np.random.Generator, photos: list[np.ndarray], background: np.ndarray, w: int = 1600, h: int = 1000):
    """A synthetic wide shot: (frame, [(x, y, side) of each pasted photo])."""
    # the background photo cut into 10 x 10 blocks, shuffled (no face layout left) and blurred
    bg = np.asarray(Image.fromarray(background).convert("RGB").resize((w, h), Image.BICUBIC))
    bh, bw = h // 10, w // 10
    blocks = [bg[i * bh : (i + 1) * bh, j * bw : (j + 1) * bw] for i in range(10) for j in range(10)]
    order = rng.permutation(len(blocks))
    bg = np.concatenate([np.concatenate([blocks[order[i * 10 + j]] for j in range(10)], 1) for i in range(10)], 0)
    small = Image.fromarray(bg).resize((w // 20, h // 20), Image.BOX)
    frame = np.asarray(small.resize((w, h), Image.BICUBIC)).copy()
    k = len(photos)
    places = []
    for j, p in enumerate(photos):
        side = int(w * rng.uniform(0.06, 0.18) / 0.608)  # FS2K faces are ~0.61 of the photo's width
        side = min(side, w // k - 4, h - 4)
        x = int(j * w / k + rng.uniform(0, w / k - side))
        y = int(rng.uniform(0, h - side))
        frame[y : y + side, x : x + side] = np.asarray(Image.fromarray(p).convert("RGB").resize((side, side), Image.BICUBIC))
        places.append((x, y, side))
    return frame, places


def score(faces, places) -> tuple[int, int, int]:
    """(found, duplicates, spurious) of detections (Face list) against the pasted photos."""
    hit, dup, spur = set(), 0, 0
    for f in faces:
        cx, cy = f.center
        inside = [i for i, (x, y, s) in enumerate(places) if x <= cx <= x + s and y <= cy <= y + s]
        if not inside:
            spur += 1
        elif inside[0] in hit:
            dup += 1
        else:
            hit.add(inside[0])
    return len(hit), dup, spur


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fs2k", type=Path, required=True)
    ap.add_argument("--mediapipe-dir", type=Path, default=None)
    ap.add_argument("--limit", type=int, default=0, help="FS2K test photos per folder (0: all)")
    ap.add_argument("--scenes", type=int, default=60)
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    dets = {"haar": FaceDetector(), "blazeface": BlazeFaceDetector(a.mediapipe_dir),
            "blazeface whole frame": BlazeFaceDetector(a.mediapipe_dir, tile_fractions=())}  # fmt: skip
    recs = [r for r in load_split(a.fs2k, "test") if r.photo]
    groups: dict[str, list] = collections.defaultdict(list)
    for r in recs:
        if not a.limit or len(groups[r.photo.parent.name]) < a.limit:
            groups[r.photo.parent.name].append(r)
    seconds = collections.Counter()
    images = 0
    print("FS2K test photos: share with >= 1 face / with > 1 face")
    print("| folder | photos | " + " | ".join(dets) + " |")
    print("|---|---|" + "---|" * len(dets))
    for g, rs in sorted(groups.items()):
        cells = []
        counts = {n: [0, 0] for n in dets}
        for r in rs:
            img = np.asarray(load_rgb(r.photo))
            images += 1
            for n, d in dets.items():
                t0 = time.perf_counter()
                k = len(d.detect(img))
                seconds[n] += time.perf_counter() - t0
                counts[n][0] += k >= 1
                counts[n][1] += k > 1
        for n in dets:
            cells.append(f"{100 * counts[n][0] / len(rs):.1f} % / {100 * counts[n][1] / len(rs):.1f} %")
        print(f"| {g} | {len(rs)} | " + " | ".join(cells) + " |")

    rng = np.random.default_rng(0)
    pool = [r for rs in groups.values() for r in rs]
    total = collections.Counter()
    for _ in range(a.scenes):
        k = int(rng.integers(1, 4))
        picks = rng.choice(len(pool), k + 1, replace=False)
        frame, places = scene(rng, [np.asarray(load_rgb(pool[i].photo)) for i in picks[:k]], np.asarray(load_rgb(pool[picks[k]].photo)))
        total["faces"] += k
        images += 1
        for n, d in dets.items():
            t0 = time.perf_counter()
            found, dup, spur = score(d.detect(frame), places)
            seconds[n + " (wide)"] += time.perf_counter() - t0
            total[n, "found"] += found
            total[n, "dup"] += dup
            total[n, "spur"] += spur
    print(f"\nsynthetic wide shots: {a.scenes} frames, {total['faces']} faces")
    print("| detector | found | duplicates | spurious | s per FS2K photo | s per wide shot |")
    print("|---|---|---|---|---|---|")
    n_photos = sum(len(rs) for rs in groups.values())
    for n in dets:
        print(f"| {n} | {total[n, 'found']} ({100 * total[n, 'found'] / total['faces']:.1f} %) | {total[n, 'dup']} | "
              f"{total[n, 'spur']} | {seconds[n] / n_photos:.3f} | {seconds[n + ' (wide)'] / a.scenes:.3f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
