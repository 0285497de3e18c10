"""The figures of a drawing for folders of sketches: mean chroma, 2-pixel-period (checkerboard) energy, white-paper share.

Usage: python scripts/drawing_figures.py [FOLDER ...] [--artists] [--fs2k ROOT] [--every N] [--json OUT]
Each FOLDER is measured on its image files (sorted; every N-th with --every); --artists measures the artists' sketches of
the FS2K test split (every N-th record). Definitions: facesketch.evaluation.drawing. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from facesketch.data import fs2k  # noqa: E402
from facesketch.data.images import is_image_file  # noqa: E402
from facesketch.evaluation.drawing import folder_figures  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="*", type=Path, help="folders of sketches (e.g. an evaluate --out's predictions/)")
    ap.add_argument("--artists", action="store_true", help="also the artists' sketches of the FS2K test split")
    ap.add_argument("--fs2k", default=None, help="FS2K root (default: $FS2K_ROOT or ../shared/data/FS2K)")
    ap.add_argument("--every", type=int, default=1, help="measure every N-th image (default 1: all)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args()
    if args.every < 1:
        ap.error("--every must be >= 1")
    sets: list[tuple[str, list[Path]]] = []
    for folder in args.folders:
        if not folder.is_dir():
            ap.error(f"{folder}: not a folder")
        sets.append((str(folder), sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))[:: args.every]))
    if args.artists:
        root = fs2k.find_root(args.fs2k)
        if root is None:
            ap.error(fs2k.FS2K_HOWTO)
        sets.append(("artists (FS2K test)", [r.sketch for r in fs2k.load_split(root, "test") if r.sketch][:: args.every]))
    if not sets:
        ap.error("give folders and/or --artists")
    rows = []
    print("| sketches | n | mean chroma | 2-px energy (x1e-3) | white paper (> 230) |\n|---|---|---|---|---|")
    for name, paths in sets:
        f = folder_figures(paths)
        rows.append({"name": name, **f})
        print(f"| {name} | {f['n']} | {f['chroma']:.2f} | {f['checker_energy'] * 1e3:.3f} | {f['paper_share']:.3f} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
