"""`make demo`: the default model on FS2K test photos, photos that are not FS2K's, and pictures that are not faces.

Run as ``python -m facesketch.demo [--out runs/demo] [--model default]``: it translates (no training) with the
model shipped inside the package and writes ``OUT/index.html``: FS2K test photos beside the pencil filter and
the artists' sketches, attention masks, a wide shot and a group of several faces through the face path
(detect, align, sketch, paste back), a portrait that is not from FS2K, non-face pictures (the paper's Fig. 7)
and sketches translated back to photos. About a minute on a 2-core CPU.

``python -m facesketch.demo --train [--out runs/demo-train] [--minutes 4]`` (`make demo-train`) trains a small
model for a few minutes instead and shows it the same way it did before the default model existed.
Both need FS2K at $FS2K_ROOT or ../shared/data/FS2K and download nothing.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from facesketch import run_layout as layout

MARKER = ".facesketch-demo"
SHOW = 256  # display size of the grid cells


def pick_test_records(root: Path, n_photo1: int = 6, n_photo3: int = 2):
    from facesketch.data import fs2k

    recs = [r for r in fs2k.load_split(root, "test") if r.photo and r.sketch]
    return [r for r in recs if r.source == "photo1"][:n_photo1] + [r for r in recs if r.source == "photo3"][:n_photo3]


def build_page(out: Path, run: Path, records, translator, minutes: float) -> Path:
    from facesketch.data.images import load_rgb
    from facesketch.report import html as H
    from facesketch.report.grids import attention_panel, label_image, tile
    from facesketch.report.plots import plot_losses

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
    stats = layout.read_stats(run / layout.STATS)
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
        "the input through the background mask; numbers are mean mask weights.</p>",
        *[H.img(p) for p in panels],
        "<h2>Loss curves</h2>",
        H.img(curves) if curves else "<p>no statistics recorded</p>",
        f"<h2>Files</h2><p>training run: <code>{H.esc(run)}</code> (checkpoints, samples, stats.jsonl, export); "
        f"sketches: <code>{H.esc(out / 'sketches')}</code>; translate more photos with "
        f"<code>facesketch translate --model {H.esc(run)} --out OUT PHOTO...</code></p>",
    ]
    return H.write_page(out / "index.html", "facesketch demo", "\n".join(body))


def spread_test_records(root: Path, per_source: int = 6):
    """``per_source`` FS2K test records from each source of the test split, evenly spread over each (FS2K's test
    split holds photo1 and photo3 only: photo2's photos are all in the training split)."""
    from facesketch.data import fs2k

    recs = [r for r in fs2k.load_split(root, "test") if r.photo and r.sketch]
    out = []
    from facesketch.evaluation.during_training import spread_subset

    for src in sorted({r.source for r in recs}):
        out += spread_subset([r for r in recs if r.source == src], per_source)
    return out


def _fit(a: np.ndarray, h: int = SHOW) -> np.ndarray:
    """Resize to height ``h`` keeping the aspect ratio; grey becomes RGB."""
    a = np.asarray(a, dtype=np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    w = max(1, round(a.shape[1] * h / a.shape[0]))
    return np.asarray(Image.fromarray(a).resize((w, h), Image.BICUBIC))


def _sq(a: np.ndarray) -> np.ndarray:
    a = _fit(a)
    return np.asarray(Image.fromarray(a).resize((SHOW, SHOW), Image.BICUBIC)) if a.shape[1] != SHOW else a


def _row(images: list[np.ndarray], pad: int = 2) -> np.ndarray:
    """Images of one height side by side (each keeps its width)."""
    h = max(im.shape[0] for im in images)
    out = np.full((h + 2 * pad, sum(im.shape[1] + pad for im in images) + pad, 3), 255, np.uint8)
    x = pad
    for im in images:
        out[pad : pad + im.shape[0], x : x + im.shape[1]] = im
        x += im.shape[1] + pad
    return out


def _column(rows: list[np.ndarray]) -> np.ndarray:
    """Rows of any width stacked, left-aligned on white."""
    w = max(r.shape[1] for r in rows)
    return np.concatenate([np.pad(r, ((0, 0), (0, w - r.shape[1]), (0, 0)), constant_values=255) for r in rows])


def group_photo(records) -> np.ndarray:
    """Three FS2K portraits on a plain backdrop, at three sizes (FS2K has no group photos)."""
    from facesketch.data.images import load_rgb

    canvas = np.full((520, 1100, 3), (214, 206, 196), np.uint8)
    for r, (x, y, s) in zip(records, [(40, 150, 300), (390, 40, 330), (760, 130, 300)]):
        canvas[y : y + s, x : x + s] = np.asarray(load_rgb(r.photo).resize((s, s), Image.BICUBIC))
    return canvas


def non_fs2k_pictures() -> dict[str, np.ndarray]:
    """Pictures that ship with matplotlib (no download): a portrait that is not FS2K's and two that are not faces."""
    import matplotlib

    from facesketch.data.images import load_rgb

    folder = Path(matplotlib.get_data_path()) / "sample_data"
    out = {}
    for key, name in (("portrait", "grace_hopper.jpg"), ("present", "Minduka_Present_Blue_Pack.png"), ("logo", "logo2.png")):
        if (folder / name).is_file():
            out[key] = np.asarray(load_rgb(folder / name))
    return out


def model_demo(args, root: Path, out: Path) -> Path:
    from facesketch.data.images import load_rgb
    from facesketch.default_model import resolve_model
    from facesketch.evaluation.baselines import pencil_sketch
    from facesketch.faces import FaceDetector, draw_faces
    from facesketch.report import html as H
    from facesketch.report.grids import attention_panel, label_image, tile
    from facesketch.translate import TranslateOptions, load_translator, translate_image

    t0 = time.time()
    model = resolve_model(args.model)
    tr = load_translator(model)
    back = load_translator(model, direction="BtoA")
    detector = FaceDetector()
    records = spread_test_records(root)
    photos = [np.asarray(load_rgb(r.photo)) for r in records]

    faces_only = TranslateOptions(whole_frame_fallback=False)

    def face_sketch(img):
        t = translate_image(tr, img, TranslateOptions(), detector)  # no face found: the whole frame
        return t.outputs[0], t.inputs[0], t.attention[0]

    done = [face_sketch(p) for p in photos]
    (out / "sketches").mkdir()
    for r, (y, _, _) in zip(records, done):
        Image.fromarray(y).save(out / "sketches" / f"{r.id}.png")
    cols = [[label_image(_sq(p), "photo"), label_image(_sq(y), "facesketch"), label_image(_sq(pencil_sketch(p)), "pencil filter"),
             label_image(_sq(np.asarray(load_rgb(r.sketch))), "artist")] for p, (y, _, _), r in zip(photos, done, records)]  # fmt: skip
    # rows of 4 photos: photo / ours / pencil / artist for each, side by side
    rows = []
    for i in range(0, len(cols), 4):
        chunk = cols[i : i + 4]
        for k in range(4):
            rows.append([c[k] for c in chunk])
    grid = tile(rows)
    Image.fromarray(grid).save(out / "grid.png")
    panels = [attention_panel(a, m, y) for (y, a, m) in done[::4][:3] if m is not None]

    # the face path on a wide shot (FS2K photo3) and on a group of several faces
    wide = photos[-1]
    group = group_photo(records[:3])
    face_rows = []
    for name, img in (("wide shot", wide), ("several faces", group)):
        ft = translate_image(tr, img, faces_only, detector)
        row = [label_image(_fit(draw_faces(img, ft.faces)), f"{name}: {len(ft.faces)} face(s)")]
        row += [label_image(_sq(y), "sketch") for y in ft.outputs[:3]]
        if ft.faces:
            row.append(label_image(_fit(ft.pasted(img)), "pasted back"))
        face_rows.append(_row(row))
    others = non_fs2k_pictures()
    extra_rows = []
    if "portrait" in others:
        ft = translate_image(tr, others["portrait"], faces_only, detector)
        row = [label_image(_fit(others["portrait"]), "not FS2K")]
        if ft.faces:
            row += [label_image(_sq(ft.outputs[0]), "sketch"), label_image(_fit(ft.pasted(others["portrait"])), "pasted back")]
        extra_rows.append(_row(row))
    nonface = [others[k] for k in ("present", "logo") if k in others] + [wide]
    ys = tr.translate_arrays(nonface, output_size="input")
    fig7 = _column([_row([label_image(_fit(x), "input") for x in nonface]), _row([label_image(_fit(y), "facesketch") for y in ys])])
    art = [np.asarray(load_rgb(r.sketch)) for r in records[::4][:3]]
    ph = back.translate_arrays(art)
    b2a = tile([[label_image(_sq(a), "artist sketch") for a in art], [label_image(_sq(p), "facesketch B->A") for p in ph]])
    Image.fromarray(fig7).save(out / "non_face.png")
    Image.fromarray(b2a).save(out / "sketch_to_photo.png")
    if panels:
        Image.fromarray(tile([[p] for p in panels])).save(out / "attention.png")
    Image.fromarray(_column(face_rows + extra_rows)).save(out / "face_path.png")
    seconds = time.time() - t0
    meta = tr.meta
    body = [
        "<h1>facesketch demo</h1>",
        f"<p>The model shipped with facesketch (<code>{H.esc(model.name)}</code>: {H.esc(meta['generator'])} generators, "
        f"ngf {meta['ngf']}, {meta['n_blocks']} blocks, translating at {tr.size}&times;{tr.size}), trained by "
        "<code>facesketch train</code> on FS2K on a 2-core CPU; how, and its scores: docs/results.md. "
        f"Everything on this page was made in {seconds:.0f} s on this machine.</p>",
        "<h2>FS2K test photos</h2><p class=muted>Six photos of each source of the FS2K test split (photo1, photo3), four per block of rows: the photo, our sketch "
        "(face path: detected, aligned, translated), the pencil filter (colour dodge, no learning) and the artist's sketch.</p>",
        H.img(grid),
        "<h2>Attention masks</h2><p class=muted>9 content images blended by 9 foreground masks; the background mask "
        "copies the input. Numbers are mean mask weights.</p>", *[H.img(p) for p in panels],
        "<h2>Any photo: detect, align, sketch, paste back</h2>", *[H.img(r) for r in face_rows + extra_rows],
        "<h2>Pictures that are not faces (whole frame, <code>--no-align</code>)</h2>", H.img(fig7),
        "<h2>And back: sketch &rarr; photo (G_B)</h2>", H.img(b2a),
        f"<h2>Files</h2><p>sketches: <code>{H.esc(out / 'sketches')}</code>; more with "
        "<code>facesketch translate --out OUT PHOTO...</code> (no <code>--model</code>: this model).</p>",
    ]
    return H.write_page(out / "index.html", "facesketch demo", "\n".join(body))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m facesketch.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="demo folder, replaced if it holds an earlier demo (default runs/demo, "
                    "runs/demo-train with --train)")  # fmt: skip
    ap.add_argument("--model", default=None, help="model to show (default: the one shipped with facesketch)")
    ap.add_argument("--train", action="store_true", help="train a small model for --minutes first and show that one")
    ap.add_argument("--minutes", type=float, default=4.0, help="--train: training time budget (default 4)")
    ap.add_argument("--fs2k", help="FS2K root (default: $FS2K_ROOT, else ../shared/data/FS2K)")
    args = ap.parse_args(argv)

    from facesketch.config import load_config
    from facesketch.data import fs2k
    from facesketch.errors import UserError
    from facesketch.training.loop import train
    from facesketch.translate.load import load_translator

    root = fs2k.find_root(args.fs2k)
    target = "demo-train" if args.train else "demo"
    if root is None:
        print(f"demo: {fs2k.FS2K_HOWTO}, then run `make {target}` again", file=sys.stderr)
        return 2
    out = Path(args.out or f"runs/{target}")
    if out.exists():
        if not (out / MARKER).exists():
            print(f"demo: {out} exists and was not made by the demo; pass another --out", file=sys.stderr)
            return 2
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("made by python -m facesketch.demo\n")
    t0 = time.time()
    try:
        if args.train:
            cfg = load_config("demo", [f"data.root={root}", f"train.max_minutes={args.minutes}"])
            train(cfg, out / "run")
            records = pick_test_records(root)
            page = build_page(out, out / "run", records, load_translator(out / "run"), (time.time() - t0) / 60)
        else:
            page = model_demo(args, root, out)
    except UserError as e:
        print(f"demo: error: {e}", file=sys.stderr)
        return 2
    print(f"\ndemo finished in {(time.time() - t0) / 60:.1f} min: open {page.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
