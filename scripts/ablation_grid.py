"""The Table II grid: the same FS2K test photos through several runs, one row per run, photo and artist on top.

    python scripts/ablation_grid.py --fs2k ../shared/data/FS2K --out docs/images/table2_grid.png \
        "w/o edge & normal=runs/t2-none" "w/o edge=runs/t2-no-edge" ... [--n 6]

Each run is LABEL=RUN_OR_EXPORT; the photos are evenly spread over the test split (the same for every row), each
translated at the model's own size with the whole photo (no face path: FS2K photos are face crops already).

A row may also come from a grid this script wrote earlier, for a run whose model is no longer at hand:
LABEL=GRID.png#K takes that grid's K-th model row (1 = the first row under photo and artist). It is accepted
only if the earlier grid has the same layout and its photo and artist rows equal the ones rendered now pixel for
pixel (same photos, same order, same tile size); the row keeps its pixels and gets the new label.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from facesketch.data.fs2k import load_split  # noqa: E402
from facesketch.data.images import load_rgb, save_image_atomic  # noqa: E402
from facesketch.evaluation.during_training import spread_subset  # noqa: E402
from facesketch.report.grids import LABEL_H, label_image, tile  # noqa: E402
from facesketch.translate.load import load_translator


def row_from_grid(grid_png: Path, k: int, top: list[list[np.ndarray]], pad: int = 2) -> list[np.ndarray]:
    """The K-th model row of an earlier grid, as cells, after checking its photo and artist rows equal ``top``."""
    if not grid_png.is_file():
        raise ValueError(f"no such grid {grid_png}")
    g = np.asarray(Image.open(grid_png).convert("RGB"))
    h, w = top[0][0].shape[:2]
    ncol = len(top[0])
    nrow = (g.shape[0] - pad) // (h + pad)
    if g.shape[1] != ncol * (w + pad) + pad or g.shape[0] != nrow * (h + pad) + pad:
        raise ValueError(f"{grid_png} is {g.shape[1]}x{g.shape[0]}, not a grid of {ncol} tiles of {w}x{h} per row")
    if not 1 <= k <= nrow - 2:
        raise ValueError(f"{grid_png} has {nrow - 2} model rows; #{k} is not one of them")

    def cells(i: int) -> list[np.ndarray]:
        y = pad + i * (h + pad)
        return [g[y : y + h, pad + j * (w + pad) : pad + j * (w + pad) + w].copy() for j in range(ncol)]

    for i, name in ((0, "photo"), (1, "artist")):
        if any(not np.array_equal(c, t) for c, t in zip(cells(i), top[i])):
            raise ValueError(f"the {name} row of {grid_png} differs from the one rendered now (other photos or size)")
    return cells(k + 1)


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
            ap.error(f"{item}: expected LABEL=RUN_OR_EXPORT or LABEL=GRID.png#K")
        earlier = re.fullmatch(r"(.+\.png)#(\d+)", path)
        if earlier:
            try:
                cells = row_from_grid(Path(earlier.group(1)), int(earlier.group(2)), rows[:2])
            except ValueError as e:
                ap.error(f"{item}: {e}")
            cells[0][:LABEL_H] = label_image(cells[0][LABEL_H:], label)[:LABEL_H]  # the new label strip
            rows.append(cells)
            continue
        outs = load_translator(path).translate_arrays(photos)
        rows.append([label_image(fit(o), label if i == 0 else "") for i, o in enumerate(outs)])
    a.out.parent.mkdir(parents=True, exist_ok=True)
    save_image_atomic(Image.fromarray(tile(rows)), a.out)
    print(f"wrote {a.out} ({len(rows)} rows x {len(photos)} photos: {', '.join(r.image_name for r in recs)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
