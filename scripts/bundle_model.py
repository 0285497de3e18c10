"""Make a trained run the default model shipped inside the package (float16 safetensors, G_A and G_B + config).

Usage: python scripts/bundle_model.py RUN_OR_EXPORT [--image-size N] [--note "what this model is"]
Writes src/facesketch/assets/fs2k-default.safetensors and its sha256 into src/facesketch/default_model.py.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))

from facesketch import default_model  # noqa: E402
from facesketch.models.export_file import export_generators  # noqa: E402
from facesketch.translate.load import load_translator

LIMIT_MB = 30


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--note", default="", help="stored in the export's config as 'note'")
    ap.add_argument("--image-size", type=int, default=0,
                    help="the size the model translates at, carried by the export (default: the run's model.image_size)")
    args = ap.parse_args()
    if args.image_size and not (16 <= args.image_size <= 4096 and args.image_size % 4 == 0):
        ap.error(f"--image-size {args.image_size}: give a multiple of 4 from 16 to 4096 (as model.image_size)")
    a, b = load_translator(args.model, "AtoB"), load_translator(args.model, "BtoA")
    if args.image_size:
        a.size = args.image_size
    meta = dict(a.meta, name=default_model.NAME, image_size=a.size)
    if args.note:
        meta["note"] = args.note
    dest = SRC / "facesketch" / "assets" / default_model.FILENAME
    export_generators(dest, {"G_A": a.G, "G_B": b.G}, meta, half=True)
    size_mb = dest.stat().st_size / 2**20
    if size_mb > LIMIT_MB:
        dest.unlink()
        print(f"error: {size_mb:.1f} MB is over the {LIMIT_MB} MB limit for a bundled model", file=sys.stderr)
        return 1
    digest = default_model.sha256_file(dest)
    code = SRC / "facesketch" / "default_model.py"
    text, n = re.subn(r'^SHA256 = "[0-9a-f]{64}"$', f'SHA256 = "{digest}"', code.read_text(), flags=re.M)
    if n != 1:
        print(f"error: no SHA256 line in {code}", file=sys.stderr)
        return 1
    code.write_text(text)
    print(f"wrote {dest} ({size_mb:.2f} MB, sha256 {digest}); updated {code.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
