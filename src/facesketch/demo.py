"""`make demo`: train a small model on FS2K for a few minutes, translate test photos, write runs/demo/index.html.

Run as ``python -m facesketch.demo [--out runs/demo] [--minutes 4]``. Needs FS2K at $FS2K_ROOT or
../shared/data/FS2K; downloads nothing.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

MARKER = ".facesketch-demo"


def pick_test_records(root: Path, n_photo1: int = 6, n_photo3: int = 2):
    from facesketch.data import fs2k

    recs = [r for r in fs2k.load_split(root, "test") if r.photo and r.sketch]
    return [r for r in recs if r.source == "photo1"][:n_photo1] + [r for r in recs if r.source == "photo3"][:n_photo3]


def build_page(out: Path, run: Path, records, translator, minutes: float) -> Path:
    from facesketch.data.images import load_rgb
    from facesketch.report import html as H
    from facesketch.report.grids import attention_panel, label_image, tile
    from facesketch.report.plots import plot_losses
    from facesketch.training.stats import read_stats

    photos = [np.asarray(load_rgb(r.photo)) for r in records]
    sketches, masks = translator.translate_arrays(photos, return_attention=True)
    size = translator.size
    show = max(size, 128)  # small demo models are shown enlarged
    fit = lambda a: np.asarray(Image.fromarray(a).resize((show, show), Image.BICUBIC))  # noqa: E731
    rows = [[label_image(fit(p), "photo") for p in photos],
            [label_image(fit(s), "facesketch") for s in sketches],
            [label_image(fit(np.asarray(load_rgb(r.sketch))), "artist") for r in records]]  # fmt: skip
    grid = tile(rows)
    small = lambda a: np.asarray(Image.fromarray(a).resize((size, size), Image.BICUBIC))  # noqa: E731
    (out / "sketches").mkdir(exist_ok=True)
    for r, s in zip(records, sketches):
        Image.fromarray(s).save(out / "sketches" / f"{r.id}.png")
    Image.fromarray(grid).save(out / "grid.png")
    stats = read_stats(run / "stats.jsonl")
    curves = plot_losses(stats, out / "losses.png", title="demo training")
    panels = [attention_panel(small(p), m, s) for p, m, s in zip(photos[:3], masks[:3], sketches[:3]) if m is not None]
    last = stats[-1] if stats else {}
    body = [
        "<h1>facesketch demo</h1>",
        f"<p>A small attention-guided CycleGAN ({H.esc(translator.meta['generator'])}, ngf {translator.meta['ngf']}, "
        f"{size}&times;{size}) trained on FS2K for {minutes:.1f} minutes on this machine's CPU "
        f"({last.get('step', 0)} steps). This is a smoke-scale stand-in for the paper's 150-epoch, 256&times;256 "
        "training: it shows the pipeline end to end, not the paper's quality.</p>",
        "<h2>FS2K test photos &rarr; sketches</h2><p class=muted>top: photo, middle: generated sketch, bottom: the artist's sketch.</p>",
        H.img(grid),
        "<h2>Attention masks</h2><p class=muted>The generator blends 9 content images with 9 foreground masks and copies "
        "the input through the background mask (bg); numbers are mean mask weights.</p>",
        *[H.img(p) for p in panels],
        "<h2>Loss curves</h2>",
        H.img(curves) if curves else "<p>no statistics recorded</p>",
        f"<h2>Files</h2><p>training run: <code>{H.esc(run)}</code> (checkpoints, samples, stats.jsonl, export); "
        f"sketches: <code>{H.esc(out / 'sketches')}</code>; translate more photos with "
        f"<code>facesketch translate --model {H.esc(run)} --out OUT PHOTO...</code></p>",
    ]
    return H.write_page(out / "index.html", "facesketch demo", "\n".join(body))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m facesketch.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/demo", help="demo folder (replaced if it holds an earlier demo)")
    ap.add_argument("--minutes", type=float, default=4.0, help="training time budget (default 4)")
    ap.add_argument("--fs2k", help="FS2K root (default: $FS2K_ROOT, else ../shared/data/FS2K)")
    args = ap.parse_args(argv)

    from facesketch.config import load_config
    from facesketch.data import fs2k
    from facesketch.errors import UserError
    from facesketch.training.loop import train
    from facesketch.translate import Translator

    root = fs2k.find_root(args.fs2k)
    if root is None:
        print(f"demo: {fs2k.FS2K_HOWTO}, then run `make demo` again", file=sys.stderr)
        return 2
    out = Path(args.out)
    if out.exists():
        if not (out / MARKER).exists():
            print(f"demo: {out} exists and was not made by the demo; pass another --out", file=sys.stderr)
            return 2
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("made by python -m facesketch.demo\n")
    t0 = time.time()
    try:
        cfg = load_config("demo", [f"data.root={root}", f"train.max_minutes={args.minutes}"])
        train(cfg, out / "run")
        records = pick_test_records(root)
        page = build_page(out, out / "run", records, Translator.from_path(out / "run"), (time.time() - t0) / 60)
    except UserError as e:
        print(f"demo: error: {e}", file=sys.stderr)
        return 2
    print(f"\ndemo finished in {(time.time() - t0) / 60:.1f} min: open {page.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
