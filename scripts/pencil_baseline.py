"""The pencil-filter baseline of docs/results.md: colour-dodge sketches of FS2K test photos, then `facesketch evaluate`.

Usage: python scripts/pencil_baseline.py --out runs/pencil [--fs2k DIR] [--sigma 8]
Writes OUT/predictions/<id>.png (one per test photo, at the photo's size) and runs the evaluation into OUT/eval.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from tqdm import tqdm  # noqa: E402

from facesketch.data import fs2k  # noqa: E402
from facesketch.data.images import load_rgb_array, save_image_atomic  # noqa: E402
from facesketch.evaluation.baselines import pencil_sketch  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--fs2k", default=None)
    ap.add_argument("--sigma", type=float, default=8.0)
    args = ap.parse_args()
    root = fs2k.find_root(args.fs2k)
    if root is None:
        print(f"error: {fs2k.FS2K_HOWTO}", file=sys.stderr)
        return 2
    recs = [r for r in fs2k.load_split(root, "test") if r.photo and r.sketch]
    pred = args.out / "predictions"
    for r in tqdm(recs, desc="pencil", unit="img"):
        save_image_atomic(pencil_sketch(load_rgb_array(r.photo), args.sigma), pred / f"{r.id}.png")
    cmd = [sys.executable, "-m", "facesketch", "evaluate", "--pred", str(pred), "--fs2k", str(root), "--out",
           str(args.out / "eval"), "--label", f"pencil filter (sigma {args.sigma:g})"]  # fmt: skip
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main())
