"""The Table II grid: the same FS2K test photos through several runs, one row per run, photo and artist on top.

    python scripts/ablation_grid.py --fs2k ../shared/data/FS2K --out docs/images/table2_grid.png \
        "w/o edge & normal=runs/t2-none" "w/o edge=runs/t2-no-edge" ... [--n 6]

Each run is LABEL=RUN_OR_EXPORT; the photos are evenly spread over the test split (the same for every row), each
translated at the model's own size with the whole photo (no face path: FS2K photos are face crops already).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from facesketch.data.fs2k import load_split  # noqa: E402
from facesketch.data.images import load_rgb, save_image_atomic  # noqa: E402
from facesketch.evaluation.during_training import spread_subset  # noqa: E402
from facesketch.inference import Translator  # noqa: E402
from facesketch.report.grids import label_image, tile  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fs2k", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--size", type=int, default=160, help="tile size in the grid (px)")
    ap.add_argument("runs", nargs="+", metavar="LABEL=RUN")
    a = ap.parse_args(argv)
    recs = spread_subset([r for r in load_split(a.fs2k, "test") if r.photo and r.sketch], a.n)
    photos = [np.asarray(load_rgb(r.photo)) for r in recs]

    def fit(img: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(img).convert("RGB").resize((a.size, a.size), Image.BICUBIC))

    rows = [[label_image(fit(p), "photo" if i == 0 else "") for i, p in enumerate(photos)],
            [label_image(fit(np.asarray(load_rgb(r.sketch))), "artist" if i == 0 else "") for i, r in enumerate(recs)]]  # fmt: skip
    for item in a.runs:
        label, _, path = item.partition("=")
        if not path:
            ap.error(f"{item}: expected LABEL=RUN_OR_EXPORT")
        outs = Translator.from_path(path).translate_arrays(photos)
        rows.append([label_image(fit(o), label if i == 0 else "") for i, o in enumerate(outs)])
    a.out.parent.mkdir(parents=True, exist_ok=True)
    save_image_atomic(Image.fromarray(tile(rows)), a.out)
    print(f"wrote {a.out} ({len(rows)} rows x {len(photos)} photos: {', '.join(r.image_name for r in recs)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
